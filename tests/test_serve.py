"""`docsbot serve`: adapter supervision, dependency waits, graceful shutdown, log format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bot.chat.flow import ChatCore
from bot.chat.texts import SHUTTING_DOWN
from bot.logs import JsonFormatter, secret_values, setup_logging
from bot.scheduler import DAILY, ReindexScheduler
from bot.serve import connect_milvus, prune_records, start_up, supervise, wait_for_llm
from core.deferred_client import DeferredMilvusClient
from core.embedding import SentenceTransformerEmbedder
from core.errors import ConfigError, IndexMismatchError, StoreError
from core.models import Answer
from core.records import Records
from core.service import RagService, open_service
from core.store import ChunkStore

from .conftest import FIXTURE_DOCS, make_settings
from .fakes.llm_server import FakeLLM, ThreadedFakeLLM

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


async def test_a_missing_llm_server_is_waited_for_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, llm_base_url=f"http://127.0.0.1:{_free_port()}/v1")
    caplog.set_level(logging.INFO, "docsbot.serve")
    assert await wait_for_llm(settings, max_wait=0.6, first_delay=0.2) is False
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waiting for the LLM server at http://127.0.0.1:") for m in messages)
    assert any("did not answer within" in m and "serving anyway" in m for m in messages)


async def test_a_milvus_server_that_comes_up_late_is_connected_in_the_background(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, milvus_uri=uri, milvus_timeout=2.0)
    client = DeferredMilvusClient(uri, timeout=2.0)
    store = ChunkStore(client.as_milvus_client(), settings.collection, uri)
    async with open_service(settings, embedder=embedder, generation=False, store=store) as service:
        answer = await service.ask("what does M control in an HNSW index?")
        assert answer.outcome == "error" and answer.error == "store_unavailable"
        assert answer.text == "The search index is not available right now; please try again in a minute."
        connecting = asyncio.create_task(connect_milvus(settings, client, first_delay=0.2))
        await asyncio.sleep(1.0)
        assert not connecting.done() and not client.connected  # still trying, never giving up
        server = _start_milvus_lite(tmp_path / "server.db", port)
        try:
            await asyncio.wait_for(connecting, 60)
            assert client.connected and await asyncio.to_thread(store.exists) is False
        finally:
            server.terminate()
            server.wait(timeout=30)


async def test_start_up_survives_a_store_error_but_stops_on_an_index_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = await FakeLLM().start()
    settings = make_settings(tmp_path, llm_base_url=llm.base_url)
    try:

        async def flapping(service: RagService) -> None:
            raise StoreError("Milvus went away for a moment")

        monkeypatch.setattr("bot.serve._prepare_index", flapping)
        await asyncio.wait_for(start_up(settings, None, None), 10)  # type: ignore[arg-type]

        async def mismatch(service: RagService) -> None:
            raise IndexMismatchError("the index was built with another model")

        monkeypatch.setattr("bot.serve._prepare_index", mismatch)
        with pytest.raises(IndexMismatchError):
            await asyncio.wait_for(start_up(settings, None, None), 10)  # type: ignore[arg-type]
    finally:
        await llm.stop()


def _start_milvus_lite(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    return subprocess.Popen(
        [exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_records_are_pruned_daily_by_the_schedule(
    core: ChatCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = ReindexScheduler(core.settings, core.service)
    scheduler.add_daily("prune-records", partial(prune_records, core.records))
    assert "prune-records" in scheduler.job_ids()
    assert str(DAILY) == "cron[hour='3', minute='30']"
    core.records.retention_days = 1
    answer = Answer(text="an answer", outcome="answered")
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    monkeypatch.setattr("core.records._now", lambda: two_days_ago)
    old_id = await core.records.arecord_answer("test", "C1", "U1", "an old question", answer)
    monkeypatch.undo()
    new_id = await core.records.arecord_answer("test", "C1", "U1", "a new question", answer)
    await prune_records(core.records)
    assert not await core.records.arecord_feedback(old_id, "U2", 1)  # gone
    assert await core.records.arecord_feedback(new_id, "U2", 1)


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


def _wait_until_indexed(
    process: subprocess.Popen[str], ops: str, deadline: float = 180, require_ready: bool = True
) -> None:
    """Until /readyz is 200 (or only Milvus is checked) and the start-up index run is recorded."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            status, ready = _http("GET", f"{ops}/readyz", timeout=5)
            _, metrics = _http("GET", f"{ops}/metrics", timeout=5)
            ok = status == 200 or (not require_ready and ready["checks"]["milvus"]["ok"])
            if ok and 'docsbot_reindex_runs_total{outcome="ok"} 1.0' in str(metrics):
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


def _first_answer(process: subprocess.Popen[str], ask: str, deadline: float = 120) -> dict[str, Any]:
    """Ask until the adapter answers (its port refuses connections until it is up)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            status, answer = _http("POST", f"{ask}/ask", {"user": "U1", "question": "what is HNSW M?"})
            if status == 200:
                return dict(answer)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError("the adapter never answered")


@pytest.mark.slow
def test_serve_with_the_llm_down_answers_at_once(tmp_path: Path) -> None:
    """Measured before: the adapters started only after a 300 s wait for the LLM."""
    process, ops, ask = _start_serve(tmp_path, f"http://127.0.0.1:{_free_port()}/v1")
    try:
        started = time.monotonic()
        first = _first_answer(process, ask)
        first_answer_seconds = time.monotonic() - started
        status, ready = _http("GET", f"{ops}/readyz")
        _wait_until_indexed(process, ops, require_ready=False)
        later = _first_answer(process, ask)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"first answer {first_answer_seconds:.1f} s after start")
    assert first_answer_seconds < 60  # seconds of imports, not the 300 s DEPENDENCY_WAIT
    assert first["outcome"] in {"error", "answered"} and "\n" not in first["text"]
    assert status == 503 and "llm" in ready["failed"]
    assert ready["checks"]["llm"]["detail"].startswith("LLM server at http://127.0.0.1:")
    assert ready["checks"]["llm"]["detail"].endswith("is unreachable")  # no exception text
    assert later["outcome"] == "error"
    assert later["text"] == "I couldn't reach the language model just now. These docs sections look relevant:"


@pytest.mark.slow
def test_serve_with_a_milvus_server_down_keeps_the_chats_up(tmp_path: Path) -> None:
    milvus = f"http://127.0.0.1:{_free_port()}"
    process, ops, ask = _start_serve(
        tmp_path, f"http://127.0.0.1:{_free_port()}/v1", MILVUS_URI=milvus, MILVUS_TIMEOUT="1"
    )
    try:
        answer = _first_answer(process, ask)
        status, ready = _http("GET", f"{ops}/readyz")
        assert process.poll() is None  # still serving, still trying to connect
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert answer == {
        "outcome": "error",
        "text": "The search index is not available right now; please try again in a minute.",
        "answer_id": answer["answer_id"],
    }
    assert status == 503 and set(ready["failed"]) == {"milvus", "llm"}
    assert ready["checks"]["milvus"]["detail"] == "Milvus is not reachable"


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
