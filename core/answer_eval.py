"""Generated answers scored on their facts (`docsbot eval --answers`).

Each dev question lists `answer_facts`: the statements a good answer contains. Two scorers, reported
under different names and never mixed:

- `fact_proxy` (offline, always): the share of each fact's numbers and identifiers (`efConstruction`,
  `360`, `[2, 2048]`, `proxy.maxFieldNum`) that appear in the answer. It cannot see paraphrase or
  wrong claims around the right tokens; it is a cheap, repeatable lower-level signal.
- `judge_supported` / `judge_contradicted` / `judge_missing` (only with JUDGE_BASE_URL and
  JUDGE_MODEL): an OpenAI-compatible model reads the answer and labels every fact. Its output must be
  one strict JSON object; malformed output, timeouts and server errors are retried, and a question
  the judge still fails on is counted in `judge_errors`, not fatal.

Besides fact coverage the report has, per model: the cited-relevant share (answered in-scope
questions citing at least one relevant page), declines (by the gate or by the model saying the docs
don't cover it) and answer time p50 / p95.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import statistics
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from core.config import Settings
from core.errors import ConfigError, JudgeError
from core.evaluation import OUT_OF_SCOPE, Judged, Question
from core.models import Answer
from core.prompting import has_citations, says_not_covered

log = logging.getLogger(__name__)

VERDICTS = ("supported", "contradicted", "missing")

# --- the offline proxy -------------------------------------------------------------------------

# One scan finds word-like tokens (with inner hyphens and dotted, colon or slash parts:
# proxy.maxFieldNum, BAAI/bge-reranker-v2-m3, localhost:19530) and numbers (a sign only when it
# stands alone: "-1", not the "-5" of "2-5x"; versions like 8.5.0 stay one token).
_TOKEN = re.compile(
    r"(?P<word>[A-Za-z_](?:\w|-(?=\w))*(?:[.:/](?=\w)(?:\w|-(?=\w))+)*)"
    r"|(?P<number>(?:(?<!\w)-)?\d+(?:\.\d+)*)"
)
_CITATION = re.compile(r"\[\d{1,2}\](?:\s*\[\d{1,2}\])*")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_VERSION = re.compile(r"\bv(?=\d+\.\d)")  # "v3.1" and "3.1" are the same version


def _normalized(text: str) -> str:
    return _VERSION.sub("", _THOUSANDS.sub("", text))


def _is_identifier(token: str) -> bool:
    """snake_case, camelCase, dotted names, ALLCAPS names and words with digits are identifiers;
    plain English words ("the", "default", "Milvus", "re-ranking") are not."""
    if "_" in token.strip("_") or any(c.isdigit() for c in token):
        return True
    parts = re.split(r"[.:/]", token)
    if len(parts) > 1 and "/" not in token:
        return all(len(p) > 1 for p in parts)  # "e.g" is not an identifier
    if re.search(r"[a-z][A-Z]", token):
        return True
    return sum(c.isupper() for c in token) >= 2


def fact_terms(fact: str) -> list[str]:
    """The numbers and identifiers of one fact, in order, without duplicates (lowercase)."""
    terms = []
    for match in _TOKEN.finditer(_normalized(fact)):
        token = match.group()
        if match.group("number"):
            terms.append(token)
            continue
        # "throughput/QPS", "PQ-compressed": words joined by a slash or hyphen are looked at one
        # by one; names with a digit, underscore or dot (bge-reranker-v2-m3) stay whole.
        plain = not re.search(r"[\d_.]", token)
        parts = re.split(r"[/-]", token) if plain else [token]
        terms += [part for part in parts if _is_identifier(part)]
    return list(dict.fromkeys(term.lower() for term in terms))


def _normalized_answer(text: str) -> str:
    """Citation markers ([1], [2][3]) removed, so "[2]" never counts as the number 2."""
    return _normalized(_CITATION.sub(" ", text)).lower()


def _contains(answer: str, term: str) -> bool:
    """The term as a whole token: "64" is not found in "640" or "6.4", "ip" not in "pip"."""
    pattern = rf"(?<![\w.]){re.escape(term)}(?!\w|[.:/-]\w)"
    return re.search(pattern, answer) is not None


def fact_proxy(answer: str, fact: str, given: Collection[str] = ()) -> float | None:
    """Share of the fact's numbers and identifiers found in the answer; None when the fact has
    none (plain prose cannot be scored offline). Terms in `given` (those the question itself
    names) are left out: an answer that only echoes the question does not score with them."""
    terms = [term for term in fact_terms(fact) if term not in given]
    if not terms:
        return None
    text = _normalized_answer(answer)
    return sum(_contains(text, term) for term in terms) / len(terms)


def context_fact_proxy(judged: Sequence[Judged]) -> float | None:
    """The fact proxy of the passages themselves: per in-scope question, the share of its facts'
    numbers and identifiers found in the passages an answer would read, averaged like the
    answers' `fact_proxy` (None when no fact can be scored). It needs no LLM and bounds what an
    answer can state: a ranking change can put the right page first with a passage that names
    the question's words rather than the one that holds the values."""
    scores = []
    for j in judged:
        if j.question.kind == OUT_OF_SCOPE:
            continue
        text = "\n".join(j.passages)
        scores.append(_mean([fact_proxy(text, fact) for fact in j.question.answer_facts]))
    mean = _mean(scores)
    return None if mean is None else round(mean, 3)


