"""scripts/fit_gate.py: the two-stage fit (topic model, then the gate) on synthetic questions."""

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from core.gate import FEATURES, GateModel

from .scripts_module import load_script


@pytest.fixture(scope="module")
def fit_gate() -> ModuleType:
    return load_script("fit_gate")


def _questions(fit_gate: ModuleType, n: int, seed: int) -> Any:
    """In-scope questions have a higher cosine and embeddings along the first axis."""
    rng = np.random.default_rng(seed)
    covered = np.array([1, 0] * (n // 2))
    signals = rng.uniform(0, 1, (n, len(FEATURES)))
    signals[:, FEATURES.index("cosine")] = 0.4 + 0.3 * covered + rng.normal(0, 0.1, n)
    vectors = rng.normal(0, 0.3, (n, 8))
    vectors[:, 0] += np.where(covered == 1, 1.0, -1.0)
    return fit_gate.Labelled(signals, vectors, covered)


def test_the_topic_model_is_fitted_on_embeddings_and_used_out_of_fold(fit_gate: ModuleType) -> None:
    fit_set, cal_set = _questions(fit_gate, 120, 0), _questions(fit_gate, 80, 1)
    data = fit_gate.model_json(fit_set, cal_set, 0.02, "test-model")
    model = GateModel.load(data)
    assert model.topic is not None and model.topic.embedding_model == "test-model"
    assert len(model.topic.weights) == 8 and model.topic.weights[0] > 0
    assert model.coefficients["topic"] > 0 and model.coefficients["cosine"] > 0
    assert data["calibration"]["decline_in_scope"] <= 0.02
    assert data["calibration"]["decline_out_of_scope"] > 0.5
    assert data["cross_validated"]["folds"] == 5 and data["cross_validated"]["decline_out_of_scope"] > 0.5
    oof = fit_gate.out_of_fold_topic(fit_set.vectors, fit_set.covered)
    assert oof[fit_set.covered == 1].mean() > 0.7 > 0.3 > oof[fit_set.covered == 0].mean()
