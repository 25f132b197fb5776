"""The question flow both chats share: refuse or answer, stream, record, feedback, drain.

An adapter parses its platform's events, checks permissions and renders; everything else goes
through one `ChatCore`:

    if (refusal := core.refuse(user_id, question)) is not None:
        ... post refusal ...
    answer, answer_id = await core.answer("slack", channel, user_id, question, history, edit_message)

Call `refuse` and `relay` from the task that handles the question: at shutdown `drain` waits
for those tasks (up to SHUTDOWN_GRACE seconds), and `refuse` answers new questions with
`SHUTTING_DOWN` meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.chat.limits import RateLimiter
from bot.chat.texts import SHUTTING_DOWN, rate_limited
from core.config import Settings
from core.models import Answer
from core.prompting import Turn
from core.records import Records
from core.service import RagService

log = logging.getLogger("docsbot.chat")

#: At shutdown, seconds a task that recorded its answer gets to post the final message.
FINAL_POST_SECONDS = 2.0


@dataclass(frozen=True)
class QuestionEvent:
    """One finished question, for metrics and logs."""

    adapter: str
    channel: str
    user_id: str
    answer_id: str
    outcome: str
    seconds: float
    first_token_seconds: float | None
    retrieval_seconds: float | None = None


QuestionListener = Callable[[QuestionEvent], None]


class RateLimited(str):
    """A refusal because the user asks faster than USER_RATE_LIMIT. Still the sentence to show
    (a `str`), marked so an adapter can tell a flood from other refusals and answer it once."""

    __slots__ = ()


class ChatCore:
    def __init__(self, settings: Settings, service: RagService, records: Records) -> None:
        self.settings = settings
        self.service = service
        self.records = records
        self.limiter = RateLimiter(settings.user_rate_limit)
        self.listeners: list[QuestionListener] = []
        self.feedback_listeners: list[Callable[[int], None]] = []
        self.draining = False  # set by `drain`: new questions get SHUTTING_DOWN
        # Tasks that called `refuse`/`relay` -> True while answering, False once `record`ed.
        self._active: dict[asyncio.Task[Any], bool] = {}

    def refuse(self, user_id: str, question: str) -> str | None:
        """A message to send instead of answering (usage help, too long, rate limited: a
        `RateLimited`), or None."""
        if self.draining:
            return SHUTTING_DOWN
        if (refused := self.service.check_input(question)) is not None:
            return refused.text
        wait = self.limiter.retry_after(user_id)
        if wait:
            log.info("rate limited user=%s retry_after=%.0fs", user_id, wait)
            return RateLimited(rate_limited(self.settings.user_rate_limit, wait))
        self._track()
        return None

    async def answer(
        self,
        adapter: str,
        channel: str,
        user_id: str,
        question: str,
        history: Sequence[Turn],
        show: Callable[[str], Awaitable[None]],
        channel_kind: str = "unknown",
    ) -> tuple[Answer, str]:
        """Stream the service's answer through `show` (throttled, see `relay`) and record it.
        Only the asker's and the bot's own turns of `history` reach the LLM (turns carry their
        author). `channel_kind` (public / private / dm / unknown) decides whether reports may
        quote the question. Returns the final Answer and its answer id ("" when unrecorded)."""
        answer, first_token = await self.relay(self.service.stream(question, history, user_id), show)
        answer_id = await self.record(
            adapter, channel, user_id, question, answer, first_token, channel_kind=channel_kind
        )
        return answer, answer_id

    async def relay(
        self,
        stream: AsyncIterator[str | Answer],
        edit: Callable[[str], Awaitable[None]],
        interval: float | None = None,
    ) -> tuple[Answer, float | None]:
        """Consume `service.stream`, calling `edit(text so far)` at most once per `interval`
        seconds (default STREAM_EDIT_INTERVAL) while it streams. Returns the final Answer and
        the seconds to the first token (None when nothing streamed).

        Edits run in the background so a slow chat API never slows the LLM stream; a failing
        edit is logged and skipped (the final message is what counts).
        """
        self._track()
        interval = self.settings.stream_edit_interval if interval is None else interval
        parts: list[str] = []
        last_edit = 0.0
        pending: asyncio.Task[None] | None = None
        answer: Answer | None = None
        first_token: float | None = None
        started = time.perf_counter()
        async for part in stream:
            if isinstance(part, Answer):
                answer = part
                continue
            if first_token is None:
                first_token = time.perf_counter() - started
            parts.append(part)
            now = time.monotonic()
            if now - last_edit >= interval and (pending is None or pending.done()):
                last_edit = now
                pending = asyncio.create_task(_safe_edit(edit, "".join(parts)))
        if pending is not None:
            await pending
        assert answer is not None  # service.stream always ends with an Answer
        return answer, first_token

    async def record(
        self,
        adapter: str,
        channel: str,
        user_id: str,
        question: str,
        answer: Answer,
        first_token_seconds: float | None = None,
        *,
        channel_kind: str = "unknown",
    ) -> str:
        """Store the question and answer (for feedback and reports), log one line, tell the
        listeners (metrics). Returns the answer id for the feedback buttons; never raises."""
        try:
            answer_id = await self.records.arecord_answer(
                adapter, channel, user_id, question, answer, channel_kind
            )
        except Exception:
            log.exception("could not record the answer")
            answer_id = ""
        self._track(answering=False)
        retrieval_seconds = answer.retrieval.seconds if answer.retrieval is not None else None
        fields: dict[str, object] = {
            "event": "question",
            "adapter": adapter,
            "channel": channel,
            "user": user_id,
            "answer_id": answer_id,
            "outcome": answer.outcome,
            "seconds": round(answer.seconds, 3),
            "first_token_seconds": _round(first_token_seconds),
            "retrieval_seconds": _round(retrieval_seconds),
            "sources": len(answer.sources),
        }
        if self.settings.log_question_text:
            fields["question"] = question[:200]
        shown = f" question={question[:200]!r}" if self.settings.log_question_text else ""
        log.info(
            "question adapter=%s channel=%s user=%s answer_id=%s outcome=%s seconds=%.2f sources=%d%s",
            adapter,
            channel,
            user_id,
            answer_id,
            answer.outcome,
            answer.seconds,
            len(answer.sources),
            shown,
            extra={"fields": fields},  # the JSON log format (bot/logs.py) writes these as keys
        )
        event = QuestionEvent(
            adapter,
            channel,
            user_id,
            answer_id,
            answer.outcome,
            answer.seconds,
            first_token_seconds,
            retrieval_seconds,
        )
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("question listener failed")
        return answer_id

    async def feedback(self, answer_id: str, user_id: str, vote: int) -> bool:
        """Record a thumbs up (+1) or down (-1). False when the answer id is unknown."""
        try:
            known = await self.records.arecord_feedback(answer_id, user_id, vote)
        except Exception:
            log.exception("could not record feedback")
            return False
        log.info("feedback answer_id=%s user=%s vote=%+d known=%s", answer_id, user_id, vote, known)
        for listener in self.feedback_listeners:
            listener(vote)
        return known

    async def reason(self, answer_id: str, user_id: str, reason: str, details: str = "") -> bool:
        """Store why a user gave an answer a thumbs down (the 👎 dialog). False: not stored."""
        try:
            known = await self.records.arecord_reason(answer_id, user_id, reason, details)
        except Exception:
            log.exception("could not record the reason of a thumbs down")
            return False
        log.info("feedback reason answer_id=%s user=%s reason=%s known=%s", answer_id, user_id, reason, known)
        return known

    async def escalate(self, answer_id: str, adapter: str, channel: str, thread: str, user_id: str) -> bool:
        """Record that `user_id` asked for a person in this thread. True the first time (post
        the one ping then); False when it already was. When it cannot be recorded, True: someone
        asked for a person, and a second ping beats none (telling them the helpers were asked
        already would be false)."""
        try:
            first = await self.records.arecord_escalation(answer_id, adapter, channel, thread, user_id)
        except Exception:
            log.exception("could not record an escalation; asking the helpers anyway")
            return True
        log.info(
            "escalation adapter=%s channel=%s thread=%s answer_id=%s user=%s first=%s",
            adapter,
            channel,
            thread,
            answer_id,
            user_id,
            first,
        )
        return first

    async def is_escalated(self, adapter: str, channel: str, thread: str) -> bool:
        """Whether a person was asked to help in this thread (the bot stays quiet there)."""
        try:
            return await self.records.ais_escalated(adapter, channel, thread)
        except Exception:
            log.exception("could not read the escalations")
            return False

    @property
    def in_flight(self) -> int:
        """Questions being answered now (from `refuse`/`relay` until `record`)."""
        return sum(1 for task, answering in self._active.items() if answering and not task.done())

    async def drain(self, grace: float) -> int:
        """Stop taking questions and give the ones in flight `grace` seconds to finish (their
        tasks then get up to FINAL_POST_SECONDS more to post the final message); cancel those
        still answering after that. Returns how many were cancelled."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        current = asyncio.current_task()

        def answering() -> list[asyncio.Task[Any]]:
            return [t for t, busy in self._active.items() if busy and not t.done() and t is not current]

        if answering():
            log.info("waiting up to %.0f s for %d question(s) in flight", grace, len(answering()))
        while answering() and loop.time() < deadline:
            await asyncio.wait(answering(), timeout=min(0.1, max(0.0, deadline - loop.time())))
        finishing = [t for t, busy in self._active.items() if not busy and not t.done() and t is not current]
        if finishing:  # recorded, now posting the final message
            await asyncio.wait(finishing, timeout=FINAL_POST_SECONDS)
        late = answering()
        for task in late:
            task.cancel()
        if late:
            log.warning("cancelled %d question(s) still in flight after %.0f s", len(late), grace)
            await asyncio.wait(late, timeout=1.0)
        return len(late)

    def _track(self, answering: bool = True) -> None:
        """Mark the calling task as answering a question (or done answering), for `drain`."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # called outside an event loop (unit tests of refuse)
            return
        if task is None:
            return
        if task not in self._active:
            task.add_done_callback(self._forget)
        self._active[task] = answering

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._active.pop(task, None)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


async def _safe_edit(edit: Callable[[str], Awaitable[None]], text: str) -> None:
    try:
        await edit(text)
    except Exception as exc:  # a failed intermediate edit is not worth failing the answer
        log.warning("streaming edit failed: %s", exc)
