"""The operator's usage report: volume, decline and thumbs-down rates, slow answers, knowledge gaps.

    report = build_report(records.questions(since), embedder, since=since)
    print(format_text(report))            # or json.dumps(report.as_dict())

Knowledge gaps are the questions the docs did not cover (declined) or whose answer got a thumbs
down, grouped by meaning: each question is embedded and joins the first group whose centroid is
at least `similarity` (cosine) close, else starts a new one. Big groups first: they are the pages
the docs are missing or the answers that need fixing.

Privacy: the report quotes (slowest answers, gaps, thumbs-down comments) only questions asked in
public channels; questions from DMs, private channels or unknown places count in the numbers
but their text never appears.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from core.embedding import Embedder
from core.records import VOTE_REASONS, QuestionRecord

#: Outcomes that are real questions (small talk, empty and too-long messages are not).
QUESTION_OUTCOMES = {"answered", "not_covered", "busy", "error"}
DECLINED = "not_covered"
#: The only channel kind whose questions a report may quote.
QUOTABLE = "public"
#: Cosine at which two questions count as the same gap (all-MiniLM-L6-v2 and bge: paraphrases
#: score 0.7-0.95, different topics of the same docs 0.3-0.6).
DEFAULT_SIMILARITY = 0.7


@dataclass(frozen=True)
class Day:
    date: str
    questions: int
    declined: int
    errors: int
    downvoted: int


@dataclass(frozen=True)
class SlowAnswer:
    asked_at: str
    adapter: str
    outcome: str
    seconds: float
    question: str


@dataclass(frozen=True)
class Gap:
    """Similar declined or downvoted questions. `example` is the one nearest the group's centre."""

    example: str
    count: int
    declined: int
    downvoted: int
    last_asked: str
    questions: list[str]


@dataclass
class Report:
    since: str
    until: str
    messages: int  # everything recorded, small talk included
    questions: int  # real questions (QUESTION_OUTCOMES)
    outcomes: dict[str, int]
    adapters: dict[str, int]
    decline_rate: float  # declined / questions
    error_rate: float  # busy + error / questions
    answers_with_feedback: int
    downvoted: int
    downvote_rate: float  # answers with a thumbs down / answers with any feedback
    p50_seconds: float
    p95_seconds: float
    per_day: list[Day] = field(default_factory=list)
    slowest: list[SlowAnswer] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    escalations: int = 0  # answers whose asker pressed "still need help?" / "needs a human"
    downvote_reasons: dict[str, int] = field(default_factory=dict)  # reason -> thumbs down giving it
    comments: list[str] = field(default_factory=list)  # free text of thumbs down (public only)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """'7d', '12h', '30m', '2w' (ago) or an ISO date/time -> an aware datetime."""
    now = now or datetime.now(UTC)
    value = value.strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if value and value[-1] in units and value[:-1].isdigit():
        return now - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: use e.g. 7d, 24h, 2w or a date like 2025-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_report(
    records: Sequence[QuestionRecord],
    embedder: Embedder | None,
    *,
    since: datetime,
    until: datetime | None = None,
    similarity: float = DEFAULT_SIMILARITY,
    slowest: int = 5,
    max_gaps: int = 20,
) -> Report:
    """Summarize the records. Without an embedder, gaps group identical questions only."""
    until = until or datetime.now(UTC)
    real = [r for r in records if r.outcome in QUESTION_OUTCOMES]
    outcomes = Counter(r.outcome for r in records)
    declined = sum(1 for r in real if r.outcome == DECLINED)
    failed = sum(1 for r in real if r.outcome in {"busy", "error"})
    # `votes` is the sum of +1/-1 (one up and one down make 0), so: any feedback = sum or a down.
    with_feedback = [r for r in real if r.votes or r.downvotes]
    downvoted = [r for r in real if r.downvotes]
    seconds = sorted(r.seconds for r in real)
    days: dict[str, list[QuestionRecord]] = {}
    for r in real:
        days.setdefault(r.asked_at.astimezone(UTC).date().isoformat(), []).append(r)
    public = [r for r in real if r.channel_kind == QUOTABLE]
    gap_records = [r for r in public if r.outcome == DECLINED or r.downvotes]
    reasons = Counter(reason for r in real for reason, _details in r.reasons)
    return Report(
        since=since.isoformat(timespec="seconds"),
        until=until.isoformat(timespec="seconds"),
        messages=len(records),
        questions=len(real),
        outcomes=dict(outcomes.most_common()),
        adapters=dict(Counter(r.adapter for r in real).most_common()),
        decline_rate=_rate(declined, len(real)),
        error_rate=_rate(failed, len(real)),
        answers_with_feedback=len(with_feedback),
        downvoted=len(downvoted),
        downvote_rate=_rate(len(downvoted), len(with_feedback)),
        p50_seconds=round(_percentile(seconds, 50), 3),
        p95_seconds=round(_percentile(seconds, 95), 3),
        per_day=[
            Day(
                date,
                len(rows),
                sum(1 for r in rows if r.outcome == DECLINED),
                sum(1 for r in rows if r.outcome in {"busy", "error"}),
                sum(1 for r in rows if r.downvotes),
            )
            for date, rows in sorted(days.items())
        ],
        slowest=[
            SlowAnswer(r.asked_at.isoformat(timespec="seconds"), r.adapter, r.outcome, r.seconds, r.question)
            for r in sorted(public, key=lambda r: r.seconds, reverse=True)[:slowest]
        ],
        gaps=knowledge_gaps(gap_records, embedder, similarity)[:max_gaps],
        escalations=sum(1 for r in real if r.escalated),
        downvote_reasons={reason: reasons[reason] for reason in VOTE_REASONS if reasons[reason]},
        comments=[details for r in public for _reason, details in r.reasons if details][-max_gaps:],
    )


