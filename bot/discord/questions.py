"""Questions on Discord: mentions, follow-ups and `/ask`; the answer flow the help cog reuses.

A mention of the bot, or of its managed role (which Discord's autocomplete often offers), or any
message in a DM when DMs are allowed, is a question. The bot shows typing, replies (or opens a
thread, with DISCORD_REPLY_IN_THREAD; a plain reply when it may not) when the first words arrive,
edits the reply as the answer streams, and ends with the full answer, a sources embed and the
buttons of `feedback.py`. A reply to one of the bot's answers, or a message in a thread the bot
opened, is a follow-up: the conversation so far goes to the service as history, only the asker's
and the bot's own messages (other people's are left out: thread history is data, not
instructions). Without a mention, a follow-up is answered only when it is for the bot
(`wants_an_answer`: no thanks, greetings or words for someone else) and, in a thread, only from
the asker; people talking to each other there are left alone. A user over USER_RATE_LIMIT is
told so once per window; the rest of a flood gets nothing, so the bot never amplifies it.
Messages in help channels (`help.py`) are the help cog's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.flow import ChatCore, RateLimited
from bot.chat.limits import Seen
from bot.chat.outcomes import is_votable
from bot.chat.questions import wants_an_answer
from bot.chat.texts import DMS_OFF, ERROR_SENTENCE
from bot.discord.feedback import answer_view
from bot.discord.interactions import is_expired, reply_privately
from bot.discord.render import NO_PINGS, answer_parts, preview, sources_embed
from core.prompting import Turn

if TYPE_CHECKING:
    from bot.discord.adapter import DocsBot

log = logging.getLogger("docsbot.discord")

#: Earlier messages read for a follow-up's history.
HISTORY_MESSAGES = 8
#: Message ids remembered as answered (a message delivered twice is answered once), and how long.
SEEN_MESSAGES = 10_000
SEEN_SECONDS = 3600.0


class AnswerSink(Protocol):
    """Where an answer is shown: a reply to a message, or an interaction's response."""

    async def show(self, text: str) -> None:
        """Show the text so far (the first call posts, later calls edit)."""

    async def finish(
        self, parts: Sequence[str], embed: discord.Embed | None, view: discord.ui.View | None
    ) -> None:
        """Show the final answer: parts of at most 2000 characters, the last with embed and view."""


class MessageSink:
    """Answers a message: a reply to it (or a new thread from it), continued by replies."""

    def __init__(self, origin: discord.Message, thread: discord.Thread | None = None) -> None:
        self.origin = origin
        self.thread = thread
        self.first: discord.Message | None = None

    async def show(self, text: str) -> None:
        if self.first is None:
            self.first = await self._post(preview(text), self.origin)
        else:
            await self.first.edit(content=preview(text), allowed_mentions=NO_PINGS)

    async def finish(
        self, parts: Sequence[str], embed: discord.Embed | None, view: discord.ui.View | None
    ) -> None:
        previous = self.origin
        for number, part in enumerate(parts):
            extras = _extras(embed, view) if number == len(parts) - 1 else {}
            if number == 0 and self.first is not None:
                await self.first.edit(content=part, allowed_mentions=NO_PINGS, **extras)
                previous = self.first
            else:
                previous = await self._post(part, previous, **extras)

    async def _post(self, content: str, reply_to: discord.Message, **extras: Any) -> discord.Message:
        """Each part replies to the one before, so a reply to any part can walk back to the
        question; the first part of a threaded answer opens the thread instead."""
        if reply_to is self.origin and self.thread is not None:
            return await self.thread.send(content, allowed_mentions=NO_PINGS, **extras)
        return await reply_to.reply(content, allowed_mentions=NO_PINGS, **extras)


class InteractionSink:
    """Answers a deferred `/ask`: edits the original response, then sends followups."""

    def __init__(self, interaction: discord.Interaction[Any]) -> None:
        self.interaction = interaction

    async def show(self, text: str) -> None:
        await self.interaction.edit_original_response(content=preview(text), allowed_mentions=NO_PINGS)

    async def finish(
        self, parts: Sequence[str], embed: discord.Embed | None, view: discord.ui.View | None
    ) -> None:
        for number, part in enumerate(parts):
            extras = _extras(embed, view) if number == len(parts) - 1 else {}
            if number == 0:
                await self.interaction.edit_original_response(
                    content=part, allowed_mentions=NO_PINGS, **extras
                )
            else:
                await self.interaction.followup.send(part, allowed_mentions=NO_PINGS, **extras)


