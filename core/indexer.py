"""Indexing: pages -> chunks -> vectors -> Milvus, incremental by page content hash.

- unchanged pages (same hash as indexed) cost nothing: no chunking, no embedding;
- new and changed pages are chunked (in a worker thread) and embedded; their new chunks are
  written first and the page's older chunks deleted afterwards, so a reader sees the old or the
  new page, never half. A page whose chunks carry two hashes (a run stopped between the two
  steps) reads as not indexed (`ChunkStore.page_hashes`), so the next run redoes it;
- pages the source shows to be gone (`SourceResult.removal_candidates`: never a page that
  failed to load) are deleted, unless the safety gate trips: when more than `max_error_rate` of
  the pages failed to load, or more than `max_delete_ratio` of the indexed pages would go,
  nothing is deleted and the run ends as `needs_review` (`force=True` overrides);
- a full rebuild (`--full`, or a collection whose fingerprint differs from the configuration,
  or one built by an older version without a fingerprint) fills a new collection beside the
  live one and switches the alias to it at the end (see `core.store`). Readers keep the old
  index until then; a rebuild that fails or is stopped is dropped and the old index stays.
  Pages that failed to load (and, when the gate trips, pages that would be deleted) are carried
  over from the old collection, re-embedded from their stored text.

One run at a time per collection: a file lock in DATA_DIR and a lease in Milvus
(`core.lease`) for processes that share a Milvus server. A run has a deadline
(REINDEX_TIMEOUT); past it, or on shutdown, it stops at once, but a Milvus write already in a
worker thread is waited for before the lock and lease are released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np

from core.chunking import Chunker
from core.embedding import Embedder, embed_documents
from core.errors import DocsBotError, SourceError, StoreError
from core.fingerprint import differences, index_fingerprint
from core.lease import ReindexLease
from core.models import Chunk, Page
from core.progress import ProgressTracker
from core.runlog import IndexRun, RunLog
from core.sources import DocsSource, SourceResult
from core.store import ChunkStore

log = logging.getLogger(__name__)

#: Chunks embedded and written per step: bounds the work lost to a crash and paces progress.
EMBED_GROUP = 2048

T = TypeVar("T")


class Indexer:
    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        chunker: Chunker,
        runs: RunLog,
        *,
        max_error_rate: float = 0.1,
        max_delete_ratio: float = 0.2,
        timeout: float = 3600.0,
        lease: ReindexLease | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.runs = runs
        self.max_error_rate = max_error_rate
        self.max_delete_ratio = max_delete_ratio
        self.timeout = timeout
        self.lease = lease or ReindexLease(store)

    async def run(
        self,
        source: DocsSource,
        *,
        full: bool = False,
        force: bool = False,
        trigger: str = "cli",
        progress: ProgressTracker | None = None,
        note: str = "",
    ) -> IndexRun:
        """Bring the collection in line with the source; the run record is saved either way.
        `note` goes first in the record's message (why this run happened, e.g. a fallback)."""
        tracker = progress or ProgressTracker()
        started = time.perf_counter()
        run = IndexRun(started_at=_now(), source=source.description, trigger=trigger)
        deadline = asyncio.timeout(self.timeout)
        try:
            with self.runs.exclusive():
                async with self.lease.held(), deadline:
                    await self._run(source, full, force, run, tracker)
        except TimeoutError:
            if not deadline.expired():
                raise
            run.outcome = "failed"
            run.message = (
                f"stopped after REINDEX_TIMEOUT={self.timeout:g} s: nothing was deleted and a full "
                "rebuild was not switched in; the next run starts over"
            )
            log.error("index run failed: %s", run.message)
        except asyncio.CancelledError:
            run.outcome, run.message = "failed", "interrupted (shutdown); the next run resumes it"
            raise
        except DocsBotError as exc:
            log.error("index run failed: %s", exc)
            log.debug("details", exc_info=exc)
            run.outcome, run.message = "failed", str(exc)
        finally:
            run.seconds = round(time.perf_counter() - started, 2)
            run.finished_at = _now()
            run.message = "; ".join(m for m in (note, run.message) if m)
            tracker.update(phase="done")
            self.runs.record(run)
        return run

    async def _run(
        self, source: DocsSource, full: bool, force: bool, run: IndexRun, tracker: ProgressTracker
    ) -> None:
        loaded = await source.load(tracker)
        run.requests = loaded.requests
        run.errors, run.error_samples = len(loaded.errors), dict(list(loaded.errors.items())[:10])
        tracker.update(errors=run.errors)
        if not loaded.pages:
            raise SourceError(
                f"the docs source {source.description} produced no pages; the index was left as it was"
            )
        wanted = await asyncio.to_thread(index_fingerprint, self.embedder, self.chunker)
        await _writing(self.store.drop_orphans)
        if not await asyncio.to_thread(self.store.open):  # first index: nothing to replace
            await _writing(self.store.create, wanted["dimension"], wanted)
            rebuild_why = ""
        else:
            rebuild_why = await asyncio.to_thread(self._rebuild_reason, full, wanted)
        if rebuild_why:
            await self._rebuild(loaded, force, run, tracker, wanted, rebuild_why)
        else:
            await self._update(loaded, force, run, tracker)

    def _rebuild_reason(self, full: bool, wanted: dict[str, Any]) -> str:
        """Why this run must build a new collection ("" to update the live one in place)."""
        if full:
            return "--full"
        built = self.store.fingerprint()
        if built is None:
            return "the index has no fingerprint (built by an older version)"
        return "; ".join(differences(built, wanted))

    # --- in place ------------------------------------------------------------------------------

    async def _update(
        self,
        loaded: SourceResult,
        force: bool,
        run: IndexRun,
        tracker: ProgressTracker,
    ) -> None:
        indexed = await asyncio.to_thread(self.store.page_hashes)
        todo = self._count(loaded, indexed, run)
        removed = loaded.removal_candidates(indexed)
        review = self._gate(len(loaded.errors), loaded.listed, len(removed), len(indexed))
        await self._embed_and_write(self.store, todo, set(indexed), run, tracker)
        if review and not force:
            self._refuse(run, review, removed)
            return
        if review:
            log.warning("safety gate overridden by --force: %s", review)
        if removed:
            tracker.update(phase="deleting")
            await _writing(self.store.delete_pages, removed)
            run.removed = len(removed)
            tracker.update(pages_removed=run.removed)
        run.outcome = "ok"

    # --- beside the live collection ------------------------------------------------------------

    async def _rebuild(
        self,
        loaded: SourceResult,
        force: bool,
        run: IndexRun,
        tracker: ProgressTracker,
        wanted: dict[str, Any],
        why: str,
    ) -> None:
        log.warning("rebuilding collection %s beside the live one: %s", self.store.collection, why)
        indexed = await asyncio.to_thread(self.store.page_hashes)
        self._count(loaded, {}, run)  # every page is added to the new collection
        removed = loaded.removal_candidates(indexed)
        review = self._gate(len(loaded.errors), loaded.listed, len(removed), len(indexed))
        kept = sorted((set(indexed) - {p.id for p in loaded.pages}) - set(removed))
        if review and not force:
            kept += removed  # nothing is deleted: carried over like the pages that failed
        target = await _writing(self.store.build_beside, wanted["dimension"], wanted)
        try:
            await self._embed_and_write(target, loaded.pages, set(), run, tracker)
            if kept:
                await self._carry_over(target, sorted(set(kept)), run, tracker)
            await _writing(self.store.switch_to, target)
        except BaseException:
            await _writing(self._drop_unless_live, target)
            raise
        run.message = f"rebuilt ({why})"
        if review and not force:
            self._refuse(run, review, removed)
            run.message = f"rebuilt ({why}); {run.message}"
            return
        run.removed = len(removed)
        tracker.update(pages_removed=run.removed)
        run.outcome = "ok"

    def _drop_unless_live(self, target: ChunkStore) -> None:
        if self.store.live_collection() == target.collection:
            return  # the switch happened: the rebuilt collection serves
        log.warning("the rebuild did not finish: dropping %s; the old index keeps serving", target.collection)
        target.drop()

    async def _carry_over(
        self, target: ChunkStore, page_ids: list[str], run: IndexRun, tracker: ProgressTracker
    ) -> None:
        """Copy pages the source did not deliver into the new collection, re-embedded."""
        chunks = await asyncio.to_thread(self.store.chunks_of, page_ids)
        tracker.update(chunks_total=tracker.current.chunks_total + len(chunks))
        log.info("carrying %d page(s) (%d chunks) over into the rebuilt index", len(page_ids), len(chunks))
        for start in range(0, len(chunks), EMBED_GROUP):
            group = chunks[start : start + EMBED_GROUP]
            vectors = await embed_documents(self.embedder, [c.search_text for c in group])
            await _writing(target.upsert, group, vectors)
            run.chunks_embedded += len(group)
            run.chunks_encoded += encoded(self.embedder, len(group))
            tracker.update(chunks_embedded=run.chunks_embedded)

    # --- shared steps --------------------------------------------------------------------------

    def _count(self, loaded: SourceResult, indexed: dict[str, str], run: IndexRun) -> list[Page]:
        """The pages to (re)embed; fills the run's added/changed/unchanged counts."""
        todo = [p for p in loaded.pages if indexed.get(p.id) != p.content_hash]
        run.added = sum(p.id not in indexed for p in todo)
        run.changed = len(todo) - run.added
        run.unchanged = len(loaded.pages) - len(todo)
        return todo

    async def _embed_and_write(
        self, target: ChunkStore, todo: list[Page], indexed: set[str], run: IndexRun, tracker: ProgressTracker
    ) -> None:
        chunks_by_page = await asyncio.to_thread(self._chunk_pages, todo)
        total = sum(len(c) for c in chunks_by_page.values())
        tracker.update(phase="embedding", pages_changed=len(todo), chunks_total=total)
        for group in _groups(todo, chunks_by_page):
            if self.lease.lost:
                raise StoreError("another process took over the reindex lease; this run stopped")
            chunks = [c for page in group for c in chunks_by_page[page.id]]
            vectors = await embed_documents(self.embedder, [c.search_text for c in chunks])
            stale = [p for p in group if p.id in indexed]
            await _writing(self._write, target, chunks, vectors, stale)
            run.chunks_embedded += len(chunks)
            run.chunks_encoded += encoded(self.embedder, len(chunks))
            tracker.update(chunks_embedded=run.chunks_embedded)

    def _chunk_pages(self, pages: list[Page]) -> dict[str, list[Chunk]]:
        return {p.id: self.chunker.chunk_page(p) for p in pages}

    def _refuse(self, run: IndexRun, review: str, removed: list[str]) -> None:
        run.outcome = "needs_review"
        run.message = (
            f"{review}; {len(removed)} page(s) were NOT deleted. Check the source, then rerun "
            "with --force (or /reindex force) to accept the deletions"
        )
        run.refused_deletions = removed[:50]
        log.warning("index run needs review: %s", run.message)

    def _gate(self, errors: int, listed: int, removed: int, indexed: int) -> str:
        """Why this run's deletions look unsafe ("" when they don't)."""
        reasons = []
        if listed and errors / listed > self.max_error_rate:
            reasons.append(
                f"{errors} of {listed} pages failed to load "
                f"(more than REINDEX_MAX_ERROR_RATE={self.max_error_rate:g})"
            )
        if indexed and removed / indexed > self.max_delete_ratio:
            reasons.append(
                f"{removed} of {indexed} indexed pages would be deleted "
                f"(more than REINDEX_MAX_DELETE_RATIO={self.max_delete_ratio:g})"
            )
        return "; ".join(reasons)

    @staticmethod
    def _write(target: ChunkStore, chunks: list[Chunk], vectors: np.ndarray, changed: list[Page]) -> None:
        target.upsert(chunks, vectors)
        for page in changed:  # only now do the old chunks go (see the module docstring)
            target.delete_stale(page.id, page.content_hash)


