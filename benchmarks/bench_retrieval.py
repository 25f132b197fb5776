"""Retrieval latency (embed the question + hybrid search) on an existing full index.

    python benchmarks/bench_retrieval.py [--questions FILE] [--repeat 3]

Uses the index the settings point at (MILVUS_URI, default ./data/milvus.db: run `docsbot index`
or `make demo` first). Questions: the dev set if present, else the test fixture's. Prints one
JSON object with p50/p95 in milliseconds for the whole search, for its two parts, and for the
retrieval gate's vocabulary analysis (unknown names: wordfreq + rapidfuzz), with its share of the
whole search as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from common import DEFAULT_QUESTIONS, percentile_ms

from core.config import load_settings
from core.embedding import embed_query
from core.evaluation import load_questions
from core.retrieval import clean_query
from core.service import open_service


async def main(args: argparse.Namespace) -> dict[str, object]:
    questions = [q.question for q in load_questions(args.questions)]
    settings = load_settings()
    async with open_service(settings) as service:
        status = await service.status()
        if status.chunks == 0:
            raise SystemExit("the index is empty: run `docsbot index` first")
        await service.warm_up()
        vocabulary = await service.retriever.vocabulary()
        total, embed, search, gate = [], [], [], []
        for _ in range(args.repeat):
            for question in questions:
                started = time.perf_counter()
                await service.search(question)
                total.append(time.perf_counter() - started)
                started = time.perf_counter()
                vector = await embed_query(service.embedder, clean_query(question))
                embed.append(time.perf_counter() - started)
                started = time.perf_counter()
                await asyncio.to_thread(service.store.dense_search, vector, settings.retrieval_candidates)
                await asyncio.to_thread(service.store.sparse_search, question, settings.retrieval_candidates)
                search.append(time.perf_counter() - started)
                started = time.perf_counter()
                vocabulary.analyse(clean_query(question))
                gate.append(time.perf_counter() - started)
    return {
        "benchmark": "retrieval",
        "chunks": status.chunks,
        "queries": len(total),
        "p50_ms": percentile_ms(total, 0.5),
        "p95_ms": percentile_ms(total, 0.95),
        "embed_p50_ms": percentile_ms(embed, 0.5),
        "embed_p95_ms": percentile_ms(embed, 0.95),
        "milvus_p50_ms": percentile_ms(search, 0.5),
        "milvus_p95_ms": percentile_ms(search, 0.95),
        "gate_terms_p50_ms": percentile_ms(gate, 0.5),
        "gate_terms_p95_ms": percentile_ms(gate, 0.95),
        "gate_terms_share_of_search_p50": round(statistics.median(gate) / statistics.median(total), 3),
        "mean_ms": round(statistics.mean(total) * 1000, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--repeat", type=int, default=3)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
