"""Regenerate the vectors shipped with the bundled snapshot (core/sources/data/snapshot-vectors.npz):
its passages, page titles and heading paths.

    python scripts/build_snapshot_vectors.py

Run it whenever the snapshot (scripts/bundle_snapshot.py), the default embedding model or the
chunking changes: tests/test_embed_cache.py fails while the shipped file is stale. It chunks the
bundled snapshot exactly as `docsbot index` does with the default settings, embeds every distinct
passage with the default model (through the DATA_DIR cache, so a rerun after a small change encodes
only what changed) and stores them as fp16 with the model fingerprint and what they were built from.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.quiet import quiet_third_party

quiet_third_party()

from core.embed_cache import (
    SHIPPED_VECTORS,
    CachedEmbedder,
    EmbeddingCache,
    ShippedVectors,
    model_fingerprint,
)
from core.embedding import SentenceTransformerEmbedder
from core.snapshot_vectors import build_meta, default_settings, snapshot_texts

OUT = ROOT / "core" / "sources" / "data" / SHIPPED_VECTORS


def main() -> None:
    settings = default_settings()
    started = time.perf_counter()
    texts = snapshot_texts(settings)
    fingerprint = model_fingerprint(settings.embedding_model)
    cache = EmbeddingCache(settings.data_dir / "embeddings.sqlite3", 2**31)
    embedder = CachedEmbedder(SentenceTransformerEmbedder(settings.embedding_model), fingerprint, cache)
    vectors = embedder.embed_documents(texts)
    cache.close()
    ShippedVectors.write(OUT, fingerprint, texts, vectors, build_meta(settings, len(texts)))
    print(
        json.dumps(
            {
                "out": str(OUT.relative_to(ROOT)),
                "passages": len(texts),
                "encoded": embedder.last["encoded"],
                "bytes": OUT.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
