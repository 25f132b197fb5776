"""Incremental indexing: pages -> chunks -> vectors -> Milvus, by page content hash.

- unchanged pages (same hash as indexed) cost nothing: no chunking, no embedding;
- new and changed pages are chunked and embedded; their new chunks are written first and the
  page's older chunks deleted afterwards, so a reader sees the old or the new page, never half;
- pages gone from the source are deleted, unless the source came back empty (then nothing is)
  or the safety gate trips: when more than `max_error_rate` of the pages failed to load, or more
  than `max_delete_ratio` of the indexed pages would go, nothing is deleted and the run ends as
  `needs_review` (`force=True` overrides). Pages that failed to load are never deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import numpy as np

from core.chunking import Chunker
from core.embedding import Embedder, embed_documents
from core.errors import DocsBotError, SourceError, StoreError
from core.models import Chunk, Page
from core.progress import ProgressTracker
from core.runlog import IndexRun, RunLog
from core.sources import DocsSource
from core.store import ChunkStore

log = logging.getLogger(__name__)

#: Chunks embedded and written per step: bounds the work lost to a crash and paces progress.
EMBED_GROUP = 2048


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
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.runs = runs
        self.max_error_rate = max_error_rate
        self.max_delete_ratio = max_delete_ratio

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
        try:
            with self.runs.exclusive():
                await self._run(source, full, force, run, tracker)
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

        await asyncio.to_thread(self._prepare, full)
        indexed = await asyncio.to_thread(self.store.page_hashes)
        pages = {p.id: p for p in loaded.pages}
        todo = [p for p in loaded.pages if indexed.get(p.id) != p.content_hash]
        run.added = sum(p.id not in indexed for p in todo)
        run.changed = len(todo) - run.added
        run.unchanged = len(pages) - len(todo)
        removed = sorted(set(indexed) - set(pages) - loaded.failed_ids)
        review = self._gate(len(loaded.errors), loaded.listed, len(removed), len(indexed))

        chunks_by_page = {p.id: self.chunker.chunk_page(p) for p in todo}
        total = sum(len(c) for c in chunks_by_page.values())
        tracker.update(phase="embedding", pages_changed=len(todo), chunks_total=total)
        for group in _groups(todo, chunks_by_page):
            chunks = [c for page in group for c in chunks_by_page[page.id]]
            vectors = await embed_documents(self.embedder, [c.search_text for c in chunks])
            stale = [p for p in group if p.id in indexed]
            await asyncio.to_thread(self._write, chunks, vectors, stale)
            run.chunks_embedded += len(chunks)
            tracker.update(chunks_embedded=run.chunks_embedded)

        if review and not force:
            run.outcome = "needs_review"
            run.message = (
                f"{review}; {len(removed)} page(s) were NOT deleted. Check the source, then rerun "
                "with --force (or /reindex force) to accept the deletions"
            )
            run.refused_deletions = removed[:50]
            log.warning("index run needs review: %s", run.message)
            return
        if review:
            log.warning("safety gate overridden by --force: %s", review)
        if removed:
            tracker.update(phase="deleting")
            await asyncio.to_thread(self.store.delete_pages, removed)
            run.removed = len(removed)
            tracker.update(pages_removed=run.removed)
        run.outcome = "ok"

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

    def _prepare(self, full: bool) -> None:
        if full:
            self.store.drop()
        if not self.store.open():
            self.store.create(self.embedder.dimension)
        elif self.store.dimension != self.embedder.dimension:
            raise StoreError(
                f"collection {self.store.collection} holds {self.store.dimension}-dim vectors but "
                f"{self.embedder.name} makes {self.embedder.dimension}-dim ones: re-index with --full"
            )

    def _write(self, chunks: list[Chunk], vectors: np.ndarray, changed: list[Page]) -> None:
        self.store.upsert(chunks, vectors)
        for page in changed:
            self.store.delete_stale(page.id, page.content_hash)


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
