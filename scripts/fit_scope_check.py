"""Fit how the gate and the LLM's scope check decide together (`core/scope_model.json`).

    python scripts/fit_scope_check.py \\
        --fit eval/questions.jsonl:tune --calibrate eval/questions.jsonl:heldout \\
        [--max-in-scope-declines 0.02] [--cache probes.jsonl] [--out core/scope_model.json]

It needs the LLM the calibration is for (LLM_BASE_URL / LLM_MODEL, or the embedded one that
`docsbot llm serve` starts) and an index of the whole docs (MILVUS_URI). Every question is
searched and decided by the gate, as `docsbot eval` does; each one the gate lets through and the
scope check would read (probability below SCOPE_CHECK_BELOW, or a question whether Milvus has
something) gets the check's prompt, and the LLM's first-token probability of YES against NO is
recorded (`--cache` keeps them, by question id and model, so a refit asks nothing again).

A logistic regression over the gate's logit, the check's logit and the feature-question flag is
fitted on the `--fit` questions the check reads. The threshold is picked on the `--calibrate`
questions: the highest one at which the gate and the check together decline at most
`--max-in-scope-declines` of the in-scope questions there. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from core.config import load_settings
from core.evaluation import OUT_OF_SCOPE, Question, load_questions
from core.generation import OpenAIChatLLM
from core.scope_check import CALIBRATION_FILE, Calibration, ask, asks_whether_supported, check_reads, logit
from core.service import open_service

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "core" / CALIBRATION_FILE


def load_spec(spec: str) -> list[Question]:
    """`FILE` or `FILE:SPLIT`."""
    path, _, split = spec.partition(":")
    return [q for q in load_questions(path) if not split or q.split == split]


async def probe(questions: list[Question], cache: Path | None) -> list[dict[str, Any]]:
    """One row per question: whether it is in scope, the gate's decision and probability, and,
    for the questions the check reads, the LLM's P(YES)."""
    settings = load_settings()
    seen = await asyncio.to_thread(read_cache, cache)
    rows = []
    async with open_service(settings) as service:
        llm = service.llm
        if not isinstance(llm, OpenAIChatLLM):
            raise SystemExit("fit_scope_check: no LLM configured (LLM_BASE_URL / LLM_MODEL)")
        for q in questions:
            if (key := (llm.model, q.question)) in seen:
                rows.append(seen[key] | {"in_scope": q.kind != OUT_OF_SCOPE})
                continue
            retrieval = await service.search(q.question)
            decision = service.decide(retrieval)
            feature = asks_whether_supported(retrieval.query)
            checked = check_reads(decision, retrieval.query, settings.scope_check_below)
            p_yes = None
            if checked:
                p_yes = (await ask(llm, retrieval.query, retrieval.hits, settings.scope_check_timeout)).p_yes
            row = {
                "model": llm.model,
                "question": q.question,
                "gate_covered": decision.covered,
                "gate_probability": decision.probability,
                "feature": feature,
                "checked": checked,
                "p_yes": p_yes,
            }
            seen[key] = row
            rows.append(row | {"in_scope": q.kind != OUT_OF_SCOPE})
            if cache:
                with cache.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
    return rows


def read_cache(cache: Path | None) -> dict[tuple[str, str], dict[str, Any]]:
    """The cached verdicts by (model, question)."""
    if cache is None or not cache.exists():
        return {}
    rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(row["model"], row["question"]): row for row in rows}


def features(row: dict[str, Any]) -> list[float]:
    return [logit(row["gate_probability"]), logit(row["p_yes"]), float(row["feature"])]


def declines(rows: list[dict[str, Any]], calibration: Calibration) -> tuple[float, float]:
    """The in-scope and the out-of-scope decline rates of the gate and the check together."""

    def declined(row: dict[str, Any]) -> bool:
        if not row["gate_covered"]:
            return True
        if row["p_yes"] is None:
            return False
        p = calibration.probability(row["gate_probability"], row["p_yes"], row["feature"])
        return p < calibration.threshold

    in_scope = [declined(r) for r in rows if r["in_scope"]]
    out_of_scope = [declined(r) for r in rows if not r["in_scope"]]
    return float(np.mean(in_scope or [0.0])), float(np.mean(out_of_scope or [0.0]))


def calibrate(fitted: Calibration, rows: list[dict[str, Any]], max_in_scope_declines: float) -> Calibration:
    """The highest threshold at which the gate and the check decline at most that share of the
    in-scope `rows` (thresholds between the rows' own probabilities)."""
    checked = [r for r in rows if r["p_yes"] is not None]
    combined = sorted(fitted.probability(r["gate_probability"], r["p_yes"], r["feature"]) for r in checked)
    best = dataclasses.replace(fitted, threshold=0.0)
    for low, high in zip([0.0, *combined], [*combined, 1.0], strict=True):
        candidate = dataclasses.replace(fitted, threshold=round((low + high) / 2, 4))
        if declines(rows, candidate)[0] <= max_in_scope_declines:
            best = candidate
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="append", required=True, help="FILE or FILE:SPLIT (repeatable)")
    parser.add_argument("--calibrate", action="append", required=True, help="FILE or FILE:SPLIT (repeatable)")
    parser.add_argument("--max-in-scope-declines", type=float, default=0.02)
    parser.add_argument("--cache", type=Path, help="JSONL of the LLM's verdicts, reused and extended")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    fit_questions = [q for spec in args.fit for q in load_spec(spec)]
    check_questions = [q for spec in args.calibrate for q in load_spec(spec)]
    rows = asyncio.run(probe(fit_questions + check_questions, args.cache))
    fit_rows, check_rows = rows[: len(fit_questions)], rows[len(fit_questions) :]
    train = [r for r in fit_rows if r["p_yes"] is not None]
    x = np.array([features(r) for r in train])
    y = np.array([r["in_scope"] for r in train])
    regression = LogisticRegression(max_iter=1000).fit(x, y)
    gate, yes, feature = (round(float(c), 4) for c in regression.coef_[0])
    model = rows[0]["model"]
    fitted = Calibration(model, gate, yes, feature, round(float(regression.intercept_[0]), 4), 0.0)
    calibration = calibrate(fitted, check_rows, args.max_in_scope_declines)
    data = {
        "llm_model": model,
        "coefficients": {"gate": gate, "yes": yes, "feature": feature},
        "intercept": calibration.intercept,
        "threshold": calibration.threshold,
        "max_in_scope_declines": args.max_in_scope_declines,
        "fitted_on": {"fit": args.fit, "calibrate": args.calibrate, "checked": len(train)},
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    report = {"out": str(args.out), **data}
    for name, subset in (("fit", fit_rows), ("calibrate", check_rows)):
        in_scope, out_of_scope = declines(subset, calibration)
        report[f"{name}_decline_in_scope"] = round(in_scope, 3)
        report[f"{name}_decline_out_of_scope"] = round(out_of_scope, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