# --- the judge ---------------------------------------------------------------------------------

JUDGE_PROMPT = """You grade an answer from a documentation assistant against reference facts.
For each numbered fact decide exactly one verdict:
- "supported": the answer states the fact (paraphrase is fine);
- "contradicted": the answer states something incompatible with the fact;
- "missing": the answer does not state it.
Reply with one JSON object and nothing else, in this shape:
{"verdicts": [{"fact": 1, "verdict": "supported"}, {"fact": 2, "verdict": "missing"}]}"""


def parse_verdicts(text: str, n_facts: int) -> list[str]:
    """Strict parsing of the judge's reply: one JSON object (a ```json fence around it is
    tolerated) with exactly one known verdict for each fact 1..n. Anything else raises JudgeError."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise JudgeError(f"judge reply is not JSON: {body[:80]!r}") from exc
    items = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise JudgeError("judge reply has no 'verdicts' list")
    verdicts: dict[int, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise JudgeError(f"judge verdict is not an object: {item!r:.80}")
        number, verdict = item.get("fact"), item.get("verdict")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= n_facts:
            raise JudgeError(f"judge verdict for an unknown fact: {number!r:.40}")
        if verdict not in VERDICTS:
            raise JudgeError(f"judge verdict {verdict!r:.40} is not one of {', '.join(VERDICTS)}")
        if number in verdicts:
            raise JudgeError(f"judge gave fact {number} two verdicts")
        verdicts[number] = verdict
    if len(verdicts) != n_facts:
        raise JudgeError(f"judge labelled {len(verdicts)} of {n_facts} facts")
    return [verdicts[n] for n in range(1, n_facts + 1)]


class FactJudge:
    """Labels facts with an OpenAI-compatible model (temperature 0, JSON output): every request
    has a timeout; failures and malformed replies are retried with backoff, then raise JudgeError."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 1.0,
    ) -> None:
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FactJudge | None:
        """The judge of JUDGE_BASE_URL / JUDGE_MODEL, or None (offline proxy only) when unset."""
        if not settings.judge_base_url:
            return None
        if not settings.judge_model:
            raise ConfigError("JUDGE_MODEL: must be set when JUDGE_BASE_URL is")
        return cls(
            settings.judge_base_url,
            settings.judge_model,
            settings.judge_api_key.get_secret_value(),
            timeout=settings.judge_timeout,
        )

    async def judge(self, question: str, answer: str, facts: Sequence[str]) -> list[str]:
        numbered = "\n".join(f"{n}. {fact}" for n, fact in enumerate(facts, start=1))
        messages: list[Any] = [
            {"role": "system", "content": JUDGE_PROMPT},
            {
                "role": "user",
                "content": f"Question:\n{question}\n\nAnswer:\n{answer}\n\nFacts:\n{numbered}",
            },
        ]
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=0,
                    max_tokens=64 + 24 * len(facts),
                    response_format={"type": "json_object"},
                )
                content = response.choices[0].message.content if response.choices else None
                return parse_verdicts(content or "", len(facts))
            except (openai.OpenAIError, JudgeError) as exc:
                last = exc
                log.warning("judge attempt %d failed: %s", attempt + 1, exc)
        raise JudgeError(f"judge failed after {self.retries + 1} attempts: {last}")

    async def close(self) -> None:
        await self._client.close()


