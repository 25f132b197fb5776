"""The Milvus collection of chunks: schema, writes by page, dense and BM25 searches.

One collection holds, per chunk, the dense vector, a sparse vector that Milvus's BM25 function
derives from `search_text`, and the metadata needed to cite it. It works on Milvus Lite (a local
path, the default) and on any Milvus server (an http(s) URI). A server without the BM25 function
gets a dense-only collection and retrieval falls back to dense search.

Readers never use a collection's own name: COLLECTION is a Milvus *alias* that points at the
live collection `<COLLECTION>_v<timestamp>`. A full rebuild fills a new collection beside the
live one (`build_beside`) and `switch_to` moves the alias in one call, then drops the old one,
so a reader sees the old index or the new one, never a half-built one. An index built by an
older version (a real collection named COLLECTION) is replaced the same way: the alias takes its
name once the new collection is complete. Each collection carries the fingerprint of what built
it (see `core.fingerprint`) as a collection property.

pymilvus's `MilvusClient` is synchronous: the async wrappers in `retrieval`/`indexer` call it
through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import StoreError, StoreLockedError
from core.models import Chunk


@contextlib.contextmanager
def _pymilvus_sees_no_uri() -> Iterator[None]:
    """On import pymilvus loads `.env` and parses MILVUS_URI as a server address, which fails
    for a Milvus Lite path (our default). Our settings own MILVUS_URI: hide it during import."""
    saved = os.environ.get("MILVUS_URI")
    os.environ["MILVUS_URI"] = ""
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MILVUS_URI"]
        else:
            os.environ["MILVUS_URI"] = saved


with _pymilvus_sees_no_uri():
    # DataType and MilvusException are re-exported for core.lease (imported after the guard above)
    from pymilvus import DataType as DataType
    from pymilvus import Function, FunctionType, MilvusClient
    from pymilvus import MilvusException as MilvusException

log = logging.getLogger(__name__)
# Milvus Lite has no MVCC timestamp service (AllocTimestamp): on every query_iterator pymilvus
# warns and Lite's in-process gRPC server logs a traceback, then both fall back to a client-side
# timestamp, which is fine. Keep that noise out of users' terminals.
logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)

_TEXT_MAX = 16_384
_ANALYZER = {"tokenizer": "standard", "filter": ["lowercase"]}
_OUTPUT_FIELDS = ["id", "page_id", "title", "heading", "url", "text", "search_text", "position", "page_hash"]
_WRITE_BATCH = 512
#: What a page id looks like (a docs file name), before it goes into a filter expression.
PAGE_ID = re.compile(r"[\w.\-]+\.md")
_QUERY_WINDOW = 16_384  # Milvus's cap on offset + limit of one query
_FINGERPRINT_PROPERTY = "docsbot.fingerprint"
#: Milvus's error code for a search or query on a collection that is not loaded (released).
_NOT_LOADED = 101


def quote(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return json.dumps(value)


class ChunkStore:
    """A Milvus collection of chunks. Create with `ChunkStore.connect(...)`, close with `close()`."""

    def __init__(self, client: MilvusClient, collection: str, uri: str) -> None:
        self.client = client
        self.collection = collection  # the alias readers use (or a collection being built)
        self.uri = uri
        self.has_sparse = False
        self.dimension: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def connect(cls, uri: str, collection: str, token: str = "", timeout: float = 10.0) -> ChunkStore:
        """Open Milvus Lite (a local path) or a Milvus server (URI). Raises StoreError clearly."""
        is_lite = "://" not in uri
        if is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        lite_logger = logging.getLogger("milvus_lite")
        previous = lite_logger.level
        lite_logger.setLevel(logging.CRITICAL)  # its start-up failure log is a full traceback
        try:
            client = MilvusClient(uri=uri, token=token, timeout=timeout)
        except Exception as exc:
            if is_lite and _lite_dir_locked(uri):
                raise StoreLockedError(
                    f"the Milvus Lite data at {uri} is in use by another docsbot process "
                    "(Milvus Lite allows one process at a time); stop it, or share one store "
                    "with `milvus-lite server --data-dir PATH` and MILVUS_URI=http://127.0.0.1:PORT"
                ) from exc
            raise StoreError(f"could not connect to Milvus at {uri}: {exc}") from exc
        finally:
            lite_logger.setLevel(previous)
        return cls(client, collection, uri)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # --- schema ------------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self._call(self.client.has_collection, self.collection))

    def open(self) -> bool:
        """Load an existing collection; False when it does not exist yet."""
        if not self.exists():
            return False
        info = self._call(self.client.describe_collection, self.collection)
        self.has_sparse = any(f["name"] == "sparse" for f in info["fields"])
        self.dimension = next(int(f["params"]["dim"]) for f in info["fields"] if f["name"] == "dense")
        self._call(self.client.load_collection, self.collection)
        return True

    def fingerprint(self) -> dict[str, Any] | None:
        """What built the live collection (None: it does not exist, or an older version built it)."""
        if not self.exists():
            return None
        info = self._call(self.client.describe_collection, self.collection)
        raw = (info.get("properties") or {}).get(_FINGERPRINT_PROPERTY, "")
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            log.warning("collection %s: unreadable fingerprint %r", self.collection, raw)
            return None
        return value if isinstance(value, dict) else None

    def live_collection(self) -> str | None:
        """The collection behind the name readers use: the alias's target, the name itself for
        an index built before aliases (a real collection), or None when there is none."""
        if not self.exists():
            return None
        info = self._call(self.client.describe_collection, self.collection)
        return str(info.get("collection_name") or self.collection)

    def create(self, dimension: int, fingerprint: dict[str, Any] | None = None) -> None:
        """Create a new collection and point the alias at it (first index: nothing to replace)."""
        new = self.build_beside(dimension, fingerprint)
        self.switch_to(new)

    def build_beside(self, dimension: int, fingerprint: dict[str, Any] | None = None) -> ChunkStore:
        """A new, empty, loaded collection next to the live one, for a rebuild; readers keep
        using the live one until `switch_to`."""
        name = f"{self.collection}_v{time.time_ns() // 1000}"
        target = ChunkStore(self.client, name, self.uri)
        target._create_loaded(dimension, fingerprint or {})
        return target

    def switch_to(self, new: ChunkStore) -> None:
        """Point the alias at `new` (one Milvus call), then drop the collection it replaced."""
        old = self.live_collection()
        if old is None:
            self._call(self.client.create_alias, new.collection, self.collection)
        elif old == self.collection:
            # An index from before aliases holds the alias's name: drop it, then name the new
            # one (Milvus keeps collection and alias names apart; readers miss for a moment).
            log.warning("replacing collection %s (built before aliases) by %s", old, new.collection)
            self._call(self.client.drop_collection, old)
            self._call(self.client.create_alias, new.collection, self.collection)
        else:
            self._call(self.client.alter_alias, new.collection, self.collection)
            if old != new.collection:
                self._call(self.client.drop_collection, old)
        log.info("collection %s now serves as %s (replaced %s)", new.collection, self.collection, old)
        self.open()

    def drop_orphans(self) -> list[str]:
        """Drop collections left by a rebuild that never finished (killed, failed to clean up)."""
        live = self.live_collection()
        # only our own names: `_v` + a microsecond timestamp (not e.g. a `milvus_docs_v2` of another app)
        pattern = re.compile(rf"^{re.escape(self.collection)}_v\d{{16,}}$")
        orphans = [
            name for name in self._call(self.client.list_collections) if pattern.match(name) and name != live
        ]
        for name in orphans:
            log.warning("dropping %s, left behind by a rebuild that did not finish", name)
            self._call(self.client.drop_collection, name)
        return orphans

    def _create_loaded(self, dimension: int, fingerprint: dict[str, Any]) -> None:
        """Create and load this collection; BM25 when the server supports it, else dense only."""
        properties = {_FINGERPRINT_PROPERTY: json.dumps(fingerprint, sort_keys=True)}
        try:
            self._create(dimension, with_bm25=True, properties=properties)
            self.has_sparse = True
        except MilvusException as exc:
            log.warning("Milvus rejected the BM25 function (%s); creating a dense-only collection", exc)
            with contextlib.suppress(MilvusException):
                self.client.drop_collection(self.collection)
            self._create(dimension, with_bm25=False, properties=properties)
            self.has_sparse = False
        self.dimension = dimension
        self._call(self.client.load_collection, self.collection)

    def _create(self, dimension: int, with_bm25: bool, properties: dict[str, str]) -> None:
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("page_id", DataType.VARCHAR, max_length=512)
        schema.add_field("page_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("position", DataType.INT32)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("heading", DataType.VARCHAR, max_length=2048)
        schema.add_field("url", DataType.VARCHAR, max_length=2048)
        schema.add_field("text", DataType.VARCHAR, max_length=_TEXT_MAX)
        schema.add_field(
            "search_text",
            DataType.VARCHAR,
            max_length=_TEXT_MAX,
            enable_analyzer=with_bm25,
            analyzer_params=_ANALYZER if with_bm25 else None,
        )
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        index = self.client.prepare_index_params()
        index.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
        if with_bm25:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["search_text"],
                    output_field_names=["sparse"],
                )
            )
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._call(
            self.client.create_collection,
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            properties=properties,
        )

    def drop(self) -> None:
        """Drop the alias and the collection behind it (or this collection, when it is one)."""
        live = self.live_collection()
        if live is not None and live != self.collection:
            self._call(self.client.drop_alias, self.collection)
        if live is not None:
            self._call(self.client.drop_collection, live)
        self.has_sparse, self.dimension = False, None

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        rows = [
            {
                "id": c.id,
                "page_id": c.page_id,
                "page_hash": c.page_hash,
                "position": c.position,
                "title": c.title[:1000],
                "heading": c.heading[:2000],
                "url": c.url[:2000],
                "text": c.text[: _TEXT_MAX // 4],
                "search_text": c.search_text[: _TEXT_MAX // 4],
                "dense": vector.tolist(),
            }
            for c, vector in zip(chunks, vectors, strict=True)
        ]
        for start in range(0, len(rows), _WRITE_BATCH):
            self._call(self.client.upsert, self.collection, rows[start : start + _WRITE_BATCH])

    def delete_stale(self, page_id: str, page_hash: str) -> None:
        """Delete a page's chunks from older versions (after its new chunks were written)."""
        expr = f"page_id == {quote(page_id)} and page_hash != {quote(page_hash)}"
        self._call(self.client.delete, self.collection, filter=expr)

    def delete_pages(self, page_ids: Sequence[str]) -> None:
        for start in range(0, len(page_ids), 100):
            ids = ", ".join(quote(p) for p in page_ids[start : start + 100])
            self._call(self.client.delete, self.collection, filter=f"page_id in [{ids}]")

    # --- reads -------------------------------------------------------------------------------

    def page_hashes(self) -> dict[str, str]:
        """page id -> content hash of what is indexed. A page whose chunks carry more than one
        hash (a run stopped between writing its new chunks and deleting its old ones) maps to
        "", which matches no content hash, so the next run redoes it."""
        hashes: dict[str, str] = {}
        for row in self._all_rows("", ["page_id", "page_hash"]):
            page_id, page_hash = row["page_id"], row["page_hash"]
            hashes[page_id] = page_hash if hashes.get(page_id, page_hash) == page_hash else ""
        return hashes

    def chunks_of(self, page_ids: Sequence[str]) -> list[Chunk]:
        """Every stored chunk of these pages (to carry them into a rebuilt collection)."""
        chunks: list[Chunk] = []
        for start in range(0, len(page_ids), 100):
            ids = ", ".join(quote(p) for p in page_ids[start : start + 100])
            chunks += [_to_chunk(row) for row in self._iterate(f"page_id in [{ids}]", _OUTPUT_FIELDS)]
        return sorted(chunks, key=lambda c: (c.page_id, c.position))

    def neighbours(self, chunks: Sequence[Chunk], span: int) -> list[Chunk]:
        """The stored chunks up to `span` positions before and after each of `chunks` on its
        page (the chunks themselves included), in one query."""
        ranges = [
            f"(page_id == {quote(c.page_id)} and position >= {c.position - span} "
            f"and position <= {c.position + span})"
            for c in chunks
        ]
        if not ranges:
            return []
        return [_to_chunk(row) for row in self._all_rows(" or ".join(ranges), _OUTPUT_FIELDS)]

    def corpus_rows(self) -> list[dict[str, Any]]:
        """Every chunk's indexed text, page id, title and heading path, in one scan (for the
        vocabulary and `retrieval.Headings`)."""
        return list(self._iterate("", ["search_text", "page_id", "title", "heading"]))

    def count_chunks(self) -> int:
        rows = self._call(self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def dense_search(
        self, vector: np.ndarray, limit: int, page_id: str | None = None
    ) -> list[tuple[Chunk, float]]:
        """The passages closest to `vector`, best first; only `page_id`'s when given."""
        if page_id is not None and not PAGE_ID.fullmatch(page_id):
            raise ValueError(f"not a page id: {page_id!r}")
        result = self._call(
            self.client.search,
            self.collection,
            data=[vector.tolist()],
            anns_field="dense",
            limit=limit,
            filter=f'page_id == "{page_id}"' if page_id is not None else "",
            output_fields=_OUTPUT_FIELDS,
            search_params={"metric_type": "IP"},
        )
        return [(_to_chunk(hit["entity"]), float(hit["distance"])) for hit in result[0]]

    def sparse_search(self, query: str, limit: int) -> list[Chunk]:
        """BM25 full-text search, best first ([] on a dense-only collection)."""
        if not self.has_sparse or not query.strip():
            return []
        result = self._call(
            self.client.search,
            self.collection,
            data=[query],
            anns_field="sparse",
            limit=limit,
            output_fields=_OUTPUT_FIELDS,
            search_params={"metric_type": "BM25"},
        )
        return [_to_chunk(hit["entity"]) for hit in result[0]]

    def _all_rows(self, expr: str, fields: list[str]) -> Sequence[dict[str, Any]]:
        """Every matching row: one query when they fit in Milvus's query window (on Milvus Lite
        ten times faster than the iterator: 0.8 s against 8 s for 11,400 rows), else the iterator."""
        rows: Sequence[dict[str, Any]] = self._call(
            self.client.query, self.collection, filter=expr, output_fields=fields, limit=_QUERY_WINDOW
        )
        return rows if len(rows) < _QUERY_WINDOW else list(self._iterate(expr, fields))

    def _iterate(self, expr: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        iterator = self._call(
            self.client.query_iterator, self.collection, batch_size=1000, filter=expr, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return method(*args, **kwargs)
            except MilvusException as exc:
                if exc.code != _NOT_LOADED:
                    raise
                # released under the bot (an operator's release in Attu or the CLI): every search
                # would fail until someone loads it again, so load it and try once more
                log.warning("collection %s is not loaded (%s); loading it again", self.collection, exc)
                self.client.load_collection(self.collection)
                return method(*args, **kwargs)
        except MilvusException as exc:
            raise StoreError(
                f"Milvus {getattr(method, '__name__', 'call')} on {self.collection} failed: {exc}"
            ) from exc


def _to_chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(
        id=row["id"],
        page_id=row["page_id"],
        title=row["title"],
        heading=row["heading"],
        url=row["url"],
        text=row["text"],
        search_text=row["search_text"],
        position=int(row["position"]),
        page_hash=row["page_hash"],
    )


def _lite_dir_locked(path: str) -> bool:
    """True when another process holds Milvus Lite's lock on `path`."""
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    import fcntl

    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
