"""Slack front end under load: N concurrent mentions through the real bolt app (HTTP mode,
signed requests) against the fake Slack Web API, with the fake LLM streaming at a fixed rate;
once through native streaming (SLACK_STREAMING=native) and once through the edit path (edits),
in the same run, so the two are compared on the same machine and load.

    python benchmarks/bench_slack.py [--mentions 50] [--token-delay 0.05] [--words 60]
                                     [--edit-interval 1.0] [--api-latency 0.02] [--configured-index]

Retrieval is real (embedding model + Milvus Lite); by default over a temporary index of the test
fixture pages, so the script needs no prepared index (--configured-index uses the settings' one).
Measures per path: all answered; time from sending the event to the loading status (native:
assistant.threads.setStatus; edits: the placeholder message) and to the first streamed text
(native: chat.startStream, which carries the first words; edits: the first chat.update), p50/p95;
Slack Web API calls per answer; and the event loop's worst lag (a 10 ms ticker's overshoot).
Everything (fakes included) shares one process and one event loop, as a worst case. Prints one
JSON object: {"native": {...}, "edits": {...}, "native_vs_edits": {ratios}}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from common import ROOT, percentile_ms
from pydantic import SecretStr

from bot.chat.flow import ChatCore
from bot.slack.adapter import SlackAdapter
from core.config import Settings, load_settings
from core.generation import OpenAIChatLLM
from core.records import Records
from core.service import RagService, open_service
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack

SECRET = "bench-signing-secret"
QUESTION = "what does M control in an HNSW index?"


@contextlib.asynccontextmanager
async def _indexed(configured: bool, root: Path) -> AsyncIterator[RagService]:
    if configured:
        settings = load_settings()
    else:
        settings = load_settings(
            env_file=None,
            milvus_uri=str(root / "milvus.db"),
            data_dir=root / "data",
            docs_source=str(ROOT / "tests" / "fixtures" / "docs"),
            collection="bench_slack",
        )
    async with open_service(settings, generation=False) as service:
        if not configured:
            await service.index()
        await service.warm_up()
        yield service


class LoopLag:
    """The worst overshoot of a 10 ms sleep: how long the event loop was blocked."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append(max(0.0, time.perf_counter() - started - 0.01))

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={signature}",
    }


def _mention(slack: FakeSlack, n: int) -> dict[str, Any]:
    ts = slack.new_ts()
    event = {
        "type": "app_mention",
        "user": f"U{n:03d}",
        "text": f"<@{BOT_USER_ID}> {QUESTION}",
        "ts": ts,
        "channel": f"C{n % 5}",
        "event_ts": ts,
    }
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": "A1",
        "event_id": f"Ev{n:04d}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


#: Web API methods that make up an answer in the thread (the rest: auth.test, conversations.info).
ANSWER_CALLS = (
    "assistant.threads.setStatus",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "chat.postMessage",
    "chat.update",
)


