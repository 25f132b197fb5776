"""Every error the core raises on purpose, in one place.

Adapters catch `DocsBotError` and show `user_message` (one honest sentence); the log gets the
message at WARNING and the traceback with its cause at DEBUG. Anything else escaping the core is
a bug (logged with its traceback).
"""

from __future__ import annotations


class DocsBotError(Exception):
    """Base class. `user_message` is safe to show to a chat user or a terminal user."""

    user_message = "Something went wrong on my side; the operators have the details in the log."
    #: A short machine-readable name for what failed (`docsbot ask --json` prints it).
    code = "internal"


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


class PageError(SourceError):
    """One docs page could not be read. The crawler records it as that page's error and goes on;
    the page stays indexed as it was. It never reaches a user."""


class FetchError(PageError):
    """A request that failed for good: after the retries, a redirect off the docs site, too many
    redirects, or a body over CRAWL_MAX_PAGE_BYTES."""


class NoArticleError(PageError):
    """A docs page's HTML has no `div.doc-style.doc-post-content` (or no words in it)."""


class StoreError(DocsBotError):
    """Milvus is unreachable, locked by another process, or rejected an operation."""

    user_message = "The search index is not available right now; please try again in a minute."
    code = "store_unavailable"


class StoreLockedError(StoreError):
    """A Milvus Lite data directory is already opened by another process."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class EmbeddingError(DocsBotError):
    """The embedding model could not be loaded or failed on an input."""

    user_message = "The embedding model is not available; the operators have the details in the log."
    code = "embedding_unavailable"


class IndexEmptyError(DocsBotError):
    """A question was asked before anything was indexed. Only an operator can fix that: chat
    users read that the operators know, the `docsbot` command (its user is the operator) says
    what to run (`operator_message`)."""

    user_message = "The docs aren't indexed yet, so I can't answer; the operators can see this in the logs."
    operator_message = "The docs are not indexed yet: run `docsbot index` first."
    code = "index_empty"


class IndexBuildingError(IndexEmptyError):
    """A question was asked while the first index is being built (e.g. right after start-up)."""

    user_message = "I'm still indexing the Milvus docs; please ask again in a few minutes."
    operator_message = user_message
    code = "index_building"


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


class IndexMismatchError(ConfigError):
    """The index was built with another embedding model than the one configured."""


class ReindexBusyError(SourceError):
    """Another process (or another run in this one) is reindexing the same collection."""


class LLMError(DocsBotError):
    """The LLM server is unreachable, too slow, or answered with an error."""

    user_message = "I couldn't reach the language model just now."
    code = "llm_unavailable"
    #: Added after the part of an answer that streamed before the failure.
    cut_off_message = (
        "(The answer stops here: the language model stopped responding. The sources below have the rest.)"
    )


class LLMBusyError(LLMError):
    """No LLM slot came free within LLM_QUEUE_TIMEOUT."""

    user_message = "I'm answering a lot of questions right now; please try again in a minute."
    code = "llm_busy"


class LLMTimeoutError(LLMError):
    """The whole answer did not finish within LLM_TIMEOUT (first byte to last)."""

    user_message = "The language model didn't answer in time."
    code = "llm_timeout"
    cut_off_message = (
        "(The answer stops here: the language model took too long. The sources below have the rest.)"
    )


class LLMLengthLimitError(LLMError):
    """The model stopped at LLM_MAX_TOKENS (finish reason "length"): the text so far is complete
    up to there, but its last sentence may be cut. The service keeps the answer up to its last
    whole sentence and says it was cut; a side task keeps what it got."""

    user_message = "The answer was longer than the language model's length limit."
    code = "llm_length_limit"
    cut_off_message = "(The answer stops here: it reached its length limit. The sources below have the rest.)"


class LLMStreamBrokenError(LLMError):
    """The LLM server broke the connection (or ended the stream) in the middle of an answer."""

    user_message = "The language model stopped in the middle of the answer."
    code = "llm_stream_broken"


class LocalLLMError(DocsBotError):
    """The embedded llama.cpp server could not start (no package, no model, not listening)."""

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


class MilvusNotConnectedError(StoreError):
    """Milvus has not answered yet since start-up (the background connect keeps trying)."""


class NotReady(Exception):
    """A readiness check of `docsbot serve` failed; the message says why (shown in /readyz)."""
