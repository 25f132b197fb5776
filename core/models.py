"""Plain data shared by the pipeline: pages and sections in, chunks stored, hits out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Section:
    """One heading of a page and the text under it (up to the next heading of any level)."""

    heading_path: tuple[str, ...]  # ("HNSW", "Index params", "Index building params")
    anchor: str  # "Index-building-params"; "" for the text before the first heading
    text: str


@dataclass(frozen=True)
class Page:
    """One docs page, whatever the source (Markdown snapshot or crawled HTML)."""

    id: str  # "hnsw.md": also the last segment of its URL
    title: str
    url: str  # https://milvus.io/docs/hnsw.md
    sections: tuple[Section, ...]
    summary: str = ""
    content_hash: str = ""  # of everything that ends up in chunks: same hash, same chunks

    def section_url(self, anchor: str) -> str:
        return f"{self.url}#{anchor}" if anchor else self.url


@dataclass(frozen=True)
class Chunk:
    """A piece of a page as stored in Milvus. `id` is deterministic (page, position, text)."""

    id: str
    page_id: str
    title: str
    heading: str  # "HNSW > Index params"
    url: str  # deep link to the section
    text: str  # the passage itself, shown to users and the LLM
    search_text: str  # heading path + text: what is embedded and BM25-indexed
    position: int
    page_hash: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score (higher is better)."""

    chunk: Chunk
    score: float
    dense_score: float | None = None  # cosine similarity, when the dense search found it
    sparse_rank: int | None = None  # 1-based rank in the BM25 list, when BM25 found it
    # the passage as answers read it: the chunk widened with its section's neighbours
    # (`core.widening`); None: the chunk alone
    context: str | None = None

    @property
    def text(self) -> str:
        """What an answer reads of this hit (the search matched `chunk.text`)."""
        return self.context if self.context is not None else self.chunk.text


@dataclass(frozen=True)
class Evidence:
    """The retrieval gate's signals for one search (see `core.gate`)."""

    cosine: float  # best dense cosine
    support: float  # 0..1: IDF share of the question's docs words found in one top passage
    agreement: float  # 0..1: share of the dense top-5 pages also in the BM25 top 5
    unknown: float  # 0..1: rarity of the rarest unknown name the question asks about (0: none)
    margin: float = 0.0  # best cosine minus the mean of the dense top 10
    overlap: float = 0.0  # 0..1: share of the top-5 passages found by both searches
    specific_missing: float = 0.0  # 0..1: specificity of the most specific word no top passage has
    bm25_spread: float = 0.0  # 0..1: distinct pages among the BM25 top 10 passages, per passage
    unknown_context: float = 0.0  # 0..1: the same for unknown names of the asker's setup
    topic: float = 0.5  # 0..1: how much the question reads like the in-scope ones (set by the gate)
    english: float = 1.0  # 0..1: share of the question's words that are common English words


@dataclass(frozen=True)
class Retrieval:
    """What a search returns: hits best first, and how sure we are the docs cover the question."""

    query: str
    hits: tuple[Hit, ...]
    confidence: float  # 0..1: cosine of the best dense match
    unknown_terms: tuple[str, ...] = ()  # distinctive query words the docs never use
    seconds: float = 0.0
    dense_only: bool = False  # the collection has no BM25 field (server without the function)
    evidence: Evidence | None = None  # the gate's signals (None: nothing retrieved)
    query_vector: tuple[float, ...] = ()  # the query's embedding (for the gate's topic signal)
    translated_from: str = ""  # the question in its own language, when `query` is its translation
    expanded_with: str = ""  # the docs' terms the LLM named for the question, searched as well
    # the LLM's scope check of the question's own search (core.scope_check), once it was asked:
    # True/False for YES/NO, None for no usable reply; `scope_checked` False: not asked (yet);
    # `scope_yes`: the LLM's probability of YES, where its server reports first-token odds
    scope_checked: bool = False
    scope_verdict: bool | None = None
    scope_yes: float | None = None


@dataclass(frozen=True)
class Source:
    """A cited source: its number in the answer and where it links to."""

    number: int
    title: str
    heading: str
    url: str

    @property
    def page_id(self) -> str:
        """The page's id, the last segment of its URL: `hnsw.md`."""
        return self.url.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class Outcome(StrEnum):
    """How a question ended. A StrEnum, so stored records and logs keep the plain strings."""

    ANSWERED = "answered"  # an answer from the docs, with sources
    NOT_COVERED = "not_covered"  # the docs don't cover it: a polite decline with the nearest pages
    SMALL_TALK = "small_talk"  # hello / thanks: a short reply, no search
    EMPTY = "empty"  # nothing asked: the usage help
    TOO_LONG = "too_long"  # over MAX_QUESTION_CHARS
    BUSY = "busy"  # the LLM is overloaded or down: the nearest pages instead
    ERROR = "error"  # something failed on our side: one honest sentence


@dataclass(frozen=True)
class Answer:
    """The final result of a question: `outcome` is one of `Outcome`'s values; `sources` are
    the deep links to show under the text."""

    text: str
    outcome: Outcome
    sources: tuple[Source, ...] = ()
    retrieval: Retrieval | None = None
    seconds: float = 0.0
    #: What failed, as a short code (`llm_timeout`, `llm_unavailable`, `llm_stream_broken`,
    #: `llm_busy`, `store_unavailable`, ...: the `code` of core/errors.py's classes); None if nothing.
    error: str | None = None
    #: Who declined a `not_covered` answer: "gate" (the retrieval gate, before the LLM), "model"
    #: (the LLM said the sources don't answer it) or "grounding" (the LLM answered, but its answer
    #: cites no passage and no passage backs it: `core.prompting.grounded`); None for other outcomes.
    declined_by: str | None = None
    #: Who put the [n] markers in an answer's text: "model" (the LLM itself) or "matched" (the LLM
    #: cited nothing; `core.prompting.attribute` cited the sources its paragraphs' specifics come
    #: from); "" when the text cites nothing.
    citations: str = ""
