"""A full rebuild beside the live index (alias switch) against the old drop-then-rebuild.

    python benchmarks/bench_rebuild.py [--pages 30]

Indexes the first N pages of the bundled snapshot into Milvus Lite, then rebuilds the index
twice while a reader keeps searching: first the way `--full` used to work (drop the collection,
index again in place), then the atomic way (`index --full`: build beside, switch the alias, drop
the old). Prints one JSON object:
- first_s: the first index; unchanged_s: a run with nothing changed (reads every chunk's hash)
- drop_rebuild_s / atomic_rebuild_s and atomic_vs_drop: the rebuild times and their ratio
- *_reader: searches made during each rebuild, how many failed or found nothing, and the
  longest search (the reader's view: the old way fails or answers from a partial index)
- page_hashes_ms / first_chunks_only_ms: reading every chunk's hash (what repair after a stop
  midway needs) against reading only each page's first chunk (what it did before), on this
  index and (`snapshot_scale`) on a synthetic one the size of the whole docs (476 pages x 24
  chunks, random vectors)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (import path and quiet start-up)
import numpy as np

from core.config import load_settings
from core.embedding import SentenceTransformerEmbedder
from core.errors import DocsBotError
from core.models import Chunk
from core.service import RagService, open_service
from core.sources import _bundled_files
from core.store import ChunkStore

QUESTION = "How do I choose HNSW parameters?"


def write_pages(folder: Path, limit: int) -> int:
    folder.mkdir(parents=True)
    count = 0
    for name, text in _bundled_files():
        if text and count < limit:
            (folder / Path(name).name).write_text(text, encoding="utf-8")
            count += 1
    return count


async def reader(service: RagService, stop: asyncio.Event) -> dict[str, Any]:
    """Search until `stop`; count failures and empty results."""
    searches = failed = empty = 0
    slowest = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            result = await service.search(QUESTION)
            empty += not result.hits
        except DocsBotError:
            failed += 1
            service._ready = False  # open again next time, as a fresh question would
        slowest = max(slowest, time.perf_counter() - started)
        searches += 1
        await asyncio.sleep(0.05)
    return {"searches": searches, "failed": failed, "empty": empty, "max_search_ms": round(slowest * 1000)}


async def rebuild_while_reading(service: RagService, drop_first: bool) -> tuple[float, dict[str, Any]]:
    stop = asyncio.Event()
    reading = asyncio.create_task(reader(service, stop))
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    if drop_first:  # what `--full` did before: the live collection goes first
        await asyncio.to_thread(service.store.drop)
        run = await service.index()
    else:
        run = await service.index(full=True)
    seconds = time.perf_counter() - started
    assert run.outcome == "ok", run.message
    stop.set()
    return round(seconds, 2), await reading


def hash_reads(store: ChunkStore) -> tuple[float, float]:
    """Milliseconds to read every chunk's hash, and to read only the first chunks'."""
    started = time.perf_counter()
    store.page_hashes()
    every = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    list(store._iterate("position == 0", ["page_id", "page_hash"]))
    return round(every, 1), round((time.perf_counter() - started) * 1000, 1)


def snapshot_scale(store: ChunkStore, pages: int = 476, per_page: int = 24) -> dict[str, Any]:
    synthetic = store.build_beside(store.dimension or 384, {})
    rng = np.random.default_rng(0)
    for page in range(pages):
        chunks = [
            Chunk(f"p{page}c{i}", f"page{page}.md", "t", "h", "u", "text", "text", i, f"hash{page}")
            for i in range(per_page)
        ]
        synthetic.upsert(
            chunks, rng.standard_normal((per_page, synthetic.dimension or 384)).astype("float32")
        )
    every, first = hash_reads(synthetic)
    synthetic.drop()
    return {"chunks": pages * per_page, "page_hashes_ms": every, "first_chunks_only_ms": first}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pages = write_pages(root / "docs", args.pages)
        settings = load_settings(
            env_file=None,
            milvus_uri=str(root / "milvus.db"),
            data_dir=root / "data",
            docs_source=str(root / "docs"),
        )
        embedder = SentenceTransformerEmbedder(settings.embedding_model)
        async with open_service(settings, embedder=embedder, generation=False) as service:
            started = time.perf_counter()
            first = await service.index()
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            await service.index()
            unchanged_s = time.perf_counter() - started

            hashes_ms, first_only_ms = await asyncio.to_thread(hash_reads, service.store)
            scale = await asyncio.to_thread(snapshot_scale, service.store)

            drop_s, drop_reader = await rebuild_while_reading(service, drop_first=True)
            atomic_s, atomic_reader = await rebuild_while_reading(service, drop_first=False)
        return {
            "pages": pages,
            "chunks": first.chunks_embedded,
            "first_s": round(first_s, 2),
            "unchanged_s": round(unchanged_s, 2),
            "drop_rebuild_s": drop_s,
            "atomic_rebuild_s": atomic_s,
            "atomic_vs_drop": round(atomic_s / drop_s, 2),
            "drop_rebuild_reader": drop_reader,
            "atomic_rebuild_reader": atomic_reader,
            "page_hashes_ms": hashes_ms,
            "first_chunks_only_ms": first_only_ms,
            "snapshot_scale": scale,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
