"""Retrieval evaluation on a JSONL question set (the format of shared/eval/dev_questions.jsonl).

Page level: a hit is a retrieved chunk from one of the question's `relevant_pages`. Reports, over
in-scope questions, hit@1, hit@5 and MRR@10, and the retrieval gate's decline rate on in-scope and
on out-of-scope questions, overall and per kind. `details` gives one JSON-ready row per question:
the rank of the first relevant page, the top pages, and the gate's decision with its reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import SourceError
from core.gate import Decision
from core.models import Retrieval

OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant_pages: tuple[str, ...]
    kind: str
    split: str = ""  # "tune" / "heldout" where the file says
    answer_facts: tuple[str, ...] = ()  # what a good answer states (scored by core.answer_eval)


@dataclass(frozen=True)
class Judged:
    question: Question
    ranked_pages: tuple[str, ...]  # distinct page ids, best first
    declined: bool
    decision: Decision | None = None
    searched_in_english: str = ""  # the translation searched instead (`eval --translate`)
    expanded_with: str = ""  # the docs' terms searched as well (`eval --expand`)
    passages: tuple[str, ...] = ()  # the text of the passages an answer would read (the first TOP_K)

    @property
    def rank(self) -> int | None:
        """1-based rank of the first relevant page, None if absent."""
        for i, page in enumerate(self.ranked_pages, start=1):
            if page in self.question.relevant_pages:
                return i
        return None


def load_questions(path: str | Path) -> list[Question]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SourceError(f"question file {path} could not be read: {exc}") from exc
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    id=str(row.get("id", number)),
                    question=str(row["question"]),
                    relevant_pages=tuple(row.get("relevant_pages") or ()),
                    kind=str(row.get("kind") or ("in_scope" if row.get("relevant_pages") else OUT_OF_SCOPE)),
                    split=str(row.get("split") or ""),
                    answer_facts=tuple(str(fact) for fact in row.get("answer_facts") or ()),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"{path}:{number}: not a question object ({exc})") from exc
    if not questions:
        raise SourceError(f"{path} holds no questions")
    return questions


async def evaluate(
    questions: list[Question],
    search: Callable[[str, int], Awaitable[Retrieval]],
    judge: Callable[[Retrieval], Awaitable[Decision]],
    k: int = 10,
    passages: int = 5,
) -> list[Judged]:
    """Search each question and decide whether to decline it (`RagService.judge`: the gate, and
    the LLM's scope check where there is an LLM and it is asked for). Each keeps the text of its
    first `passages` hits: what the LLM reads for an answer (TOP_K)."""
    judged = []
    for q in questions:
        retrieval = await search(q.question, k)
        pages = tuple(dict.fromkeys(hit.chunk.page_id for hit in retrieval.hits))
        decision = await judge(retrieval)
        translation = retrieval.query if retrieval.translated_from else ""
        judged.append(
            Judged(
                q,
                pages,
                not decision.covered,
                decision,
                searched_in_english=translation,
                expanded_with=retrieval.expanded_with,
                passages=tuple(hit.text for hit in retrieval.hits[:passages]),
            )
        )
    return judged


def details(judged: list[Judged]) -> list[dict[str, Any]]:
    """One row per question (`docsbot eval --details`): where the first relevant page ranked,
    the top pages, and the gate's decision with its probability, signals and reason."""
    return [
        {
            "id": j.question.id,
            "kind": j.question.kind,
            "rank": j.rank,
            "relevant_pages": list(j.question.relevant_pages),
            "top_pages": list(j.ranked_pages[:5]),
            "declined": j.declined,
            "gate": j.decision.as_dict() if j.decision else None,
            "question": j.question.question,
            "searched_in_english": j.searched_in_english or None,
            "expanded_with": j.expanded_with or None,
        }
        for j in judged
    ]


def _scores(rows: list[Judged]) -> dict[str, float]:
    n = len(rows)
    ranks = [r.rank for r in rows]
    return {
        "n": n,
        "hit@1": round(sum(r == 1 for r in ranks) / n, 3) if n else 0.0,
        "hit@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 3) if n else 0.0,
        "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 3) if n else 0.0,
        "declined": round(sum(r.declined for r in rows) / n, 3) if n else 0.0,
    }


def summarize(judged: list[Judged]) -> dict[str, Any]:
    in_scope = [j for j in judged if j.question.kind != OUT_OF_SCOPE]
    out_scope = [j for j in judged if j.question.kind == OUT_OF_SCOPE]
    overall = _scores(in_scope)
    by_kind: dict[str, list[Judged]] = defaultdict(list)
    for j in judged:
        by_kind[j.question.kind].append(j)
    per_kind = {}
    for kind, rows in sorted(by_kind.items()):
        if kind == OUT_OF_SCOPE:
            per_kind[kind] = {"n": len(rows), "declined": _scores(rows)["declined"]}
        else:
            per_kind[kind] = _scores(rows)
    return {
        "n": overall["n"],
        "hit@1": overall["hit@1"],
        "hit@5": overall["hit@5"],
        "mrr@10": overall["mrr@10"],
        "decline_out_of_scope": _scores(out_scope)["declined"] if out_scope else 0.0,
        "decline_in_scope": overall["declined"],
        "per_kind": per_kind,
        "misses": [
            {
                "id": j.question.id,
                "question": j.question.question,
                "rank": j.rank,
                "got": list(j.ranked_pages[:3]),
            }
            for j in in_scope
            if j.rank != 1
        ],
    }


def format_report(summary: dict[str, Any]) -> str:
    lines = [
        f"in-scope questions: {summary['n']}",
        f"hit@1 {summary['hit@1']:.3f}   hit@5 {summary['hit@5']:.3f}   MRR@10 {summary['mrr@10']:.3f}",
        f"declined: in scope {summary['decline_in_scope']:.3f}   "
        f"out of scope {summary['decline_out_of_scope']:.3f}",
        *([f"searched in English (translated): {summary['translated']}"] if "translated" in summary else []),
        *(
            [f"searched with the docs' terms (expanded): {summary['expanded']}"]
            if "expanded" in summary
            else []
        ),
        "",
        f"{'kind':<16}{'n':>4}{'hit@1':>8}{'hit@5':>8}{'mrr@10':>8}{'declined':>10}",
    ]
    for kind, s in summary["per_kind"].items():
        lines.append(
            f"{kind:<16}{s['n']:>4}{s.get('hit@1', float('nan')):>8.2f}{s.get('hit@5', float('nan')):>8.2f}"
            f"{s.get('mrr@10', float('nan')):>8.2f}{s['declined']:>10.2f}"
        )
    if summary["misses"]:
        lines += ["", "not at rank 1:"]
        lines += [f"  {m['id']} rank={m['rank']} got={m['got']}  {m['question']}" for m in summary["misses"]]
    return "\n".join(lines)
