"""Hybrid retrieval: dense (cosine) and BM25 searches fused with weighted reciprocal-rank fusion.

    score(chunk) = dense_weight / (rrf_k + dense_rank) + sparse_weight / (rrf_k + bm25_rank)

The fusion runs here rather than in Milvus's RRFRanker because Milvus's RRF has no weights and
because the dense cosines are needed anyway for the confidence signal. Hits are deduplicated per
section (one passage per deep link, identical passages once), then ordered by page: each page
scores the sum of its passages' scores, discounted by `PAGE_DECAY` per further passage, and the
best passage of every page comes first, in page order, before the pages' other passages. A page
that several passages match outranks a page with one lucky passage. The page of BM25's best
passage is kept among the first `top_k` pages (`keep_page_within`): the fusion weighs BM25 at 0.3,
and an exact match of the question's words ("force merge", "stop words") could fall to 6th-8th
(eval tune split hit@5 0.872 -> 0.890: four questions gained, one lost; no other split moved).
Last, the first page's second passage moves up to second place (`first_page_twice`): the five
passages an answer reads then hold two sections of the page most likely to answer and the best
passages of the next three pages. Page ranks are unchanged; the share of the answer facts' numbers
and identifiers found in the five passages (`context_fact_proxy`) rose from 0.619 to 0.697 on the
held-out split, 0.620 -> 0.644 on tune and 0.699 -> 0.726 on dev (the first two pages' second
passages instead: 0.689 / 0.646 / 0.713).

A docs page the question links to ("https://milvus.io/docs/hnsw.md says M is 2-2048, ...") is
kept among the first two pages (`linked_pages`): the asker read it, and its passages are the
context of the question whether or not the searches ranked it.

A page also scores a bonus when the question is close to its title or one of its section headings
(`Headings`): "how do I pick HNSW M?" is close to "HNSW > Index building params", which the
passage under it never repeats in full. Measured on the labelled questions (README, Evaluation):
held-out MRR@10 0.822 -> 0.840, hit@1 0.744 -> 0.769; hit@5 unchanged.

The query loses chat mentions, greetings and thanks first ("hey folks, ..." / "thanks in advance").
A question mostly in Chinese, Japanese or another script the English embedding model cannot read
is embedded by its Latin-script words (`latin_words`: identifiers, product names, English terms)
when it was not translated first (`core.translation`, which needs the LLM). The docs' own terms
for a question, named by the LLM (`core.expansion`), can be searched as well: their dense and BM25
lists join the fusion, and they fill the places after the question's own first pages.

Each search also measures the retrieval gate's signals (`core.gate.measure`: best cosine, key-term
support, dense/BM25 page agreement, unknown names); `RagService.is_covered` applies the gate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.embedding import Embedder, embed_query
from core.errors import StoreError
from core.expansion import KEEP_PAGES
from core.gate import FITTED_SPARSE_WEIGHT, measure
from core.models import Chunk, Hit, Retrieval
from core.store import PAGE_ID, ChunkStore
from core.vocabulary import Vocabulary
from core.widening import PASSAGE_CHARS, SPAN, widen

log = logging.getLogger(__name__)

#: Chat mentions: Slack's and Discord's <@U123>, <@&role>, <!here>, <!subteam^S1|@team>, <#C1|chan>,
#: and typed @names.
_MENTION = re.compile(r"<[@!#][^>]*>|@\w+")
_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|heya|hiya|yo|howdy|greetings|good (?:morning|afternoon|evening)|dear)"
    r"(?:\s+(?:all|everyone|everybody|folks|guys|team|there|people|devs|milvus team|y'?all))?|"
    r"quick question|question|sorry (?:if|for)[^,.!?]*|newbie here|noob question)\b\s*[,!.:;\-–—]*\s*",
    re.I,
)
_THANKS = re.compile(
    r"(?:^|(?<=\W))\s*(?:thanks|thank you|thx|ty|cheers|tia|appreciate (?:it|any help))"
    r"(?: (?:in advance|a lot|so much|all))?[\s.!]*$",
    re.I,
)
#: Above this share of letters outside ASCII, a question is embedded by its Latin-script words.
NON_LATIN_SHARE = 0.5
_LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/:%']*")
#: A docs page the question links to is kept among its first pages (at most this many such links).
LINKED_PAGE_WITHIN, MAX_LINKED_PAGES = 2, 2
_URL = re.compile(r"https?://[^\s<>|()\[\]\"'`]+")
#: Each further passage of a page adds this share of its score to the page's score.
PAGE_DECAY = 0.3
#: The heading bonus: this weight times how far the question's cosine to the page's closest
#: heading is above the floor (fusion scores are ~0.03-0.1 per passage).
HEADING_WEIGHT, HEADING_FLOOR = 0.05, 0.3


@dataclass(frozen=True)
class RetrievalConfig:
    top_k: int = 5
    candidates: int = 20
    rrf_k: int = 10
    dense_weight: float = 1.0
    sparse_weight: float = 0.3
    heading_weight: float = HEADING_WEIGHT
    # the BM25 weight of the ranking the gate's signals are measured on: the one its model was
    # fitted with (`GateModel.sparse_weight`), whatever `sparse_weight` ranks the answers
    gate_sparse_weight: float = FITTED_SPARSE_WEIGHT
    # each passage the LLM reads is widened to about this many characters (`core.widening`)
    passage_chars: int = PASSAGE_CHARS


def plain_text(text: str) -> str:
    """The text as the models should read it: Unicode compatibility forms folded (NFKC: "ＨＮＳＷ"
    and "𝐢𝐧𝐝𝐞𝐱" from fancy-text generators become "HNSW" and "index"), invisible format characters
    (zero-width spaces, bidirectional overrides) and control characters other than line breaks
    and tabs dropped. The embedding model and BM25 saw "𝐜𝐫𝐞𝐚𝐭𝐞 𝐚𝐧 𝐢𝐧𝐝𝐞𝐱" as unknown symbols."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(
        ch for ch in folded if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )


def without_mentions(text: str) -> str:
    """The text without its chat mentions (a message that is only mentions asks nothing)."""
    return _MENTION.sub(" ", text)


def clean_query(text: str) -> str:
    """Drop chat mentions, leading greetings and trailing thanks, and collapse whitespace (of
    the `plain_text`)."""
    query = " ".join(without_mentions(plain_text(text)).split())
    while query:
        shorter = _THANKS.sub("", _GREETING.sub("", query, count=1)).strip()
        if not shorter or shorter == query:
            break  # nothing left to strip, or nothing but a greeting: keep it
        query = shorter
    return query


class Headings:
    """Every page's title and section heading paths, embedded once (`closeness` is one matrix
    product per question)."""

    def __init__(self, pairs: Iterable[tuple[str, str]], embedder: Embedder) -> None:
        by_page: dict[str, set[str]] = {}
        for page_id, text in pairs:
            if text.strip():
                by_page.setdefault(page_id, set()).add(text)
        texts = sorted({text for texts in by_page.values() for text in texts})
        row = {text: i for i, text in enumerate(texts)}
        self._vectors = embedder.embed_documents(texts)
        self._rows = {page_id: np.array([row[t] for t in texts]) for page_id, texts in by_page.items()}

    def closeness(self, query_vector: np.ndarray, page_ids: Iterable[str]) -> dict[str, float]:
        """The cosine of the question to each page's closest heading."""
        cosines = self._vectors @ query_vector
        return {p: float(cosines[self._rows[p]].max()) for p in page_ids if p in self._rows}