class QuestionsCog(commands.Cog):
    """Mentions, follow-ups and `/ask`."""

    def __init__(self, bot: DocsBot, core: ChatCore) -> None:
        self.bot = bot
        self.core = core
        self.settings = core.settings
        self.seen = Seen(max_keys=SEEN_MESSAGES, max_age=SEEN_SECONDS)  # messages answered (dedupe)
        self.told_to_wait = Seen(max_age=core.limiter.window)  # users told they ask too fast
        dms = self.settings.discord_allow_dms
        self.ask.allowed_contexts = app_commands.AppCommandContext(guild=True, dm_channel=dms)

    # --- mentions and follow-ups ------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.bot.user is None:
            return
        if message.guild is None and not self.settings.discord_allow_dms:
            return
        if self.bot.help_channels.claims(message):  # forums and auto-reply channels: help.py
            return
        follow_up = await self._is_follow_up(message)
        wanted = self.mentions_me(message) or message.guild is None
        if not (wanted or (follow_up and await self.is_for_me(message))):
            return
        with self.bot.inflight.track():
            try:
                new_thread = self.settings.discord_reply_in_thread and not follow_up
                await self.answer_message(
                    message, self.clean(message), follow_up=follow_up, new_thread=new_thread
                )
            except Exception:
                log.exception("answering message %s failed", message.id)
                try:
                    await message.reply(ERROR_SENTENCE, allowed_mentions=NO_PINGS)
                except Exception as exc:
                    log.warning("could not tell the user about it either: %s", exc)

    async def answer_message(
        self,
        message: discord.Message,
        question: str,
        *,
        follow_up: bool = False,
        new_thread: bool = False,
        needs_human: bool = False,
    ) -> None:
        """Answer `question` (asked by `message`): a reply, or in a new thread started from the
        message (`new_thread`, only at the top level of a text channel). A `follow_up` carries
        the conversation so far; `needs_human` adds the "Needs a human" button."""
        if not self.seen.first_time(str(message.id)):  # the gateway sent it again (a resume)
            log.info("message %s was already answered; skipped", message.id)
            return
        user = str(message.author.id)
        if (refusal := self.core.refuse(user, question)) is not None:
            if isinstance(refusal, RateLimited) and not self.told_to_wait.first_time(user):
                log.info("user %s is still over the rate limit; message %s left unanswered", user, message.id)
                return
            await message.reply(refusal, allowed_mentions=NO_PINGS)
            return
        history = await self._history(message) if follow_up else []
        thread: discord.Thread | None = None
        if new_thread and isinstance(message.channel, discord.TextChannel):
            thread = await _open_thread(message, question)
        sink = MessageSink(message, thread)
        where = thread or message.channel
        async with _typing(where):
            await self.answer(
                question,
                history,
                sink,
                str(message.channel.id),
                user,
                needs_human=needs_human and isinstance(where, discord.Thread),
                channel_kind=channel_kind(message.channel),
            )

    async def _is_follow_up(self, message: discord.Message) -> bool:
        """A reply to one of the bot's messages, or a message in a thread the bot opened."""
        assert self.bot.user is not None
        if isinstance(message.channel, discord.Thread) and message.channel.owner_id == self.bot.user.id:
            return True
        if message.reference is None or message.reference.message_id is None:
            return False
        parent = await self._referenced(message)
        return parent is not None and parent.author.id == self.bot.user.id

    async def is_for_me(self, message: discord.Message) -> bool:
        """Whether a follow-up without a mention is for the bot: it asks something
        (`wants_an_answer`) and, in a thread, the asker (`asker_of`) wrote it. In a thread about
        someone's question, other people talk to each other; they can still mention the bot."""
        if not wants_an_answer(self.clean(message)):
            return False
        thread = message.channel
        return not isinstance(thread, discord.Thread) or message.author.id == await self.asker_of(thread)

    def mentions_me(self, message: discord.Message) -> bool:
        """Whether the message mentions the bot: its user, or its managed role (`<@&id>`, which
        Discord's autocomplete often inserts for the bot's name)."""
        assert self.bot.user is not None
        role = _self_role(message)
        return self.bot.user in message.mentions or (role is not None and role in message.role_mentions)

    async def _referenced(self, message: discord.Message) -> discord.Message | None:
        """The message `message` replies to (from the event, the cache, or the API)."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        cached = discord.utils.get(self.bot.cached_messages, id=reference.message_id)
        if cached is not None:
            return cached
        try:
            return await message.channel.fetch_message(reference.message_id)
        except discord.HTTPException as exc:
            log.info("could not read message %s for a follow-up: %s", reference.message_id, exc)
            return None

    async def asker_of(self, thread: discord.Thread) -> int | None:
        """Who asked the question a thread is about: a forum post's author, or the author of
        the message the bot started the thread from."""
        assert self.bot.user is not None
        if thread.owner_id != self.bot.user.id:
            return thread.owner_id
        starter = await _starter(thread)
        return starter.author.id if starter is not None else None

    async def _history(self, message: discord.Message) -> list[Turn]:
        """The conversation before `message`, oldest first: the thread, or the reply chain.
        Only the asker's (`message.author`) and the bot's own messages are kept."""
        assert self.bot.user is not None
        bot_id, asker = self.bot.user.id, message.author.id
        earlier: list[discord.Message] = []
        channel = message.channel
        if isinstance(channel, discord.Thread):
            earlier = [m async for m in channel.history(limit=HISTORY_MESSAGES, before=message)]
            has_starter = any(m.id == channel.id for m in earlier) or message.id == channel.id
            if len(earlier) < HISTORY_MESSAGES and not has_starter and (starter := await _starter(channel)):
                earlier.append(starter)
        else:
            current: discord.Message | None = message
            while current is not None and len(earlier) < HISTORY_MESSAGES:
                current = await self._referenced(current)
                if current is not None:
                    earlier.append(current)
        turns: list[Turn] = []
        for old in reversed(earlier):
            if old.author.id not in (bot_id, asker):
                continue  # other people's messages never reach the LLM
            role = "assistant" if old.author.id == bot_id else "user"
            text = self.clean(old)
            if isinstance(channel, discord.Thread) and old.id == channel.id and role == "user":
                text = with_title(channel, text)  # a forum post: its title is part of the question
            if not text:
                continue
            if turns and turns[-1].role == role:  # one answer sent as several parts
                turns[-1] = Turn(role, f"{turns[-1].text}\n\n{text}", turns[-1].author)
            else:
                turns.append(Turn(role, text, str(old.author.id)))
        return turns

    def clean(self, message: discord.Message) -> str:
        """The message's text without the bot's mentions (of its user and its managed role)."""
        assert self.bot.user is not None
        text = re.sub(rf"<@!?{self.bot.user.id}>", " ", message.content)
        if (role := _self_role(message)) is not None:
            text = text.replace(f"<@&{role.id}>", " ")
        return text.strip()

    # --- /ask ------------------------------------------------------------------------------

    @app_commands.command(name="ask", description="Ask a question about Milvus; the answer cites the docs.")
    @app_commands.describe(question="Your question, for example: how do I choose HNSW parameters?")
    async def ask(self, interaction: discord.Interaction[DocsBot], question: str) -> None:
        if interaction.guild is None and not self.settings.discord_allow_dms:
            await reply_privately(interaction, DMS_OFF)
            return
        user = str(interaction.user.id)
        if (refusal := self.core.refuse(user, question)) is not None:
            await reply_privately(interaction, refusal)
            return
        with self.bot.inflight.track():
            try:
                await interaction.response.defer(thinking=True)
            except discord.NotFound as exc:
                if not is_expired(exc):
                    raise
                log.warning("/ask from %s expired before it was acknowledged (over 3 s); dropped", user)
                return
            channel = str(interaction.channel_id or "dm")
            kind = channel_kind(interaction.channel) if interaction.guild is not None else "dm"
            await self.answer(
                question.strip(), [], InteractionSink(interaction), channel, user, channel_kind=kind
            )

    # --- shared -----------------------------------------------------------------------------

    async def answer(
        self,
        question: str,
        history: Sequence[Turn],
        sink: AnswerSink,
        channel: str,
        user: str,
        *,
        needs_human: bool = False,
        channel_kind: str = "unknown",
    ) -> None:
        """Stream the service's answer into `sink`, record it, and show the final version with
        its buttons (and "Needs a human" when asked for and helper roles are set)."""
        answer, answer_id = await self.core.answer(
            "discord", channel, user, question, history, sink.show, channel_kind=channel_kind
        )
        view = None
        if answer_id and is_votable(answer.outcome):
            human = needs_human and bool(self.bot.help_channels.helper_roles)
            view = answer_view(answer_id, needs_human=human)
        await sink.finish(answer_parts(answer), sources_embed(answer.sources), view)


def channel_kind(channel: object) -> str:
    """Where a question was asked, for the records: "dm", "private" (a private thread, or a
    channel @everyone cannot see) or "public". Reports quote only public questions."""
    if isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return "dm"
    if isinstance(channel, discord.Thread):
        if channel.type is discord.ChannelType.private_thread:
            return "private"
        channel = channel.parent
    if isinstance(channel, discord.abc.GuildChannel):
        everyone = channel.guild.default_role
        return "public" if channel.permissions_for(everyone).view_channel else "private"
    return "unknown"


def _self_role(message: discord.Message) -> discord.Role | None:
    """The bot's managed role in the message's server (None in a DM, or when it has none)."""
    return message.guild.self_role if message.guild is not None else None


async def _open_thread(message: discord.Message, question: str) -> discord.Thread | None:
    """A thread started from the question for the answer; None, so the answer is a plain reply,
    when Discord refuses (no Create Public Threads permission, or the message has a thread)."""
    try:
        return await message.create_thread(name=_thread_name(question), auto_archive_duration=1440)
    except discord.HTTPException as exc:
        log.warning("could not open a thread from message %s (%s); answering with a reply", message.id, exc)
        return None


async def _starter(thread: discord.Thread) -> discord.Message | None:
    """The message a thread was opened from (the question), when it can be read: a forum
    post's first message is in the thread itself, a message thread's in the parent channel."""
    if thread.starter_message is not None:
        return thread.starter_message
    parent = thread.parent
    source = thread if isinstance(parent, discord.ForumChannel) else parent
    if not isinstance(source, discord.Thread | discord.TextChannel):
        return None
    try:
        return await source.fetch_message(thread.id)
    except discord.HTTPException:
        return None


def with_title(thread: discord.Thread, text: str) -> str:
    """A forum post's first message with the post's title in front (unless it repeats it)."""
    if not isinstance(thread.parent, discord.ForumChannel):
        return text
    title = thread.name.strip()
    if not text or text.casefold().startswith(title.casefold()):
        return text or title
    return f"{title}\n\n{text}"


@contextlib.asynccontextmanager
async def _typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """Show "typing…" while the answer is made, from a background task so the indicator never
    delays the answer; a channel that refuses it is no reason to fail."""

    async def keep_typing() -> None:
        try:
            async with channel.typing():  # re-sent every 5 seconds until cancelled
                await asyncio.get_running_loop().create_future()
        except discord.HTTPException as exc:
            log.warning("typing indicator failed: %s", exc)

    task = asyncio.create_task(keep_typing(), name="discord-typing")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _extras(embed: discord.Embed | None, view: discord.ui.View | None) -> dict[str, Any]:
    """The embed and view keyword arguments of a send or edit, leaving out the missing ones."""
    extras: dict[str, Any] = {}
    if embed is not None:
        extras["embed"] = embed
    if view is not None:
        extras["view"] = view
    return extras


def _thread_name(question: str) -> str:
    """A thread title from the question (Discord allows 100 characters)."""
    name = " ".join(question.split())
    return name if len(name) <= 90 else name[:89] + "…"
