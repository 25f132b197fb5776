"""A second opinion when the retrieval gate is unsure: the LLM reads the best passages and says
whether they describe what the question asks about.

The gate (`core.gate`) sees retrieval signals only. A question about a feature Milvus lacks, asked
in words the docs use ("a trigger on insert", "a unique constraint", "RETURNING * on delete"), or
about another product's own settings ("pinecone: delete a namespace"), finds passages that share
its words, and the gate cannot tell those from a covered question without declining covered
ones too. An LLM that reads the passages can.

Only questions the gate lets through with a probability below `SCOPE_CHECK_BELOW` are checked,
and questions whether Milvus has something ("does milvus support X?", "is there a X?", "can
milvus X?": `asks_whether_supported`) whatever their probability: most covered questions are far
above the band and never wait for the check, and a small model's "no" is sometimes wrong, but a
feature question the docs don't cover is where an answer invents a "yes" ("Yes, Milvus supports
SQL joins"). On the 65 such questions of the labelled sets that the gate passed with P >= 0.6,
the 1.5B demo model said NO to 5 of 13 out of scope and 1 of 52 in scope.

The check reads the question's own search, before the query expansion
(`RagService.retrieve`), so a declined question is not expanded, and the verdict travels with
the Retrieval to `RagService.judge`. The reply is one word: NO declines the question as the gate would
(`Decision.by == "scope_check"`); YES, any other reply, an LLM failure or a timeout
(`SCOPE_CHECK_TIMEOUT`) keep the gate's decision.

The same request asks for the first token's probabilities (llama.cpp and vLLM send them), and
`Verdict.p_yes` is YES's share of YES and NO. For the LLM `scope_model.json` was fitted with
(`Calibration`, `scripts/fit_scope_check.py`), that probability and the gate's decide together
instead of the word: on the tune questions, one in-scope decline fewer and two more out-of-scope
declines than the word, the other splits unchanged (README, Evaluation).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, cast

from core.errors import LLMError
from core.gate import Decision
from core.generation import ChatLLM, side_reply
from core.models import Hit
from core.prompting import in_message_tags
from core.retrieval import split_firsts

log = logging.getLogger(__name__)

CHECK_PROMPT = "\n".join(
    (
        "You are a strict reviewer for a Milvus documentation assistant. You get excerpts from the "
        "Milvus documentation and a user's message. Decide whether the excerpts describe the Milvus "
        "feature, setting, product or behaviour the message asks about.",
        "Reply YES if they do, even partly, or if the message asks how to do something the excerpts "
        "show how to do.",
        "Reply NO if the message asks about a feature Milvus does not have, about another product's "
        "own settings, or about something unrelated to Milvus, and the excerpts only share some "
        "words with it.",
        "Reply with one word: YES or NO.",
    )
)

#: Passages shown, and characters of each: enough to see what they are about, short enough that
#: a small model on a CPU answers in seconds.
PASSAGES, PASSAGE_CHARS = 3, 350
MESSAGE_CHARS = 1000


#: A question whether Milvus has or does something: "does milvus support ...", "can i run ...",
#: "is there a ...", "any way to ...", "... possible?"; not "how do i ..." or "why does it ...".
_FEATURE_QUESTION = re.compile(
    r"(?<!how )(?<!why )(?<!what )(?<!where )(?<!when )(?<!which )"  # "how do i pick ...": a how-to
    r"\b(?:does|do|can|could|will|is|are)\s+(?:milvus|it|we|i|you)\b.*?\b(?:support|supports|have|has|"
    r"offer|provide|ship|come with|do|run|use|integrate|handle|speak|work with|replicate|push|convert|"
    r"take part|pick|track|enforce|store|let)\b|\bis there\b|\bany way\b|\bpossible\b|\bsupport for\b",
    re.IGNORECASE,
)


def asks_whether_supported(question: str) -> bool:
    """The question asks whether Milvus has a feature or does something (see the module docstring)."""
    return _FEATURE_QUESTION.search(question) is not None


def check_reads(decision: Decision, question: str, below: float) -> bool:
    """The check reads a question the gate lets through with a probability below `below`
    (SCOPE_CHECK_BELOW), or that asks whether Milvus has something (see the module docstring)."""
    return decision.covered and (decision.probability < below or asks_whether_supported(question))


def check_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    excerpts = "\n\n".join(
        f"[{n}] {hit.chunk.title} > {hit.chunk.heading}\n{hit.chunk.text[:PASSAGE_CHARS]}"
        for n, hit in enumerate(pages_first(hits)[:PASSAGES], start=1)
    )
    message = in_message_tags(question[:MESSAGE_CHARS])
    return [
        {"role": "system", "content": CHECK_PROMPT},
        {
            "role": "user",
            "content": f"<excerpts>\n{excerpts}\n</excerpts>\n\n{message}\n\n"
            "Do the excerpts describe what the message asks about? YES or NO.",
        },
    ]


def pages_first(hits: Sequence[Hit]) -> list[Hit]:
    """The best passage of each page, in order, then the pages' other passages: the check reads
    the best passages of its first `PASSAGES` pages, as it did when it was fitted, although an
    answer also reads the first page's second passage (`retrieval.first_page_twice`)."""
    firsts, others = split_firsts(hits)
    return firsts + others


