"""Who may `/reindex` on Discord: listed admins only, and only from the listed servers.

The index is shared by every server the bot is in, so Manage Server (which any server's owner
has) is not enough, and with DISCORD_GUILD_IDS set other servers are refused outright.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.chat.texts import NOT_ADMIN, OTHER_SERVER
from core.service import RagService

from ..fakes.discord_api import MANAGE_GUILD, FakeDiscord
from ..fakes.llm_server import FakeLLM
from .helpers import member, running_bot


async def reply_to(discord: FakeDiscord, interaction: dict[str, Any]) -> dict[str, Any]:
    """The body of the bot's first answer to an interaction."""
    await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{interaction['id']}/.+")))
    return discord.rest("POST", rf"/interactions/{interaction['id']}/.+")[0].body


async def test_manage_server_alone_may_not_reindex_or_force_but_a_listed_user_may(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord, admin = fake_discord, member("ada")
    async with running_bot(
        indexed_service, discord, fake_llm, tmp_path, discord_admin_user_ids=admin["id"]
    ) as bot:
        before = bot.core.service.last_run()
        for options in ({}, {"force": True}, {"action": "status"}):
            manager = await discord.command(
                "reindex", options, author=member("owner"), permissions=MANAGE_GUILD
            )
            refused = await reply_to(discord, manager)
            assert refused["type"] == 4 and refused["data"]["flags"] == 64
            assert refused["data"]["content"] == NOT_ADMIN
        assert bot.core.service.running_reindex is None and bot.core.service.last_run() == before

        allowed = await discord.command("reindex", {"force": True}, author=admin)
        assert (await reply_to(discord, allowed))["type"] == 5  # deferred: the reindex runs
        await discord.wait_until(lambda: bot.core.service.last_run() != before, timeout=30)
        run = bot.core.service.last_run()
        assert run is not None and run.trigger == f"discord:{admin['id']}"


async def test_reindex_is_refused_from_a_server_outside_discord_guild_ids(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord, admin = fake_discord, member("ada")
    home = "1234567890"  # the bot's home server; the fake's server is another one
    async with running_bot(
        indexed_service,
        discord,
        fake_llm,
        tmp_path,
        discord_guild_ids=home,
        discord_admin_user_ids=admin["id"],
        discord_admin_role_ids=discord.admin_role_id,
    ) as bot:
        before = bot.core.service.last_run()
        assert discord.commands["reindex"]["guild_id"] == home
        by_user = await discord.command("reindex", author=admin)
        by_role = await discord.command("reindex", author=member(), roles=[discord.admin_role_id])
        for interaction in (by_user, by_role):
            refused = await reply_to(discord, interaction)
            assert refused["data"]["content"] == OTHER_SERVER and refused["data"]["flags"] == 64
        assert bot.core.service.running_reindex is None and bot.core.service.last_run() == before
