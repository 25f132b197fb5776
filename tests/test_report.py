"""`docsbot report`: rates from the records store and knowledge gaps grouped by meaning."""

from __future__ import annotations

import json
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
            records.record_answer("slack", "C1", f"U{n}", question, Answer("not covered", "not_covered"))
        )
    for n, question in enumerate(ANSWERED):
        answer = Answer("an answer [1]", "answered", seconds=2.0 + n)
        ids.append(records.record_answer("discord", "42", f"U{n}", question, answer))
    records.record_answer("slack", "C1", "U9", "hello!", Answer("hi", "small_talk"))
    records.record_answer("slack", "C1", "U9", "why is it slow", Answer("busy", "busy", seconds=30.0))
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
