"""Hybrid retrieval: dense (cosine) and BM25 searches fused with weighted reciprocal-rank fusion.

    score(chunk) = dense_weight / (rrf_k + dense_rank) + sparse_weight / (rrf_k + bm25_rank)

The fusion runs here rather than in Milvus's RRFRanker because Milvus's RRF has no weights and
because the dense cosines are needed anyway for the confidence signal. Hits are deduplicated per
section (one passage per deep link, identical passages once) before cutting to k.

The confidence signal has two parts: the best dense cosine (a floor for gibberish and small talk)
and the query's unknown terms (see `core.vocabulary`); `RagService.is_covered` applies the gate.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from core.embedding import Embedder, embed_query
from core.models import Chunk, Hit, Retrieval
from core.store import ChunkStore
from core.vocabulary import Vocabulary

_MENTION = re.compile(r"<@[^>]+>|@\w+")


@dataclass(frozen=True)
class RetrievalConfig:
    top_k: int = 5
    candidates: int = 20
    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 0.5


def clean_query(text: str) -> str:
    """Drop chat mentions and collapse whitespace; the words themselves are left alone."""
    return " ".join(_MENTION.sub(" ", text).split())


class Retriever:
    def __init__(self, store: ChunkStore, embedder: Embedder, config: RetrievalConfig) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_lock = asyncio.Lock()

    async def vocabulary(self) -> Vocabulary:
        """Built from the collection on first use; `forget_vocabulary()` after re-indexing."""
        async with self._vocabulary_lock:
            if self._vocabulary is None:
                self._vocabulary = await asyncio.to_thread(lambda: Vocabulary(self.store.search_texts()))
            return self._vocabulary

    def forget_vocabulary(self) -> None:
        self._vocabulary = None

    async def search(self, question: str, k: int | None = None) -> Retrieval:
        started = time.perf_counter()
        query = clean_query(question)
        if not query:
            return Retrieval(query=query, hits=(), confidence=0.0)
        cfg = self.config
        vector = await embed_query(self.embedder, query)
        dense, sparse = await asyncio.gather(
            asyncio.to_thread(self.store.dense_search, vector, cfg.candidates),
            asyncio.to_thread(self.store.sparse_search, query, cfg.candidates),
        )
        hits = fuse(dense, sparse, cfg)
        top = tuple(dedupe(hits)[: k or cfg.top_k])
        vocabulary = await self.vocabulary()
        # fuzzy matching against thousands of words: off the event loop, like the searches
        unknown = await asyncio.to_thread(vocabulary.unknown_terms, query)
        return Retrieval(
            query=query,
            hits=top,
            confidence=max(0.0, min(1.0, dense[0][1])) if dense else 0.0,
            unknown_terms=tuple(unknown),
            seconds=time.perf_counter() - started,
            dense_only=not self.store.has_sparse,
        )


def fuse(dense: list[tuple[Chunk, float]], sparse: list[Chunk], cfg: RetrievalConfig) -> list[Hit]:
    """Weighted RRF of the two ranked lists, best first."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    cosine: dict[str, float] = {}
    bm25_rank: dict[str, int] = {}
    for rank, (chunk, score) in enumerate(dense, start=1):
        scores[chunk.id] = scores.get(chunk.id, 0.0) + cfg.dense_weight / (cfg.rrf_k + rank)
        chunks[chunk.id], cosine[chunk.id] = chunk, score
    for rank, chunk in enumerate(sparse, start=1):
        scores[chunk.id] = scores.get(chunk.id, 0.0) + cfg.sparse_weight / (cfg.rrf_k + rank)
        chunks.setdefault(chunk.id, chunk)
        bm25_rank[chunk.id] = rank
    ordered = sorted(scores, key=lambda cid: scores[cid], reverse=True)
    return [Hit(chunks[c], scores[c], cosine.get(c), bm25_rank.get(c)) for c in ordered]


def dedupe(hits: list[Hit]) -> list[Hit]:
    """Keep the best hit per section (deep link) and per identical passage."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        keys = {hit.chunk.url, hit.chunk.text}
        if keys & seen:
            continue
        seen |= keys
        kept.append(hit)
    return kept
