"""One answer in a Slack thread: a loading status, the streamed text, then sources and buttons.

Native streaming (SLACK_STREAMING=native, the default):

    assistant.threads.setStatus  "Searching the Milvus docs…"     at once
    chat.startStream             the first words                  (thread_ts, recipient ids)
    chat.appendStream            more words, at most once per STREAM_EDIT_INTERVAL
    chat.stopStream              the rest, plus the sources and buttons as blocks

A workspace that refuses streaming (an old plan or an Enterprise policy: `unknown_method`,
`not_allowed`, ...) gets the edit path instead, and `StreamingSupport` remembers that per team,
so later answers there start with the edit path at once:

    chat.postMessage  ":mag: Looking through the Milvus docs…"
    chat.update       the text so far, at most once per STREAM_EDIT_INTERVAL
    chat.update       the final blocks (text, sources, buttons)

    reply = ThreadReply(client, support, channel, thread_ts, user, team)  # thread_ts "": top level
    await reply.start()
    answer, answer_id = await core.answer("slack", channel, user, question, history, reply.show)
    await reply.finish(answer, answer_id, escalate=True)
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.limits import Seen
from bot.chat.texts import SEARCHING
from bot.slack.render import answer_messages, closing_blocks, defuse, fallback_text, streaming_text
from core.errors import DocsBotError
from core.models import Answer

log = logging.getLogger("docsbot.slack")

PLACEHOLDER = ":mag: Looking through the Milvus docs…"
#: Errors of chat.startStream / assistant.threads.setStatus that mean "this workspace can't
#: stream": remembered for the team. Other errors fall back for that one answer only.
NO_STREAMING = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "feature_not_enabled",
        "restricted_action",
        "enterprise_is_restricted",
        "team_access_not_granted",
    }
)
#: Slack's limit for one `markdown_text`.
MARKDOWN_LIMIT = 12_000


class StreamingSupport:
    """Which workspaces (team ids) refused native streaming: they get edits from then on."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._refused = Seen(max_keys=10_000, max_age=7 * 24 * 3600.0)  # retried after a week

    def native(self, team: str) -> bool:
        return self.enabled and team not in self._refused

    def refused(self, team: str, error: str) -> None:
        if error in NO_STREAMING and self._refused.first_time(team):
            log.warning("slack: team %s refuses native streaming (%s); using edits there", team, error)


