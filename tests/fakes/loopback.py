"""Serve an aiohttp app on 127.0.0.1 (a free port): what every fake server here starts with."""

from __future__ import annotations

from aiohttp import web


async def serve_on_loopback(app: web.Application, shutdown_timeout: float = 0.5) -> tuple[web.AppRunner, int]:
    """Start `app` on 127.0.0.1 and an ephemeral port; returns the runner (cleanup it) and port."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])
