"""A minimal chat adapter driven over HTTP, for tests of `docsbot serve` itself.

`POST /ask {"user": "U1", "question": "..."}` goes through the same ChatCore path as Slack and
Discord (refuse -> relay the streamed answer -> record) and answers with the outcome as JSON.

    python -m tests.fakes.ask_adapter      # = `docsbot serve` with this adapter on ASK_PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from bot.chat.flow import ChatCore


class AskAdapter:
    name = "ask"

    def __init__(self, core: ChatCore, port: int) -> None:
        self.core = core
        self.port = port

    async def run(self) -> None:
        app = web.Application()
        app.router.add_post("/ask", self._ask)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _ask(self, request: web.Request) -> web.Response:
        body = await request.json()
        user, question = str(body["user"]), str(body["question"])
        refusal = self.core.refuse(user, question)
        if refusal is not None:
            return web.json_response({"outcome": "refused", "text": refusal})

        async def edit(text: str) -> None:
            return None

        answer, ttft = await self.core.relay(self.core.service.stream(question), edit, interval=0)
        answer_id = await self.core.record(self.name, "test", user, question, answer, ttft)
        return web.json_response({"outcome": answer.outcome, "text": answer.text, "answer_id": answer_id})


def main() -> int:
    """`docsbot serve` (through the real CLI entry point) with an AskAdapter on ASK_PORT."""
    import bot.serve

    real_serve = bot.serve.serve
    port = int(os.environ["ASK_PORT"])

    async def serve_with_ask_adapter(settings: object) -> int:
        return await real_serve(settings, adapters=lambda core: [AskAdapter(core, port)])  # type: ignore[arg-type]

    bot.serve.serve = serve_with_ask_adapter  # type: ignore[assignment]
    from bot.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