async def run_path(args: argparse.Namespace, base: RagService, root: Path, mode: str) -> dict[str, object]:
    """N concurrent mentions with SLACK_STREAMING=`mode`; the figures of one path."""
    answer = " ".join(["HNSW's M sets the maximum number of edges per node [1]."] * (args.words // 10))
    final = "chat.stopStream" if mode == "native" else "chat.update"
    async with contextlib.AsyncExitStack() as stack:
        slack = await FakeSlack(latency=args.api_latency).start()
        stack.push_async_callback(slack.stop)
        fake_llm = await FakeLLM(answer=answer, token_delay=args.token_delay).start()
        stack.push_async_callback(fake_llm.stop)
        settings: Settings = base.settings.model_copy(
            update={
                "slack_bot_token": SecretStr("xoxb-bench"),
                "slack_signing_secret": SecretStr(SECRET),
                "slack_mode": "http",
                "slack_api_url": slack.api_url,
                "slack_http_port": 0,
                "slack_streaming": mode,
                "stream_edit_interval": args.edit_interval,
                "user_rate_limit": 0,
                "records_path": root / f"records-{mode}.sqlite3",
            }
        )
        llm = OpenAIChatLLM(fake_llm.base_url, "fake-model", concurrency=args.mentions, timeout=60.0)
        stack.push_async_callback(llm.close)
        records = Records(settings.records_path)
        stack.callback(records.close)
        core = ChatCore(settings, RagService(settings, base.store, base.embedder, llm), records)
        adapter = SlackAdapter(core)
        server = asyncio.create_task(adapter.run())
        stack.callback(server.cancel)
        await asyncio.wait_for(adapter.ready.wait(), 30)
        url = f"http://127.0.0.1:{adapter.port}/slack/events"
        http = await stack.enter_async_context(aiohttp.ClientSession())

        def finished() -> int:
            if mode == "native":
                return len(slack.calls_to(final))
            return sum(1 for c in slack.calls_to(final) if c.args.get("blocks"))

        async def send(body: dict[str, Any]) -> tuple[str, float]:
            data = json.dumps(body).encode()
            sent = time.perf_counter()
            async with http.post(url, data=data, headers=_signed(data)) as response:
                assert response.status == 200, response.status
            return body["event"]["ts"], sent

        # Warm up: one mention (first auth.test, first LLM connection), not counted.
        await send(_mention(slack, 999))
        await slack.wait_for(lambda: finished() >= 1, 60)
        slack.calls.clear()
        warm_records = len(records.questions())

        started = time.perf_counter()
        with LoopLag() as lag:
            sent = dict(await asyncio.gather(*(send(_mention(slack, n)) for n in range(args.mentions))))
            await slack.wait_for(lambda: finished() >= args.mentions, args.timeout)
        wall = time.perf_counter() - started
        outcomes = Counter(r.outcome for r in records.questions()[warm_records:])
        thread_of = {ts: str(m.get("thread_ts", "")) for (_channel, ts), m in slack.messages.items()}

    calls: dict[str, list[tuple[str, float]]] = {thread: [] for thread in sent}
    for call in slack.calls:
        if call.method not in ANSWER_CALLS:
            continue
        thread = str(call.args.get("thread_ts") or thread_of.get(str(call.args.get("ts", "")), ""))
        if thread in calls:
            calls[thread].append((call.method, call.at))
    to_status, to_text, per_answer = [], [], []
    for thread, at in sent.items():
        made = calls[thread]
        per_answer.append(len(made))
        status = "assistant.threads.setStatus" if mode == "native" else "chat.postMessage"
        first_text = "chat.startStream" if mode == "native" else "chat.update"
        to_status += [t - at for method, t in made if method == status][:1]
        to_text += [t - at for method, t in made if method == first_text][:1]
    per_answer.sort()
    methods = Counter(method for made in calls.values() for method, _ in made)
    return {
        "answered": outcomes.get("answered", 0),
        "all_answered": outcomes.get("answered", 0) == args.mentions,
        "loading_status_p50_ms": percentile_ms(to_status, 0.5),
        "loading_status_p95_ms": percentile_ms(to_status, 0.95),
        "first_text_p50_ms": percentile_ms(to_text, 0.5),
        "first_text_p95_ms": percentile_ms(to_text, 0.95),
        "calls_per_answer_mean": round(sum(per_answer) / len(per_answer), 2),
        "calls_per_answer_min": per_answer[0],
        "calls_per_answer_max": per_answer[-1],
        "calls_by_method": {m: round(n / args.mentions, 2) for m, n in sorted(methods.items())},
        "event_loop_lag_p99_ms": percentile_ms(lag.samples, 0.99),
        "event_loop_lag_max_ms": percentile_ms(lag.samples, 1.0),
        "wall_seconds": round(wall, 2),
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with _indexed(args.configured_index, root) as base:
            edits = await run_path(args, base, root, "edits")
            native = await run_path(args, base, root, "native")

    def ratio(key: str) -> float | None:
        a, b = native[key], edits[key]
        return round(float(a) / float(b), 2) if isinstance(a, int | float) and b else None  # type: ignore[arg-type]

    return {
        "benchmark": "slack_concurrent_mentions",
        "mentions": args.mentions,
        "llm": f"fake, {args.words} words at one per {args.token_delay * 1000:.0f} ms",
        "stream_edit_interval_s": args.edit_interval,
        "slack_api_latency_ms": args.api_latency * 1000,
        "cpu_cores": os.cpu_count(),
        "native": native,
        "edits": edits,
        "native_vs_edits": {
            key: ratio(key)
            for key in ("calls_per_answer_mean", "loading_status_p50_ms", "first_text_p50_ms", "wall_seconds")
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mentions", type=int, default=50)
    parser.add_argument("--words", type=int, default=60, help="Words in each streamed answer.")
    parser.add_argument("--token-delay", type=float, default=0.05, help="Seconds between streamed words.")
    parser.add_argument("--edit-interval", type=float, default=1.0, help="STREAM_EDIT_INTERVAL.")
    parser.add_argument("--api-latency", type=float, default=0.02, help="Seconds each fake Slack call takes.")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--configured-index", action="store_true", help="Use the index the settings name.")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
