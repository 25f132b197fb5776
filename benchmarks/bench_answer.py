"""Service overhead on the answer path: time to first token through `RagService.stream` minus
time to first token of the raw LLM call with the same prompt, and the retrieval time inside it.

    python benchmarks/bench_answer.py [--questions FILE] [--llm-url URL --llm-model NAME]

Uses the index the settings point at (run `docsbot index` first). By default the LLM is the
faithful fake OpenAI-compatible streaming server from tests/fakes on 127.0.0.1 (so model speed
does not drown the milliseconds being measured); pass --llm-url to measure against a real one.
Goal: overhead <= retrieval + 20 ms (p50 and p95). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from common import DEFAULT_QUESTIONS, percentile_ms

from core.config import load_settings
from core.evaluation import load_questions
from core.generation import OpenAIChatLLM
from core.models import Answer
from core.prompting import build_messages
from core.service import RagService, open_service
from tests.fakes.llm_server import FakeLLM


async def _ttft_service(service: RagService, question: str) -> tuple[float | None, Answer]:
    started = time.perf_counter()
    first: float | None = None
    answer: Answer | None = None
    async for part in service.stream(question):
        if isinstance(part, Answer):
            answer = part
        elif first is None:
            first = time.perf_counter() - started
    assert answer is not None
    return first, answer


async def _ttft_raw(llm: OpenAIChatLLM, messages: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    first = None
    async for _delta in llm.stream(messages):
        if first is None:
            first = time.perf_counter() - started
    assert first is not None
    return first


async def main(args: argparse.Namespace) -> dict[str, object]:
    questions = [q.question for q in load_questions(args.questions)]
    fake = None if args.llm_url else await FakeLLM(answer="An answer citing [1] and [2].").start()
    url = args.llm_url or (fake.base_url if fake else "")
    llm = OpenAIChatLLM(url, args.llm_model, max_tokens=args.max_tokens)
    try:
        async with open_service(load_settings(), generation=False) as base:
            service = RagService(base.settings, base.store, base.embedder, llm)
            await service.warm_up()
            await _ttft_service(service, questions[0])  # warm the HTTP connection too
            overhead, retrieval, service_ttft, raw_ttft = [], [], [], []
            for _ in range(args.repeat):
                for question in questions:
                    first, answer = await _ttft_service(service, question)
                    if first is None or answer.retrieval is None:
                        continue  # not covered: the LLM is never called
                    raw = await _ttft_raw(llm, build_messages(question, answer.retrieval.hits))
                    service_ttft.append(first)
                    raw_ttft.append(raw)
                    overhead.append(first - raw)
                    retrieval.append(answer.retrieval.seconds)
    finally:
        await llm.close()
        if fake:
            await fake.stop()
    margin = [o - r for o, r in zip(overhead, retrieval, strict=True)]
    return {
        "benchmark": "answer_overhead",
        "llm": "fake streaming server" if fake else url,
        "answered": len(overhead),
        "service_ttft_p50_ms": percentile_ms(service_ttft, 0.5),
        "raw_ttft_p50_ms": percentile_ms(raw_ttft, 0.5),
        "overhead_p50_ms": percentile_ms(overhead, 0.5),
        "overhead_p95_ms": percentile_ms(overhead, 0.95),
        "retrieval_p50_ms": percentile_ms(retrieval, 0.5),
        "retrieval_p95_ms": percentile_ms(retrieval, 0.95),
        "overhead_minus_retrieval_p50_ms": percentile_ms(margin, 0.5),
        "overhead_minus_retrieval_p95_ms": percentile_ms(margin, 0.95),
        "goal_met": percentile_ms(margin, 0.95) <= 20.0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--llm-url", default="")
    parser.add_argument("--llm-model", default="fake-model")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
