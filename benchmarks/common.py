"""Shared by the benchmark scripts: import path, quiet start-up, question files, percentiles.

Import it first: `from common import ROOT, ...` (the scripts run as `python benchmarks/X.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.quiet import quiet_third_party

quiet_third_party()

DEV_QUESTIONS = ROOT.parent / "shared" / "eval" / "dev_questions.jsonl"
FIXTURE_QUESTIONS = ROOT / "tests" / "fixtures" / "questions.jsonl"
DEFAULT_QUESTIONS = DEV_QUESTIONS if DEV_QUESTIONS.exists() else FIXTURE_QUESTIONS


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of durations in seconds, in milliseconds."""
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
