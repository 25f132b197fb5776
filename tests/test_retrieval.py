"""Hybrid search on a small real index (Milvus Lite + the packaged MiniLM model)."""

import numpy as np
import pytest

from core import retrieval
from core.embedding import SentenceTransformerEmbedder
from core.models import Chunk, Hit
from core.retrieval import (
    Headings,
    RetrievalConfig,
    Retriever,
    by_page,
    clean_query,
    dedupe,
    first_page_twice,
    fuse,
    keep_first_pages,
    keep_page_within,
    latin_words,
    linked_pages,
    plain_text,
)
from core.service import RagService, open_service

from .conftest import make_settings, page_hit


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("what does M control in an HNSW index?", "hnsw.md"),
        ("SCANN reorder_k good starting value", "scann.md"),
        ("what is knowhere?", "knowhere.md"),
        ("how do I start milvus standalone with docker", "install_standalone-docker.md"),
        ("zebra_stripes", "broken-front-matter.md"),  # an exact token only BM25 knows well
    ],
)
async def test_hybrid_search_finds_the_answering_page_first(
    indexed_service: RagService, question: str, page: str
) -> None:
    result = await indexed_service.search(question)
    assert result.hits[0].chunk.page_id == page
    assert result.hits[0].chunk.url.startswith(f"https://milvus.io/docs/{page}")
    assert indexed_service.is_covered(result)


async def test_both_searches_contribute_to_the_fused_ranking(indexed_service: RagService) -> None:
    result = await indexed_service.search("HNSW efConstruction", k=10)
    assert any(h.dense_score is not None for h in result.hits)
    assert any(h.sparse_rank is not None for h in result.hits)


async def test_hits_are_deduplicated_per_section(indexed_service: RagService) -> None:
    result = await indexed_service.search("HNSW index parameters M efConstruction ef", k=10)
    urls = [h.chunk.url for h in result.hits]
    assert len(urls) == len(set(urls))


async def test_question_about_something_the_docs_never_mention_is_not_covered(
    indexed_service: RagService,
) -> None:
    result = await indexed_service.search("can i run milvus standalone with podman instead of docker?")
    assert "podman" in result.unknown_terms
    assert not indexed_service.is_covered(result)
    assert result.hits  # the nearest pages are still there to point at


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("请教一下：`sku_code` 字段用 LIKE '%ab12%' 查询很慢，应该建什么索引？", "sku_code LIKE ab12%'"),
        ("milvusのreplicaとshardの違いは何ですか？読み取りを増やしたいときは？", "milvus replica shard"),
        ("Какое максимальное количество шардов в одной коллекции?", None),  # nothing to use
        ("¿Cómo creo un índice sobre un campo JSON?", None),  # Latin script: embedded as it is
        ("what does M control in HNSW?", None),
    ],
)
def test_questions_in_scripts_the_model_cannot_read_keep_their_latin_words(
    question: str, words: str | None
) -> None:
    assert latin_words(question) == words


