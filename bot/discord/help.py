"""Help channels on Discord: forum posts and auto-reply channels answered without a mention.

- **Forums** (DISCORD_FORUM_CHANNEL_IDS): every new post is answered in its thread (the title
  and the first message are the question). Later messages from the post's author are follow-ups,
  answered with the thread so far (only the author's and the bot's own messages) as history;
  thanks, greetings and words for someone else get nothing (`QuestionsCog.is_for_me`).
- **Auto-reply channels** (DISCORD_AUTO_REPLY_CHANNELS): a top-level message that looks like a
  question (`looks_like_question`, the same test as Slack's) or mentions the bot is answered in a
  thread started from it; chatter gets nothing. Follow-ups from the asker in that thread are
  answered like a forum post's.
- **Handing over to people**: answers in these threads carry "Needs a human" (when
  DISCORD_HELPER_ROLE_IDS is set; see `escalation.py`). Once a member with a helper role writes in
  such a thread, or someone asked for a human there, the bot stays quiet in it, mentions included.

`HelpChannels` holds the rules and the quiet threads (the bot keeps one on `DocsBot.help_channels`
for every cog); `HelpCog` listens. Other people's messages in a help thread are left alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.chat.limits import Seen
from bot.chat.questions import looks_like_question
from bot.chat.texts import ERROR_SENTENCE
from bot.discord.questions import HISTORY_MESSAGES, with_title
from bot.discord.render import NO_PINGS
from core.config import Settings

if TYPE_CHECKING:
    from bot.chat.flow import ChatCore
    from bot.discord.adapter import DocsBot
    from bot.discord.questions import QuestionsCog

log = logging.getLogger("docsbot.discord")

#: Threads remembered as quiet (a helper wrote there), at most, and for how long (seconds).
QUIET_THREADS = 10_000
QUIET_SECONDS = 30 * 24 * 3600.0


class HelpChannels:
    """Which channels are help channels, who the helpers are, and where the bot keeps quiet."""

    def __init__(self, core: ChatCore) -> None:
        settings = core.settings
        self.core = core
        self.forums = {int(i) for i in Settings.id_list(settings.discord_forum_channel_ids)}
        self.auto_reply = {int(i) for i in Settings.id_list(settings.discord_auto_reply_channels)}
        self.helper_roles = Settings.id_list(settings.discord_helper_role_ids)
        self._quiet = Seen(max_keys=QUIET_THREADS, max_age=QUIET_SECONDS)

    def is_help_thread(self, channel: object) -> bool:
        """A forum post in a listed forum, or a thread in a listed auto-reply channel."""
        return isinstance(channel, discord.Thread) and (channel.parent_id in self.forums | self.auto_reply)

    def claims(self, message: discord.Message) -> bool:
        """Whether this message is the help cog's (the mention handler then leaves it alone)."""
        return message.channel.id in self.auto_reply or self.is_help_thread(message.channel)

    def is_helper(self, author: discord.abc.User) -> bool:
        """A member with one of the helper roles."""
        return isinstance(author, discord.Member) and any(
            str(role.id) in self.helper_roles for role in author.roles
        )

    def quiet(self, thread_id: int) -> bool:
        """From now on the bot stays quiet in this thread. True when it was not yet."""
        return self._quiet.first_time(str(thread_id))

    async def is_quiet(self, thread: discord.Thread) -> bool:
        """A helper wrote in the thread, or someone asked for a human there."""
        if str(thread.id) in self._quiet:
            return True
        return await self.core.is_escalated("discord", str(thread.parent_id), str(thread.id))


class HelpCog(commands.Cog):
    """Answers in forums and auto-reply channels without a mention (see the module docstring)."""

    def __init__(self, bot: DocsBot, questions: QuestionsCog) -> None:
        self.bot = bot
        self.questions = questions
        self.channels = bot.help_channels

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.bot.user is None:
            return
        if isinstance(message.channel, discord.PartialMessageable) and message.guild is not None:
            await self._resolve_channel(message)
        if not self.channels.claims(message):
            return
        with self.bot.inflight.track():
            try:
                await self._handle(message)
            except Exception:
                log.exception("answering help message %s failed", message.id)
                try:
                    await message.reply(ERROR_SENTENCE, allowed_mentions=NO_PINGS)
                except Exception as exc:
                    log.warning("could not tell the user about it either: %s", exc)

    async def _handle(self, message: discord.Message) -> None:
        assert self.bot.user is not None
        channel = message.channel
        mentioned = self.questions.mentions_me(message)
        if isinstance(channel, discord.TextChannel):  # top level of an auto-reply channel
            question = self.questions.clean(message)
            if mentioned or looks_like_question(question):
                await self.questions.answer_message(message, question, new_thread=True, needs_human=True)
            return
        if not isinstance(channel, discord.Thread):
            return
        if self.channels.is_helper(message.author):
            if self.channels.quiet(channel.id):
                log.info("helper %s wrote in thread %s: the bot stays quiet", message.author.id, channel.id)
            return
        if await self.channels.is_quiet(channel):
            return
        if channel.parent_id in self.channels.forums and message.id == channel.id:  # a new post
            question = with_title(channel, self.questions.clean(message))
            await self.questions.answer_message(message, question, needs_human=True)
            return
        if mentioned or await self.questions.is_for_me(message):
            if await self._helper_wrote(channel, message):  # before a restart, say
                return
            await self.questions.answer_message(
                message, self.questions.clean(message), follow_up=True, needs_human=True
            )

    async def _resolve_channel(self, message: discord.Message) -> None:
        """A message in a thread the client does not know yet (a forum post's first message can
        arrive before the post's THREAD_CREATE): read the channel, so the rules can apply."""
        if not (self.channels.forums or self.channels.auto_reply):
            return
        try:
            channel = await self.bot.fetch_channel(message.channel.id)
        except discord.HTTPException as exc:
            log.info("could not read channel %s: %s", message.channel.id, exc)
            return
        if isinstance(channel, discord.Thread):
            message.channel = channel

    async def _helper_wrote(self, thread: discord.Thread, message: discord.Message) -> bool:
        """Whether a helper wrote in the thread's recent messages (read back, so silence also
        holds for messages from before a restart); remembers the answer as a quiet thread."""
        if not self.channels.helper_roles:
            return False
        others = {
            old.author.id
            async for old in thread.history(limit=HISTORY_MESSAGES, before=message)
            if not old.author.bot and old.author.id != message.author.id
        }
        for user_id in others:
            try:
                member = thread.guild.get_member(user_id) or await thread.guild.fetch_member(user_id)
            except discord.HTTPException:  # left the server, or not readable: not a helper we know
                continue
            if self.channels.is_helper(member):
                self.channels.quiet(thread.id)
                log.info("helper %s wrote in thread %s earlier: the bot stays quiet", user_id, thread.id)
                return True
        return False
