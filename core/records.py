"""Questions, answers and feedback, kept in a small SQLite file (RECORDS_PATH).

Both chat adapters write here; `docsbot report` reads it (questions per day, decline and
downvote rates, knowledge gaps). Calls are short and synchronous: call them through
a worker thread from the event loop: the `Records.a*` helpers do, on the store's own thread, so
they never queue behind embedding work in the default executor.

    records = Records(settings.records_path)
    answer_id = await records.arecord_answer("slack", "C1", "U1", question, answer)
    await records.arecord_feedback(answer_id, "U2", +1)
    await records.arecord_reason(answer_id, "U2", "outdated", "that flag was renamed in 2.5")
    first = await records.arecord_escalation(answer_id, "slack", "C1", "1700000000.1", "U1")

`channel_kind` says where a question was asked: "public" (a channel anyone in the workspace or
server can read), "private", "dm" or "unknown". Reports quote only public questions.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from core.models import Answer

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    answer_id   TEXT PRIMARY KEY,
    asked_at    TEXT NOT NULL,
    adapter     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    question    TEXT NOT NULL,
    answer      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    sources     TEXT NOT NULL,
    seconds     REAL NOT NULL,
    channel_kind TEXT NOT NULL DEFAULT 'unknown'
);
CREATE INDEX IF NOT EXISTS questions_asked_at ON questions (asked_at);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    vote        INTEGER NOT NULL,
    voted_at    TEXT NOT NULL,
    reason      TEXT,
    details     TEXT,
    PRIMARY KEY (answer_id, user_id)
);
CREATE TABLE IF NOT EXISTS escalations (
    adapter      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    thread       TEXT NOT NULL,
    answer_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    escalated_at TEXT NOT NULL,
    PRIMARY KEY (adapter, channel, thread)
);
"""
#: Columns added after the first release: (table, column, definition) for older files.
_MIGRATIONS = (
    ("questions", "channel_kind", "TEXT NOT NULL DEFAULT 'unknown'"),
    ("feedback", "reason", "TEXT"),
    ("feedback", "details", "TEXT"),
)
#: Where a question was asked; reports quote only "public" ones.
CHANNEL_KINDS = ("public", "private", "dm", "unknown")
#: Why an answer got a thumbs down (the 👎 dialog of both chats).
VOTE_REASONS = ("wrong", "outdated", "not_what_i_asked", "other")
#: Free text kept with a reason, at most.
MAX_DETAILS = 1000


@dataclass(frozen=True)
class QuestionRecord:
    answer_id: str
    asked_at: datetime
    adapter: str
    channel: str
    user_id: str
    question: str
    answer: str
    outcome: str
    sources: tuple[str, ...]  # the cited URLs
    seconds: float
    votes: int  # sum of feedback: +1 per thumbs up, -1 per thumbs down
    downvotes: int
    channel_kind: str = "unknown"
    reasons: tuple[tuple[str, str], ...] = ()  # (reason, details) of each thumbs down that said why
    escalated: bool = False  # someone asked for a person in this answer's thread


