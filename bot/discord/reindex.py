"""`/reindex` on Discord: start a reindex (or join the running one) and show its progress by
editing one message; `/reindex action:status` shows the running job or the last run.

Who may: the command's default member permission is Manage Server, so Discord shows it only to
server managers (admins can change that per server under Integrations). At run time the bot
checks again: Manage Server, or a role in DISCORD_ADMIN_ROLE_IDS, or a user in
DISCORD_ADMIN_USER_IDS. Everyone else gets an ephemeral refusal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.common import ChatCore
from bot.discord_app import DocsBot, reply_privately
from bot.discord_render import NO_PINGS, progress_text, run_text, status_text
from core.config import Settings
from core.runlog import IndexRun
from core.service import ReindexJob

log = logging.getLogger("docsbot.discord")

REFUSAL = "Sorry, only server managers and the bot's admins can reindex the docs."
#: Seconds between two edits of the progress message, at least.
PROGRESS_INTERVAL = 2.0


class ReindexCog(commands.Cog):
    """The admin command."""

    def __init__(self, bot: DocsBot, core: ChatCore) -> None:
        self.bot = bot
        self.core = core
        self.admin_users = Settings.id_list(core.settings.discord_admin_user_ids)
        self.admin_roles = Settings.id_list(core.settings.discord_admin_role_ids)
        self.interval = max(PROGRESS_INTERVAL, core.settings.stream_edit_interval)

    def may_reindex(self, interaction: discord.Interaction[DocsBot]) -> bool:
        """Manage Server in this channel, an admin role, or an admin user id."""
        user = interaction.user
        if str(user.id) in self.admin_users:
            return True
        if isinstance(user, discord.Member) and self.admin_roles & {str(role.id) for role in user.roles}:
            return True
        return interaction.guild is not None and interaction.permissions.manage_guild

    @app_commands.command(
        name="reindex", description="Re-crawl the Milvus docs and update the index (admins)."
    )
    @app_commands.describe(
        action="start a reindex (default) or show the status of the running or last one",
        force="apply deletions the safety gate held back for review",
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def reindex(
        self,
        interaction: discord.Interaction[DocsBot],
        action: Literal["start", "status"] = "start",
        force: bool = False,
    ) -> None:
        if not self.may_reindex(interaction):
            log.info("reindex refused for user=%s", interaction.user.id)
            await reply_privately(interaction, REFUSAL)
            return
        service = self.core.service
        if action == "status":
            running = service.running_reindex
            text = status_text(running.progress if running else None, service.last_run())
            await reply_privately(interaction, text)
            return
        await interaction.response.defer(thinking=True)
        job, started = service.start_reindex(trigger=f"discord:{interaction.user.id}", force=force)
        log.info(
            "reindex %s by user=%s force=%s", "started" if started else "joined", interaction.user.id, force
        )

        async def edit(text: str) -> None:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)

        run = await follow(job, edit, joined=not started, interval=self.interval)
        try:
            await edit(run_text(run))
        except discord.HTTPException as exc:  # the interaction token lasts 15 minutes
            log.info("could not edit the reindex message (%s); posting the result instead", exc)
            if isinstance(interaction.channel, discord.abc.Messageable):
                await interaction.channel.send(run_text(run), allowed_mentions=NO_PINGS)


async def follow(
    job: ReindexJob,
    edit: Callable[[str], Awaitable[None]],
    *,
    joined: bool = False,
    interval: float = PROGRESS_INTERVAL,
) -> IndexRun:
    """Show the job's progress through `edit` (only when it changed, at most once per
    `interval` seconds) until it ends; returns its run record. A failed edit is logged."""
    changed = asyncio.Event()
    unsubscribe = job.subscribe(lambda _progress: changed.set())
    done = asyncio.ensure_future(job.wait())
    shown = ""
    try:
        while not done.done():
            text = progress_text(job.progress, joined=joined)
            if text != shown:
                shown = text
                try:
                    await edit(text)
                except discord.HTTPException as exc:
                    log.warning("reindex progress edit failed: %s", exc)
            changed.clear()
            waiter = asyncio.ensure_future(changed.wait())
            await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not done.done():
                await asyncio.wait({done}, timeout=interval)
        return done.result()
    finally:
        unsubscribe()
        done.cancel()  # only this waiter: the job itself is shielded
