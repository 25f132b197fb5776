"""`/reindex` on Discord: start a reindex (or join the running one) and show its progress by
editing one message; `/reindex action:status` shows the running job or the last run.

Who may: the index is shared by every server the bot is in, so only the bot's own admins may:
a user in DISCORD_ADMIN_USER_IDS or a member with a role in DISCORD_ADMIN_ROLE_IDS; Manage Server
alone is not enough (any server's owner has it). When DISCORD_GUILD_IDS is set, the command is
refused from every other server (role ids are per server). `force` (apply deletions the safety
gate held back) is therefore for listed admins only. Everyone else gets an ephemeral refusal.
The command's default member permission is Manage Server, so Discord shows it only to server
managers; a server can show it to the admin role instead under Server Settings > Integrations.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.flow import ChatCore
from bot.chat.reindex import PROGRESS_INTERVAL, follow
from bot.chat.texts import NOT_ADMIN, OTHER_SERVER
from bot.discord.interactions import reply_privately
from bot.discord.render import NO_PINGS, progress_text, run_text, status_text
from core.config import Settings

if TYPE_CHECKING:
    from bot.discord.adapter import DocsBot

log = logging.getLogger("docsbot.discord")

REFUSAL = NOT_ADMIN


class ReindexCog(commands.Cog):
    """The admin command."""

    def __init__(self, bot: DocsBot, core: ChatCore) -> None:
        self.bot = bot
        self.core = core
        self.admin_users = Settings.id_list(core.settings.discord_admin_user_ids)
        self.admin_roles = Settings.id_list(core.settings.discord_admin_role_ids)
        self.guilds = Settings.id_list(core.settings.discord_guild_ids)
        self.interval = max(PROGRESS_INTERVAL, core.settings.stream_edit_interval)

    def refusal(self, interaction: discord.Interaction[DocsBot]) -> str | None:
        """Why this user may not reindex from here, or None when they may (see the module
        docstring): a listed server only, then a listed user or a member with a listed role."""
        if self.guilds and str(interaction.guild_id) not in self.guilds:
            return OTHER_SERVER
        user = interaction.user
        if str(user.id) in self.admin_users:
            return None
        if isinstance(user, discord.Member) and self.admin_roles & {str(role.id) for role in user.roles}:
            return None
        return REFUSAL

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
        if (refused := self.refusal(interaction)) is not None:
            log.info("reindex refused for user=%s guild=%s", interaction.user.id, interaction.guild_id)
            await reply_privately(interaction, refused)
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

        run = await follow(
            job, edit, lambda progress: progress_text(progress, joined=not started), interval=self.interval
        )
        try:
            await edit(run_text(run))
        except discord.HTTPException as exc:  # the interaction token lasts 15 minutes
            log.info("could not edit the reindex message (%s); posting the result instead", exc)
            if isinstance(interaction.channel, discord.abc.Messageable):
                await interaction.channel.send(run_text(run), allowed_mentions=NO_PINGS)
