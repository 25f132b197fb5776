"""`docsbot serve`: adapter supervision, dependency waits, graceful shutdown, log format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.chat.flow import ChatCore
from bot.chat.texts import SHUTTING_DOWN
from bot.logs import JsonFormatter, secret_values, setup_logging
from bot.serve import supervise, wait_for_dependencies
from core.errors import ConfigError, StoreError
from core.records import Records
from core.service import RagService

from .conftest import FIXTURE_DOCS, make_settings
from .fakes.llm_server import ThreadedFakeLLM

ROOT = Path(__file__).resolve().parent.parent


# --- supervision ---------------------------------------------------------------------------------


class CrashingAdapter:
    """Crashes on its first `crashes` runs, then serves until cancelled."""

    name = "crashy"

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self.serving = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"boom {self.runs}")
        self.serving.set()
        await asyncio.Event().wait()


async def test_a_crashed_adapter_is_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    adapter, other = CrashingAdapter(crashes=2), CrashingAdapter(crashes=0)
    restarts: list[str] = []
    tasks = [
        asyncio.create_task(supervise(adapter, first_delay=0.01, on_restart=restarts.append)),
        asyncio.create_task(supervise(other, first_delay=0.01)),
    ]
    await asyncio.wait_for(adapter.serving.wait(), 5)
    assert adapter.runs == 3 and restarts == ["crashy", "crashy"]
    assert other.runs == 1 and not tasks[1].done()  # the other adapter never noticed
    assert sum("crashed; restarting" in r.getMessage() for r in caplog.records) == 2
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_adapter_config_error_is_not_retried() -> None:
    class Misconfigured:
        name = "bad"
        runs = 0

        async def run(self) -> None:
            self.runs += 1
            raise ConfigError("SLACK_APP_TOKEN must start with xapp-")

    adapter = Misconfigured()
    with pytest.raises(ConfigError):
        await asyncio.wait_for(supervise(adapter, first_delay=0.01), 5)
    assert adapter.runs == 1


# --- draining ------------------------------------------------------------------------------------


@pytest.fixture
def core(indexed_service: RagService, tmp_path: Path) -> Iterator[ChatCore]:
    records = Records(tmp_path / "records.sqlite3")
    yield ChatCore(indexed_service.settings, indexed_service, records)
    records.close()


async def test_drain_lets_quick_answers_finish_and_cancels_slow_ones(core: ChatCore) -> None:
    finished: list[str] = []

    async def question(name: str, seconds: float) -> None:
        assert core.refuse(name, f"question {name}") is None
        await asyncio.sleep(seconds)
        finished.append(name)

    quick = asyncio.create_task(question("quick", 0.2))
    slow = asyncio.create_task(question("slow", 30))
    await asyncio.sleep(0.05)
    assert core.in_flight == 2
    started = time.monotonic()
    cancelled = await core.drain(grace=1.0)
    assert cancelled == 1 and finished == ["quick"] and quick.done() and slow.cancelled()
    assert time.monotonic() - started < 2.5
    assert core.refuse("late", "a new question") == SHUTTING_DOWN


# --- start-up waits ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_missing_llm_server_delays_start_up_but_does_not_stop_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, llm_base_url=f"http://127.0.0.1:{_free_port()}/v1")
    caplog.set_level(logging.INFO, "docsbot.serve")
    await wait_for_dependencies(settings, max_wait=0.6, first_delay=0.2)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waiting for the LLM server at http://127.0.0.1:") for m in messages)
    assert any("did not answer within" in m and "starting anyway" in m for m in messages)


async def test_a_missing_milvus_server_fails_start_up_after_the_wait(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        milvus_uri=f"http://127.0.0.1:{_free_port()}",
        milvus_timeout=0.5,
        llm_base_url=f"http://127.0.0.1:{_free_port()}/v1",
    )
    started = time.monotonic()
    with pytest.raises(StoreError, match="did not answer within"):
        await wait_for_dependencies(settings, max_wait=0.5, first_delay=0.2)
    assert time.monotonic() - started < 15


# --- logs ----------------------------------------------------------------------------------------


def test_logs_are_json_lines_without_secrets(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_bot_token="xoxb-very-secret-1", milvus_token="root:hunter2pw")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", secret_values(settings), stream=stream)
        logging.getLogger("docsbot.test").info(
            "token xoxb-very-secret-1 and password hunter2pw", extra={"fields": {"event": "question", "n": 1}}
        )
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["msg"] == "token *** and password ***"
    assert line["event"] == "question" and line["n"] == 1 and line["level"] == "INFO"
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


# --- the process: SIGTERM mid-answer ----------------------------------------------------------------


def _http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def _start_serve(tmp_path: Path, llm_url: str, **env: str) -> tuple[subprocess.Popen[str], str, str]:
    ops_port, ask_port = _free_port(), _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "SLACK_", "DISCORD_"))},
        "PYTHONPATH": str(ROOT),
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "DATA_DIR": str(tmp_path / "data"),
        "RECORDS_PATH": str(tmp_path / "records.sqlite3"),
        "DOCS_SOURCE": str(FIXTURE_DOCS),
        "COLLECTION": "serve_docs",
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": "fake-model",
        "LLM_API_KEY": "sk-serve-test-secret",
        "LLM_MAX_RETRIES": "0",
        "OPS_PORT": str(ops_port),
        "ASK_PORT": str(ask_port),
        "LOG_LEVEL": "INFO",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ask_adapter"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{ops_port}", f"http://127.0.0.1:{ask_port}"


def _wait_until_indexed(process: subprocess.Popen[str], ops: str, deadline: float = 180) -> None:
    """Until /readyz is 200 and the start-up index run is recorded in /metrics."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            status, _ = _http("GET", f"{ops}/readyz", timeout=5)
            _, metrics = _http("GET", f"{ops}/metrics", timeout=5)
            if status == 200 and 'docsbot_reindex_runs_total{outcome="ok"} 1.0' in str(metrics):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("serve did not become ready")


