"""Every error the core raises on purpose, in one place.

Adapters catch `DocsBotError` and show `user_message` (one honest sentence); the log gets the
message at WARNING and the traceback with its cause at DEBUG. Anything else escaping the core is
a bug (logged with its traceback).
"""

from __future__ import annotations


class DocsBotError(Exception):
    """Base class. `user_message` is safe to show to a chat user or a terminal user."""

    user_message = "Something went wrong on my side; the operators have the details in the log."


class ConfigError(DocsBotError):
    """Settings are missing or invalid. The message names the setting and what is wrong."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class SourceError(DocsBotError):
    """A docs source could not be read (missing directory, unreadable archive, ...)."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class StoreError(DocsBotError):
    """Milvus is unreachable, locked by another process, or rejected an operation."""

    user_message = "The search index is not available right now; please try again in a minute."


class StoreLockedError(StoreError):
    """A Milvus Lite data directory is already opened by another process."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class EmbeddingError(DocsBotError):
    """The embedding model could not be loaded or failed on an input."""

    user_message = "The embedding model is not available; the operators have the details in the log."


class IndexEmptyError(DocsBotError):
    """A question was asked before anything was indexed."""

    user_message = "The docs are not indexed yet: run `docsbot index` first."


class JudgeError(DocsBotError):
    """The answer judge (JUDGE_BASE_URL) failed or replied with something that is not the strict
    JSON verdict object. `docsbot eval --answers` counts it per question and goes on."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class EngineUnavailableError(DocsBotError):
    """`docsbot llm serve --engine vllm` on a host without vLLM or without a GPU."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)
