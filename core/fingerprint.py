"""What built an index: stored with the collection, compared before it is used.

A collection's vectors only make sense for the embedding model that made them (its name and the
digest of its files: the same name can carry other weights after an upgrade), and its chunks for
the chunker settings that cut them. The fingerprint records both; `docsbot index` rebuilds
the collection (atomically, see `core.store`) when it differs from the configuration, and
`ask`/`chat`/`serve` refuse to search an index built with another embedding model.

To add a field: add it to `index_fingerprint`, or to `reader_fingerprint` when searching an index
built with another value would give wrong answers (not only different chunks).
"""

from __future__ import annotations

from typing import Any

from core.chunking import CHUNKER_VERSION, Chunker
from core.embed_cache import CachedEmbedder
from core.embedding import Embedder

#: The setting behind each field, for the messages.
_SETTING = {
    "embedding_model": "EMBEDDING_MODEL",
    "embedding_weights": "the embedding model's files (sha256)",
    "dimension": "EMBEDDING_MODEL",
    "chunk_size": "CHUNK_SIZE",
    "chunk_overlap": "CHUNK_OVERLAP",
    "chunker_version": "the chunker version",
}


def reader_fingerprint(embedder: Embedder) -> dict[str, Any]:
    """The fields that must match for questions to be answered from an index (the query vectors
    must be in the same space as the stored ones)."""
    return {"embedding_model": embedder.name, "embedding_weights": model_weights(embedder)}


def index_fingerprint(embedder: Embedder, chunker: Chunker) -> dict[str, Any]:
    """The fingerprint an index built now would get (loads the model to learn its dimension);
    every field must match for `index` to update the index in place."""
    return reader_fingerprint(embedder) | {
        "dimension": embedder.dimension,
        "chunk_size": chunker.chunk_size,
        "chunk_overlap": chunker.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
    }


def model_weights(embedder: Embedder) -> str:
    """The digest of the embedding model's files, when the embedder knows it ("" otherwise)."""
    return embedder.fingerprint.weights if isinstance(embedder, CachedEmbedder) else ""


def reader_differences(built: dict[str, Any], embedder: Embedder) -> list[str]:
    """`differences` in the `reader_fingerprint` fields, for searching an index with `embedder`:
    a field unknown on either side (an index built before it was recorded, a model whose files
    can't be read) is not held against the index."""
    wanted = reader_fingerprint(embedder)
    known = tuple(key for key in wanted if built.get(key) and wanted[key])
    return differences(built, wanted, known) if known else []


def differences(
    built: dict[str, Any], wanted: dict[str, Any], keys: tuple[str, ...] | None = None
) -> list[str]:
    """`["EMBEDDING_MODEL: the index has 'a', configured 'b'"]`; [] when they agree on `keys`
    (default: every field of `wanted`)."""
    return [
        f"{_SETTING.get(key, key)}: the index has {built.get(key)!r}, configured {wanted.get(key)!r}"
        for key in keys or tuple(wanted)
        if built.get(key) != wanted.get(key)
    ]
