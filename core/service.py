"""The composition root and the one service object the adapters talk to.

    async with open_service(settings) as service:
        retrieval = await service.search("what is HNSW M?")

`open_service` builds everything from `Settings` and closes it in reverse order. Nothing here
knows about Slack, Discord or the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from core.chunking import Chunker
from core.config import Settings
from core.embedding import Embedder, SentenceTransformerEmbedder
from core.errors import IndexEmptyError
from core.indexer import Indexer, ProgressCallback
from core.models import Retrieval
from core.retrieval import RetrievalConfig, Retriever
from core.runlog import IndexRun, RunLog
from core.sources import open_source
from core.store import ChunkStore


@dataclass(frozen=True)
class IndexStatus:
    uri: str
    collection: str
    embedding_model: str
    pages: int
    chunks: int
    hybrid: bool
    last_run: IndexRun | None


class RagService:
    def __init__(self, settings: Settings, store: ChunkStore, embedder: Embedder) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.retriever = Retriever(
            store,
            embedder,
            RetrievalConfig(
                top_k=settings.top_k,
                candidates=settings.retrieval_candidates,
                rrf_k=settings.rrf_k,
                dense_weight=settings.dense_weight,
                sparse_weight=settings.sparse_weight,
            ),
        )
        self.runs = RunLog(settings.data_dir, settings.collection)
        self.indexer = Indexer(
            store, embedder, Chunker(settings.chunk_size, settings.chunk_overlap), self.runs
        )
        self._ready = False

    async def search(self, question: str, k: int | None = None) -> Retrieval:
        """The best passages for a question, with the retrieval-confidence signal."""
        if not self._ready:
            self._ready = await asyncio.to_thread(self.store.open)
            if not self._ready:
                raise IndexEmptyError("the collection does not exist yet")
        return await self.retriever.search(question, k)

    async def warm_up(self) -> None:
        """Load the model and the vocabulary now, so the first question is not the slow one."""
        await self.search("warm up")

    def is_covered(self, retrieval: Retrieval) -> bool:
        """The retrieval gate: the docs are taken not to cover a question whose best match is
        below MIN_CONFIDENCE or that names things the docs never mention."""
        if not retrieval.hits or retrieval.confidence < self.settings.min_confidence:
            return False
        return not (self.settings.decline_unknown_terms and retrieval.unknown_terms)

    async def index(
        self,
        source: str | None = None,
        *,
        full: bool = False,
        trigger: str = "cli",
        progress: ProgressCallback | None = None,
    ) -> IndexRun:
        docs = open_source(source or self.settings.docs_source, self.settings.docs_public_base_url)
        run = await self.indexer.run(docs, full=full, trigger=trigger, progress=progress)
        self._ready = False  # re-open (and re-load) on next search
        self.retriever.forget_vocabulary()
        return run

    async def status(self) -> IndexStatus:
        def read() -> tuple[int, int]:
            if not self.store.open():
                return 0, 0
            return len(self.store.page_hashes()), self.store.count_chunks()

        pages, chunks = await asyncio.to_thread(read)
        return IndexStatus(
            uri=self.settings.milvus_uri,
            collection=self.settings.collection,
            embedding_model=self.settings.embedding_model,
            pages=pages,
            chunks=chunks,
            hybrid=self.store.has_sparse,
            last_run=self.runs.last(),
        )


@contextlib.asynccontextmanager
async def open_service(settings: Settings, embedder: Embedder | None = None) -> AsyncIterator[RagService]:
    """Build the service from settings; every resource is closed in reverse order on exit."""
    async with contextlib.AsyncExitStack() as stack:
        store = await asyncio.to_thread(
            ChunkStore.connect,
            settings.milvus_uri,
            settings.collection,
            settings.milvus_token.get_secret_value(),
            settings.milvus_timeout,
        )
        stack.callback(store.close)
        embedder = embedder or SentenceTransformerEmbedder(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
            query_instruction=settings.query_instruction,
        )
        yield RagService(settings, store, embedder)
