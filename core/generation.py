"""The LLM seam: stream a chat completion from any OpenAI-compatible server.

vLLM in production, a llama.cpp server for the offline default: the same `AsyncOpenAI` code path,
only the URL and the model name differ. Concurrency is bounded by a semaphore; a request that
waits longer than LLM_QUEUE_TIMEOUT for a slot gets `LLMBusyError` instead of queueing forever.
Every failure becomes an `LLMError` (the service turns it into one honest sentence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from core.errors import DocsBotError

log = logging.getLogger(__name__)


class LLMError(DocsBotError):
    """The LLM server is unreachable, too slow, or answered with an error."""

    user_message = "I couldn't reach the language model just now."


class LLMBusyError(LLMError):
    user_message = "I'm answering a lot of questions right now; please try again in a minute."


class ChatLLM(Protocol):
    model: str

    def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """Text deltas of the assistant's reply."""
        ...

    async def close(self) -> None: ...


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

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
        except TimeoutError:
            raise LLMBusyError(f"no LLM slot free within {self.queue_timeout} s") from None
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                stream=True,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens,
            )
            async for event in response:
                if event.choices and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
        except openai.APITimeoutError as exc:
            raise LLMError(f"LLM at {self.base_url} timed out after {self.timeout} s") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"LLM at {self.base_url} is unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"LLM at {self.base_url} answered {exc.status_code}: {exc.message}") from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM call failed: {exc}") from exc
        finally:
            self._slots.release()

    async def close(self) -> None:
        await self._client.close()
