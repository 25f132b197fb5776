"""The retrieval gate: one logistic model over the signals, every decision with its reason."""

import json
from importlib import resources

import pytest

from core.gate import FEATURES, Gate, GateModel
from core.models import Chunk, Evidence, Hit, Retrieval
from core.service import RagService

MODEL = GateModel(
    coefficients={
        "cosine": 10.0,
        "support": 4.0,
        "agreement": 2.0,
        "unknown": -6.0,
        "margin": 0.0,
        "overlap": 0.0,
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
