"""scripts/fit_scope_check.py: the threshold it picks for the gate and the scope check together."""

from types import ModuleType
from typing import Any

import pytest

from core.scope_check import Calibration

from .scripts_module import load_script


@pytest.fixture(scope="module")
def fit_scope_check() -> ModuleType:
    return load_script("fit_scope_check")


def _row(in_scope: bool, p_yes: float | None, gate_covered: bool = True) -> dict[str, Any]:
    gate = {"gate_covered": gate_covered, "gate_probability": 0.7, "feature": False}
    return {"in_scope": in_scope, "p_yes": p_yes, **gate}


def test_the_threshold_declines_no_more_in_scope_questions_than_allowed(fit_scope_check: ModuleType) -> None:
    # the combined probability is P(YES) itself
    fitted = Calibration("m", gate=0.0, yes=1.0, feature=0.0, intercept=0.0, threshold=0.0)
    in_scope = [_row(True, p) for p in (0.35, 0.6, 0.7, 0.8, 0.9)] + [_row(True, None)] * 4
    out_of_scope = [_row(False, p) for p in (0.1, 0.2, 0.3, 0.5)] + [_row(False, None, gate_covered=False)]
    rows = in_scope + out_of_scope
    strict = fit_scope_check.calibrate(fitted, rows, 0.0)
    assert 0.3 < strict.threshold <= 0.35  # below the lowest in-scope question
    assert fit_scope_check.declines(rows, strict) == (0.0, pytest.approx(4 / 5))
    loose = fit_scope_check.calibrate(fitted, rows, 0.12)  # one of nine in-scope questions may go
    assert 0.35 < loose.threshold <= 0.6
    assert fit_scope_check.declines(rows, loose) == (pytest.approx(1 / 9), 1.0)
