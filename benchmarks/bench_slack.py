"""Slack front end under load: N concurrent mentions through the real bolt app (HTTP mode,
signed requests) against the fake Slack Web API, with the fake LLM streaming at a fixed rate.

    python benchmarks/bench_slack.py [--mentions 50] [--token-delay 0.05] [--words 60]
                                     [--edit-interval 1.0] [--api-latency 0.02] [--configured-index]

Retrieval is real (embedding model + Milvus Lite); by default over a temporary index of the test
fixture pages, so the script needs no prepared index (--configured-index uses the settings' one).
Measures: all answered, time from sending the event to the placeholder being posted (p50/p95),
chat.update calls per answer (streamed edits + the final one), and the event loop's worst lag
(a 10 ms ticker's overshoot) while it all runs. Everything (fakes included) shares one process
and one event loop, as a worst case. Prints one JSON object.
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


async def main(args: argparse.Namespace) -> dict[str, object]:
    answer = " ".join(["HNSW's M sets the maximum number of edges per node [1]."] * (args.words // 10))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with _indexed(args.configured_index, root) as base, contextlib.AsyncExitStack() as stack:
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
                    "stream_edit_interval": args.edit_interval,
                    "user_rate_limit": 0,
                    "records_path": root / "records.sqlite3",
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

            async def send(body: dict[str, Any]) -> tuple[str, float]:
                data = json.dumps(body).encode()
                sent = time.perf_counter()
                async with http.post(url, data=data, headers=_signed(data)) as response:
                    assert response.status == 200, response.status
                return body["event"]["ts"], sent

            # Warm up: one mention (first auth.test, first LLM connection), not counted.
            await send(_mention(slack, 999))
            await slack.wait_for(lambda: any(c.args.get("blocks") for c in slack.calls_to("chat.update")), 60)
            slack.calls.clear()
            warm_records = len(records.questions())

            started = time.perf_counter()
            with LoopLag() as lag:
                sent = dict(await asyncio.gather(*(send(_mention(slack, n)) for n in range(args.mentions))))
                await slack.wait_for(
                    lambda: (
                        sum(1 for c in slack.calls_to("chat.update") if c.args.get("blocks")) >= args.mentions
                    ),
                    args.timeout,
                )
            wall = time.perf_counter() - started
            outcomes = Counter(r.outcome for r in records.questions()[warm_records:])

    placeholders = {c.args["thread_ts"]: c.at for c in slack.calls_to("chat.postMessage")}
    to_placeholder = [placeholders[ts] - at for ts, at in sent.items() if ts in placeholders]
    updates = Counter(c.args["ts"] for c in slack.calls_to("chat.update"))
    per_answer = sorted(updates.values())
    return {
        "benchmark": "slack_concurrent_mentions",
        "mentions": args.mentions,
        "answered": outcomes.get("answered", 0),
        "outcomes": dict(outcomes),
        "all_answered": outcomes.get("answered", 0) == args.mentions,
        "llm": f"fake, {args.words} words at one per {args.token_delay * 1000:.0f} ms",
        "stream_edit_interval_s": args.edit_interval,
        "slack_api_latency_ms": args.api_latency * 1000,
        "placeholder_p50_ms": percentile_ms(to_placeholder, 0.5),
        "placeholder_p95_ms": percentile_ms(to_placeholder, 0.95),
        "placeholder_max_ms": percentile_ms(to_placeholder, 1.0),
        "chat_update_per_answer_mean": round(sum(per_answer) / len(per_answer), 2),
        "chat_update_per_answer_min": per_answer[0],
        "chat_update_per_answer_max": per_answer[-1],
        "event_loop_lag_p99_ms": percentile_ms(lag.samples, 0.99),
        "event_loop_lag_max_ms": percentile_ms(lag.samples, 1.0),
        "cpu_cores": os.cpu_count(),
        "wall_seconds": round(wall, 2),
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
