"""The LLM seam: stream a chat completion from any OpenAI-compatible server.

vLLM in production, a llama.cpp server for the offline default: the same `AsyncOpenAI` code path,
only the URL and the model name differ. Concurrency is bounded by a semaphore; a request that
waits longer than LLM_QUEUE_TIMEOUT for a slot gets `LLMBusyError` instead of queueing forever.

LLM_TIMEOUT is a deadline for the whole answer, first byte to last (retries included): a server
that trickles one token every few seconds is cut off there with `LLMTimeoutError`. A stream that
breaks midway (connection dropped, or ended without a finish reason) is `LLMStreamBrokenError`;
one that ends at `max_tokens` (finish reason "length") raises `LLMLengthLimitError` after its text.
Every failure is an `LLMError` (core/errors.py); the service turns it into one honest sentence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Protocol, TypeVar, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from core.errors import LLMBusyError, LLMError, LLMLengthLimitError, LLMStreamBrokenError, LLMTimeoutError

__all__ = [
    "ChatLLM",
    "LLMBusyError",
    "LLMError",
    "LLMLengthLimitError",
    "LLMStreamBrokenError",
    "LLMTimeoutError",
    "OpenAIChatLLM",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ChatLLM(Protocol):
    model: str

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AsyncGenerator[str, None]:
        """Text deltas of the assistant's reply (`temperature` and `max_tokens` override the
        client's own for this request)."""
        ...

    async def close(self) -> None: ...


async def side_reply(
    llm: ChatLLM,
    messages: list[dict[str, str]],
    seconds: float,
    task: str,
    *,
    max_tokens: int | None = None,
) -> str | None:
    """The whole reply to a small task beside the answer (translating the question, naming its
    docs terms, checking its scope) within `seconds`; None when the LLM fails or is slow, logged
    as `task` (the caller goes on without it). At temperature 0: the same reply to the same
    question every time (what is searched and decided should not be a sample). `max_tokens`
    overrides the client's."""
    parts: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            async for delta in llm.stream(messages, temperature=0.0, max_tokens=max_tokens):
                parts.append(delta)
            return "".join(parts)
    except LLMLengthLimitError:
        return "".join(parts)  # a short reply asked for with a small max_tokens: what came is it
    except (LLMError, TimeoutError) as exc:
        log.warning("%s failed: %s", task, str(exc) or f"no reply within {seconds:g} s")
        return None


class OpenAIChatLLM:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        *,
        temperature: float = 0.2,
        top_p: float = 0.95,
        max_tokens: int = 512,
        timeout: float = 60.0,
        max_retries: int = 1,
        concurrency: int = 4,
        queue_timeout: float = 30.0,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.queue_timeout = queue_timeout
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )
        self._slots = asyncio.Semaphore(concurrency)

    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AsyncGenerator[str, None]:
        deadline = await self._take_slot()
        received = chars = 0
        cap = (self.max_tokens if max_tokens is None else max_tokens) * MAX_CHARS_PER_TOKEN
        try:
            response = await self._open(
                deadline,
                messages,
                temperature=self.temperature if temperature is None else temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            )
            finish_reason: str | None = None
            try:
                while (event := await self._next_event(deadline, response)) is not None:
                    choice = _first_choice(event, self.base_url)
                    if choice is None:
                        continue
                    finish_reason = finish_reason or choice.finish_reason
                    text = printable(_delta_text(choice, self.base_url))
                    if not text:
                        continue
                    if chars + len(text) > cap:  # a server that ignores max_tokens
                        if cap > chars:
                            yield text[: cap - chars]
                        raise LLMLengthLimitError(f"LLM at {self.base_url} sent over {cap} characters")
                    received, chars = received + 1, chars + len(text)
                    yield text
            finally:
                await response.close()
            if finish_reason is None:
                raise LLMStreamBrokenError(f"LLM at {self.base_url} ended the stream without a finish reason")
            if finish_reason == "length":
                raise LLMLengthLimitError(f"LLM at {self.base_url} stopped at max_tokens ({received} deltas)")
        except TimeoutError:
            raise LLMTimeoutError(
                f"LLM at {self.base_url} did not finish within {self.timeout:g} s ({received} deltas)"
            ) from None
        except openai.OpenAIError as exc:
            raise _llm_error(exc, self.base_url, self.timeout, received) from exc
        finally:
            self._slots.release()

    async def reply_with_odds(
        self, messages: list[dict[str, str]], *, max_tokens: int, top: int = 10
    ) -> tuple[str, dict[str, float]]:
        """A short reply at temperature 0, and the probabilities of its likeliest first tokens
        by token text stripped and upper-cased ("YES", " Yes" and "yes" add up under "YES");
        the odds are empty when the server sends no log-probabilities (vLLM and llama.cpp do).
        A reply cut at `max_tokens` is returned as it is. Raises like `stream` otherwise."""
        deadline = await self._take_slot()
        parts: list[str] = []
        odds: dict[str, float] = {}
        try:
            response = await self._open(
                deadline, messages, temperature=0.0, max_tokens=max_tokens, logprobs=True, top_logprobs=top
            )
            try:
                while (event := await self._next_event(deadline, response)) is not None:
                    if (choice := _first_choice(event, self.base_url)) is None:
                        continue
                    parts.append(printable(_delta_text(choice, self.base_url)))
                    content = getattr(getattr(choice, "logprobs", None), "content", None)
                    if content and not odds:
                        odds = token_odds(getattr(content[0], "top_logprobs", None) or [])
            finally:
                await response.close()
        except TimeoutError:
            raise LLMTimeoutError(f"LLM at {self.base_url} did not reply within {self.timeout:g} s") from None
        except openai.OpenAIError as exc:
            raise _llm_error(exc, self.base_url, self.timeout, len(parts)) from exc
        finally:
            self._slots.release()
        return "".join(parts)[: max_tokens * MAX_CHARS_PER_TOKEN], odds

    async def _open(self, deadline: float, messages: list[dict[str, str]], **params: Any) -> Any:
        """A streaming chat completion of `messages` for this model, opened before `deadline`."""
        return await self._before(
            deadline,
            self._client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                stream=True,
                **params,
            ),
        )

    async def _take_slot(self) -> float:
        """Wait for a free request slot (`LLMBusyError` after `queue_timeout`); the request's
        deadline."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
        except TimeoutError:
            raise LLMBusyError(f"no LLM slot free within {self.queue_timeout} s") from None
        return asyncio.get_running_loop().time() + self.timeout

    async def _next_event(self, deadline: float, response: Any) -> Any | None:
        """The stream's next event, None at its end."""
        try:
            return await self._before(deadline, response.__anext__())
        except StopAsyncIteration:
            return None
        except ValueError as exc:  # an event that is not JSON: the SDK can't parse it
            raise LLMStreamBrokenError(f"LLM at {self.base_url} sent an unreadable event: {exc}") from exc

    @staticmethod
    async def _before(deadline: float, step: Awaitable[T]) -> T:
        """`await step`, or TimeoutError once the answer's deadline has passed."""
        left = deadline - asyncio.get_running_loop().time()
        return await asyncio.wait_for(step, max(left, 0.0))

    async def close(self) -> None:
        await self._client.close()


