"""Questions on Slack: mentions, thread follow-ups, auto-reply channels and `/ask`.

- A mention is answered in its thread (the mention starts one when it is top-level).
- A reply in a thread the bot answered in is a follow-up: the thread so far is the history (only
  the asker's and the bot's own messages reach the LLM: `core.prompting.conversation_of`).
  Without a mention, only someone the bot answered in that thread gets a reply, and only when
  the message is for the bot (`bot.chat.questions.wants_an_answer`: no thanks, greetings or
  words for someone else); people talking to each other in the thread are left alone.
- A message to the bot in its Messages tab (a DM) is a question, answered in its thread
  (SLACK_ALLOW_DMS; off: the asker is told to ask in a channel).
- In SLACK_AUTO_REPLY_CHANNELS, a top-level message that looks like a question
  (`bot.chat.questions.looks_like_question`) is answered in its thread without a mention.
- A message with files attached (subtype `file_share`) counts like any other: its text is the
  question.
- Once someone pressed "Still need help?" in a thread, the bot stays out of it.
- `/ask` answers in the channel (edits, no thread), or only to the asker (SLACK_ASK_EPHEMERAL).

Each question's channel kind (public / private / dm) is recorded so reports quote only public
ones; it comes from the event's `channel_type` or one cached `conversations.info` per channel.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.chat.limits import MAX_KEYS, Seen
from bot.chat.questions import looks_like_question, wants_an_answer
from bot.chat.texts import DMS_OFF
from bot.slack.calls import error_of, from_a_bot, safe_respond, tell
from bot.slack.render import answer_messages, escape, fallback_text, slack_to_plain
from bot.slack.reply import PLACEHOLDER, ThreadReply
from core.config import Settings
from core.prompting import Turn

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp

    from bot.slack.adapter import SlackAdapter

log = logging.getLogger("docsbot.slack")

#: Earlier messages of a thread read for a follow-up.
HISTORY_MESSAGES = 50
#: A thread is read `HISTORY_PAGE` messages a call, at most `HISTORY_PAGES` calls.
HISTORY_PAGE, HISTORY_PAGES = 200, 5
#: Slack's `channel_type` of message events -> the kind records keep.
CHANNEL_TYPES = {"channel": "public", "group": "private", "im": "dm", "mpim": "private"}
#: Message subtypes that are a person writing: plain, "also send to channel", with files attached.
PEOPLE_SUBTYPES = (None, "thread_broadcast", "file_share")


class Questions:
    """The question listeners of the Slack app."""

    def __init__(self, slack: SlackAdapter) -> None:
        self.slack = slack
        self.core = slack.core
        self.settings = slack.settings
        self.auto_reply = Settings.id_list(self.settings.slack_auto_reply_channels)
        self._messages = Seen()  # channel:ts: one message can arrive as app_mention and message
        self._askers = Seen(max_age=7 * 24 * 3600.0)  # channel:thread_ts:user the bot answered
        self._kinds: OrderedDict[str, str] = OrderedDict()  # channel -> kind (bounded, LRU)

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.command("/ask")(self.on_ask)

    # --- listeners (ack at once, work in a task) --------------------------------------------

    async def on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if from_a_bot(event):
            return
        self.slack.spawn(self.answer_message(event, context), "mention")

    async def on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Follow-ups from people the bot answered in a thread, messages to the bot in its
        Messages tab (DMs), and questions in auto-reply channels (mentions come as
        app_mention)."""
        if from_a_bot(event) or event.get("subtype") not in PEOPLE_SUBTYPES:
            return
        bot_user_id = context.bot_user_id or ""
        in_dm = event.get("channel_type") == "im"
        if bot_user_id and f"<@{bot_user_id}" in event.get("text", "") and not in_dm:
            return  # the app_mention event answers it (Slack sends none in DMs)
        thread_ts, channel, ts = event.get("thread_ts"), str(event.get("channel", "")), event.get("ts")
        text = slack_to_plain(str(event.get("text", "")))
        if thread_ts and thread_ts != ts:
            asker = f"{channel}:{thread_ts}:{event.get('user', '')}"
            if asker in self._askers and wants_an_answer(text):
                self.slack.spawn(self.answer_message(event, context), "follow-up")
        elif in_dm:
            if self.settings.slack_allow_dms:
                self.slack.spawn(self.answer_message(event, context), "dm")
            else:
                await tell(self.slack.client_, channel, str(event.get("user", "")), DMS_OFF, None)
        elif channel in self.auto_reply and looks_like_question(text):
            self.slack.spawn(self.answer_message(event, context), "auto-reply")

    async def on_ask(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self.slack.spawn(self.answer_command(command, respond), "ask")

    # --- answering --------------------------------------------------------------------------

    async def answer_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Answer in the message's thread, with the thread's earlier turns as history."""
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        if not self._messages.first_time(f"{channel}:{ts}"):
            return
        user = str(event.get("user", ""))
        thread_ts = str(event.get("thread_ts") or ts)
        if await self.slack.escalated(channel, thread_ts):
            log.info("slack: thread %s in %s is with a person now; not answering", thread_ts, channel)
            return
        bot_user_id = context.bot_user_id or ""
        question = slack_to_plain(str(event.get("text", "")), bot_user_id)
        refusal = self.core.refuse(user, question)
        if refusal is not None:
            await tell(self.slack.client_, channel, user, refusal, thread_ts)
            return
        team = str(event.get("user_team") or event.get("team") or context.team_id or "")
        reply = ThreadReply(self.slack.client_, self.slack.streaming, channel, thread_ts, user, team)
        if not await reply.start():
            return
        # from now on the asker's next message in the thread is a follow-up, also one written
        # while this answer still streams
        self._askers.first_time(f"{channel}:{thread_ts}:{user}")
        try:
            history: Sequence[Turn] = ()
            if event.get("thread_ts"):
                history = await self.thread_history(channel, thread_ts, ts, bot_user_id, context.bot_id or "")
            kind = await self.channel_kind(channel, event.get("channel_type"))
            answer, answer_id = await self.core.answer(
                "slack", channel, user, question, history, reply.show, channel_kind=kind
            )
            await reply.finish(answer, answer_id, escalate=self.slack.escalation_enabled)
        except Exception:
            log.exception("slack: answering in %s failed", channel)
            await reply.fail()

    async def answer_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/ask: visible in the channel (edited as it streams), or only to the asker."""
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        question = slack_to_plain(str(command.get("text", "")))
        refusal = self.core.refuse(user, question)
        if refusal is not None:
            await safe_respond(respond, text=refusal, response_type="ephemeral")
            return
        header = f"<@{user}> asked: {escape(question[:500])}"
        kind = await self.channel_kind(channel, None)
        if self.settings.slack_ask_ephemeral:
            await self._respond_answer(respond, user, channel, kind, question, header, "ephemeral")
            return
        team = str(command.get("team_id", ""))
        reply = ThreadReply(self.slack.client_, self.slack.streaming, channel, "", user, team, header=header)
        if not await reply.start():
            # Not a member of the channel (or a DM with someone else): the response URL still works.
            await self._respond_answer(respond, user, channel, kind, question, header, "in_channel")
            return
        try:
            answer, answer_id = await self.core.answer(
                "slack", channel, user, question, (), reply.show, channel_kind=kind
            )
            await reply.finish(answer, answer_id)
        except Exception:
            log.exception("slack: answering /ask in %s failed", channel)
            await reply.fail()

    async def _respond_answer(
        self,
        respond: AsyncRespond,
        user: str,
        channel: str,
        kind: str,
        question: str,
        header: str,
        response_type: str,
    ) -> None:
        """The whole answer through the command's response URL (no streaming there)."""

        async def no_edit(_partial: str) -> None:
            return None

        answer, answer_id = await self.core.answer(
            "slack", channel, user, question, (), no_edit, channel_kind=kind
        )
        for blocks in answer_messages(answer, answer_id, header):
            await safe_respond(
                respond, text=fallback_text(answer), blocks=blocks, response_type=response_type
            )

    async def thread_history(
        self, channel: str, thread_ts: str, before_ts: str, bot_user_id: str, bot_id: str
    ) -> list[Turn]:
        """The thread's earlier messages as turns: the bot's are "assistant", people's "user"
        with their user id as author (the service keeps only the asker's)."""
        try:
            messages = await self._thread_messages(channel, thread_ts)
        except SlackApiError as exc:
            log.warning("slack: could not read thread %s in %s: %s", thread_ts, channel, error_of(exc))
            return []
        earlier = [m for m in messages if m.get("ts") and float(str(m["ts"])) < float(before_ts)]
        turns: list[Turn] = []
        # the question that opened the thread, and the latest messages before this one
        for message in earlier[:1] + earlier[1:][-HISTORY_MESSAGES:]:
            text = str(message.get("text", ""))
            if message.get("user") == bot_user_id or (bot_id and message.get("bot_id") == bot_id):
                if text and PLACEHOLDER not in text and not text.endswith("▍"):
                    turns.append(Turn("assistant", slack_to_plain(text)))
            elif not message.get("bot_id"):
                question = slack_to_plain(text, bot_user_id)
                if question:
                    turns.append(Turn("user", question, author=str(message.get("user", ""))))
        return turns

    async def _thread_messages(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The thread's messages, oldest first, at most `HISTORY_PAGES` pages of them: Slack
        returns a thread from its start, so a long thread's latest messages are on its last page."""
        messages: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(HISTORY_PAGES):
            page = await self.slack.client_.conversations_replies(
                channel=channel, ts=thread_ts, limit=HISTORY_PAGE, cursor=cursor or None
            )
            messages.extend(page.get("messages") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                break
        return messages

    async def channel_kind(self, channel: str, channel_type: object) -> str:
        """public / private / dm for the records (unknown when Slack won't say)."""
        if isinstance(channel_type, str) and channel_type in CHANNEL_TYPES:
            return CHANNEL_TYPES[channel_type]
        if channel in self._kinds:
            self._kinds.move_to_end(channel)
            return self._kinds[channel]
        try:
            info = (await self.slack.client_.conversations_info(channel=channel)).get("channel") or {}
        except SlackApiError as exc:
            log.info("slack: could not tell what kind of channel %s is: %s", channel, error_of(exc))
            return "unknown"
        if info.get("is_im"):
            kind = "dm"
        elif info.get("is_private") or info.get("is_mpim") or info.get("is_group"):
            kind = "private"
        else:
            kind = "public"
        self._kinds[channel] = kind
        while len(self._kinds) > MAX_KEYS:
            self._kinds.popitem(last=False)
        return kind
