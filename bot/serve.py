"""`docsbot serve`: the long-running process with the chat adapters and the reindex schedule.

Each configured adapter runs under a supervisor: a crash is logged and the adapter restarted
with backoff, without touching the others. Everything is built from `Settings` here and closed
in reverse order on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from bot.common import ChatCore
from core.config import Settings
from core.errors import ConfigError
from core.records import Records
from core.service import RagService, open_service

log = logging.getLogger("docsbot.serve")

#: Restart backoff for a crashed adapter: 1, 2, 4 ... capped at this many seconds.
MAX_RESTART_DELAY = 60.0


class Adapter(Protocol):
    """A chat front end. `run` serves until cancelled; an exception means it crashed."""

    name: str

    async def run(self) -> None: ...


def configured_adapters(core: ChatCore) -> list[Adapter]:
    """The adapters whose settings are present (imported lazily: each pulls its SDK)."""
    settings = core.settings
    adapters: list[Adapter] = []
    if settings.slack_bot_token.get_secret_value():
        from bot.slack_app import SlackAdapter

        adapters.append(SlackAdapter(core))
    if settings.discord_token.get_secret_value():
        from bot.discord_app import DiscordAdapter

        adapters.append(DiscordAdapter(core))
    if not adapters:
        raise ConfigError(
            "nothing to serve: set SLACK_BOT_TOKEN (with SLACK_APP_TOKEN for Socket Mode, or "
            "SLACK_SIGNING_SECRET with SLACK_MODE=http) and/or DISCORD_TOKEN"
        )
    return adapters


async def supervise(adapter: Adapter, *, first_delay: float = 1.0) -> None:
    """Run an adapter forever: restart it with exponential backoff whenever it crashes."""
    delay = first_delay
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await adapter.run()
            log.warning("adapter %s stopped by itself; restarting in %.0f s", adapter.name, delay)
        except asyncio.CancelledError:
            raise
        except ConfigError:
            raise
        except Exception:
            log.exception("adapter %s crashed; restarting in %.0f s", adapter.name, delay)
        if asyncio.get_running_loop().time() - started > 5 * MAX_RESTART_DELAY:
            delay = first_delay  # it ran fine for a good while: start the backoff over
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RESTART_DELAY)


@contextlib.asynccontextmanager
async def open_chat_core(settings: Settings, service: RagService) -> AsyncIterator[ChatCore]:
    records = Records(settings.records_path, settings.records_retention_days)
    try:
        records.prune()
        yield ChatCore(settings, service, records)
    finally:
        records.close()


async def serve(settings: Settings) -> int:
    """Run until cancelled (Ctrl-C / SIGTERM)."""
    async with open_service(settings) as service, open_chat_core(settings, service) as core:
        adapters = configured_adapters(core)
        if (await service.status()).chunks == 0:
            log.warning(
                "the index is empty: indexing %s now (questions get 'not indexed yet')", settings.docs_source
            )
            service.start_reindex(trigger="startup")
        else:
            await service.warm_up()
        async with asyncio.TaskGroup() as group:
            for adapter in adapters:
                group.create_task(supervise(adapter), name=f"adapter-{adapter.name}")
    return 0