class Retriever:
    def __init__(self, store: ChunkStore, embedder: Embedder, config: RetrievalConfig) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self._corpus: tuple[Vocabulary, Headings] | None = None
        self._corpus_lock = asyncio.Lock()

    async def corpus(self) -> tuple[Vocabulary, Headings]:
        """The vocabulary and the headings, built from the collection on first use;
        `forget_vocabulary()` after re-indexing."""
        async with self._corpus_lock:
            if self._corpus is None:
                self._corpus = await asyncio.to_thread(self._read_corpus)
            return self._corpus

    def _read_corpus(self) -> tuple[Vocabulary, Headings]:
        rows = self.store.corpus_rows()
        headings = ((row["page_id"], row[field]) for row in rows for field in ("title", "heading"))
        return Vocabulary(row["search_text"] for row in rows), Headings(headings, self.embedder)

    async def vocabulary(self) -> Vocabulary:
        return (await self.corpus())[0]

    def forget_vocabulary(self) -> None:
        self._corpus = None

    def _rank(
        self,
        dense: Sequence[list[tuple[Chunk, float]]],
        sparse: Sequence[list[Chunk]],
        vector: np.ndarray,
        headings: Headings,
        sparse_weight: float | None = None,
    ) -> list[Hit]:
        config = self.config
        if sparse_weight is not None:
            config = dataclasses.replace(config, sparse_weight=sparse_weight)
        fused = dedupe(fuse(dense, sparse, config))
        closeness = headings.closeness(vector, {hit.chunk.page_id for hit in fused})
        weight = self.config.heading_weight
        bonus = {page: weight * max(0.0, c - HEADING_FLOOR) for page, c in closeness.items()}
        return by_page(fused, bonus=bonus)

    async def search(self, question: str, k: int | None = None, expansion: str | None = None) -> Retrieval:
        """The best passages for `question`; `expansion` (the docs' terms for it, written by the
        LLM: `core.expansion`) is searched as well and fills the places after the question's own
        first `KEEP_PAGES` pages."""
        started = time.perf_counter()
        query = clean_query(question)
        if not query:
            return Retrieval(query=query, hits=(), confidence=0.0)
        cfg = self.config
        vector = await embed_query(self.embedder, query)
        dense, sparse = await self._lists(vector, query)
        vocabulary, headings = await self.corpus()
        ranked = self._rank([dense], [sparse], vector, headings)
        # fuzzy matching against thousands of words: off the event loop, like the searches
        terms = await asyncio.to_thread(vocabulary.analyse, query)
        # the gate keeps the signals of the question's own search as asked, ranked with the BM25
        # weight it was fitted with
        gate_ranked = ranked
        if cfg.gate_sparse_weight != cfg.sparse_weight:
            gate_ranked = self._rank([dense], [sparse], vector, headings, cfg.gate_sparse_weight)
        evidence = measure(terms, vocabulary, dense, sparse, gate_ranked[: k or cfg.top_k])
        search_vector = vector
        if (latin := latin_words(query)) is not None:
            search_vector = await embed_query(self.embedder, latin)
            dense = await asyncio.to_thread(self.store.dense_search, search_vector, cfg.candidates)
            ranked = self._rank([dense], [sparse], search_vector, headings)
        # the page of BM25's best passage stays among the first pages (after the gate's signals,
        # which were fitted without this)
        best_bm25 = sparse[0].page_id if sparse else None
        ranked = keep_page_within(ranked, best_bm25, cfg.top_k)
        for page_id in linked_pages(query):
            ranked = await self._with_linked_page(ranked, page_id, search_vector)
        if expansion:
            extra_vector = await embed_query(self.embedder, expansion)
            extra_dense, extra_sparse = await self._lists(extra_vector, expansion)
            both = self._rank([dense, extra_dense], [sparse, extra_sparse], search_vector, headings)
            ranked = keep_first_pages(ranked, keep_page_within(both, best_bm25, cfg.top_k), KEEP_PAGES)
        ranked = first_page_twice(ranked)
        return Retrieval(
            query=query,
            hits=tuple(await self._widened(ranked[: k or cfg.top_k])),
            confidence=evidence.cosine,
            unknown_terms=tuple(t.word for t in terms.unknown),
            seconds=time.perf_counter() - started,
            dense_only=not self.store.has_sparse,
            evidence=evidence,
            query_vector=tuple(float(x) for x in vector),
            expanded_with=expansion or "",
        )

    async def _widened(self, hits: list[Hit]) -> list[Hit]:
        """`hits` read wide (`core.widening`); as they are when the neighbours can't be read."""
        if not self.config.passage_chars or not hits:
            return hits
        chunks = [hit.chunk for hit in hits]
        try:
            stored = await asyncio.to_thread(self.store.neighbours, chunks, SPAN)
        except StoreError as exc:
            log.warning("passages not widened: %s", exc)
            return hits
        return widen(hits, stored, self.config.passage_chars)

    async def _with_linked_page(self, ranked: list[Hit], page_id: str, vector: np.ndarray) -> list[Hit]:
        """`ranked` with the best passage of a docs page the question links to among its first
        `LINKED_PAGE_WITHIN` pages (added when the searches missed it; unchanged when the index
        has no such page)."""
        if not any(hit.chunk.page_id == page_id for hit in ranked):
            found = await asyncio.to_thread(self.store.dense_search, vector, 1, page_id)
            if not found:
                return ranked
            chunk, cosine = found[0]
            ranked = [*ranked, Hit(chunk, 0.0, cosine)]
        return keep_page_within(ranked, page_id, LINKED_PAGE_WITHIN)

    async def _lists(self, vector: np.ndarray, text: str) -> tuple[list[tuple[Chunk, float]], list[Chunk]]:
        """The dense and the BM25 candidates, searched side by side."""
        n = self.config.candidates
        dense, sparse = await asyncio.gather(
            asyncio.to_thread(self.store.dense_search, vector, n),
            asyncio.to_thread(self.store.sparse_search, text, n),
        )
        return dense, sparse


