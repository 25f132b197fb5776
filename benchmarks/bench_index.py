"""Index throughput, against raw `model.encode` of the same chunks in the same run.

    python benchmarks/bench_index.py [--pages N] [--source bundled|DIR] [--batch 32]

Prints one JSON object:
- chunks, pages
- raw_encode_chunks_per_s: sentence-transformers `encode` of every chunk's text, nothing else
- pipeline_chunks_per_s: the whole `docsbot index` path (read, parse, chunk, embed, write to
  Milvus Lite, run record) on a fresh collection
- pipeline_vs_raw: the ratio of the two (goal >= 0.85)
- reindex_unchanged_s and reindex_share: a second index run with nothing changed, and its share
  of the full run's time (goal <= 0.03)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (import path and quiet start-up)

from core.chunking import Chunker
from core.config import load_settings
from core.embedding import SentenceTransformerEmbedder
from core.service import open_service
from core.sources import SnapshotSource, SourceResult


class FirstPages:
    """A docs source: the first N pages of another one (all of them when N is None)."""

    def __init__(self, location: str, pages: int | None) -> None:
        loaded = SnapshotSource(location, "https://milvus.io/docs/").load_sync()
        self.pages = loaded.pages[:pages]
        self.description = f"{location} (first {len(self.pages)} pages)"

    async def load(self, progress: object = None) -> SourceResult:
        return SourceResult(pages=list(self.pages), listed=len(self.pages))


async def main(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = FirstPages(args.source, args.pages)
        settings = load_settings(
            env_file=None,
            milvus_uri=str(root / "milvus.db"),
            data_dir=root / "data",
            embedding_batch_size=args.batch,
        )
        embedder = SentenceTransformerEmbedder(settings.embedding_model, batch_size=args.batch)
        _ = embedder.model  # load outside both timings

        pages = source.pages
        chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        texts = [c.search_text for p in pages for c in chunker.chunk_page(p)]

        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=args.batch, normalize_embeddings=True)
        raw_s = time.perf_counter() - started

        async with open_service(settings, embedder=embedder) as service:
            started = time.perf_counter()
            full = await service.indexer.run(source)
            full_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await service.indexer.run(source)
            again_s = time.perf_counter() - started
        assert full.outcome == again.outcome == "ok", (full.message, again.message)
        assert full.chunks_embedded == len(texts) and again.chunks_embedded == 0

    return {
        "benchmark": "index",
        "model": settings.embedding_model,
        "batch": args.batch,
        "pages": len(pages),
        "chunks": len(texts),
        "raw_encode_s": round(raw_s, 2),
        "raw_encode_chunks_per_s": round(len(texts) / raw_s, 1),
        "pipeline_s": round(full_s, 2),
        "pipeline_chunks_per_s": round(len(texts) / full_s, 1),
        "pipeline_vs_raw": round(raw_s / full_s, 3),
        "reindex_unchanged_s": round(again_s, 2),
        "reindex_share": round(again_s / full_s, 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="bundled")
    parser.add_argument("--pages", type=int, default=None, help="only the first N pages")
    parser.add_argument("--batch", type=int, default=32)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