class ThreadReply:
    """The bot's reply to one question in a thread (see the module docstring)."""

    def __init__(
        self,
        client: AsyncWebClient,
        support: StreamingSupport,
        channel: str,
        thread_ts: str,
        user: str,
        team: str,
        header: str = "",
    ) -> None:
        self.client = client
        self.support = support
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.team = team
        self.header = header  # mrkdwn shown above the answer (/ask: "<@U1> asked: ...")
        self.native = bool(thread_ts) and not header and support.native(team)
        self.ts: str | None = None  # the reply message, once there is one
        self.sent = ""  # text already streamed (native) or shown (edits)
        self._stream: AsyncChatStream | None = None

    async def start(self) -> bool:
        """The loading status (native) or the placeholder message (edits). False when nothing
        could be posted in the channel (e.g. the bot is not a member)."""
        if self.native:
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel, thread_ts=self.thread_ts, status=SEARCHING
                )
                return True
            except SlackApiError as exc:
                error = _error(exc)
                log.info("slack: no loading status in %s: %s", self.channel, error)
                if error not in NO_STREAMING:
                    return True  # the stream itself may still work
                self._fall_back(error)
        return await self._post_placeholder()

    async def show(self, partial: str) -> None:
        """The answer so far (called by `ChatCore.relay`, at most once per interval)."""
        if self.native:
            delta = partial[len(self.sent) :]
            if not delta:
                return
            try:
                await self._append(delta)
                self.sent = partial
                return
            except SlackApiError as exc:
                if self.ts is not None:
                    # A failed append keeps its text in the stream's buffer: it goes out with the
                    # next append or the stop, so it counts as sent.
                    log.warning("slack: appendStream failed in %s: %s", self.channel, _error(exc))
                    self.sent = partial
                    return
                self._fall_back(_error(exc))
                if not await self._post_placeholder():
                    return
        if self.ts is not None:
            text = self._prefix + streaming_text(partial)
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text)
            self.sent = partial

    async def finish(self, answer: Answer, answer_id: str, escalate: bool = False) -> None:
        """The final answer: the rest of the text with sources and buttons (native), or the
        final blocks (edits). Falls back to posting the whole answer if a stream can't end."""
        if self.native:
            try:
                await self._stop(answer, answer_id, escalate)
                return
            except SlackApiError as exc:
                error = _error(exc)
                log.warning("slack: could not finish the stream in %s: %s", self.channel, error)
                if self.ts is None:
                    self._fall_back(error)
                else:  # a started stream that can't be stopped: replace its message
                    await self._replace(answer, answer_id, escalate)
                    return
        messages = answer_messages(answer, answer_id, self.header, escalate)
        if self.ts is not None:
            await self.client.chat_update(
                channel=self.channel, ts=self.ts, text=fallback_text(answer), blocks=messages[0]
            )
            rest = messages[1:]
        else:
            rest = messages
        for blocks in rest:
            await self._post(text=fallback_text(answer), blocks=blocks)

    async def fail(self) -> None:
        """Something failed on our side: one honest sentence where the answer would be."""
        text = DocsBotError.user_message
        try:
            if self._stream is not None and self.ts is not None:
                await self._stream.stop(markdown_text=f"\n\n{text}")
            elif self.ts is not None:
                await self.client.chat_update(channel=self.channel, ts=self.ts, text=self._prefix + text)
            else:
                await self._post(text=text)
        except SlackApiError as exc:
            log.warning("slack: could not post the error message: %s", _error(exc))

    # --- native streaming -------------------------------------------------------------------

    async def _append(self, text: str) -> None:
        if self._stream is None:
            self._stream = await self.client.chat_stream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_user_id=self.user or None,
                recipient_team_id=self.team or None,
                buffer_size=1,  # ChatCore.relay throttles; every call here goes out
            )
        for start in range(0, len(text), MARKDOWN_LIMIT):
            await self._stream.append(markdown_text=defuse(text[start : start + MARKDOWN_LIMIT]))
            self.ts = self._stream.ts

    async def _stop(self, answer: Answer, answer_id: str, escalate: bool) -> None:
        """chat.stopStream with the text not yet streamed and the closing blocks. An answer
        whose final text is not a continuation of what streamed (links removed, a cut-off note
        in the middle) is written over with the final blocks after the stream ends."""
        text = answer.text
        continues = self._stream is None or text.startswith(self.sent)
        rest = text[len(self.sent) :] if continues else ""
        if len(rest) > MARKDOWN_LIMIT:
            await self._append(rest[:-MARKDOWN_LIMIT])
            rest = rest[-MARKDOWN_LIMIT:]
        if self._stream is None:
            self._stream = await self.client.chat_stream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_user_id=self.user or None,
                recipient_team_id=self.team or None,
            )
        await self._stream.stop(
            markdown_text=defuse(rest) or None, blocks=closing_blocks(answer, answer_id, escalate) or None
        )
        self.ts = self._stream.ts
        self.sent = text
        if not continues and self.ts is not None:
            await self._replace(answer, answer_id, escalate)

    async def _replace(self, answer: Answer, answer_id: str, escalate: bool) -> None:
        messages = answer_messages(answer, answer_id, escalate=escalate)
        assert self.ts is not None
        await self.client.chat_update(
            channel=self.channel, ts=self.ts, text=fallback_text(answer), blocks=messages[0]
        )
        for blocks in messages[1:]:
            await self._post(text=fallback_text(answer), blocks=blocks)

    def _fall_back(self, error: str) -> None:
        self.native = False
        self.support.refused(self.team, error)

    # --- edits --------------------------------------------------------------------------------

    async def _post_placeholder(self) -> bool:
        try:
            posted = await self._post(text=self._prefix + PLACEHOLDER)
        except SlackApiError as exc:
            log.warning("slack: could not post in %s: %s", self.channel, _error(exc))
            return False
        self.ts = str(posted["ts"])
        return True

    @property
    def _prefix(self) -> str:
        return f"{self.header}\n" if self.header else ""

    async def _post(self, **message: Any) -> Any:
        """A message in the thread (or, for a top-level reply, in the thread it started)."""
        thread_ts = self.thread_ts or (self.ts if "blocks" in message else None)
        return await self.client.chat_postMessage(
            channel=self.channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **message
        )


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""
