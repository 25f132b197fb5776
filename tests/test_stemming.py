"""BM25 on word stems: the text form, and a real Milvus Lite collection searched with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymilvus import DataType, Function, FunctionType

from core.models import Chunk
from core.stemming import bm25_form
from core.store import ChunkStore


def test_words_become_their_stems_and_identifiers_keep_their_shape() -> None:
    assert bm25_form("Running queries on Collections") == "run queri on collect"
    assert bm25_form("IVF_FLAT with efConstruction=360, v2.5") == "ivf_flat with efconstruct=360, v2.5"
    # the same stem from every inflection, whichever side it is on
    assert len({bm25_form(w) for w in ("index", "indexes", "indexing", "indexed")}) == 1
    # other scripts pass through untouched
    assert bm25_form("日本語のテキスト") == "日本語のテキスト"
    assert bm25_form("") == ""


def _chunk(cid: str, text: str) -> Chunk:
    return Chunk(
        id=cid,
        page_id=f"{cid}.md",
        title=cid,
        heading="",
        url=f"https://milvus.io/docs/{cid}.md",
        text=text,
        search_text=text,
        position=0,
        page_hash="h",
    )


_CHUNKS = [
    _chunk("stemmer", "The stemmer filter reduces words to their stem: searching run matches running."),
    _chunk("other", "Partitions group the entities of a collection; load them separately."),
]


def _vectors(n: int) -> np.ndarray:
    return np.eye(n, 4, dtype=np.float32)


def test_an_inflected_question_word_finds_the_passage_through_bm25(tmp_path: Path) -> None:
    store = ChunkStore.connect(str(tmp_path / "m.db"), "stems")
    try:
        store.create(4)
        assert store.stemmed and store.has_sparse
        store.upsert(_CHUNKS, _vectors(2))
        # neither "stemming" nor "runs" is in the passage as written
        assert [c.id for c in store.sparse_search("stemming runs", 5)] == ["stemmer"]
        assert store.chunks_of(["stemmer.md"])[0].search_text == _CHUNKS[0].search_text  # cited as written
    finally:
        store.close()


def test_a_collection_built_before_stemming_is_searched_as_it_was(tmp_path: Path) -> None:
    """Until `docsbot index` rebuilds it (the fingerprint differs), an older collection's BM25 reads
    `search_text` unstemmed, so questions go to it unstemmed too."""
    store = ChunkStore.connect(str(tmp_path / "m.db"), "old")
    client = store.client
    try:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        for name, length in (("id", 64), ("page_id", 512), ("page_hash", 64), ("title", 1024)):
            schema.add_field(name, DataType.VARCHAR, max_length=length, is_primary=name == "id")
        schema.add_field("position", DataType.INT32)
        for name in ("heading", "url", "text"):
            schema.add_field(name, DataType.VARCHAR, max_length=2048)
        schema.add_field(
            "search_text",
            DataType.VARCHAR,
            max_length=2048,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]},
        )
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=4)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["search_text"],
                output_field_names=["sparse"],
            )
        )
        index = client.prepare_index_params()
        index.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection("old", schema=schema, index_params=index, consistency_level="Strong")
        assert store.open() and store.has_sparse and not store.stemmed
        store.upsert(_CHUNKS, _vectors(2))  # no bm25_text field to write
        assert [c.id for c in store.sparse_search("running", 5)] == ["stemmer"]
        assert store.sparse_search("stemming runs", 5) == []
    finally:
        store.close()
