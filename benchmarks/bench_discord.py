"""The Discord adapter under load: many users mention the bot at once.

    python benchmarks/bench_discord.py [--mentions 50] [--words 80] [--token-delay 0.025]

Runs the real adapter (the discord.py client, as `docsbot serve` does) against the fake Discord
API and gateway from tests/fakes, with a fake OpenAI-compatible LLM streaming one word every
`--token-delay` seconds, all on 127.0.0.1. The fakes run on their own event loop in a thread,
so the lag measured is the bot's own loop. Retrieval is real: the fixture docs are indexed into
a temporary Milvus Lite with the default embedding model first.

Measures the same burst straight through `RagService.stream` first (time to first token and
loop lag without Discord: the baseline the adapter adds to). Then, after one warm-up question:
whether every mention got a final answer, the time from MESSAGE_CREATE to the typing indicator
(the first thing users see) and to the bot's first reply
(p50/p95: retrieval, the LLM's first token, one REST call) and to the final edit, edits per
answer (streaming edits plus the final one, throttled by STREAM_EDIT_INTERVAL), and the event
loop's worst lag (the largest overshoot of a 10 ms ticker).
Prints one JSON object.

The fake sends no rate-limit headers, so discord.py keeps one request in flight per channel and
route, as it does before Discord's first headers arrive. Real Discord also allows only about 5
messages per 5 s in a channel; with many answers streaming in one channel discord.py then waits,
and `ChatCore.relay` skips the intermediate edits that would queue up.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from common import ROOT, percentile_ms
from pydantic import SecretStr

from bot.chat.flow import ChatCore
from bot.discord.adapter import DiscordAdapter
from core.config import load_settings
from core.evaluation import load_questions
from core.generation import OpenAIChatLLM
from core.records import Records
from core.service import RagService, open_service
from tests.fakes.discord_api import FakeDiscord, snowflake, user
from tests.fakes.llm_server import FakeLLM

T = TypeVar("T")
FIXTURE_DOCS = ROOT / "tests" / "fixtures" / "docs"
FIXTURE_QUESTIONS = ROOT / "tests" / "fixtures" / "questions.jsonl"


class Fakes:
    """The fake Discord and LLM servers on their own event loop, in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def loop_lag(samples: list[float], interval: float = 0.01) -> None:
    """Record how late a `sleep(interval)` wakes up, forever."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        samples.append(loop.time() - started - interval)


async def service_only(
    service: RagService, questions: list[str], count: int
) -> tuple[list[float], list[float]]:
    """The same burst straight through `service.stream`, without Discord: the times to the
    first token and the loop lag, for comparison."""

    async def first_token(question: str) -> float:
        started = time.monotonic()
        first = 0.0
        async for part in service.stream(question):
            if not first and isinstance(part, str):
                first = time.monotonic() - started
        return first

    lag: list[float] = []
    ticker = asyncio.create_task(loop_lag(lag))
    times = await asyncio.gather(*(first_token(questions[i % len(questions)]) for i in range(count)))
    ticker.cancel()
    return list(times), lag


async def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def finals(discord: FakeDiscord) -> list[dict[str, Any]]:  # in any channel
    """The bot's finished answers: messages with the feedback buttons."""
    return [
        m
        for m in list(discord.messages.values())
        if m["author"]["id"] == discord.bot["id"] and m["components"]
    ]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    questions = [q.question for q in load_questions(FIXTURE_QUESTIONS) if q.kind != "out_of_scope"]
    answer = " ".join(["HNSW's M sets the maximum number of edges per node [1]."] * (args.words // 10 + 1))
    answer = " ".join(answer.split()[: args.words])
    fakes = Fakes()
    discord = fakes.run(FakeDiscord().start()).result(timeout=10)
    channels = [discord.channel_id] + [discord.add_channel(f"help-{n}") for n in range(1, args.channels)]
    llm = fakes.run(FakeLLM(answer=answer, token_delay=args.token_delay).start()).result(timeout=10)
    tmp = Path(tempfile.mkdtemp(prefix="bench-discord-"))
    settings = load_settings(
        env_file=None,
        milvus_uri=str(tmp / "milvus.db"),
        data_dir=tmp / "data",
        docs_source=str(FIXTURE_DOCS),
        collection="bench_discord",
        discord_token=SecretStr("fake-token"),
        discord_api_base_url=discord.api_base,
        discord_gateway_url=discord.gateway_url,
        discord_guild_ids=discord.guild_id,
        llm_concurrency=args.mentions,  # measure the adapter, not a queue in front of one model
        shutdown_grace=0,
    )
    chat_llm = OpenAIChatLLM(llm.base_url, "fake-model", concurrency=args.mentions, timeout=30.0)
    records = Records(tmp / "records.sqlite3")
    lag: list[float] = []
    try:
        async with open_service(settings, generation=False) as base:
            run = await base.index()
            assert run.outcome == "ok", run.message
            service = RagService(settings, base.store, base.embedder, chat_llm)
            await service.warm_up()
            baseline, baseline_lag = await service_only(service, questions, args.mentions)
            adapter = DiscordAdapter(ChatCore(settings, service, records))
            bot = asyncio.create_task(adapter.run())
            assert await wait_until(lambda: discord.identified > 0, 30), "the client never connected"

            async def mention(question: str, channel_id: str) -> tuple[str, float]:
                sent = time.monotonic()
                author = user(snowflake(), "user")
                data = await asyncio.wrap_future(
                    fakes.run(discord.send_message(question, author=author, channel_id=channel_id))
                )
                return data["id"], sent

            await mention(questions[0], channels[0])  # warm-up: HTTP connections, first edits
            assert await wait_until(lambda: len(finals(discord)) == 1, 60), "the warm-up was not answered"
            first_call = len(discord.calls)
            ticker = asyncio.create_task(loop_lag(lag))
            started = time.monotonic()
            burst = [
                mention(questions[n % len(questions)], channels[n % len(channels)])
                for n in range(args.mentions)
            ]
            sent = dict(await asyncio.gather(*burst))
            all_answered = await wait_until(lambda: len(finals(discord)) == args.mentions + 1, args.timeout)
            elapsed = time.monotonic() - started
            ticker.cancel()
            bot.cancel()
            await asyncio.gather(bot, ticker, return_exceptions=True)
    finally:
        await chat_llm.close()
        records.close()
        fakes.run(discord.stop()).result(timeout=10)
        fakes.run(llm.stop()).result(timeout=10)
        fakes.close()

    calls = discord.calls[first_call:]
    # typing: the k-th indicator in a channel is the k-th question's (one request at a time per channel)
    asked_in: dict[str, list[str]] = {}
    for question_id in sent:
        asked_in.setdefault(discord.messages[question_id]["channel_id"], []).append(question_id)
    typing: list[float] = []
    for channel_id, asked in asked_in.items():
        shown = [c.at for c in calls if c.method == "POST" and c.path == f"/channels/{channel_id}/typing"]
        typing.extend(at - sent[question_id] for question_id, at in zip(asked, shown, strict=False))
    first_reply: dict[str, float] = {}
    final_at: dict[str, float] = {}
    reply_of: dict[str, str] = {}
    for call in calls:
        if call.method == "POST" and call.path.endswith("/messages") and call.body.get("message_reference"):
            question_id = str(call.body["message_reference"]["message_id"])
            if question_id in sent and question_id not in first_reply:
                first_reply[question_id] = call.at - sent[question_id]
            if question_id in sent and call.body.get("components"):  # answered without streaming
                final_at[question_id] = call.at - sent[question_id]
    for message in discord.messages.values():
        reference = message.get("message_reference") or {}
        if reference.get("message_id") in sent and message["author"]["id"] == discord.bot["id"]:
            reply_of[message["id"]] = reference["message_id"]
    edits: dict[str, int] = dict.fromkeys(reply_of, 0)
    for call in calls:
        if call.method == "PATCH" and (message_id := call.path.rsplit("/", 1)[1]) in reply_of:
            edits[message_id] += 1
            if call.body.get("components"):
                final_at[reply_of[message_id]] = call.at - sent[reply_of[message_id]]
    outcomes: dict[str, int] = {}
    for record in records_outcomes(tmp / "records.sqlite3"):
        outcomes[record] = outcomes.get(record, 0) + 1
    counts = sorted(edits.values())
    return {
        "benchmark": "discord_concurrent_mentions",
        "mentions": args.mentions,
        "channels": args.channels,
        "answered": len(final_at),
        "all_answered": all_answered and len(final_at) == args.mentions,
        "outcomes": outcomes,
        "llm": f"fake streaming server, {args.words} words, {args.token_delay * 1000:.0f} ms apart",
        "stream_edit_interval_s": settings.stream_edit_interval,
        "service_only_first_token_p50_ms": percentile_ms(baseline, 0.5),
        "service_only_first_token_p95_ms": percentile_ms(baseline, 0.95),
        "service_only_loop_lag_max_ms": round(max(baseline_lag, default=0.0) * 1000, 1),
        "typing_p50_ms": percentile_ms(typing, 0.5),
        "typing_p95_ms": percentile_ms(typing, 0.95),
        "first_reply_p50_ms": percentile_ms(list(first_reply.values()), 0.5),
        "first_reply_p95_ms": percentile_ms(list(first_reply.values()), 0.95),
        "final_p50_ms": percentile_ms(list(final_at.values()), 0.5),
        "final_p95_ms": percentile_ms(list(final_at.values()), 0.95),
        "edits_per_answer_mean": round(sum(counts) / len(counts), 2) if counts else 0,
        "edits_per_answer_max": max(counts, default=0),
        "rest_calls": len(calls),
        "event_loop_lag_max_ms": round(max(lag, default=0.0) * 1000, 1),
        "event_loop_lag_p99_ms": percentile_ms(lag, 0.99) if lag else 0.0,
        "seconds": round(elapsed, 2),
    }


def records_outcomes(path: Path) -> list[str]:
    """Outcomes of all recorded questions but the warm-up (the first)."""
    records = Records(path)
    try:
        return [record.outcome for record in records.questions()][1:]
    finally:
        records.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mentions", type=int, default=50)
    parser.add_argument(
        "--channels",
        type=int,
        default=10,
        help="channels the mentions are spread over (discord.py sends one request at a time per "
        "channel and route until Discord's rate-limit headers say more; Discord allows 5 messages "
        "per 5 s in a channel)",
    )
    parser.add_argument("--words", type=int, default=80, help="words in each fake answer")
    parser.add_argument("--token-delay", type=float, default=0.025, help="seconds between streamed words")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all answers")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
