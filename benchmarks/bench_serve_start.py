"""Time from `docsbot serve` start to the first answered chat request, with the LLM up (baseline)
and with the LLM down (before this change the adapters only started after a 300 s wait for it).

    python benchmarks/bench_serve_start.py

Builds a small index of the test fixture pages in a temporary folder, then starts `docsbot
serve` twice as a real process (with the HTTP ask adapter of tests/fakes/ask_adapter.py on
127.0.0.1): once with the fake OpenAI-compatible LLM running, once with nothing listening at
LLM_BASE_URL. For each: seconds to /healthz, to the first answered /ask, and that answer's
outcome. Prints one JSON object; `down_vs_up` near 1 means a dead LLM no longer delays start-up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT

from tests.fakes.llm_server import ThreadedFakeLLM

FIXTURE_DOCS = ROOT / "tests" / "fixtures" / "docs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(root: Path, llm_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "SLACK_", "DISCORD_"))},
        "PYTHONPATH": str(ROOT),
        "MILVUS_URI": str(root / "milvus.db"),
        "DATA_DIR": str(root / "data"),
        "RECORDS_PATH": str(root / "records.sqlite3"),
        "DOCS_SOURCE": str(FIXTURE_DOCS),
        "COLLECTION": "bench_docs",
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": "fake-model",
        "LLM_MAX_RETRIES": "0",
        "REINDEX_CRON": "",
        "LOG_LEVEL": "WARNING",
    }


def _get(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _until(
    process: subprocess.Popen[bytes], url: str, started: float, body: dict[str, Any] | None = None
) -> tuple[float, Any]:
    while time.monotonic() - started < 600:
        if process.poll() is not None:
            raise RuntimeError(f"docsbot serve exited with {process.returncode} (its log is on stderr)")
        try:
            status, answer = _get(url, body)
            if status in (200, 503):
                return time.monotonic() - started, answer
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def _serve_once(root: Path, llm_url: str) -> dict[str, Any]:
    ops, ask = _free_port(), _free_port()
    env = _env(root, llm_url) | {"OPS_PORT": str(ops), "ASK_PORT": str(ask)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ask_adapter"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    try:
        healthz, _ = _until(process, f"http://127.0.0.1:{ops}/healthz", started)
        question = {"user": "U1", "question": "what does M control in an HNSW index?"}
        first, answer = _until(process, f"http://127.0.0.1:{ask}/ask", started, question)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "healthz_s": round(healthz, 2),
        "first_answer_s": round(first, 2),
        "outcome": answer["outcome"],
        "text": answer["text"][:100],
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dead_llm = f"http://127.0.0.1:{_free_port()}/v1"
        index = [sys.executable, "-m", "bot", "index"]
        subprocess.run(index, cwd=root, env=_env(root, dead_llm), check=True, stdout=sys.stderr)
        with ThreadedFakeLLM() as llm:
            up = _serve_once(root, llm.base_url)
        down = _serve_once(root, dead_llm)
    print(
        json.dumps(
            {
                "llm_up": up,
                "llm_down": down,
                "down_vs_up": round(down["first_answer_s"] / up["first_answer_s"], 2),
                "before_this_change_llm_down_s": "300+ (adapters started after DEPENDENCY_WAIT)",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