def knowledge_gaps(
    records: Sequence[QuestionRecord], embedder: Embedder | None, similarity: float = DEFAULT_SIMILARITY
) -> list[Gap]:
    """Group declined/downvoted questions by meaning (greedy centroid clustering), biggest first."""
    if not records:
        return []
    texts = [" ".join(r.question.split()) for r in records]
    if embedder is None:
        keys = sorted({t.lower() for t in texts})
        vectors = np.array([[float(t.lower() == k) for k in keys] for t in texts], dtype=np.float32)
    else:
        vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, vector in enumerate(vectors):
        best, best_score = -1, similarity
        for g, total in enumerate(sums):
            score = float(vector @ total) / max(float(np.linalg.norm(total)), 1e-12)
            if score >= best_score:
                best, best_score = g, score
        if best < 0:
            groups.append([i])
            sums.append(vector.copy())
        else:
            groups[best].append(i)
            sums[best] += vector
    gaps = []
    for members, total in zip(groups, sums, strict=True):
        centre = total / max(float(np.linalg.norm(total)), 1e-12)
        example = max(members, key=lambda i: float(vectors[i] @ centre))
        rows = [records[i] for i in members]
        distinct = list(dict.fromkeys(texts[i] for i in members))
        gaps.append(
            Gap(
                example=texts[example],
                count=len(members),
                declined=sum(1 for r in rows if r.outcome == DECLINED),
                downvoted=sum(1 for r in rows if r.downvotes),
                last_asked=max(r.asked_at for r in rows).isoformat(timespec="seconds"),
                questions=distinct[:10],
            )
        )
    gaps.sort(key=lambda gap: (-gap.count, gap.example))
    return gaps


def format_text(report: Report) -> str:
    """The report for a terminal or a chat message (plain text, no markup)."""
    lines = [
        f"docsbot report {report.since[:10]} .. {report.until[:10]}",
        f"questions: {report.questions} ({report.messages} messages incl. small talk)"
        + (f"; by adapter: {_pairs(report.adapters)}" if report.adapters else ""),
        f"declined (docs don't cover it): {_pct(report.decline_rate)}   "
        f"errors/busy: {_pct(report.error_rate)}",
        f"thumbs down: {report.downvoted} of {report.answers_with_feedback} answers with feedback "
        f"({_pct(report.downvote_rate)})",
        f"latency: p50 {report.p50_seconds:.1f} s, p95 {report.p95_seconds:.1f} s",
        f"handed to a person (still need help): {report.escalations}",
    ]
    if report.downvote_reasons:
        lines.append(f"thumbs-down reasons: {_pairs(report.downvote_reasons)}")
        lines += [f"  - {_short(comment)}" for comment in report.comments[-5:]]
    if report.per_day:
        lines += ["", "per day:      questions  declined  errors  thumbs-down"]
        lines += [
            f"  {d.date}  {d.questions:9d}  {d.declined:8d}  {d.errors:6d}  {d.downvoted:11d}"
            for d in report.per_day
        ]
    if report.slowest:
        lines += ["", "slowest answers:"]
        lines += [
            f"  {s.seconds:6.1f} s  {s.outcome:<11} {s.adapter:<8} {_short(s.question)}"
            for s in report.slowest
        ]
    lines += ["", "knowledge gaps (declined or thumbs-down questions, grouped by meaning):"]
    if not report.gaps:
        lines.append("  none")
    for gap in report.gaps:
        counts = f"({gap.declined} declined, {gap.downvoted} thumbs down)"
        lines.append(f"  {gap.count:3d} x {_short(gap.example)}  {counts}")
        lines += [f"          - {_short(q)}" for q in gap.questions if q != gap.example][:3]
    return "\n".join(lines)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