def _wait_for_the_llm(llm: ThreadedFakeLLM) -> None:
    """Block until the question under test has reached the (fake) LLM, i.e. is mid-answer."""
    deadline = time.monotonic() + 10
    while not llm.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm.requests, "the question never reached the LLM"


@pytest.mark.slow
def test_sigterm_mid_answer_finishes_it_and_exits_cleanly(tmp_path: Path) -> None:
    with ThreadedFakeLLM(delay=3.0) as llm:
        process, ops, ask = _start_serve(tmp_path, llm.base_url, SHUTDOWN_GRACE="15")
        try:
            _wait_until_indexed(process, ops)
            assert _http("GET", f"{ops}/healthz")[0] == 200

            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                asked = pool.submit(
                    _http, "POST", f"{ask}/ask", {"user": "U1", "question": "what does M control in HNSW?"}
                )
                _wait_for_the_llm(llm)
                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                late_status, late = _http(
                    "POST", f"{ask}/ask", {"user": "U2", "question": "what is a segment?"}
                )
                status, answer = asked.result(timeout=30)
            rc = process.wait(timeout=30)
            took = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
        _, stderr = process.communicate()
    assert rc == 0, stderr[-3000:]
    assert status == 200 and answer["outcome"] == "answered", answer  # finished within the grace
    assert late_status == 200 and late == {"outcome": "refused", "text": SHUTTING_DOWN}
    assert took < 15
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len(stderr.strip().splitlines()), "every log line is JSON"
    questions = [line for line in lines if line.get("event") == "question"]
    assert [q["outcome"] for q in questions] == ["answered"]
    assert questions[0]["adapter"] == "ask" and questions[0]["question"] == "what does M control in HNSW?"
    assert "sk-serve-test-secret" not in stderr
    assert any(line["msg"] == "stopped" for line in lines)


@pytest.mark.slow
def test_sigterm_cancels_an_answer_that_outlives_the_grace_period(tmp_path: Path) -> None:
    with ThreadedFakeLLM(hang=True) as llm:
        process, ops, ask = _start_serve(
            tmp_path, llm.base_url, SHUTDOWN_GRACE="1", LOG_QUESTION_TEXT="false"
        )
        try:
            _wait_until_indexed(process, ops)
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                asked = pool.submit(
                    _http, "POST", f"{ask}/ask", {"user": "U1", "question": "what does M control in HNSW?"}
                )
                _wait_for_the_llm(llm)
                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                rc = process.wait(timeout=20)
                took = time.monotonic() - signalled
                with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
                    asked.result(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        _, stderr = process.communicate()
    assert rc == 0, stderr[-3000:]
    assert took < 8, took  # 1 s grace + closing
    assert "cancelled 1 question(s) still in flight" in stderr
    assert "what does M control" not in stderr  # LOG_QUESTION_TEXT=false


def test_serve_without_any_chat_token_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "nothing to serve: set SLACK_BOT_TOKEN" in result.stderr and "DISCORD_TOKEN" in result.stderr