def linked_pages(query: str) -> list[str]:
    """The page ids of the docs pages a question links to ("as https://milvus.io/docs/hnsw.md
    says" -> ["hnsw.md"]), in order, at most `MAX_LINKED_PAGES`: any link whose last path
    segment is a Markdown file name (versioned paths and GitHub links to the docs sources
    included); the index decides whether such a page exists."""
    found: dict[str, None] = {}
    for url in _URL.findall(query):
        name = re.split(r"[?#]", url, maxsplit=1)[0].rstrip("/").rsplit("/", 1)[-1]
        if PAGE_ID.fullmatch(name):  # what `ChunkStore.dense_search` accepts
            found[name] = None
    return list(found)[:MAX_LINKED_PAGES]


def latin_words(query: str) -> str | None:
    """For a question mostly in a script the English embedding model cannot read (Chinese,
    Japanese, Russian: over `NON_LATIN_SHARE` of its letters), its Latin-script words, which are
    what that model can use: identifiers, product names, English terms ("`sku_code` 字段用 LIKE
    '%ab12%' 查询很慢" -> "sku_code LIKE ab12%'"). None for other questions and when fewer than two
    such words are left."""
    letters = [ch for ch in query if ch.isalpha()]
    if not letters or sum(not ch.isascii() for ch in letters) / len(letters) <= NON_LATIN_SHARE:
        return None
    found = _LATIN_WORD.findall(query)
    return " ".join(found) if len(found) >= 2 else None


