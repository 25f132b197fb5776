import json
from pathlib import Path

import pytest

from core.errors import SourceError
from core.evaluation import Judged, Question, details, evaluate, load_questions, summarize
from core.gate import FEATURES
from core.service import RagService

from .conftest import FIXTURES


def _judged(kind: str, relevant: tuple[str, ...], ranked: tuple[str, ...], declined: bool = False) -> Judged:
    return Judged(Question("q", "?", relevant, kind), ranked, declined)


def test_metrics_are_page_level_over_in_scope_questions() -> None:
    rows = [
        _judged("a", ("x.md",), ("x.md", "y.md")),  # rank 1
        _judged("a", ("x.md", "z.md"), ("y.md", "z.md")),  # rank 2
        _judged("b", ("x.md",), tuple(f"p{i}" for i in range(10)), declined=True),  # miss
        _judged("b", ("x.md",), ("1", "2", "3", "4", "5", "x.md")),  # rank 6
        _judged("out_of_scope", (), ("y.md",), declined=True),
        _judged("out_of_scope", (), ("y.md",)),
    ]
    s = summarize(rows)
    assert s["n"] == 4
    assert s["hit@1"] == 0.25 and s["hit@5"] == 0.5
    assert s["mrr@10"] == pytest.approx(round((1 + 1 / 2 + 1 / 6) / 4, 3))
    assert s["decline_in_scope"] == 0.25 and s["decline_out_of_scope"] == 0.5
    assert s["per_kind"]["a"]["hit@1"] == 0.5 and s["per_kind"]["out_of_scope"] == {"n": 2, "declined": 0.5}


def test_bad_question_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "1"}\n')
    with pytest.raises(SourceError, match=r"q\.jsonl:1"):
        load_questions(bad)


async def test_eval_on_fixture_index(indexed_service: RagService) -> None:
    questions = load_questions(FIXTURES / "questions.jsonl")
    summary = summarize(await evaluate(questions, indexed_service.search, indexed_service.judge))
    assert summary["hit@1"] == 1.0 and summary["decline_in_scope"] == 0.0
    assert summary["decline_out_of_scope"] == 1.0
    json.dumps(summary)


async def test_details_give_rank_top_pages_and_the_gates_reason(indexed_service: RagService) -> None:
    questions = load_questions(FIXTURES / "questions.jsonl")
    rows = details(await evaluate(questions, indexed_service.search, indexed_service.judge))
    assert [row["id"] for row in rows] == [q.id for q in questions]
    by_id = {row["id"]: json.loads(json.dumps(row)) for row in rows}
    hnsw = by_id["t1"]
    assert hnsw["rank"] == 1 and hnsw["top_pages"][0] == "hnsw.md" and not hnsw["declined"]
    assert hnsw["gate"]["covered"] and hnsw["gate"]["probability"] >= hnsw["gate"]["threshold"]
    assert set(hnsw["gate"]["signals"]) == set(FEATURES)
    podman = by_id["t6"]
    assert podman["declined"] and podman["rank"] is None
    assert podman["gate"]["probability"] < podman["gate"]["threshold"]
    assert "podman" in podman["gate"]["reason"]  # the decline names its reason


def test_question_files_keep_their_split(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "x?", "relevant_pages": ["p.md"], "split": "heldout"}\n')
    assert load_questions(path)[0].split == "heldout"