# --- the report --------------------------------------------------------------------------------


def is_decline(answer: Answer) -> bool:
    """Declined by the gate or by the model (any outcome but an answer; an answer the service
    kept although its text says the docs don't cover the question counts too)."""
    return answer.outcome != "answered" or says_not_covered(answer.text)


def cited_pages(answer: Answer) -> set[str]:
    return {source.url.rsplit("/", 1)[-1].split("#")[0] for source in answer.sources}


@dataclass
class ScoredAnswer:
    question: Question
    answer: Answer
    declined: bool
    cited_relevant: bool
    proxy: list[float | None]  # one per fact
    proxy_beyond_question: list[float | None]  # the same without the terms the question names
    verdicts: list[str] | None = None  # one per fact, when a judge ran and succeeded
    judge_error: str = ""

    @property
    def model_cited(self) -> bool:
        """The model itself put [n] markers in its text (else the sources listed are the top
        retrieved ones, which says nothing about the model)."""
        return self.answer.citations != "matched" and has_citations(self.answer.text)

    @property
    def proxy_mean(self) -> float | None:
        return _mean(self.proxy)

    @property
    def proxy_beyond_question_mean(self) -> float | None:
        return _mean(self.proxy_beyond_question)


def _mean(scores: Sequence[float | None]) -> float | None:
    scored = [s for s in scores if s is not None]
    return statistics.fmean(scored) if scored else None


def _zero(score: float | None) -> float | None:
    return None if score is None else 0.0


async def score_answer(q: Question, answer: Answer, judge: FactJudge | None) -> ScoredAnswer:
    declined = is_decline(answer)
    facts = list(q.answer_facts)
    given = set(fact_terms(q.question))
    proxy = [fact_proxy(answer.text, f) for f in facts]
    beyond = [fact_proxy(answer.text, f, given) for f in facts]
    if declined:  # a decline states none of the facts
        proxy, beyond = [_zero(s) for s in proxy], [_zero(s) for s in beyond]
    cited = bool(cited_pages(answer) & set(q.relevant_pages))
    row = ScoredAnswer(q, answer, declined, cited, proxy, beyond)
    if judge is not None and facts:
        if declined:
            row.verdicts = ["missing"] * len(facts)
        else:
            try:
                row.verdicts = await judge.judge(q.question, answer.text, facts)
            except JudgeError as exc:
                row.judge_error = str(exc)
    return row


