"""Prometheus metrics of `docsbot serve`, on a private registry served at /metrics (bot/ops.py).

Question metrics are fed by the ChatCore listeners (one `QuestionEvent` per finished question,
one vote per feedback click). Reindex metrics are read from the run log (the JSON lines every
reindex appends under DATA_DIR) when /metrics is scraped, so scheduled, admin and CLI runs all
count, across restarts.

    metrics = Metrics()
    metrics.attach(core)                 # ChatCore listeners
    await metrics.refresh(service)       # before each scrape: index size
    body = metrics.render()
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.chat.flow import ChatCore, QuestionEvent
from core.service import RagService

log = logging.getLogger("docsbot.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Answer latency buckets (seconds): retrieval-only declines are ~0.05 s, LLM answers 1-30 s.
ANSWER_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)
RETRIEVAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Outcomes that mean the LLM failed: `busy` (no slot within LLM_QUEUE_TIMEOUT) and `error`.
LLM_FAILURES = {"busy": "busy", "error": "error"}
#: Seconds between index-size reads (a read iterates the collection's first chunks).
INDEX_SIZE_TTL = 300.0
INDEX_READ_TIMEOUT = 5.0


class Metrics:
    """Every metric the bot exports. One instance per process; nothing module-level."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.questions = Counter(
            "docsbot_questions",
            "Questions answered, by adapter and outcome.",
            ["adapter", "outcome"],
            registry=r,
        )
        self.declines = Counter(
            "docsbot_declines",
            "Questions the docs don't cover (outcome not_covered).",
            ["adapter"],
            registry=r,
        )
        self.llm_errors = Counter(
            "docsbot_llm_errors",
            "Questions whose LLM call failed: kind=busy (no free slot in time) or error (unreachable, "
            "timeout, error status).",
            ["kind"],
            registry=r,
        )
        self.answer_seconds = Histogram(
            "docsbot_answer_seconds",
            "Seconds from question to final answer.",
            ["adapter"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "docsbot_first_token_seconds",
            "Seconds from question to the first streamed token.",
            ["adapter"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.retrieval_seconds = Histogram(
            "docsbot_retrieval_seconds",
            "Seconds spent in retrieval (embedding + dense + BM25 + fusion) per question.",
            buckets=RETRIEVAL_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "docsbot_feedback", "Feedback clicks on answers, by vote (up/down).", ["vote"], registry=r
        )
        self.in_flight = Gauge("docsbot_questions_in_flight", "Questions being answered now.", registry=r)
        self.adapter_restarts = Counter(
            "docsbot_adapter_restarts",
            "Chat adapter restarts after a crash or exit.",
            ["adapter"],
            registry=r,
        )
        self.ready = Gauge("docsbot_ready", "1 when the last /readyz check passed, else 0.", registry=r)
        self.pages_indexed = Gauge("docsbot_pages_indexed", "Docs pages in the index.", registry=r)
        self.chunks_indexed = Gauge("docsbot_chunks_indexed", "Chunks in the index.", registry=r)
        self.feedback.labels("up")
        self.feedback.labels("down")
        for kind in LLM_FAILURES.values():
            self.llm_errors.labels(kind)
        self._runs: RunLogCollector | None = None
        self._core: ChatCore | None = None
        self._index_read_at = 0.0
        self._index_key: object = None

    # --- feeding -----------------------------------------------------------------------------

    def attach(self, core: ChatCore) -> None:
        """Listen to the chat core's questions and feedback; read reindex runs from its service."""
        self._core = core
        core.listeners.append(self.on_question)
        core.feedback_listeners.append(self.on_feedback)
        self.in_flight.set_function(lambda: core.in_flight)
        if self._runs is None:
            self._runs = RunLogCollector(core.service.runs.path)
            self.registry.register(self._runs)

    def on_question(self, event: QuestionEvent) -> None:
        self.questions.labels(event.adapter, event.outcome).inc()
        if event.outcome == "not_covered":
            self.declines.labels(event.adapter).inc()
        if event.outcome in LLM_FAILURES:
            self.llm_errors.labels(LLM_FAILURES[event.outcome]).inc()
        self.answer_seconds.labels(event.adapter).observe(event.seconds)
        if event.first_token_seconds is not None:
            self.first_token_seconds.labels(event.adapter).observe(event.first_token_seconds)
        if event.retrieval_seconds is not None:
            self.retrieval_seconds.observe(event.retrieval_seconds)

    def on_feedback(self, vote: int) -> None:
        self.feedback.labels("up" if vote > 0 else "down").inc()

    def on_restart(self, adapter: str) -> None:
        self.adapter_restarts.labels(adapter).inc()

    async def refresh(self, service: RagService) -> None:
        """Update the index-size gauges: after each reindex, else at most every INDEX_SIZE_TTL s."""
        last = service.last_run()
        key = (last.finished_at if last else None, service.running_reindex is not None)
        now = time.monotonic()
        if key == self._index_key and now - self._index_read_at < INDEX_SIZE_TTL:
            return
        try:
            status = await asyncio.wait_for(service.status(), INDEX_READ_TIMEOUT)
        except Exception as exc:  # a scrape must not fail because Milvus is slow
            log.warning("index size not read for /metrics: %s", exc)
            return
        self.pages_indexed.set(status.pages)
        self.chunks_indexed.set(status.chunks)
        self._index_key, self._index_read_at = key, now

    # --- output ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class RunLogCollector(Collector):
    """Reindex metrics from the run log: runs by outcome, the last run, the last successful one.

    The file is re-read only when it changed (size and mtime), so scrapes stay cheap.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._outcomes: Tally[str] = Tally()
        self._last_ok: float | None = None
        self._last_run: float | None = None
        self._last_pages: int | None = None

    def collect(self) -> Iterator[Metric]:
        self._reload()
        runs = CounterMetricFamily(
            "docsbot_reindex_runs",
            "Finished reindex runs, by outcome (ok/needs_review/failed).",
            labels=["outcome"],
        )
        for outcome in ("ok", "needs_review", "failed"):
            runs.add_metric([outcome], self._outcomes.get(outcome, 0))
        for outcome, count in self._outcomes.items():
            if outcome not in {"ok", "needs_review", "failed"}:
                runs.add_metric([outcome], count)
        yield runs
        since = GaugeMetricFamily(
            "docsbot_seconds_since_last_successful_reindex",
            "Seconds since the last reindex with outcome ok finished (absent: none yet).",
        )
        if self._last_ok is not None:
            since.add_metric([], max(0.0, time.time() - self._last_ok))
        yield since
        last = GaugeMetricFamily(
            "docsbot_last_reindex_timestamp_seconds", "Unix time the last reindex (any outcome) finished."
        )
        if self._last_run is not None:
            last.add_metric([], self._last_run)
        yield last
        pages = GaugeMetricFamily(
            "docsbot_last_reindex_pages",
            "Pages the last reindex kept in the index (added+changed+unchanged).",
        )
        if self._last_pages is not None:
            pages.add_metric([], self._last_pages)
        yield pages

    def _reload(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (info.st_size, info.st_mtime_ns)
        if stamp == self._stamp:
            return
        outcomes: Tally[str] = Tally()
        last_ok = last_run = None
        last_pages = None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                run = json.loads(line)
                finished = _timestamp(run.get("finished_at") or run.get("started_at") or "")
                outcome = str(run.get("outcome", "unknown"))
            except (ValueError, TypeError, AttributeError):
                continue
            outcomes[outcome] += 1
            last_run = finished
            last_pages = sum(int(run.get(key, 0) or 0) for key in ("added", "changed", "unchanged"))
            if outcome == "ok":
                last_ok = finished
        self._stamp = stamp
        self._outcomes, self._last_ok, self._last_run, self._last_pages = (
            outcomes,
            last_ok,
            last_run,
            last_pages,
        )


def _timestamp(value: str) -> float:
    """Unix seconds of an ISO-8601 time (naive ones are taken as UTC); ValueError if unreadable."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
