"""Which offline model should `make demo` install? The packaged Qwen2.5-Coder-0.5B and -1.5B
(Q4_K_M, llama.cpp on the CPU) answer the same in-scope questions through the real service,
scored like `docsbot eval --answers`: fact proxy, cited-relevant share, declines, time per answer.

    DATA_DIR=/tmp/x MILVUS_URI=/tmp/x/m.db python benchmarks/bench_local_models.py \
        [--questions FILE] [--limit N] [--threads 2]

Uses the index the settings point at (index the whole snapshot first: `docsbot index --source
bundled`). Both llama.cpp servers run at once and every question goes to one model and then
straight to the other, so a shared, busy machine slows both alike: the time ratio is fair even
when the absolute seconds are not. Prints one JSON object (per model, plus the ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_QUESTIONS

from core.answer_eval import ScoredAnswer, score_answer, summarize_answers
from core.config import load_settings
from core.evaluation import OUT_OF_SCOPE, load_questions
from core.generation import OpenAIChatLLM
from core.local_llm import PACKAGED_MODELS, local_llm_server, packaged_model_path
from core.service import RagService, open_service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    questions = [q for q in load_questions(args.questions) if q.kind != OUT_OF_SCOPE]
    questions = questions[: args.limit] if args.limit else questions
    results: dict[str, Any] = {"benchmark": "local_models", "questions": len(questions)}
    async with contextlib.AsyncExitStack() as stack:
        base = await stack.enter_async_context(open_service(settings, generation=False))
        services: dict[str, RagService] = {}
        for model in PACKAGED_MODELS:
            path = packaged_model_path(settings.data_dir, model)
            url = f"http://127.0.0.1:{_free_port()}/v1"
            started = time.perf_counter()
            await stack.enter_async_context(
                local_llm_server(
                    path, model.name, url, args.threads, settings.local_llm_context, ready_timeout=600
                )
            )
            llm = OpenAIChatLLM(
                url,
                model.name,
                temperature=settings.llm_temperature,
                top_p=settings.llm_top_p,
                max_tokens=settings.llm_max_tokens,
                timeout=args.timeout,
                max_retries=0,
            )
            stack.push_async_callback(llm.close)
            services[model.name] = RagService(settings, base.store, base.embedder, llm)
            results[model.name] = {
                "gguf_bytes": path.stat().st_size,
                "server_start_s": round(time.perf_counter() - started, 1),
            }
        await base.warm_up()
        rows: dict[str, list[ScoredAnswer]] = {name: [] for name in services}
        for n, q in enumerate(questions, start=1):
            for name, service in services.items():
                row = await score_answer(q, await service.ask(q.question), None)
                rows[name].append(row)
                if args.answers_out:
                    with args.answers_out.open("a", encoding="utf-8") as out:
                        record = {"model": name, "id": q.id, "outcome": row.answer.outcome}
                        record |= {"seconds": round(row.answer.seconds, 2), "text": row.answer.text}
                        record |= {"sources": [s.url for s in row.answer.sources]}
                        out.write(json.dumps(record) + "\n")
                proxy = "-" if row.proxy_mean is None else f"{row.proxy_mean:.2f}"
                print(
                    f"[{n}/{len(questions)}] {name} {row.answer.outcome} {row.answer.seconds:.1f}s "
                    f"proxy={proxy} cited_relevant={row.cited_relevant} {row.answer.text[:90]!r}",
                    file=sys.stderr,
                )
        for name, model_rows in rows.items():
            summary = summarize_answers(model_rows, name)
            summary.pop("model")
            answered = [r.answer.seconds for r in model_rows if r.answer.outcome == "answered"]
            summary["answer_seconds_mean"] = round(sum(answered) / len(answered), 2) if answered else 0.0
            results[name] |= summary
    small, large = (m.name for m in sorted(PACKAGED_MODELS, key=lambda m: m.size))
    if results[small]["answer_seconds_mean"]:
        results["time_ratio_large_over_small"] = round(
            results[large]["answer_seconds_mean"] / results[small]["answer_seconds_mean"], 2
        )
    results["threads"] = args.threads
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--limit", type=int, default=0, help="only the first N in-scope questions")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads per server")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per answer (busy machines)")
    parser.add_argument("--answers-out", type=Path, help="append every answer here as a JSON line")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
