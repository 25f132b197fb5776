"""The ops server: /healthz, /readyz (which dependency failed), /metrics moving after a question."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.chat.flow import ChatCore
from bot.metrics import Metrics, RunLogCollector
from bot.ops import NotReady, OpsServer, check_index
from core.generation import OpenAIChatLLM
from core.records import Records
from core.service import RagService
from core.store import ChunkStore

from .fakes.llm_server import FakeLLM


@pytest.fixture
async def ops(
    indexed_service: RagService, fake_llm: FakeLLM, tmp_path: Path
) -> AsyncIterator[tuple[OpsServer, ChatCore]]:
    llm = OpenAIChatLLM(fake_llm.base_url, "fake-model", timeout=5.0, max_retries=0)
    service = RagService(indexed_service.settings, indexed_service.store, indexed_service.embedder, llm)
    records = Records(tmp_path / "records.sqlite3")
    core = ChatCore(service.settings, service, records)
    metrics = Metrics()
    metrics.attach(core)
    server = OpsServer(service, metrics, core, check_timeout=2.0)
    await server.start()
    yield server, core
    await server.stop()
    await llm.close()
    records.close()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def _sample(metrics_text: str, name: str) -> float:
    """The value of one sample line (`name{labels} value`) of the exposition, 0 when absent."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or line == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_healthz_answers_while_the_process_runs(ops: tuple[OpsServer, ChatCore]) -> None:
    server, _ = ops
    status, body = await _get(f"{server.url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


async def test_readyz_is_ready_with_milvus_and_the_llm_up(ops: tuple[OpsServer, ChatCore]) -> None:
    server, _ = ops
    status, body = await _get(f"{server.url}/readyz")
    report = json.loads(body)
    assert status == 200, report
    assert report["ready"] is True and report["failed"] == []
    assert report["checks"]["milvus"]["ok"] and "chunks" in report["checks"]["milvus"]["detail"]


async def test_readyz_names_the_llm_when_its_server_is_stopped(
    ops: tuple[OpsServer, ChatCore], fake_llm: FakeLLM
) -> None:
    server, _ = ops
    await fake_llm.stop()
    status, body = await _get(f"{server.url}/readyz")
    report = json.loads(body)
    assert status == 503
    assert report["ready"] is False and report["failed"] == ["llm"]
    assert fake_llm.base_url in report["checks"]["llm"]["detail"]
    assert report["checks"]["milvus"]["ok"] is True
    _, metrics = await _get(f"{server.url}/metrics")
    assert _sample(metrics, "docsbot_ready") == 0


async def test_readyz_is_not_ready_while_draining(ops: tuple[OpsServer, ChatCore]) -> None:
    server, core = ops
    await core.drain(grace=0)
    status, body = await _get(f"{server.url}/readyz")
    assert status == 503 and json.loads(body)["failed"] == ["shutdown"]


async def test_index_check_says_the_collection_does_not_exist(tmp_path: Path) -> None:
    store = ChunkStore.connect(str(tmp_path / "empty.db"), "nothing_here")
    try:
        with pytest.raises(NotReady, match="does not exist"):
            await check_index(store)
    finally:
        store.close()


async def test_metrics_counters_move_after_a_question_and_a_vote(ops: tuple[OpsServer, ChatCore]) -> None:
    server, core = ops
    _, before = await _get(f"{server.url}/metrics")
    assert _sample(before, 'docsbot_questions_total{adapter="test",outcome="answered"}') == 0

    question = "what does M control in an HNSW index?"
    assert core.refuse("U1", question) is None
    answer, ttft = await core.relay(core.service.stream(question), _ignore, interval=0)
    answer_id = await core.record("test", "C1", "U1", question, answer, ttft)
    declined = await core.service.ask("can i run milvus standalone with podman instead of docker?")
    await core.record("test", "C1", "U1", "podman?", declined)
    assert await core.feedback(answer_id, "U2", -1)

    _, after = await _get(f"{server.url}/metrics")
    assert _sample(after, 'docsbot_questions_total{adapter="test",outcome="answered"}') == 1
    assert _sample(after, 'docsbot_questions_total{adapter="test",outcome="not_covered"}') == 1
    assert _sample(after, 'docsbot_declines_total{adapter="test"}') == 1
    assert _sample(after, 'docsbot_answer_seconds_count{adapter="test"}') == 2
    assert _sample(after, 'docsbot_first_token_seconds_count{adapter="test"}') == 1
    assert _sample(after, "docsbot_retrieval_seconds_count") == 2
    assert _sample(after, 'docsbot_feedback_total{vote="down"}') == 1
    assert _sample(after, 'docsbot_feedback_total{vote="up"}') == 0
    assert _sample(after, "docsbot_pages_indexed") > 0
    assert _sample(after, 'docsbot_reindex_runs_total{outcome="ok"}') >= 1
    assert 0 <= _sample(after, "docsbot_seconds_since_last_successful_reindex") < 3600


def test_reindex_metrics_come_from_the_run_log(tmp_path: Path) -> None:
    log_file = tmp_path / "runs.jsonl"
    runs = [
        {
            "started_at": "2025-01-01T04:00:00+00:00",
            "finished_at": "2025-01-01T04:01:00+00:00",
            "outcome": "ok",
        },
        {
            "started_at": "2025-01-02T04:00:00+00:00",
            "finished_at": "2025-01-02T04:01:00+00:00",
            "outcome": "failed",
        },
        {
            "started_at": "2025-01-03T04:00:00+00:00",
            "finished_at": "2025-01-03T04:01:00+00:00",
            "outcome": "needs_review",
            "added": 1,
            "unchanged": 9,
        },
    ]
    log_file.write_text("\n".join(json.dumps(run) for run in runs) + "\nnot json\n")
    families = {family.name: family for family in RunLogCollector(log_file).collect()}
    outcomes = {s.labels["outcome"]: s.value for s in families["docsbot_reindex_runs"].samples}
    assert outcomes == {"ok": 1, "needs_review": 1, "failed": 1}
    since = families["docsbot_seconds_since_last_successful_reindex"].samples[0].value
    last = families["docsbot_last_reindex_timestamp_seconds"].samples[0].value
    assert last == datetime(2025, 1, 3, 4, 1, tzinfo=UTC).timestamp()
    assert since == pytest.approx(time.time() - datetime(2025, 1, 1, 4, 1, tzinfo=UTC).timestamp(), abs=5)
    assert families["docsbot_last_reindex_pages"].samples[0].value == 10


async def _ignore(text: str) -> None:
    return None
