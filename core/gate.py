"""The retrieval gate: does the indexed documentation cover this question?

One calibrated logistic regression over the retrieval signals (`Evidence`) gives the probability
that the docs cover the question; below the threshold the bot declines politely instead of asking
the LLM. The coefficients and the threshold are fitted by `scripts/fit_gate.py` on labelled
questions and shipped with the package in `core/gate_model.json`.

The signals:

- `cosine`: the best dense match (low for gibberish and unrelated topics);
- `support`: the IDF-weighted share of the question's distinctive docs words found in the best of
  the top passages (low for features the docs never describe in words they do use: "joins");
- `agreement`: the share of the dense top-5 pages that BM25 also ranks in its top 5;
- `unknown`: the rarity of the rarest *unknown name* (see `core.vocabulary`) the question asks
  about: 0 when none;
- `unknown_context`: the same for unknown names of the asker's setup (after the first sentence,
  or after "our", "using", "behind", ...: "our fastapi app"), which say much less;
- `margin`: how far the best cosine stands out of the dense top 10 (a focused match);
- `overlap`: the share of the top-5 passages that both the dense and the BM25 search found;
- `specific_missing`: the specificity (`Vocabulary.specificity`: rare in the docs and in ordinary
  English) of the question's most specific docs word that none of the top passages contains: the
  docs mention "consul" or "swarm" somewhere, but the passages found are about etcd and Docker;
- `bm25_spread`: the distinct pages among the BM25 top 10 passages, per passage (1: every passage
  from another page, the question's words are scattered over the docs rather than focused);
- `topic`: a logistic regression over the question's own embedding, fitted on the labelled
  questions (`TopicModel`): how much the question reads like the in-scope ones. Features Milvus
  lacks, asked in the docs' own words ("joins", "triggers", "stored procedures"), sit in their own
  region of the embedding space however well their words match. It applies only to the embedding
  model it was fitted with; with another model it stays at its neutral reference value;
- `english`: the share of the question's words that are common English words or contain digits.
  Questions in other languages get low cosines from the English embedding model whether or not
  the docs cover them; this lets the model tell that apart from a question about something else.

Every decision carries its reason (the signals, each one's contribution and the probability), for
the log and for `docsbot eval --details`. Where there is an LLM, questions the gate lets through
with a low probability get a second opinion from it (`core.scope_check`, `RagService.judge`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from core.models import Chunk, Evidence, Hit, Retrieval
from core.vocabulary import QueryTerms, Vocabulary, stem, words

FEATURES = (
    "cosine",
    "support",
    "agreement",
    "unknown",
    "margin",
    "overlap",
    "specific_missing",
    "bm25_spread",
    "unknown_context",
    "topic",
    "english",
)
MODEL_FILE = "gate_model.json"
#: The BM25 fusion weight of the rankings the shipped model was fitted on (a model file without
#: `sparse_weight` was fitted before the weight was recorded, at this value).
FITTED_SPARSE_WEIGHT = 0.3
_TOP = 5  # pages compared for agreement, passages searched for support
_SPREAD = 10  # BM25 passages whose pages are counted for bm25_spread


def measure(
    terms: QueryTerms,
    vocabulary: Vocabulary,
    dense: Sequence[tuple[Chunk, float]],
    sparse: Sequence[Chunk],
    hits: Sequence[Hit],
) -> Evidence:
    """The gate's signals for one search (see the module docstring)."""
    dense_pages = list(dict.fromkeys(chunk.page_id for chunk, _ in dense))[:_TOP]
    sparse_pages = list(dict.fromkeys(chunk.page_id for chunk in sparse))[:_TOP]
    agreement = len(set(dense_pages) & set(sparse_pages)) / _TOP if sparse_pages else 0.0
    cosines = [score for _, score in dense[:10]]
    top = hits[:_TOP]
    return Evidence(
        cosine=max(0.0, min(1.0, dense[0][1])) if dense else 0.0,
        support=_support(terms.key_terms, vocabulary, top),
        agreement=agreement,
        unknown=max((t.rarity for t in terms.unknown if not t.in_context), default=0.0),
        unknown_context=max((t.rarity for t in terms.unknown if t.in_context), default=0.0),
        english=terms.english,
        margin=cosines[0] - sum(cosines) / len(cosines) if cosines else 0.0,
        overlap=sum(h.dense_score is not None and h.sparse_rank is not None for h in top) / _TOP
        if top
        else 0.0,
        specific_missing=_specific_missing(terms.key_terms, vocabulary, top),
        bm25_spread=len({chunk.page_id for chunk in sparse[:_SPREAD]}) / _SPREAD if sparse else 1.0,
    )


def _support(key_terms: Sequence[str], vocabulary: Vocabulary, hits: Sequence[Hit]) -> float:
    weights = {stem(t): vocabulary.idf(t) for t in key_terms}
    total = sum(weights.values())
    if total <= 0:
        return 1.0  # nothing distinctive to look for: no evidence against the question
    best = 0.0
    for hit in hits:
        present = {stem(w) for w in words(hit.chunk.search_text)}
        best = max(best, sum(w for t, w in weights.items() if t in present) / total)
    return best


def _specific_missing(key_terms: Sequence[str], vocabulary: Vocabulary, hits: Sequence[Hit]) -> float:
    present = {stem(w) for hit in hits for w in words(hit.chunk.search_text)}
    missing = (vocabulary.specificity(t) for t in key_terms if stem(t) not in present)
    return max(missing, default=0.0)