async def _writing(func: Callable[..., T], *args: Any) -> T:
    """Run a Milvus write in a worker thread. A thread cannot be stopped: when the run is
    cancelled (shutdown, REINDEX_TIMEOUT) meanwhile, wait for the write to finish before passing
    the cancellation on, so the lock and the lease are released only once nothing is writing.
    A second cancellation (a second SIGTERM, the end of SHUTDOWN_GRACE) stops the wait."""
    task = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            log.warning("waiting for a Milvus write to finish before stopping")
            await asyncio.wait([task])
        raise


def _groups(pages: list[Page], chunks: dict[str, list[Chunk]]) -> list[list[Page]]:
    """Cut pages into groups of about EMBED_GROUP chunks (a page is never split)."""
    groups: list[list[Page]] = [[]]
    size = 0
    for page in pages:
        if size >= EMBED_GROUP:
            groups.append([])
            size = 0
        groups[-1].append(page)
        size += len(chunks[page.id])
    return [g for g in groups if g]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def encoded(embedder: Embedder, count: int) -> int:
    """How many of the `count` passages of the last `embed_documents` call the model encoded: a
    `CachedEmbedder` says how many it found in the shipped vectors or the cache instead."""
    last = getattr(embedder, "last", None)
    return int(last["encoded"]) if isinstance(last, dict) and "encoded" in last else count
