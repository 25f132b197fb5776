"""What built an index: stored with the collection, compared before it is used.

A collection's vectors only make sense for the embedding model that made them, and its chunks
for the chunker settings that cut them. The fingerprint records both; `docsbot index` rebuilds
the collection (atomically, see `core.store`) when it differs from the configuration, and
`ask`/`chat`/`serve` refuse to search an index built with another embedding model.

To add a field: add it to `index_fingerprint`; add its name to `READER_KEYS` too when searching
an index built with another value would give wrong answers (not only different chunks).
"""

from __future__ import annotations

from typing import Any

from core.chunking import CHUNKER_VERSION, Chunker
from core.embedding import Embedder

#: Fields that must match for questions to be answered from an index (the query vectors must be
#: in the same space as the stored ones); every field must match for `index` to update in place.
READER_KEYS = ("embedding_model",)

#: The setting behind each field, for the messages.
_SETTING = {
    "embedding_model": "EMBEDDING_MODEL",
    "dimension": "EMBEDDING_MODEL",
    "chunk_size": "CHUNK_SIZE",
    "chunk_overlap": "CHUNK_OVERLAP",
    "chunker_version": "the chunker version",
}


def index_fingerprint(embedder: Embedder, chunker: Chunker) -> dict[str, Any]:
    """The fingerprint an index built now would get (loads the model to learn its dimension)."""
    return {
        "embedding_model": embedder.name,
        "dimension": embedder.dimension,
        "chunk_size": chunker.chunk_size,
        "chunk_overlap": chunker.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
    }


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
