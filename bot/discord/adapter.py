"""The Discord adapter: a discord.py bot for mentions, `/ask`, `/reindex` and feedback buttons.

    adapter = DiscordAdapter(core)   # bot/serve.py does this when DISCORD_TOKEN is set
    await adapter.run()              # serves until cancelled

The bot asks only for the intents it needs (guilds, guild messages with their content, and DMs
when DISCORD_ALLOW_DMS is on). Each feature is a cog in its own module of this package:
`questions.py` (mentions, follow-ups, `/ask`), `help.py` (forums and auto-reply channels) and
`reindex.py` (`/reindex`); the buttons under answers are in `feedback.py` (👍/👎 and the 👎
dialog) and `escalation.py` ("Needs a human").
Cogs import `DocsBot` for typing only, so nothing imports in a circle. Rendering (2000-character
parts, sources, progress) is in `render.py`; endpoint overrides in `endpoints.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.flow import ChatCore
from bot.chat.tasks import InFlight
from bot.chat.texts import ERROR_SENTENCE
from bot.discord.endpoints import discord_endpoints
from bot.discord.escalation import NeedsHumanButton
from bot.discord.feedback import FeedbackButton
from bot.discord.help import HelpChannels, HelpCog
from bot.discord.interactions import is_expired, reply_privately
from bot.discord.questions import QuestionsCog
from bot.discord.reindex import ReindexCog
from bot.discord.render import NO_PINGS, split_message
from core.config import Settings
from core.errors import ConfigError

log = logging.getLogger("docsbot.discord")


# --- the bot --------------------------------------------------------------------------------


class DocsTree(app_commands.CommandTree["DocsBot"]):
    """The command tree, with an error handler that answers in one honest sentence."""

    async def on_error(
        self, interaction: discord.Interaction[DocsBot], error: app_commands.AppCommandError
    ) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        name = interaction.command.qualified_name if interaction.command else "?"
        if is_expired(original):
            log.warning("/%s: the interaction expired before it was acknowledged (over 3 s)", name)
            return
        log.error("/%s failed", name, exc_info=original)
        await reply_privately(interaction, ERROR_SENTENCE)


class DocsBot(commands.Bot):
    """The discord.py client: cogs for questions and reindexing, no text commands."""

    def __init__(self, core: ChatCore, ready: asyncio.Event | None = None) -> None:
        settings = core.settings
        intents = discord.Intents.none()
        intents.guilds = True  # channels, threads and roles of the servers the bot is in
        intents.guild_messages = True  # mentions and replies
        intents.message_content = True  # privileged: the text of those messages
        intents.dm_messages = settings.discord_allow_dms
        super().__init__(
            command_prefix=commands.when_mentioned,  # required by commands.Bot; never used
            help_command=None,
            intents=intents,
            allowed_mentions=NO_PINGS,
            tree_cls=DocsTree,
            chunk_guilds_at_startup=False,
        )
        self.core = core
        self.ready = ready or asyncio.Event()
        self.inflight = InFlight("discord")  # answers being made (waited for at shutdown)
        self.help_channels = HelpChannels(core)  # forums, auto-reply channels, quiet threads

    async def setup_hook(self) -> None:
        questions = QuestionsCog(self, self.core)
        await self.add_cog(questions)
        await self.add_cog(HelpCog(self, questions))
        await self.add_cog(ReindexCog(self, self.core))
        # Answer buttons keep working after a restart: the answer id is in their custom_id.
        self.add_dynamic_items(FeedbackButton, NeedsHumanButton)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Register the slash commands: in DISCORD_GUILD_IDS (instant) or globally (may take
        up to an hour to appear). A failure is logged; mentions keep working."""
        guild_ids = sorted(Settings.id_list(self.core.settings.discord_guild_ids))
        try:
            if not guild_ids:
                synced = await self.tree.sync()
                log.info("synced %d commands globally", len(synced))
            for guild_id in guild_ids:
                guild = discord.Object(int(guild_id))
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), guild_id)
        except (discord.HTTPException, ValueError) as exc:
            log.error(
                "could not register the slash commands (%s); invite the bot with the "
                "applications.commands scope, and check DISCORD_GUILD_IDS",
                exc,
            )

    async def close(self) -> None:
        # discord.py's "wait for the guilds, then dispatch ready" task outlives close() when a
        # client stops within guild_ready_timeout of connecting, and then fails on the closed loop.
        ready_task = getattr(self._connection, "_ready_task", None)
        if isinstance(ready_task, asyncio.Task):
            ready_task.cancel()
        await super().close()

    async def on_message(self, message: discord.Message, /) -> None:
        """No text commands: questions are handled by the questions cog's listener."""

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%d servers)", self.user, len(self.guilds))
        self.ready.set()

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("unhandled error in Discord event %s", event_method)

    async def drain(self, grace: float) -> None:
        """Give the answers in flight up to `grace` seconds to finish (at shutdown)."""
        await self.inflight.wait(grace)


class DiscordAdapter:
    """The `Adapter` for `docsbot serve`: runs the bot until cancelled, then closes it."""

    name = "discord"

    def __init__(self, core: ChatCore) -> None:
        self.core = core
        self.ready = asyncio.Event()  # set while connected (on_ready)
        self.bot: DocsBot | None = None

    async def post(self, channel: str, text: str) -> None:
        """Post an operator message (the weekly report) to a channel, as a code block."""
        if self.bot is None or self.bot.is_closed():
            raise RuntimeError("Discord is not connected")
        settings = self.core.settings
        # called from outside `run` (the scheduler): use this adapter's endpoints explicitly
        with discord_endpoints(settings.discord_api_base_url, settings.discord_gateway_url):
            target = self.bot.get_channel(int(channel)) or await self.bot.fetch_channel(int(channel))
            if not isinstance(target, discord.abc.Messageable):
                raise RuntimeError(f"Discord channel {channel} does not take messages")
            for part in split_message(f"```\n{text}\n```"):
                await target.send(part, allowed_mentions=NO_PINGS)

    async def run(self) -> None:
        settings = self.core.settings
        token = settings.discord_token.get_secret_value()
        with discord_endpoints(settings.discord_api_base_url, settings.discord_gateway_url):
            bot = self.bot = DocsBot(self.core, self.ready)
            try:
                await bot.start(token, reconnect=True)
            except discord.LoginFailure as exc:
                raise ConfigError("DISCORD_TOKEN was rejected by Discord: check the bot token") from exc
            except discord.PrivilegedIntentsRequired as exc:
                raise ConfigError(
                    "Discord refused the Message Content intent: enable it for the bot in the "
                    "developer portal (Bot > Privileged Gateway Intents)"
                ) from exc
            finally:
                self.ready.clear()
                try:
                    await bot.drain(settings.shutdown_grace)
                finally:
                    await bot.close()