@dataclass(frozen=True)
class Decision:
    covered: bool
    probability: float  # that the docs cover the question
    threshold: float
    reason: str  # one line for the log and --details
    signals: dict[str, float]
    # "scope_check" when the LLM's scope check overruled the gate (core.scope_check), "meta_request"
    # for a message about the bot's own instructions (`RagService.decide`)
    by: str = "gate"

    def as_dict(self) -> dict[str, Any]:
        return {
            "covered": self.covered,
            "by": self.by,
            "probability": round(self.probability, 3),
            "threshold": round(self.threshold, 3),
            "reason": self.reason,
            "signals": {k: round(v, 3) for k, v in self.signals.items()},
        }


@dataclass(frozen=True)
class TopicModel:
    """P(in scope | the question's embedding): a logistic regression over the embedding of
    `embedding_model`, fitted by `scripts/fit_gate.py` on the labelled questions."""

    embedding_model: str
    weights: tuple[float, ...]
    intercept: float

    @classmethod
    def load(cls, data: dict[str, Any]) -> TopicModel:
        weights = tuple(float(w) for w in data["weights"])
        return cls(str(data["embedding_model"]), weights, float(data["intercept"]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "embedding_model": self.embedding_model,
            "weights": [round(w, 5) for w in self.weights],
            "intercept": round(self.intercept, 5),
        }

    def applies_to(self, embedding_model: str, vector: Sequence[float]) -> bool:
        return embedding_model == self.embedding_model and len(vector) == len(self.weights)

    def score(self, vector: Sequence[float]) -> float:
        z = self.intercept + sum(w * x for w, x in zip(self.weights, vector, strict=True))
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class GateModel:
    """Logistic regression: P(covered) = sigmoid(intercept + sum(coef * signal))."""

    coefficients: dict[str, float]
    intercept: float
    threshold: float
    reference: dict[str, float]  # typical signals of covered questions, to name the weak one
    topic: TopicModel | None = None
    # the BM25 weight of the fused ranking its signals were measured on (RetrievalConfig)
    sparse_weight: float = FITTED_SPARSE_WEIGHT

    @classmethod
    def load(cls, data: dict[str, Any] | None = None) -> GateModel:
        if data is None:
            data = json.loads(resources.files("core").joinpath(MODEL_FILE).read_text(encoding="utf-8"))
        # a signal the file has no coefficient for (a model fitted before it existed) weighs 0,
        # so scripts/fit_gate.py can still run the service and refit it
        return cls(
            coefficients={f: float(data["coefficients"].get(f, 0.0)) for f in FEATURES},
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            reference={f: float(data["reference"].get(f, 0.0)) for f in FEATURES},
            topic=TopicModel.load(data["topic"]) if data.get("topic") else None,
            sparse_weight=float(data.get("sparse_weight", FITTED_SPARSE_WEIGHT)),
        )

    def probability(self, evidence: Evidence) -> float:
        z = self.intercept + sum(self.coefficients[f] * getattr(evidence, f) for f in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))


class Gate:
    def __init__(
        self,
        model: GateModel,
        *,
        min_confidence: float = 0.0,
        use_unknown_terms: bool = True,
        embedding_model: str = "",
    ) -> None:
        self.model = model
        self.min_confidence = min_confidence
        self.use_unknown_terms = use_unknown_terms
        self.embedding_model = embedding_model

    def topic(self, retrieval: Retrieval) -> float:
        """The topic signal of the question; its neutral reference value when the topic model
        was fitted for another embedding model (or the search kept no query vector)."""
        topic = self.model.topic
        vector = retrieval.query_vector
        if topic is None or not topic.applies_to(self.embedding_model, vector):
            return self.model.reference.get("topic", 0.5)
        return topic.score(vector)

    def decide(self, retrieval: Retrieval) -> Decision:
        evidence = retrieval.evidence
        if not retrieval.hits or evidence is None:
            return Decision(False, 0.0, self.model.threshold, "nothing retrieved", {})
        evidence = dataclasses.replace(evidence, topic=self.topic(retrieval))
        if not self.use_unknown_terms:
            evidence = dataclasses.replace(evidence, unknown=0.0, unknown_context=0.0)
        signals = {f: getattr(evidence, f) for f in FEATURES}
        if evidence.cosine < self.min_confidence:
            reason = f"best cosine {evidence.cosine:.2f} < MIN_CONFIDENCE {self.min_confidence:.2f}"
            return Decision(False, 0.0, self.model.threshold, reason, signals)
        p = self.model.probability(evidence)
        covered = p >= self.model.threshold
        return Decision(
            covered, p, self.model.threshold, self._reason(retrieval, signals, p, covered), signals
        )

    def _reason(self, retrieval: Retrieval, signals: dict[str, float], p: float, covered: bool) -> str:
        model = self.model
        # how far each signal pulls the log-odds below (or above) a typical covered question
        pull = {f: model.coefficients[f] * (signals[f] - model.reference[f]) for f in FEATURES}
        weakest = min(pull, key=lambda f: pull[f])
        parts = ", ".join(f"{f}={signals[f]:.2f}" for f in FEATURES)
        verdict = "covered" if covered else "not covered"
        line = f"{verdict}: P={p:.2f} {'>=' if covered else '<'} {model.threshold:.2f} ({parts})"
        if not covered:
            why = weakest
            if weakest == "unknown" and retrieval.unknown_terms:
                why = "unknown name " + ", ".join(repr(t) for t in retrieval.unknown_terms)
            line += f"; weakest signal: {why}"
        return line