async def test_a_question_in_chinese_is_embedded_by_its_latin_words(
    indexed_service: RagService, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "SCANN的reorder_k应该设置多少比较好？有推荐值吗"
    result = await indexed_service.search(question)
    monkeypatch.setattr(retrieval, "NON_LATIN_SHARE", 1.0)  # embed the question as it is
    as_asked = await indexed_service.search(question)
    assert [h.chunk.page_id for h in result.hits[:3]] == ["scann.md"] * 3
    assert result.hits[0].dense_score is not None and as_asked.hits[0].dense_score is not None
    assert result.hits[0].dense_score > as_asked.hits[0].dense_score + 0.1  # 0.58 vs 0.37
    assert result.evidence == as_asked.evidence  # the gate judges the question as asked


def test_linked_pages_are_the_markdown_files_a_question_links_to() -> None:
    question = (
        "as https://milvus.io/docs/v2.4.x/hnsw.md#Index-params and <https://github.com/milvus-io/"
        "milvus-docs/blob/master/site/en/reference/knowhere.md> say (https://milvus.io/docs/hnsw.md?x=1), "
        "see also https://example.com/blog/ and https://milvus.io/docs/"
    )
    assert linked_pages(question) == ["hnsw.md", "knowhere.md"]
    assert linked_pages("what does HNSW's M do? hnsw.md says 16") == []
    # nothing that is not a page id reaches the filtered search
    assert linked_pages("https://x.io/%22%20or%201.md https://x.io/README.MD https://x.io/.md") == []


async def test_a_docs_page_the_question_links_to_is_among_the_first_pages(
    indexed_service: RagService,
) -> None:
    question = "how do I run milvus standalone with docker compose?"
    plain = await indexed_service.search(question, k=5)
    first_two = list(dict.fromkeys(h.chunk.page_id for h in plain.hits))[:2]
    assert "scann.md" not in first_two
    linked = await indexed_service.search(f"{question} https://milvus.io/docs/v2.5.x/scann.md#Overview", k=5)
    assert "scann.md" in list(dict.fromkeys(h.chunk.page_id for h in linked.hits))[:2]
    # a link to a page the index does not have changes nothing
    unknown = await indexed_service.search(f"{question} https://milvus.io/docs/no_such_page.md", k=5)
    assert list(dict.fromkeys(h.chunk.page_id for h in unknown.hits))[:2] == first_two
    with pytest.raises(ValueError):
        indexed_service.store.dense_search(np.zeros(3), 1, 'x.md" or page_id != "')


async def test_empty_question_returns_nothing(indexed_service: RagService) -> None:
    result = await indexed_service.search("  <@U123>  ")
    assert result.hits == () and not indexed_service.is_covered(result)


def test_clean_query_drops_mentions() -> None:
    assert clean_query("<@U024BE7LH> how do I   index?") == "how do I index?"
    assert clean_query("<!here> <@&42> what is <!subteam^S1|@helpers> knowhere?") == "what is knowhere?"


def test_clean_query_drops_greetings_and_thanks_but_never_the_whole_question() -> None:
    assert clean_query("hey folks, which HNSW knobs matter? thanks in advance!") == "which HNSW knobs matter?"
    assert clean_query("Hi all! what is knowhere? thx") == "what is knowhere?"
    assert clean_query("hello") == "hello"


def test_clean_query_strips_greetings_and_thanks_only_as_whole_words() -> None:
    # "Hi" is not the start of "High", "Yo" not of "Your", "ty" not the end of "capacity"
    for question in [
        "High memory usage on query nodes",
        "Your docs say M is 16, why?",
        "Questions about HNSW",
        "planning query node capacity",
        "what is cosine similarity",
        "You are the best, what is knowhere",
    ]:
        assert clean_query(question) == question
    assert clean_query("yo, what is HNSW? ty") == "what is HNSW?"


def test_clean_query_reads_fancy_and_invisible_characters_as_plain_text() -> None:
    assert clean_query("𝐡𝐨𝐰 𝐝𝐨 𝐈 𝐜𝐫𝐞𝐚𝐭𝐞 𝐚𝐧 𝐢𝐧𝐝𝐞𝐱") == "how do I create an index"  # mathematical bold
    assert clean_query("ＨＮＳＷの M とは？") == "HNSWの M とは?"  # full-width forms
    assert clean_query("how\u200b do\u200b I\x00 index\u202e?") == "how do I index?"
    assert plain_text("line one\nline\ttwo 🙂") == "line one\nline\ttwo 🙂"


def test_pages_with_several_matching_passages_come_first() -> None:
    # one lucky passage of a.md against three good ones of b.md
    hits = [
        page_hit("a1", "a.md", 0.10),
        page_hit("b1", "b.md", 0.09),
        page_hit("b2", "b.md", 0.08),
        page_hit("b3", "b.md", 0.08),
    ]
    ordered = by_page(hits, decay=0.3)
    assert [h.chunk.id for h in ordered] == ["b1", "a1", "b2", "b3"]  # best passage per page first
    assert [h.chunk.id for h in by_page(hits, decay=0.0)] == ["a1", "b1", "b2", "b3"]  # no aggregation


def test_the_first_pages_second_passage_moves_up_to_second_place() -> None:
    # by_page order: each page's best passage, then the other passages by score
    hits = [page_hit(p, f"{p[0]}.md") for p in ("a1", "b1", "c1", "b2", "a2")]  # "a1" on a.md
    assert [h.chunk.id for h in first_page_twice(hits)] == ["a1", "a2", "b1", "c1", "b2"]
    alone = [page_hit("a1", "a.md"), page_hit("b1", "b.md"), page_hit("b2", "b.md")]
    assert first_page_twice(alone) == alone  # a page with one passage: nothing moves
    assert first_page_twice([]) == []


def test_a_page_whose_heading_is_close_to_the_question_moves_up() -> None:
    hits = [
        Hit(Chunk("a1", "a.md", "A", "A", "a.md#1", "x", "x", 0, "h"), 0.10),
        Hit(Chunk("b1", "b.md", "B", "B", "b.md#1", "y", "y", 0, "h"), 0.09),
    ]
    assert [h.chunk.page_id for h in by_page(hits)] == ["a.md", "b.md"]
    assert [h.chunk.page_id for h in by_page(hits, bonus={"b.md": 0.02, "gone.md": 1.0})] == ["b.md", "a.md"]


def test_headings_measure_the_question_against_each_pages_closest_heading(
    embedder: SentenceTransformerEmbedder,
) -> None:
    headings = Headings(
        [
            ("hnsw.md", "HNSW"),
            ("hnsw.md", "HNSW > Index building params"),
            ("ivf.md", "IVF_FLAT"),
            ("ivf.md", ""),
        ],
        embedder,
    )
    query = embedder.embed_query("which index building params does HNSW take?")
    closeness = headings.closeness(query, ["hnsw.md", "ivf.md", "unknown.md"])
    assert set(closeness) == {"hnsw.md", "ivf.md"}
    assert closeness["hnsw.md"] > closeness["ivf.md"]
    expected = float(embedder.embed_documents(["HNSW > Index building params"])[0] @ query)
    assert closeness["hnsw.md"] == pytest.approx(expected, abs=1e-5)


def _chunk(cid: str, url: str, text: str = "t", page: str = "p") -> Chunk:
    return Chunk(cid, f"{page}.md", "P", "P", url, text, text, 0, "h")


def test_weighted_rrf_prefers_agreement_and_respects_weights() -> None:
    a, b, c = _chunk("a", "u#a"), _chunk("b", "u#b"), _chunk("c", "u#c")
    cfg = RetrievalConfig(rrf_k=60, dense_weight=1.0, sparse_weight=0.5)
    hits = fuse([[(a, 0.9), (b, 0.8)]], [[b, c]], cfg)
    assert [h.chunk.id for h in hits] == ["b", "a", "c"]
    assert hits[0].score == pytest.approx(1 / 62 + 0.5 / 61)
    dense_only = fuse([[(a, 0.9), (b, 0.8)]], [[b, c]], RetrievalConfig(sparse_weight=0.0))
    assert [h.chunk.id for h in dense_only][:2] == ["a", "b"]


def test_fusing_more_lists_adds_their_scores_and_keeps_each_hits_best_signals() -> None:
    a, b, c = _chunk("a", "u#a"), _chunk("b", "u#b"), _chunk("c", "u#c")
    cfg = RetrievalConfig(rrf_k=60, dense_weight=1.0, sparse_weight=0.5)
    hits = fuse([[(a, 0.9), (b, 0.8)], [(c, 0.7), (b, 0.85)]], [[c], [b, a]], cfg)
    assert [h.chunk.id for h in hits] == ["b", "c", "a"]
    assert hits[0].score == pytest.approx(1 / 62 + 1 / 62 + 0.5 / 61)
    assert (hits[0].dense_score, hits[0].sparse_rank) == (0.85, 1)


def test_the_expanded_search_only_fills_the_places_after_the_first_pages() -> None:
    own = [Hit(_chunk(i, f"{p}#{i}", i, page=p), 1.0) for i, p in [("1", "p"), ("2", "q"), ("3", "r")]]
    found = [("5", "p", 0.9), ("9", "s", 0.8), ("2", "q", 0.7), ("6", "t", 0.6), ("4", "p", 0.3)]
    expanded = [Hit(_chunk(i, f"{p}#{i}", i, page=p), score) for i, p, score in found]
    merged = keep_first_pages(own, expanded, 2)
    # p and q keep their places; s and t come next, then the other passages of p by their score
    assert [h.chunk.id for h in merged] == ["1", "2", "9", "6", "5", "4"]


def test_the_page_of_the_best_bm25_passage_is_kept_among_the_first_pages() -> None:
    pages = [("1", "a"), ("2", "b"), ("3", "a"), ("4", "c"), ("5", "d"), ("6", "e"), ("7", "d")]
    hits = [Hit(_chunk(i, f"{p}#{i}", i, page=p), 1.0) for i, p in pages]
    ids = lambda found: [h.chunk.id for h in found]  # noqa: E731
    # pages a, b, c, d, then e: the 5th page, already in place
    assert ids(keep_page_within(hits, "e.md", 5)) == ids(hits)
    # with room for three pages, d's best hit moves up to the third page's (c's) place
    assert ids(keep_page_within(hits, "d.md", 3)) == ["1", "2", "3", "5", "4", "6", "7"]
    assert ids(keep_page_within(hits, "b.md", 1)) == ["2", "1", "3", "4", "5", "6", "7"]
    assert ids(keep_page_within(hits, None, 3)) == ids(hits)
    assert ids(keep_page_within(hits, "gone.md", 3)) == ids(hits)


def test_dedupe_keeps_best_per_section_and_per_identical_text() -> None:
    hits = [
        Hit(_chunk("1", "u#x", "one"), 3),
        Hit(_chunk("2", "u#x", "two"), 2),
        Hit(_chunk("3", "u#y", "one"), 1),
        Hit(_chunk("4", "u#z", "four"), 0.5),
    ]
    assert [h.chunk.id for h in dedupe(hits)] == ["1", "4"]


async def test_dense_only_collection_still_answers(
    tmp_path: object, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Milvus server without the BM25 function gets a dense-only collection, and search works."""
    from core import store as store_module

    original = store_module.ChunkStore._create

    def no_bm25(
        self: store_module.ChunkStore, dimension: int, with_bm25: bool, properties: dict[str, str]
    ) -> None:
        if with_bm25:
            raise store_module.MilvusException(message="function type BM25 is not supported")
        original(self, dimension, with_bm25, properties)

    monkeypatch.setattr(store_module.ChunkStore, "_create", no_bm25)
    async with open_service(make_settings(tmp_path), embedder=embedder) as service:  # type: ignore[arg-type]
        assert (await service.index()).outcome == "ok"
        assert not service.store.has_sparse
        result = await service.search("what is knowhere?")
    assert result.dense_only and result.hits[0].chunk.page_id == "knowhere.md"
    assert all(h.sparse_rank is None for h in result.hits)


async def test_the_gate_measures_its_signals_on_the_ranking_it_was_fitted_with(
    indexed_service: RagService,
) -> None:
    """SPARSE_WEIGHT ranks the answers; the gate's signals come from a ranking with the BM25 weight
    its model was fitted with, so changing the weight cannot move the gate's decisions."""
    question = "how do I start milvus standalone with docker and set efConstruction"
    results = []
    for weight in (0.0, 0.8, 5.0):
        settings = indexed_service.settings.model_copy(update={"sparse_weight": weight})
        service = RagService(settings, indexed_service.store, indexed_service.embedder)
        assert service.retriever.config.gate_sparse_weight == service.gate.model.sparse_weight == 0.3
        results.append(await service.search(question, k=10))
    rankings = [[h.chunk.id for h in r.hits] for r in results]
    assert rankings[0] != rankings[2]  # the weight does rank differently
    assert results[0].evidence == results[1].evidence == results[2].evidence


def test_retriever_config_from_settings(indexed_service: RagService) -> None:
    retriever: Retriever = indexed_service.retriever
    assert retriever.config.top_k == 5 and retriever.config.candidates == 20
