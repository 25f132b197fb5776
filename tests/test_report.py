"""`docsbot report`: rates from the records store and knowledge gaps grouped by meaning."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.embedding import SentenceTransformerEmbedder
from core.models import Answer
from core.records import Records
from core.report import build_report, format_text, parse_since

ROOT = Path(__file__).resolve().parent.parent

DECLINED = [
    "can I deploy milvus with podman?",
    "how do I run Milvus on podman instead of docker",
    "is podman supported for running milvus containers?",
    "does milvus have a GraphQL API?",
    "can I query milvus collections through graphql",
]
ANSWERED = [
    "what does M control in an HNSW index?",
    "how do I create a collection with a sparse vector field?",
    "how to back up milvus data to S3?",  # gets a thumbs down
]


def _fill(records: Records) -> list[str]:
    ids = []
    for n, question in enumerate(DECLINED):
        ids.append(
            records.record_answer(
                "slack", "C1", f"U{n}", question, Answer("not covered", "not_covered"), "public"
            )
        )
    for n, question in enumerate(ANSWERED):
        answer = Answer("an answer [1]", "answered", seconds=2.0 + n)
        ids.append(records.record_answer("discord", "42", f"U{n}", question, answer, "public"))
    records.record_answer("slack", "C1", "U9", "hello!", Answer("hi", "small_talk"), "public")
    records.record_answer(
        "slack", "C1", "U9", "why is it slow", Answer("busy", "busy", seconds=30.0), "public"
    )
    records.record_feedback(ids[-1], "U1", -1)  # the S3 backup answer
    records.record_feedback(ids[-2], "U1", +1)
    return ids


def test_report_groups_similar_declined_questions(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    records = Records(tmp_path / "records.sqlite3")
    _fill(records)
    since = datetime.now(UTC) - timedelta(days=7)
    report = build_report(records.questions(since), embedder, since=since)
    records.close()

    assert report.messages == 10 and report.questions == 9  # small talk is not a question
    assert report.decline_rate == pytest.approx(5 / 9, abs=1e-4)
    assert report.error_rate == pytest.approx(1 / 9, abs=1e-4)
    assert report.answers_with_feedback == 2 and report.downvoted == 1 and report.downvote_rate == 0.5
    assert report.slowest[0].seconds == 30.0 and report.slowest[0].outcome == "busy"
    assert report.per_day[-1].questions == 9 and report.per_day[-1].declined == 5
    assert report.adapters == {"slack": 6, "discord": 3}

    groups = [set(gap.questions) for gap in report.gaps]
    assert groups == [set(DECLINED[:3]), set(DECLINED[3:]), {ANSWERED[2]}]
    assert [(gap.count, gap.declined, gap.downvoted) for gap in report.gaps] == [
        (3, 3, 0),
        (2, 2, 0),
        (1, 0, 1),
    ]
    text = format_text(report)
    assert "knowledge gaps" in text and "3 x " in text and "podman" in text


def test_report_on_no_records_is_empty_not_an_error(embedder: SentenceTransformerEmbedder) -> None:
    since = datetime.now(UTC) - timedelta(days=7)
    report = build_report([], embedder, since=since)
    assert report.questions == 0 and report.decline_rate == 0 and report.gaps == []
    assert "none" in format_text(report)


def test_since_accepts_durations_and_dates() -> None:
    now = datetime(2025, 3, 10, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2025, 3, 3, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2025, 3, 9, 12, tzinfo=UTC)
    assert parse_since("2025-03-01", now) == datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="7d"):
        parse_since("last week", now)


@pytest.mark.slow
def test_report_command_prints_json(tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite3")
    _fill(records)
    records.close()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RECORDS_PATH": str(tmp_path / "records.sqlite3"),
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "report", "--since", "1d", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["questions"] == 9 and data["gaps"][0]["count"] == 3
    assert {"per_day", "slowest", "decline_rate", "downvote_rate"} <= set(data)


def test_report_never_quotes_questions_from_dms_or_private_channels(tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite3")
    secret = "how do I wire our internal project falcon to milvus?"
    for kind in ("dm", "private", "unknown"):
        slow = Answer("not covered", "not_covered", seconds=99.0)
        answer_id = records.record_answer("slack", "D1", "U1", f"{secret} ({kind})", slow, kind)
        records.record_reason(answer_id, "U1", "wrong", f"falcon details ({kind})")
    records.record_answer("slack", "C1", "U2", "what is knowhere?", Answer("ok [1]", "answered"), "public")
    since = datetime.now(UTC) - timedelta(days=1)
    report = build_report(records.questions(since), None, since=since)
    records.close()

    assert report.questions == 4 and report.decline_rate == 0.75  # counted ...
    assert report.downvote_reasons == {"wrong": 3}
    text = format_text(report) + json.dumps(report.as_dict())
    assert "falcon" not in text  # ... never quoted
    assert [s.question for s in report.slowest] == ["what is knowhere?"]


def test_report_shows_escalations_and_why_answers_got_a_thumbs_down(tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite3")
    ids = [
        records.record_answer("slack", "C1", f"U{n}", f"question {n}?", Answer("a [1]", "answered"), "public")
        for n in range(3)
    ]
    assert records.record_reason(ids[0], "U7", "outdated", "  the flag was renamed in 2.5  ")
    assert records.record_reason(ids[1], "U7", "wrong")
    assert records.record_reason(ids[2], "U8", "outdated")
    assert not records.record_reason("nope", "U7", "wrong")
    assert records.record_escalation(ids[0], "slack", "C1", "1.1", "U0")
    assert not records.record_escalation(ids[0], "slack", "C1", "1.1", "U0")  # once per thread
    assert records.is_escalated("slack", "C1", "1.1") and not records.is_escalated("slack", "C1", "2.2")
    since = datetime.now(UTC) - timedelta(days=1)
    report = build_report(records.questions(since), None, since=since)
    records.close()

    assert report.escalations == 1
    assert report.downvoted == 3  # a reason is a thumbs down
    assert report.downvote_reasons == {"wrong": 1, "outdated": 2}
    assert report.comments == ["the flag was renamed in 2.5"]
    text = format_text(report)
    assert "still need help): 1" in text and "outdated 2" in text and "renamed in 2.5" in text


def test_records_from_an_older_version_gain_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE questions (answer_id TEXT PRIMARY KEY, asked_at TEXT NOT NULL,
                   adapter TEXT NOT NULL, channel TEXT NOT NULL, user_id TEXT NOT NULL,
                   question TEXT NOT NULL, answer TEXT NOT NULL, outcome TEXT NOT NULL,
                   sources TEXT NOT NULL, seconds REAL NOT NULL);
               CREATE TABLE feedback (answer_id TEXT NOT NULL, user_id TEXT NOT NULL,
                   vote INTEGER NOT NULL, voted_at TEXT NOT NULL, PRIMARY KEY (answer_id, user_id));
               INSERT INTO questions VALUES ('a1', '2026-01-01T00:00:00+00:00', 'slack', 'C1', 'U1',
                   'old question?', 'old answer', 'answered', '[]', 1.0);"""
        )
    records = Records(path)
    (old,) = records.questions()
    assert old.channel_kind == "unknown" and old.reasons == () and not old.escalated  # never quoted
    assert records.record_reason("a1", "U2", "other", "meh")
    records.close()
