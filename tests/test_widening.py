"""Passages searched narrow and read wide (core.widening), alone and on a small real index."""

import logging

import pytest

from core.errors import StoreError
from core.models import Chunk, Hit
from core.prompting import build_messages
from core.scope_check import check_messages
from core.service import RagService
from core.widening import joined, limit, widen


def _chunk(position: int, text: str, heading: str = "HNSW > Index params", page: str = "hnsw.md") -> Chunk:
    return Chunk(
        id=f"{page}-{position}",
        page_id=page,
        title="HNSW",
        heading=heading,
        url=f"https://milvus.io/docs/{page}#x",
        text=text,
        search_text=text,
        position=position,
        page_hash="h",
    )


def test_consecutive_chunks_join_without_their_overlap() -> None:
    before = "M sets the maximum number of neighbours of each node in the graph."
    after = "of each node in the graph. Its range is [2, 2048]."
    assert joined(before, after) == (
        "M sets the maximum number of neighbours of each node in the graph. Its range is [2, 2048]."
    )


def test_a_short_shared_end_is_chance_not_overlap() -> None:
    """A share under a dozen characters is kept twice: "...as" + "soon" is not "...asoon"."""
    assert joined("Set it as", "soon as the index is built.") == "Set it as\nsoon as the index is built."


def test_the_table_header_put_back_by_the_chunker_is_not_repeated() -> None:
    header = "| Parameter | Range |\n|---|---|"
    before = f"Index params:\n\n{header}\n| M | [2, 2048] |"
    after = f"{header}\n| efConstruction | [1, int_max] |"
    assert joined(before, after) == f"{before}\n| efConstruction | [1, int_max] |"
    # a header the text before does not have stays: it names the columns of its rows
    assert joined("Some prose before the table.", after) == f"Some prose before the table.\n{after}"


def test_a_hit_grows_by_the_chunks_after_it_then_by_those_before_it_in_its_section() -> None:
    section = [_chunk(p, f"passage {p} " + "x" * 190) for p in range(1, 6)]  # 200 characters each
    other_section = _chunk(6, "y" * 100, heading="HNSW > Search params")
    other_page = _chunk(3, "z" * 100, page="ivf-flat.md")
    hit = Hit(section[3], 1.0)  # position 4: one chunk after it, three before

    [wide] = widen([hit], [*section, other_section, other_page], chars=600)

    assert wide.chunk == hit.chunk  # the search matched the chunk; only what is read grows
    assert wide.text.index("passage 3") < wide.text.index("passage 4") < wide.text.index("passage 5")
    assert "passage 2" not in wide.text  # 600 reached
    assert "y" * 100 not in wide.text and "z" * 100 not in wide.text  # its own section only
    assert len(wide.text) <= limit(600)


def test_a_neighbour_that_would_overrun_the_limit_is_left_out() -> None:
    hit = Hit(_chunk(1, "a" * 300), 1.0)
    [wide] = widen([hit], [hit.chunk, _chunk(2, "b" * 500), _chunk(0, "c" * 100)], chars=500)
    assert "b" not in wide.text  # 300 + 500 > 1.2 * 500
    assert wide.text == "c" * 100 + "\n" + "a" * 300


def test_a_hit_alone_in_its_section_or_long_enough_is_unchanged() -> None:
    alone = Hit(_chunk(1, "short"), 1.0)
    long_enough = Hit(_chunk(5, "l" * 700, heading="Other"), 0.5)
    assert widen([alone, long_enough], [alone.chunk, long_enough.chunk, _chunk(6, "n" * 50)], 600) == [
        alone,
        long_enough,
    ]
    assert alone.text == "short" and alone.context is None


async def test_answers_read_the_widened_passages_and_the_scope_check_the_matched_ones(
    indexed_service: RagService,
) -> None:
    result = await indexed_service.search("SCANN reorder_k good starting value")
    widened = [hit for hit in result.hits if hit.context is not None]
    assert widened, "the fixture's SCANN sections span several chunks"
    chars = indexed_service.settings.passage_chars
    for hit in widened:
        assert hit.chunk.text in hit.text or hit.chunk.text[:200] in hit.text
        assert chars <= len(hit.text) <= limit(chars)
    prompt = build_messages("reorder_k?", result.hits)[0]["content"]
    assert widened[0].text[-100:] in prompt
    scope = check_messages("reorder_k?", widened[:1])[1]["content"]
    assert widened[0].text[-100:] not in scope


async def test_widening_can_be_turned_off(indexed_service: RagService) -> None:
    settings = indexed_service.settings.model_copy(update={"passage_chars": 0})
    service = RagService(settings, indexed_service.store, indexed_service.embedder)
    result = await service.search("SCANN reorder_k good starting value")
    assert all(hit.context is None for hit in result.hits)


async def test_passages_stay_narrow_when_their_neighbours_cannot_be_read(
    indexed_service: RagService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(*args: object) -> list[Chunk]:
        raise StoreError("Milvus query on test_docs failed: connection reset")

    monkeypatch.setattr(indexed_service.store, "neighbours", fail)
    with caplog.at_level(logging.WARNING, logger="core.retrieval"):
        result = await indexed_service.search("SCANN reorder_k good starting value")
    assert result.hits and all(hit.context is None for hit in result.hits)
    assert "passages not widened" in caplog.text
