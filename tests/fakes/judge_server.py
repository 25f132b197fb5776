"""A fake answer judge: an OpenAI-compatible `POST /v1/chat/completions` (not streamed) on
127.0.0.1 that replies with scripted message contents, in order, one per request.

A script entry is the reply's text (valid JSON or deliberately malformed), an int HTTP status
(the server answers with that error), or None (never answers: the client must time out). Once
the script is used up, the last entry repeats. Every request body is recorded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .loopback import serve_on_loopback

Reply = str | int | None


@dataclass
class FakeJudge:
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeJudge:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.script[min(len(self.requests), len(self.script)) - 1] if self.script else "{}"
        if reply is None:
            await asyncio.sleep(3600)
        if isinstance(reply, int):
            error = {"error": {"message": "judge broke", "type": "server_error"}}
            return web.json_response(error, status=reply)
        return web.json_response(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "judge"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


class ThreadedFakeJudge:
    """A FakeJudge on its own event loop in a thread, for tests that run the CLI as a process."""

    def __init__(self, script: list[Reply]) -> None:
        import threading

        self.fake = FakeJudge(script=script)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeJudge:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
