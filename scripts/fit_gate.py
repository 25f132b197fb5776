"""Refit the retrieval gate (`core/gate_model.json`) on labelled questions.

    python scripts/fit_gate.py \\
        --fit eval/questions.jsonl:tune --fit ../shared/eval/dev_questions.jsonl \\
        --calibrate eval/questions.jsonl:heldout [--max-in-scope-declines 0.02] [--out core/gate_model.json]

Each question file is JSONL in the format of `docsbot eval` (`FILE:SPLIT` keeps only the rows
whose `split` is SPLIT); out-of-scope questions (`kind: out_of_scope`) are the negatives. It
searches every question on the index the settings point at (MILVUS_URI: index the whole docs
first), fits a logistic regression on the gate's signals (`core.gate.FEATURES`) of the `--fit`
questions, and then picks the threshold on the `--calibrate` questions: the highest one that
declines at most `--max-in-scope-declines` of the in-scope questions there. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from core.config import load_settings
from core.evaluation import OUT_OF_SCOPE, Question, load_questions
from core.gate import FEATURES, MODEL_FILE
from core.models import Evidence
from core.service import open_service

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "core" / MODEL_FILE


def load_spec(spec: str) -> list[Question]:
    """`FILE` or `FILE:SPLIT`."""
    path, _, split = spec.partition(":")
    questions = load_questions(path)
    return [q for q in questions if not split or q.split == split]


def fit(signals: np.ndarray, covered: np.ndarray) -> tuple[dict[str, float], float]:
    """Logistic regression of "the docs cover it" on the signals: coefficients and intercept."""
    model = LogisticRegression(C=10.0, max_iter=1000).fit(signals, covered)
    return dict(zip(FEATURES, (float(c) for c in model.coef_[0]), strict=True)), float(model.intercept_[0])


def probabilities(signals: np.ndarray, coefficients: dict[str, float], intercept: float) -> np.ndarray:
    z = intercept + signals @ np.array([coefficients[f] for f in FEATURES])
    p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return p


def choose_threshold(p: np.ndarray, covered: np.ndarray, max_in_scope_declines: float) -> float:
    """The highest threshold (decline when p < threshold) that declines at most the given share
    of the in-scope questions: halfway between the last allowed decline and the next one."""
    in_scope = np.sort(p[covered == 1])
    allowed = math.floor(max_in_scope_declines * len(in_scope))
    if allowed >= len(in_scope):
        return 1.0
    upper = float(in_scope[allowed])
    lower = float(in_scope[allowed - 1]) if allowed > 0 else 0.0
    return (lower + upper) / 2


def rates(p: np.ndarray, covered: np.ndarray, threshold: float) -> dict[str, Any]:
    declined = p < threshold
    return {
        "n_in_scope": int(covered.sum()),
        "n_out_of_scope": int((covered == 0).sum()),
        "decline_in_scope": round(float(declined[covered == 1].mean()), 3) if covered.any() else 0.0,
        "decline_out_of_scope": round(float(declined[covered == 0].mean()), 3)
        if (covered == 0).any()
        else 0.0,
    }


def model_json(
    fit_signals: np.ndarray,
    fit_covered: np.ndarray,
    cal_signals: np.ndarray,
    cal_covered: np.ndarray,
    max_in_scope_declines: float,
) -> dict[str, Any]:
    coefficients, intercept = fit(fit_signals, fit_covered)
    cal_p = probabilities(cal_signals, coefficients, intercept)
    threshold = choose_threshold(cal_p, cal_covered, max_in_scope_declines)
    fit_p = probabilities(fit_signals, coefficients, intercept)
    reference = fit_signals[fit_covered == 1].mean(axis=0)
    return {
        "features": list(FEATURES),
        "coefficients": {f: round(v, 4) for f, v in coefficients.items()},
        "intercept": round(intercept, 4),
        "threshold": round(threshold, 4),
        "reference": {f: round(float(v), 4) for f, v in zip(FEATURES, reference, strict=True)},
        "max_in_scope_declines": max_in_scope_declines,
        "fit": rates(fit_p, fit_covered, threshold),
        "calibration": rates(cal_p, cal_covered, threshold),
    }


async def collect(questions: list[Question]) -> tuple[np.ndarray, np.ndarray]:
    """The gate's signals for each question (the MIN_CONFIDENCE floor is applied by the gate
    itself, before the model), and whether it is in scope."""
    settings = load_settings()
    rows, labels = [], []
    async with open_service(settings, generation=False) as service:
        for q in questions:
            retrieval = await service.search(q.question, settings.top_k)
            evidence = retrieval.evidence or Evidence(0.0, 0.0, 0.0, 0.0)
            rows.append([getattr(evidence, f) for f in FEATURES])
            labels.append(0 if q.kind == OUT_OF_SCOPE else 1)
    return np.array(rows, dtype=float), np.array(labels, dtype=int)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    fit_questions = [q for spec in args.fit for q in load_spec(spec)]
    cal_questions = [q for spec in args.calibrate for q in load_spec(spec)]
    fit_signals, fit_covered = await collect(fit_questions)
    cal_signals, cal_covered = await collect(cal_questions)
    result = model_json(fit_signals, fit_covered, cal_signals, cal_covered, args.max_in_scope_declines)
    result["fitted_on"] = args.fit
    result["calibrated_on"] = args.calibrate
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="append", required=True, metavar="FILE[:SPLIT]")
    parser.add_argument("--calibrate", action="append", required=True, metavar="FILE[:SPLIT]")
    parser.add_argument("--max-in-scope-declines", type=float, default=0.02)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    arguments = parser.parse_args()
    fitted = asyncio.run(main(arguments))
    Path(arguments.out).write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(fitted))
