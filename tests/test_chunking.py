import itertools
import re

from core.chunking import Chunker, searchable, with_table_header
from core.sources import SnapshotSource
from core.sources.markdown import parse_page

from .conftest import FIXTURE_DOCS

BASE = "https://milvus.io/docs/"


def _pages():  # type: ignore[no-untyped-def]
    return SnapshotSource(str(FIXTURE_DOCS), BASE).load_sync().pages


def _without_restored_header(text: str) -> str:
    lines = text.split("\n", 2)
    return lines[2] if len(lines) == 3 and re.fullmatch(r"\|(?:---\|)+", lines[1]) else text


def test_chunks_respect_size_and_carry_their_citation() -> None:
    chunker = Chunker(512, 51)
    for page in _pages():
        for chunk in chunker.chunk_page(page):
            assert len(_without_restored_header(chunk.text)) <= 512
            assert chunk.page_id == page.id and chunk.title == page.title
            assert chunk.url.startswith(page.url)
            assert chunk.search_text == f"{chunk.heading}\n{searchable(chunk.text)}"
            assert chunk.heading.split(" > ")[0] == page.title


def test_chunk_ids_are_deterministic_and_unique() -> None:
    pages = _pages()
    first = [c.id for p in pages for c in Chunker().chunk_page(p)]
    second = [c.id for p in pages for c in Chunker().chunk_page(p)]
    assert first == second
    assert len(set(first)) == len(first)


def test_sections_are_split_on_headings_first() -> None:
    text = "---\nid: t.md\ntitle: T\n---\n# T\n\nintro\n\n## A\n\nalpha text\n\n## B\n\nbeta text\n"
    page = parse_page(text, BASE)
    assert page is not None
    chunks = Chunker().chunk_page(page)
    assert [(c.heading, c.text, c.url) for c in chunks] == [
        ("T", "intro", "https://milvus.io/docs/t.md"),
        ("T > A", "alpha text", "https://milvus.io/docs/t.md#A"),
        ("T > B", "beta text", "https://milvus.io/docs/t.md#B"),
    ]


def test_code_and_table_lines_are_not_cut_mid_line() -> None:
    code = "\n".join(f"client.call_number_{i}(argument={i})  # a comment" for i in range(40))
    table = "\n".join(f"param_{i} | the description of parameter {i} | {i}" for i in range(30))
    text = f"---\nid: t.md\ntitle: T\n---\n# T\n\n```python\n{code}\n```\n\n{table}\n"
    page = parse_page(text, BASE)
    assert page is not None
    chunks = Chunker(512, 51).chunk_page(page)
    assert len(chunks) > 4
    whole_lines = set(code.splitlines()) | set(table.splitlines()) | {"```python", "```"}
    for chunk in chunks:
        for line in chunk.text.splitlines():
            assert line in whole_lines, line


def test_long_prose_overlaps_between_chunks() -> None:
    sentences = " ".join(f"Sentence number {i} explains something." for i in range(60))
    page = parse_page(f"---\nid: t.md\ntitle: T\n---\n# T\n\n{sentences}\n", BASE)
    assert page is not None
    chunks = Chunker(200, 40).chunk_page(page)
    assert len(chunks) > 3
    for left, right in itertools.pairwise(chunks):
        assert left.text.split()[-1] in right.text  # the overlap repeats the tail


def test_a_chunk_starting_inside_a_table_gets_the_header_row_back() -> None:
    rows = "\n".join(f"| `param_{i}` | what parameter {i} does, at some length | {i} |" for i in range(30))
    table = f"| Parameter    | Description | Default   |\n|:-------------|-------------|----------:|\n{rows}"
    page = parse_page(f"---\nid: t.md\ntitle: T\n---\n# T\n\nSome intro.\n\n{table}\n\nAfter.\n", BASE)
    assert page is not None
    chunks = [c for c in Chunker(512, 51).chunk_page(page) if "param_" in c.text]
    assert len(chunks) > 2
    assert chunks[0].text.count("| Parameter") == 1  # the first one has its own header
    for chunk in chunks[1:]:  # the later ones get it back, unpadded, before their first row
        header, rule, first = chunk.text.split("\n")[:3]
        assert (header, rule) == ("| Parameter | Description | Default |", "|---|---|---|")
        assert first.startswith("| `param_") and first in rows.splitlines()
        assert chunk.search_text.split("\n")[1:3] == ["| Parameter | Description | Default |", first]


def test_the_table_header_is_only_restored_inside_a_table() -> None:
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert with_table_header("| 3 | 4 |", table) == "| a | b |\n|---|---|\n| 3 | 4 |"
    assert with_table_header("plain text", table) == "plain text"
    assert with_table_header("| 3 | 4 |", "prose before\n| no rule above |\n") == "| 3 | 4 |"
    assert with_table_header("| a | b |", "a paragraph\n\n") == "| a | b |"


def test_the_search_text_reads_a_table_without_its_padding_and_rule() -> None:
    table = (
        "The limits:\n"
        "| Resource     | Limit|\n"
        "| ----------- | :---------: |\n"
        "| Field   | 64        |\n"
        "| `topk` (results per query)   | 16,384      |\n"
        "Use `a | b` as before."
    )
    assert searchable(table) == (
        "The limits:\n"
        "| Resource | Limit |\n"
        "| Field | 64 |\n"
        "| `topk` (results per query) | 16,384 |\n"
        "Use `a | b` as before."
    )
    page = parse_page(f"---\nid: l.md\ntitle: Limits\n---\n# Limits\n\n## Fields\n\n{table}\n", BASE)
    assert page is not None
    (chunk,) = Chunker(512, 51).chunk_page(page)
    assert chunk.text == table  # what the LLM reads is the page's own text
    assert chunk.search_text == "Limits > Fields\n" + searchable(table)
