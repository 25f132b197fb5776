"""Questions, answers and feedback, kept in a small SQLite file (RECORDS_PATH).

Both chat adapters write here; `docsbot report` reads it (questions per day, decline and
downvote rates, knowledge gaps). Calls are short and synchronous: call them through
`asyncio.to_thread` from the event loop (the `Records.arecord_*` helpers do).

    records = Records(settings.records_path)
    answer_id = await records.arecord_answer("slack", "C1", "U1", question, answer)
    await records.arecord_feedback(answer_id, "U2", +1)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.models import Answer

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
    seconds     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_asked_at ON questions (asked_at);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    vote        INTEGER NOT NULL,
    voted_at    TEXT NOT NULL,
    PRIMARY KEY (answer_id, user_id)
);
"""


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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record_answer(self, adapter: str, channel: str, user_id: str, question: str, answer: Answer) -> str:
        """Store one question and its answer; returns the answer id the feedback buttons carry."""
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
        )
        with self._lock, self._db:
            self._db.execute("INSERT INTO questions VALUES (?,?,?,?,?,?,?,?,?,?)", row)
        return answer_id

    def record_feedback(self, answer_id: str, user_id: str, vote: int) -> bool:
        """One vote per user and answer (a second click replaces the first). False: unknown id."""
        vote = 1 if vote > 0 else -1
        with self._lock, self._db:
            known = self._db.execute("SELECT 1 FROM questions WHERE answer_id = ?", (answer_id,)).fetchone()
            if not known:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO feedback VALUES (?,?,?,?)",
                (answer_id, user_id, vote, _now().isoformat()),
            )
        return True

    def questions(self, since: datetime | None = None) -> list[QuestionRecord]:
        """Question records (oldest first) with their feedback totals."""
        since = since or datetime.fromtimestamp(0, UTC)
        with self._lock:
            rows = self._db.execute(
                """SELECT q.*, COALESCE(SUM(f.vote), 0), COALESCE(SUM(f.vote < 0), 0)
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
            return self._db.execute("DELETE FROM questions WHERE asked_at < ?", (cutoff,)).rowcount

    async def arecord_answer(
        self, adapter: str, channel: str, user_id: str, question: str, answer: Answer
    ) -> str:
        return await asyncio.to_thread(self.record_answer, adapter, channel, user_id, question, answer)

    async def arecord_feedback(self, answer_id: str, user_id: str, vote: int) -> bool:
        return await asyncio.to_thread(self.record_feedback, answer_id, user_id, vote)


def _records(rows: list[tuple[object, ...]]) -> Iterator[QuestionRecord]:
    for row in rows:
        (answer_id, asked_at, adapter, channel, user, question, text, outcome, sources, seconds,
         votes, downvotes) = row  # fmt: skip
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
        )


def _now() -> datetime:
    return datetime.now(UTC)