class Records:
    """The SQLite store. One connection, guarded by a lock (calls come from worker threads)."""

    def __init__(self, path: Path | str, retention_days: int = 0) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="records")

    def _migrate(self) -> None:
        with self._lock, self._db:
            for table, column, definition in _MIGRATIONS:
                columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        with self._lock:
            self._db.close()

    def record_answer(
        self,
        adapter: str,
        channel: str,
        user_id: str,
        question: str,
        answer: Answer,
        channel_kind: str = "unknown",
    ) -> str:
        """Store one question and its answer; returns the answer id the feedback buttons carry."""
        if channel_kind not in CHANNEL_KINDS:
            raise ValueError(f"channel_kind {channel_kind!r}: one of {', '.join(CHANNEL_KINDS)}")
        answer_id = uuid.uuid4().hex[:16]
        row = (
            answer_id,
            _now().isoformat(),
            adapter,
            channel,
            user_id,
            question,
            answer.text,
            answer.outcome,
            json.dumps([s.url for s in answer.sources]),
            round(answer.seconds, 3),
            channel_kind,
        )
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO questions (answer_id, asked_at, adapter, channel, user_id, question, answer, "
                "outcome, sources, seconds, channel_kind) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
        return answer_id

    def record_feedback(self, answer_id: str, user_id: str, vote: int) -> bool:
        """One vote per user and answer (a second click replaces the first). False: unknown id."""
        vote = 1 if vote > 0 else -1
        with self._lock, self._db:
            known = self._db.execute("SELECT 1 FROM questions WHERE answer_id = ?", (answer_id,)).fetchone()
            if not known:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO feedback (answer_id, user_id, vote, voted_at) VALUES (?,?,?,?)",
                (answer_id, user_id, vote, _now().isoformat()),
            )
        return True

    def record_reason(self, answer_id: str, user_id: str, reason: str, details: str = "") -> bool:
        """Why `user_id` gave this answer a thumbs down (stored with that vote, which it makes a
        thumbs down if it was not). False: unknown answer id."""
        if reason not in VOTE_REASONS:
            raise ValueError(f"reason {reason!r}: one of {', '.join(VOTE_REASONS)}")
        details = details.strip()[:MAX_DETAILS]
        with self._lock, self._db:
            known = self._db.execute("SELECT 1 FROM questions WHERE answer_id = ?", (answer_id,)).fetchone()
            if not known:
                return False
            self._db.execute(
                "INSERT INTO feedback (answer_id, user_id, vote, voted_at, reason, details) "
                "VALUES (?,?,-1,?,?,?) ON CONFLICT (answer_id, user_id) DO UPDATE SET "
                "vote = -1, reason = excluded.reason, details = excluded.details",
                (answer_id, user_id, _now().isoformat(), reason, details),
            )
        return True

    def record_escalation(
        self, answer_id: str, adapter: str, channel: str, thread: str, user_id: str
    ) -> bool:
        """A user asked for a person in this thread. True the first time for the thread (post the
        ping then), False when it was already escalated (stay quiet)."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO escalations VALUES (?,?,?,?,?,?)",
                (adapter, channel, thread, answer_id, user_id, _now().isoformat()),
            )
        return cursor.rowcount == 1

    def is_escalated(self, adapter: str, channel: str, thread: str) -> bool:
        """Whether a person was asked to help in this thread (the bot then stays quiet there)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM escalations WHERE adapter = ? AND channel = ? AND thread = ?",
                (adapter, channel, thread),
            ).fetchone()
        return row is not None

    def questions(self, since: datetime | None = None) -> list[QuestionRecord]:
        """Question records (oldest first) with their feedback totals."""
        since = since or datetime.fromtimestamp(0, UTC)
        with self._lock:
            rows = self._db.execute(
                """SELECT q.answer_id, q.asked_at, q.adapter, q.channel, q.user_id, q.question, q.answer,
                          q.outcome, q.sources, q.seconds,
                          COALESCE(SUM(f.vote), 0), COALESCE(SUM(f.vote < 0), 0), q.channel_kind,
                          json_group_array(json_array(f.reason, COALESCE(f.details, '')))
                              FILTER (WHERE f.reason IS NOT NULL),
                          EXISTS (SELECT 1 FROM escalations e WHERE e.answer_id = q.answer_id)
                   FROM questions q LEFT JOIN feedback f ON f.answer_id = q.answer_id
                   WHERE q.asked_at >= ? GROUP BY q.answer_id ORDER BY q.asked_at""",
                (since.isoformat(),),
            ).fetchall()
        return list(_records(rows))

    def feedback(self, answer_id: str) -> dict[str, int]:
        """user id -> vote for one answer."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id, vote FROM feedback WHERE answer_id = ?", (answer_id,)
            ).fetchall()
        return {user: int(vote) for user, vote in rows}

    def prune(self) -> int:
        """Delete records older than the retention period; returns how many questions went."""
        if not self.retention_days:
            return 0
        cutoff = (_now() - timedelta(days=self.retention_days)).isoformat()
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM feedback WHERE answer_id IN "
                "(SELECT answer_id FROM questions WHERE asked_at < ?)",
                (cutoff,),
            )
            self._db.execute("DELETE FROM escalations WHERE escalated_at < ?", (cutoff,))
            return self._db.execute("DELETE FROM questions WHERE asked_at < ?", (cutoff,)).rowcount

    async def arecord_answer(
        self,
        adapter: str,
        channel: str,
        user_id: str,
        question: str,
        answer: Answer,
        channel_kind: str = "unknown",
    ) -> str:
        return await self._run(self.record_answer, adapter, channel, user_id, question, answer, channel_kind)

    async def arecord_feedback(self, answer_id: str, user_id: str, vote: int) -> bool:
        return await self._run(self.record_feedback, answer_id, user_id, vote)

    async def arecord_reason(self, answer_id: str, user_id: str, reason: str, details: str = "") -> bool:
        return await self._run(self.record_reason, answer_id, user_id, reason, details)

    async def arecord_escalation(
        self, answer_id: str, adapter: str, channel: str, thread: str, user_id: str
    ) -> bool:
        return await self._run(self.record_escalation, answer_id, adapter, channel, thread, user_id)

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        """`call(*args)` on the store's own worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(call, *args))

    async def ais_escalated(self, adapter: str, channel: str, thread: str) -> bool:
        return await self._run(self.is_escalated, adapter, channel, thread)


def _records(rows: list[tuple[object, ...]]) -> Iterator[QuestionRecord]:
    for row in rows:
        (answer_id, asked_at, adapter, channel, user, question, text, outcome, sources, seconds,
         votes, downvotes, channel_kind, reasons, escalated) = row  # fmt: skip
        yield QuestionRecord(
            answer_id=str(answer_id),
            asked_at=datetime.fromisoformat(str(asked_at)),
            adapter=str(adapter),
            channel=str(channel),
            user_id=str(user),
            question=str(question),
            answer=str(text),
            outcome=str(outcome),
            sources=tuple(json.loads(str(sources))),
            seconds=float(str(seconds)),
            votes=int(str(votes)),
            downvotes=int(str(downvotes)),
            channel_kind=str(channel_kind),
            reasons=tuple((str(r), str(d)) for r, d in json.loads(str(reasons or "[]"))),
            escalated=bool(escalated),
        )


def _now() -> datetime:
    return datetime.now(UTC)