#: No tokenizer averages more characters per token; a reply longer than max_tokens times this
#: comes from a server that ignores max_tokens, and is cut there like one that stopped at it.
MAX_CHARS_PER_TOKEN = 32
#: Control characters (other than line breaks and tabs) and lone surrogates: model output that
#: would reach terminals raw (ANSI escapes), break strict JSON and SQLite, or fail to encode.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def token_odds(candidates: list[Any]) -> dict[str, float]:
    """{token text stripped and upper-cased: probability} from a token's `top_logprobs`; values a
    faulty server sends (no token, a log-probability that is not a number, or above 0) are
    skipped or read as certainty, never an error."""
    odds: dict[str, float] = {}
    for candidate in candidates:
        token, logprob = getattr(candidate, "token", None), getattr(candidate, "logprob", None)
        if not isinstance(token, str) or not isinstance(logprob, int | float) or math.isnan(logprob):
            continue
        key = token.strip().upper()
        odds[key] = min(1.0, odds.get(key, 0.0) + math.exp(min(float(logprob), 0.0)))
    return odds


def printable(text: str) -> str:
    """Model output without control characters and lone surrogates (see `_UNPRINTABLE`)."""
    return _UNPRINTABLE.sub("", text)


def _first_choice(event: Any, base_url: str) -> Any:
    """The event's first choice (None for events without one: usage, keep-alives)."""
    choices = getattr(event, "choices", None)
    if not choices:
        return None
    if not hasattr(choices[0], "delta"):
        raise LLMStreamBrokenError(f"LLM at {base_url} sent a choice without a delta: {event!r:.200}")
    return choices[0]


def _delta_text(choice: Any, base_url: str) -> str:
    content = getattr(choice.delta, "content", None) if choice.delta is not None else None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise LLMStreamBrokenError(f"LLM at {base_url} sent non-text content: {content!r:.200}")
    return content


def _llm_error(exc: openai.OpenAIError, base_url: str, timeout: float, received: int) -> LLMError:
    """The LLMError for an SDK error; a connection that breaks after text arrived is a broken
    stream (the SDK reports a body cut short as a connection error)."""
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"LLM at {base_url} timed out after {timeout:g} s")
    if received and isinstance(exc, openai.APIError):
        return LLMStreamBrokenError(f"LLM stream from {base_url} broke after {received} deltas: {exc!r}")
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"LLM at {base_url} answered {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"LLM at {base_url} is unreachable: {exc!r}")
    return LLMError(f"LLM call failed: {exc!r}")
