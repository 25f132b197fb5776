"""Soak: steady questions through both chat adapters of a real `docsbot serve` process.

Fake Slack (Socket Mode), fake Discord (gateway + REST) and a fake streaming LLM run on
127.0.0.1 in this process; the bot is `python -m bot serve` over the test fixture pages. Every
`--interval` seconds one question goes to Slack and one to Discord (each waits for its final
answer before the next). Prints one JSON object: questions, errors (no final answer in time, or
outcome error/busy; declines of questions the fixture pages don't cover are answers), answer
latency percentiles per adapter, the bot's RSS after warm-up, peak and at the end (growth), and
the outcomes from its /metrics.

    python benchmarks/soak.py                 # 10 minutes
    python benchmarks/soak.py --minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT))

from tests.fakes.serve_stack import ServeStack, sample, summarize

QUESTIONS = [
    "what does M control in an HNSW index?",
    "how do I choose efConstruction for HNSW?",
    "what is the difference between IVF_FLAT and HNSW?",
    "how do I create a collection?",
    "how does Milvus store vectors on disk?",
]
WARM_UP = 10  # questions per adapter before the RSS baseline


async def _adapter_loop(
    ask: object, name: str, stop_at: float, interval: float, latencies: list[float], errors: list[str]
) -> None:
    n = 0
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            latencies.append(await ask(QUESTIONS[n % len(QUESTIONS)]))  # type: ignore[operator]
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
        n += 1
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def soak(minutes: float, interval: float, token_delay: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        async with ServeStack(Path(tmp), token_delay=token_delay) as stack:
            for n in range(WARM_UP):
                await stack.ask_slack(QUESTIONS[n % len(QUESTIONS)])
                await stack.ask_discord(QUESTIONS[n % len(QUESTIONS)])
            rss_start = stack.rss_kib()
            rss_peak = rss_start
            latencies: dict[str, list[float]] = {"slack": [], "discord": []}
            errors: list[str] = []
            began = time.monotonic()
            stop_at = began + minutes * 60

            async def watch_rss() -> None:
                nonlocal rss_peak
                while time.monotonic() < stop_at:
                    rss_peak = max(rss_peak, stack.rss_kib())
                    await asyncio.sleep(5)

            await asyncio.gather(
                _adapter_loop(stack.ask_slack, "slack", stop_at, interval, latencies["slack"], errors),
                _adapter_loop(stack.ask_discord, "discord", stop_at, interval, latencies["discord"], errors),
                watch_rss(),
            )
            elapsed = time.monotonic() - began
            rss_end = stack.rss_kib()
            metrics = await stack.metrics()
            exit_code = await stack.stop()
            log = stack.log()
    outcomes = {
        line.split('outcome="')[1].split('"')[0] + "@" + line.split('adapter="')[1].split('"')[0]: float(
            line.rsplit(" ", 1)[1]
        )
        for line in metrics.splitlines()
        if line.startswith("docsbot_questions_total{")
    }
    failed = sum(v for k, v in outcomes.items() if k.startswith(("error@", "busy@")))
    all_latencies = latencies["slack"] + latencies["discord"]
    return {
        "minutes": round(elapsed / 60, 2),
        "interval_s": interval,
        "llm_token_delay_s": token_delay,
        "questions": len(all_latencies) + len(errors),
        "errors": len(errors) + int(failed),  # no final answer in time, or outcome error/busy
        "error_samples": errors[:5],
        "latency": {
            "all": summarize(all_latencies),
            "slack": summarize(latencies["slack"]),
            "discord": summarize(latencies["discord"]),
        },
        "rss_mib": {
            "after_warm_up": round(rss_start / 1024, 1),
            "peak": round(rss_peak / 1024, 1),
            "end": round(rss_end / 1024, 1),
            "growth": round((rss_end - rss_start) / 1024, 1),
        },
        "outcomes": outcomes,
        "in_flight_at_end": sample(metrics, "docsbot_questions_in_flight"),
        "log_errors": sum(1 for line in log.splitlines() if '"level": "ERROR"' in line),
        "exit_code": exit_code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between questions per adapter")
    parser.add_argument("--token-delay", type=float, default=0.01, help="fake LLM seconds between tokens")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.interval, args.token_delay))
    print(json.dumps(result))
    return 0 if result["errors"] == 0 and result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
