"""What the Discord tests share: a running adapter against the fakes, and ways to read the fake.

Each test starts `DiscordAdapter` (as `docsbot serve` does) pointed at `FakeDiscord` on
127.0.0.1 through DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL, over the real indexed service and
a fake OpenAI-compatible LLM server, then plays users: mentions, posts, slash commands, clicks.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.chat.flow import ChatCore
from bot.discord.adapter import DiscordAdapter
from core.generation import OpenAIChatLLM
from core.records import Records
from core.service import RagService

from ..fakes.discord_api import FakeDiscord, snowflake, user
from ..fakes.llm_server import FakeLLM

QUESTION = "what does M control in an HNSW index?"
ANSWER = "HNSW's M sets the maximum number of edges per node [1]."


@dataclass
class Bot:
    """One running adapter and what it talks to."""

    discord: FakeDiscord
    llm: FakeLLM
    core: ChatCore
    records: Records
    adapter: DiscordAdapter

    @property
    def bot_id(self) -> str:
        return str(self.discord.bot["id"])


@contextlib.asynccontextmanager
async def running_bot(
    indexed: RagService, discord: FakeDiscord, llm: FakeLLM, tmp: Path, *, llm_url: str = "", **settings: Any
) -> AsyncIterator[Bot]:
    """Start the adapter against the fakes; stop it (as on shutdown) at the end."""
    values: dict[str, Any] = {
        "discord_token": SecretStr("fake-token"),
        "discord_api_base_url": discord.api_base,
        "discord_gateway_url": discord.gateway_url,
        "discord_guild_ids": discord.guild_id,
        "stream_edit_interval": 0.2,
        "shutdown_grace": 0.0,
        "user_rate_limit": 5,
    } | settings
    config = indexed.settings.model_copy(update=values)
    chat_llm = OpenAIChatLLM(llm_url or llm.base_url, "fake-model", timeout=10.0, max_retries=0)
    service = RagService(config, indexed.store, indexed.embedder, chat_llm)
    records = Records(tmp / "records.sqlite3")
    core = ChatCore(config, service, records)
    adapter = DiscordAdapter(core)
    before = discord.identified
    task = asyncio.create_task(adapter.run())
    try:
        connected = asyncio.create_task(discord.connected(after=before))
        await asyncio.wait({task, connected}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            connected.cancel()
            task.result()  # raises what stopped the adapter
        await connected
        yield Bot(discord, llm, core, records, adapter)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await chat_llm.close()
        records.close()


def member(name: str = "alice") -> dict[str, Any]:
    return user(snowflake(), name)


def answered(discord: FakeDiscord, count: int = 1) -> Callable[[], bool]:
    """True once `count` bot messages carry the feedback buttons (the last step of an answer)."""

    def done() -> bool:
        bot_id = discord.bot["id"]
        finals = [m for m in discord.messages.values() if m["author"]["id"] == bot_id and m["components"]]
        return len(finals) >= count

    return done


def buttons(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_pings(body: dict[str, Any]) -> bool:
    """The payload lets nothing ping: no @everyone/@here, roles, users, or the replied-to author."""
    allowed = body.get("allowed_mentions")
    return allowed is not None and allowed.get("parse") == [] and not allowed.get("replied_user", False)


def bare_links(content: str) -> list[str]:
    """URLs in message text that Discord would unfurl into a preview: not in angle brackets
    (`<https://...>`, `[label](<https://...>)`), outside code."""
    prose = re.sub(r"```.*?```|`[^`\n]*`", " ", content, flags=re.S)
    return re.findall(r"(?<!<)https?://[^\s)>]+", prose)