def fuse(
    dense: Sequence[list[tuple[Chunk, float]]], sparse: Sequence[list[Chunk]], cfg: RetrievalConfig
) -> list[Hit]:
    """Weighted RRF of the ranked lists (each dense list with `dense_weight`, each BM25 list with
    `sparse_weight`), best first. A hit keeps its best cosine and its best BM25 rank."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    cosine: dict[str, float] = {}
    bm25_rank: dict[str, int] = {}
    for ranked in dense:
        for rank, (chunk, score) in enumerate(ranked, start=1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + cfg.dense_weight / (cfg.rrf_k + rank)
            chunks[chunk.id] = chunk
            cosine[chunk.id] = max(score, cosine.get(chunk.id, score))
    for ranked_chunks in sparse:
        for rank, chunk in enumerate(ranked_chunks, start=1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + cfg.sparse_weight / (cfg.rrf_k + rank)
            chunks.setdefault(chunk.id, chunk)
            bm25_rank[chunk.id] = min(rank, bm25_rank.get(chunk.id, rank))
    ordered = sorted(scores, key=lambda cid: scores[cid], reverse=True)
    return [Hit(chunks[c], scores[c], cosine.get(c), bm25_rank.get(c)) for c in ordered]


def keep_first_pages(own: list[Hit], expanded: list[Hit], pages: int) -> list[Hit]:
    """`own`'s first `pages` pages (their best passages: `by_page` puts those first), then the
    best passage of every other page in `expanded`'s page order, then all other passages by
    their own score, as `by_page` orders them."""
    kept = own[:pages]
    seen_pages = {hit.chunk.page_id for hit in kept}
    kept_ids = {hit.chunk.id for hit in kept}
    firsts: list[Hit] = []
    rest: list[Hit] = []
    for hit in expanded:
        if hit.chunk.id in kept_ids:
            continue
        (rest if hit.chunk.page_id in seen_pages else firsts).append(hit)
        seen_pages.add(hit.chunk.page_id)
    return dedupe(kept + firsts + sorted(rest, key=lambda hit: hit.score, reverse=True))


def by_page(
    hits: list[Hit], decay: float = PAGE_DECAY, bonus: Mapping[str, float] | None = None
) -> list[Hit]:
    """Order by page (see the module docstring): pages' best hits first, by page score (plus its
    `bonus`), then every other hit by its own score."""
    page_score: dict[str, float] = dict.fromkeys({hit.chunk.page_id for hit in hits}, 0.0)
    for page_id, extra in (bonus or {}).items():
        if page_id in page_score:
            page_score[page_id] += extra
    seen: dict[str, int] = {}
    for hit in hits:
        n = seen.get(hit.chunk.page_id, 0)
        page_score[hit.chunk.page_id] += hit.score * decay**n
        seen[hit.chunk.page_id] = n + 1
    firsts, rest = split_firsts(hits)
    firsts.sort(key=lambda h: page_score[h.chunk.page_id], reverse=True)
    return firsts + rest


def split_firsts(hits: Sequence[Hit]) -> tuple[list[Hit], list[Hit]]:
    """Each page's first hit, in order, and the pages' other hits, in order."""
    seen: set[str] = set()
    firsts: list[Hit] = []
    others: list[Hit] = []
    for hit in hits:
        (others if hit.chunk.page_id in seen else firsts).append(hit)
        seen.add(hit.chunk.page_id)
    return firsts, others


def keep_page_within(hits: list[Hit], page_id: str | None, pages: int) -> list[Hit]:
    """Move `page_id`'s best hit up to be the `pages`-th page when it ranks after the first
    `pages` pages. Used for the page of BM25's best passage: an exact match of the question's
    words that the fusion's lower BM25 weight would bury ("force merge" ranked 8th for "squash
    thousands of tiny segments into fewer bigger ones")."""
    starts: dict[str, int] = {}  # page -> index of its first hit, in page order
    for i, hit in enumerate(hits):
        page = hit.chunk.page_id
        if page == page_id:
            if len(starts) < pages:
                return hits
            at = list(starts.values())[pages - 1]
            return [*hits[:at], hit, *hits[at:i], *hits[i + 1 :]]
        starts.setdefault(page, i)
    return hits


def first_page_twice(hits: list[Hit]) -> list[Hit]:
    """`hits` (in `by_page` order) with the first page's second passage moved up to second
    place, where there is one: the best passage of the best page is often the section that
    names the question's subject ("IVF_FLAT > Overview"), and the value asked for sits in
    another section of the same page (a parameter table further down). The
    other pages keep their order, one place further down."""
    if not hits:
        return hits
    page = hits[0].chunk.page_id
    for i, hit in enumerate(hits[1:], start=1):
        if hit.chunk.page_id == page:
            return [hits[0], hit, *hits[1:i], *hits[i + 1 :]]
    return hits


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
