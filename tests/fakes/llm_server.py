"""A faithful fake of an OpenAI-compatible chat server (vLLM / llama.cpp), for fault cases.

Speaks `POST /v1/chat/completions` with `stream: true` as Server-Sent Events (`data: {chunk}`
lines, then `data: [DONE]`), like vLLM. A translation request (core.translation's prompt) gets
`translation`, a query expansion `terms`, a scope check `scope`, every other request `answer`.
Behaviour is switched per test: answer text, delay before the first token, delay between tokens
(a trickle), HTTP status, never answering, dropping the connection mid-stream, an event that is
not a chat chunk mid-stream, or ignoring `max_tokens`. A word is a
token: a reply longer than the request's `max_tokens` stops there with finish reason "length",
as vLLM's does. Every request body is recorded.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .loopback import serve_on_loopback


@dataclass
class FakeLLM:
    answer: str = "HNSW's M sets the maximum number of edges per node [1]. See also [9]."
    translation: str = "What does M control in an HNSW index?"
    terms: str = "HNSW, M, efConstruction, index building parameters"  # the query expansion's reply
    scope: str = "YES"  # the scope check's reply
    # the scope check's first-token probability of YES (the rest on NO), sent as `logprobs` when
    # the request asks for them, as vLLM and llama.cpp do; None: a server that sends none
    scope_yes: float | None = None
    delay: float = 0.0  # seconds before the first token
    token_delay: float = 0.0  # seconds between tokens (a model streaming at a fixed rate)
    status: int = 200
    hang: bool = False
    drop_after: int | None = None  # close the connection after this many tokens (a crash mid-stream)
    # after this many tokens, send `broken_event` as the next SSE data line, then end the stream
    broken_after: int | None = None
    broken_event: str = "{not json"
    ignore_max_tokens: bool = False  # stream the whole reply whatever max_tokens says (a faulty server)
    requests: list[dict[str, Any]] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)  # words written per request, before the client left
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if self.hang:
            await asyncio.sleep(3600)
        if self.status != 200:
            return web.json_response(
                {"error": {"message": "internal error", "type": "server_error"}}, status=self.status
            )
        await asyncio.sleep(self.delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())
        odds: dict[str, float] = {}
        system = body["messages"][0]["content"]
        if system.startswith("You are a translator."):
            reply = self.translation
        elif system.startswith("You help search the Milvus documentation."):
            reply = self.terms
        elif system.startswith("You are a strict reviewer for a Milvus documentation assistant."):
            reply = self.scope
            if body.get("logprobs") and self.scope_yes is not None:
                odds = {"YES": self.scope_yes, "NO": 1.0 - self.scope_yes}
        else:
            reply = self.answer
        words = reply.split(" ")
        limit = len(words) if self.ignore_max_tokens else body.get("max_tokens") or len(words)
        self.streamed.append(0)
        try:
            return await self._stream_words(request, response, body, words, limit, created, odds)
        except ConnectionResetError:  # the client closed the request mid-stream
            return response

    async def _stream_words(
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: dict[str, Any],
        words: list[str],
        limit: int,
        created: int,
        odds: dict[str, float],
    ) -> web.StreamResponse:
        for i, word in enumerate(words[:limit]):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            delta = {"content": word if i == 0 else " " + word}
            if i == 0:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            if odds:  # the first token's likeliest alternatives, as OpenAI's API sends them
                top = [{"token": t, "logprob": math.log(q or 1e-9), "bytes": None} for t, q in odds.items()]
                first = {"token": word, "logprob": top[0]["logprob"], "bytes": None, "top_logprobs": top}
                choice["logprobs"] = {"content": [first]}
                odds = {}
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model", "fake"),
                "choices": [choice],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.streamed[-1] += 1
            if self.drop_after is not None and i + 1 >= self.drop_after:
                assert request.transport is not None
                request.transport.close()  # no terminating chunk: the client sees a broken body
                return response
            if self.broken_after is not None and i + 1 >= self.broken_after:
                await response.write(f"data: {self.broken_event}\n\n".encode())
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                return response
        finish_reason = "length" if len(words) > limit else "stop"
        done = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}],
        }
        await response.write(f"data: {json.dumps(done)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


class ThreadedFakeLLM:
    """A FakeLLM on its own event loop in a thread, for tests that run the CLI as a process."""

    def __init__(self, **options: Any) -> None:
        import threading

        self.fake = FakeLLM(**options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
