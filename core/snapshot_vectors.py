"""What the shipped snapshot vectors were built from, and whether they still match.

`scripts/build_snapshot_vectors.py` writes core/sources/data/snapshot-vectors.npz from these
functions; `stale_reasons()` tells (and a test asserts) when the file no longer matches the
bundled snapshot, the default model or the chunker, so it must be rebuilt.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from core.chunking import CHUNKER_VERSION, Chunker
from core.config import PACKAGED_MINILM, Settings, load_settings
from core.embed_cache import model_fingerprint, shipped_meta
from core.sources import BUNDLED, SnapshotSource


def default_settings() -> Settings:
    """The settings the shipped vectors are for: the defaults, with no .env or environment model."""
    return load_settings(env_file=None, embedding_model=PACKAGED_MINILM, query_instruction="")


def snapshot_digest() -> str:
    archive = resources.files("core.sources") / "data" / "milvus-docs-en.tar.xz"
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def snapshot_texts(settings: Settings) -> list[str]:
    """Every distinct text embedded for the bundled snapshot, sorted: the passages `docsbot index`
    embeds, and the page titles and heading paths the first search embeds (`retrieval.Headings`)."""
    pages = SnapshotSource(BUNDLED, settings.docs_public_base_url).load_sync().pages
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    chunks = [chunk for page in pages for chunk in chunker.chunk_page(page)]
    headings = {text for chunk in chunks for text in (chunk.title, chunk.heading) if text.strip()}
    return sorted({chunk.search_text for chunk in chunks} | headings)


def build_meta(settings: Settings, passages: int) -> dict[str, object]:
    return {
        "snapshot_sha256": snapshot_digest(),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
        "passages": passages,
    }


def stale_reasons() -> list[str]:
    """Why the shipped vectors don't match what `docsbot index` would embed now ([] when they do)."""
    meta = shipped_meta()
    if meta is None:
        return ["the package ships no snapshot vectors"]
    settings = default_settings()
    expected = build_meta(settings, int(str(meta.get("passages", 0))))
    reasons = [
        f"{key} is {meta.get(key)!r}, now {value!r}"
        for key, value in expected.items()
        if meta.get(key) != value
    ]
    fingerprint = model_fingerprint(settings.embedding_model)
    if meta.get("fingerprint_key") != fingerprint.key:
        reasons.append(f"the default model's fingerprint changed (now {fingerprint.key})")
    return reasons
