"""`docsbot ask --json` against a trickling LLM with LLM_TIMEOUT=3, vs the same question answered
by a fast LLM (baseline: process start, model load, retrieval).

    python benchmarks/bench_ask_deadline.py [--timeout 3] [--token-delay 0.5] [--tokens 100]

Builds a small index of the test fixture pages in a temporary folder, then runs the real CLI
three times against the fake OpenAI-compatible server: fast, trickling (one token every
--token-delay s: the whole stream would take tokens x delay), and hanging. Before LLM_TIMEOUT
became a deadline for the whole answer, the trickle ran to its end (the issue measured >150 s
with LLM_TIMEOUT=15). Prints one JSON object; `cut_off_overhead_s` (trickle minus fast) should
be about --timeout (timed from the request reaching the LLM to the process exit, so
process start-up and model loading on a busy machine don't blur it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT

from tests.fakes.llm_server import FakeLLM, ThreadedFakeLLM

FIXTURE_DOCS = ROOT / "tests" / "fixtures" / "docs"
QUESTION = "what does M control in an HNSW index?"


def _env(root: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MILVUS_")},
        "PYTHONPATH": str(ROOT),
        "MILVUS_URI": str(root / "milvus.db"),
        "DATA_DIR": str(root / "data"),
        "DOCS_SOURCE": str(FIXTURE_DOCS),
        "COLLECTION": "bench_docs",
        "LLM_MODEL": "fake-model",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def _ask(root: Path, llm: FakeLLM, timeout: float) -> dict[str, Any]:
    """Run the CLI; time the whole run and, robust to start-up noise on a busy machine, the
    part from the request reaching the LLM to the process exiting."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "ask", "--json", QUESTION],
        cwd=root,
        env=_env(root, LLM_BASE_URL=llm.base_url, LLM_TIMEOUT=str(timeout)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    asked = None
    while process.poll() is None:
        if asked is None and llm.requests:
            asked = time.monotonic()
        time.sleep(0.02)
    ended = time.monotonic()
    data = json.loads(process.communicate()[0])
    return {
        "seconds": round(ended - started, 2),
        "llm_request_to_exit_s": round(ended - asked, 2) if asked else None,
        "exit": process.returncode,
        "outcome": data["outcome"],
        "error": data["error"],
        "answer_chars": len(data["answer"]),
        "sources": len(data["sources"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--token-delay", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    words = "HNSW's M sets the maximum number of edges per node [1]" + " and more" * args.tokens
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "bot", "index"], cwd=root, env=_env(root), check=True, stdout=sys.stderr
        )
        with ThreadedFakeLLM(answer=words) as llm:
            fast = _ask(root, llm, args.timeout)
        with ThreadedFakeLLM(answer=words, token_delay=args.token_delay) as llm:
            trickle = _ask(root, llm, args.timeout)
        with ThreadedFakeLLM(hang=True) as llm:
            hang = _ask(root, llm, args.timeout)
    print(
        json.dumps(
            {
                "llm_timeout_s": args.timeout,
                "fast": fast,
                "trickle": trickle,
                "hang": hang,
                "whole_trickle_would_take_s": round(args.tokens * 2 * args.token_delay, 1),
                "cut_off_overhead_s": round(
                    trickle["llm_request_to_exit_s"] - fast["llm_request_to_exit_s"], 2
                ),
                "hang_overhead_s": round(hang["llm_request_to_exit_s"] - fast["llm_request_to_exit_s"], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