def _share(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def summarize_answers(rows: Sequence[ScoredAnswer], model: str, judge_model: str = "") -> dict[str, Any]:
    """The answer keys of `eval --answers --json` (they sit beside the retrieval keys)."""
    in_scope = [r for r in rows if r.question.kind != OUT_OF_SCOPE]
    out_scope = [r for r in rows if r.question.kind == OUT_OF_SCOPE]
    answered = [r for r in in_scope if not r.declined]
    proxy_all = [m for r in in_scope if (m := r.proxy_mean) is not None]
    proxy_answered = [m for r in answered if (m := r.proxy_mean) is not None]
    beyond = [m for r in in_scope if (m := r.proxy_beyond_question_mean) is not None]
    # time per answer the LLM wrote (its own declines and withdrawn answers included, the gate's not)
    llm_declines = {"model", "grounding"}
    wrote = [r for r in rows if r.answer.outcome == "answered" or r.answer.declined_by in llm_declines]
    seconds = [r.answer.seconds for r in wrote]
    summary: dict[str, Any] = {
        "model": model,
        "answers_n": len(in_scope),
        "fact_proxy": round(statistics.fmean(proxy_all), 3) if proxy_all else 0.0,
        "fact_proxy_answered": round(statistics.fmean(proxy_answered), 3) if proxy_answered else 0.0,
        "facts_scored_by_proxy": sum(s is not None for r in in_scope for s in r.proxy),
        "fact_proxy_beyond_question": round(statistics.fmean(beyond), 3) if beyond else 0.0,
        "cited_relevant": _share([r.cited_relevant for r in answered]),
        "model_cited": _share([r.model_cited for r in answered]),
        "answer_decline_in_scope": _share([r.declined for r in in_scope]),
        "answer_decline_out_of_scope": _share([r.declined for r in out_scope]),
        "answer_decline_by_model_in_scope": _share([r.answer.declined_by == "model" for r in in_scope]),
        "answer_decline_by_model_out_of_scope": _share([r.answer.declined_by == "model" for r in out_scope]),
        "answer_decline_by_grounding_in_scope": _share(
            [r.answer.declined_by == "grounding" for r in in_scope]
        ),
        "answer_decline_by_grounding_out_of_scope": _share(
            [r.answer.declined_by == "grounding" for r in out_scope]
        ),
        "answer_errors": sum(r.answer.outcome in {"error", "busy"} for r in rows),
        "answer_seconds_p50": _percentile(seconds, 0.5),
        "answer_seconds_p95": _percentile(seconds, 0.95),
    }
    if judge_model:
        verdicts = [v for r in in_scope if r.verdicts for v in r.verdicts]
        summary |= {
            "judge_model": judge_model,
            "judge_facts": len(verdicts),
            **{f"judge_{name}": _share([v == name for v in verdicts]) for name in VERDICTS},
            "judge_errors": sum(bool(r.judge_error) for r in in_scope),
        }
    return summary


def answer_details(row: ScoredAnswer) -> dict[str, Any]:
    """What `docsbot eval --answers --details` adds to a question's row under `answer`: the text,
    who declined it, who cited, the pages cited, its fact scores and its time."""
    answer = row.answer

    def rounded(score: float | None) -> float | None:
        return None if score is None else round(score, 3)

    return {
        "text": answer.text,
        "outcome": answer.outcome,
        "declined": row.declined,
        "declined_by": answer.declined_by,
        "error": answer.error,
        "citations": answer.citations or None,
        "cited_pages": sorted(cited_pages(answer)),
        "cited_relevant": row.cited_relevant,
        "fact_proxy": [rounded(score) for score in row.proxy],
        "fact_proxy_beyond_question": [rounded(score) for score in row.proxy_beyond_question],
        "judge": row.verdicts,
        "judge_error": row.judge_error or None,
        "seconds": round(answer.seconds, 2),
    }


async def evaluate_answers(
    questions: Sequence[Question],
    ask: Callable[[str], Awaitable[Answer]],
    judge: FactJudge | None = None,
    on_row: Callable[[ScoredAnswer], None] | None = None,
) -> list[ScoredAnswer]:
    """Ask every question in turn (one at a time: the times are per answer) and score it."""
    rows = []
    for q in questions:
        row = await score_answer(q, await ask(q.question), judge)
        if on_row is not None:
            on_row(row)
        rows.append(row)
    return rows


def format_answer_report(summary: dict[str, Any]) -> str:
    """The answer part of the terminal report (the proxy and the judge on separate lines)."""
    lines = [
        f"answers by {summary['model']}: {summary['answers_n']} in-scope questions",
        f"fact proxy {summary['fact_proxy']:.3f} (answered only {summary['fact_proxy_answered']:.3f}; "
        f"beyond the question's own terms {summary['fact_proxy_beyond_question']:.3f}; "
        f"{summary['facts_scored_by_proxy']} facts with numbers/identifiers)",
        f"sources include a relevant page {summary['cited_relevant']:.3f} "
        f"(the model cited [n] itself in {summary['model_cited']:.3f})   declined: "
        f"in scope {summary['answer_decline_in_scope']:.3f}, "
        f"out of scope {summary['answer_decline_out_of_scope']:.3f}",
        f"answer time p50 {summary['answer_seconds_p50']:.2f} s   p95 {summary['answer_seconds_p95']:.2f} s"
        f"   errors {summary['answer_errors']}",
    ]
    if "judge_model" in summary:
        lines.append(
            f"judge {summary['judge_model']}: supported {summary['judge_supported']:.3f}   "
            f"contradicted {summary['judge_contradicted']:.3f}   missing {summary['judge_missing']:.3f}   "
            f"({summary['judge_facts']} facts; judge failed on {summary['judge_errors']} questions)"
        )
    return "\n".join(lines)
