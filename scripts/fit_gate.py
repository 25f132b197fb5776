"""Refit the retrieval gate (`core/gate_model.json`) on labelled questions.

    python scripts/fit_gate.py \\
        --fit eval/questions.jsonl:tune --fit ../shared/eval/dev_questions.jsonl \\
        --calibrate eval/questions.jsonl:heldout [--max-in-scope-declines 0.02] [--out core/gate_model.json]

Each question file is JSONL in the format of `docsbot eval` (`FILE:SPLIT` keeps only the rows
whose `split` is SPLIT); out-of-scope questions (`kind: out_of_scope`) are the negatives. It
searches every question on the index the settings point at (MILVUS_URI: index the whole docs
first) and fits in two stages on the `--fit` questions:

1. the topic model (`core.gate.TopicModel`): a logistic regression over the questions' embeddings
   (EMBEDDING_MODEL). The fit questions' own topic signal is taken out of fold (5 folds), so the
   second stage sees it as it will be on new questions;
2. the gate: a logistic regression over all the signals (`core.gate.FEATURES`).

It then picks the threshold on the `--calibrate` questions: the highest one that declines at most
`--max-in-scope-declines` of the in-scope questions there. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from core.config import load_settings
from core.evaluation import OUT_OF_SCOPE, Question, load_questions
from core.gate import FEATURES, MODEL_FILE, GateModel, TopicModel
from core.models import Evidence
from core.service import open_service

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "core" / MODEL_FILE


def load_spec(spec: str) -> list[Question]:
    """`FILE` or `FILE:SPLIT`."""
    path, _, split = spec.partition(":")
    questions = load_questions(path)
    return [q for q in questions if not split or q.split == split]


#: Regularisation of the topic model: strong, 384 weights from a few hundred questions.
TOPIC_C = 0.3
TOPIC = FEATURES.index("topic")


def _topic_regression(vectors: np.ndarray, covered: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=TOPIC_C, class_weight="balanced", max_iter=5000).fit(vectors, covered)


def fit_topic(vectors: np.ndarray, covered: np.ndarray, embedding_model: str) -> TopicModel:
    model = _topic_regression(vectors, covered)
    weights = tuple(float(w) for w in model.coef_[0])
    return TopicModel(embedding_model, weights, float(model.intercept_[0]))


def out_of_fold_topic(vectors: np.ndarray, covered: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each question's topic signal from a model fitted without it."""
    topic = np.zeros(len(covered))
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(vectors, covered)
    for train, test in splits:
        topic[test] = _topic_regression(vectors[train], covered[train]).predict_proba(vectors[test])[:, 1]
    return topic


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


@dataclass(frozen=True)
class Fitted:
    topic: TopicModel
    coefficients: dict[str, float]
    intercept: float
    fit_signals: np.ndarray  # with the out-of-fold topic column the gate was fitted on

    def probabilities(self, questions: Labelled) -> np.ndarray:
        signals = questions.signals.copy()
        signals[:, TOPIC] = [self.topic.score(v) for v in questions.vectors]
        return probabilities(signals, self.coefficients, self.intercept)


def train(fit_set: Labelled, embedding_model: str) -> Fitted:
    """Both stages on the fit questions."""
    topic = fit_topic(fit_set.vectors, fit_set.covered, embedding_model)
    fit_signals = fit_set.signals.copy()
    fit_signals[:, TOPIC] = out_of_fold_topic(fit_set.vectors, fit_set.covered)
    coefficients, intercept = fit(fit_signals, fit_set.covered)
    return Fitted(topic, coefficients, intercept, fit_signals)


def cross_validated(
    questions: Labelled, max_in_scope_declines: float, folds: int = 5, seed: int = 1
) -> dict[str, Any]:
    """Decline rates with every question judged by a gate fitted without it (both stages, and
    the threshold chosen on the training folds): what to expect on new questions."""
    declined = np.zeros(len(questions.covered), dtype=bool)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train_rows, test_rows in splitter.split(questions.vectors, questions.covered):
        part = questions.rows(train_rows)
        fitted = train(part, "")
        fit_p = probabilities(fitted.fit_signals, fitted.coefficients, fitted.intercept)
        threshold = choose_threshold(fit_p, part.covered, max_in_scope_declines)
        declined[test_rows] = fitted.probabilities(questions.rows(test_rows)) < threshold
    covered = questions.covered
    return {
        "folds": folds,
        "decline_in_scope": round(float(declined[covered == 1].mean()), 3),
        "decline_out_of_scope": round(float(declined[covered == 0].mean()), 3),
    }


def model_json(
    fit_set: Labelled,
    cal_set: Labelled,
    max_in_scope_declines: float,
    embedding_model: str,
) -> dict[str, Any]:
    fitted = train(fit_set, embedding_model)
    cal_p = fitted.probabilities(cal_set)
    threshold = choose_threshold(cal_p, cal_set.covered, max_in_scope_declines)
    fit_p = probabilities(fitted.fit_signals, fitted.coefficients, fitted.intercept)
    reference = fitted.fit_signals[fit_set.covered == 1].mean(axis=0)
    both = Labelled(
        np.vstack([fit_set.signals, cal_set.signals]),
        np.vstack([fit_set.vectors, cal_set.vectors]),
        np.concatenate([fit_set.covered, cal_set.covered]),
    )
    return {
        "features": list(FEATURES),
        "coefficients": {f: round(v, 4) for f, v in fitted.coefficients.items()},
        "intercept": round(fitted.intercept, 4),
        "threshold": round(threshold, 4),
        "reference": {f: round(float(v), 4) for f, v in zip(FEATURES, reference, strict=True)},
        "max_in_scope_declines": max_in_scope_declines,
        # the service measured the signals on the ranking of the model it runs with
        "sparse_weight": GateModel.load().sparse_weight,
        "fit": rates(fit_p, fit_set.covered, threshold),
        "calibration": rates(cal_p, cal_set.covered, threshold),
        "cross_validated": cross_validated(both, max_in_scope_declines),
        "topic": fitted.topic.as_dict(),
    }


@dataclass(frozen=True)
class Labelled:
    """The questions' signals (the topic column still empty), query embeddings, and labels."""

    signals: np.ndarray
    vectors: np.ndarray
    covered: np.ndarray  # 1: in scope

    def rows(self, index: np.ndarray) -> Labelled:
        return Labelled(self.signals[index], self.vectors[index], self.covered[index])


async def collect(questions: list[Question]) -> Labelled:
    """Search each question (the MIN_CONFIDENCE floor is applied by the gate itself, before the
    model) and keep its signals, its embedding, and whether it is in scope."""
    settings = load_settings()
    rows, vectors, labels = [], [], []
    async with open_service(settings, generation=False) as service:
        for q in questions:
            retrieval = await service.search(q.question, settings.top_k)
            evidence = retrieval.evidence or Evidence(0.0, 0.0, 0.0, 0.0)
            rows.append([getattr(evidence, f) for f in FEATURES])
            vectors.append(retrieval.query_vector or service.embedder.embed_query(q.question))
            labels.append(0 if q.kind == OUT_OF_SCOPE else 1)
    return Labelled(np.array(rows, dtype=float), np.array(vectors, dtype=float), np.array(labels, dtype=int))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    fit_questions = [q for spec in args.fit for q in load_spec(spec)]
    cal_questions = [q for spec in args.calibrate for q in load_spec(spec)]
    fit_set = await collect(fit_questions)
    cal_set = await collect(cal_questions)
    embedding_model = load_settings().embedding_model
    result = model_json(fit_set, cal_set, args.max_in_scope_declines, embedding_model)
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