def verdict(reply: str) -> bool | None:
    """True for YES, False for NO, None for anything else."""
    first = reply.strip().strip("*.`'\"").upper()
    if first.startswith("YES"):
        return True
    if first.startswith("NO"):
        return False
    return None


async def passages_cover(llm: ChatLLM, question: str, hits: Sequence[Hit], seconds: float) -> bool | None:
    """The LLM's verdict on whether `hits` describe what `question` asks about, or None when it
    failed, was slow or said neither yes nor no (see the module docstring)."""
    task = "scope check (keeping the gate's decision)"
    messages = check_messages(question, hits)
    # one word (side_reply asks at temperature 0: a verdict, not a sample)
    if (reply := await side_reply(llm, messages, seconds, task, max_tokens=3)) is None:
        return None
    result = verdict(reply)
    log.info("scope check: %r for %r", reply.strip()[:40], question[:200])
    return result


class OddsLLM(ChatLLM, Protocol):
    """An LLM client that reports its first token's probabilities (`OpenAIChatLLM`)."""

    async def reply_with_odds(
        self, messages: list[dict[str, str]], *, max_tokens: int, top: int = 10
    ) -> tuple[str, dict[str, float]]: ...


@dataclass(frozen=True)
class Verdict:
    """The scope check's answer: `covered` True/False for YES/NO (None: no usable reply), and
    `p_yes`, the LLM's probability of YES against NO when its server reports first-token
    probabilities (None otherwise)."""

    covered: bool | None
    p_yes: float | None = None


async def ask(llm: ChatLLM, question: str, hits: Sequence[Hit], seconds: float) -> Verdict:
    """The scope check, one request: its one-word verdict, and P(YES) from the first token's
    probabilities where the server reports them (vLLM and llama.cpp do)."""
    if not hasattr(llm, "reply_with_odds"):
        return Verdict(await passages_cover(llm, question, hits, seconds))
    try:
        async with asyncio.timeout(seconds):
            messages = check_messages(question, hits)
            reply, odds = await cast(OddsLLM, llm).reply_with_odds(messages, max_tokens=3)
    except (LLMError, TimeoutError) as exc:
        failure = str(exc) or f"no reply within {seconds:g} s"
        log.warning("scope check (keeping the gate's decision) failed: %s", failure)
        return Verdict(None)
    yes, no = odds.get("YES", 0.0), odds.get("NO", 0.0)
    # below this much probability on YES and NO together, the model meant to say something else
    p_yes = round(yes / (yes + no), 4) if yes + no >= MIN_YES_NO_MASS else None
    log.info("scope check: %r (P(YES)=%s) for %r", reply.strip()[:40], p_yes, question[:200])
    return Verdict(verdict(reply), p_yes)


MIN_YES_NO_MASS = 0.5
CALIBRATION_FILE = "scope_model.json"


def logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """How the gate's probability and the LLM's P(YES) combine into one decision, fitted for one
    LLM (`llm_model`) by `scripts/fit_scope_check.py`: a logistic regression over the gate's logit,
    the check's logit and whether the question asks whether Milvus has something; a question is
    declined below `threshold`. Another model's P(YES) sits elsewhere: for it, the one-word
    verdict decides (`Verdict.covered`)."""

    llm_model: str
    gate: float
    yes: float
    feature: float
    intercept: float
    threshold: float

    @classmethod
    def load_default(cls) -> Calibration | None:
        """The calibration shipped in `core/scope_model.json` (None when there is none)."""
        path = resources.files("core").joinpath(CALIBRATION_FILE)
        return cls.load(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> Calibration | None:
        if not data:
            return None
        c = data["coefficients"]
        return cls(data["llm_model"], c["gate"], c["yes"], c["feature"], data["intercept"], data["threshold"])

    def applies_to(self, llm_model: str) -> bool:
        return llm_model == self.llm_model

    def probability(self, gate_probability: float, p_yes: float, feature_question: bool) -> float:
        z = (
            self.intercept
            + self.gate * logit(gate_probability)
            + self.yes * logit(p_yes)
            + self.feature * float(feature_question)
        )
        return 1.0 / (1.0 + math.exp(-z))
