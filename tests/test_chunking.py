import itertools

from core.chunking import Chunker
from core.sources import SnapshotSource
from core.sources.markdown import parse_page

from .conftest import FIXTURE_DOCS

BASE = "https://milvus.io/docs/"


def _pages():  # type: ignore[no-untyped-def]
    return SnapshotSource(str(FIXTURE_DOCS), BASE).load_sync().pages


def test_chunks_respect_size_and_carry_their_citation() -> None:
    chunker = Chunker(512, 51)
    for page in _pages():
        for chunk in chunker.chunk_page(page):
            assert len(chunk.text) <= 512
            assert chunk.page_id == page.id and chunk.title == page.title
            assert chunk.url.startswith(page.url)
            assert chunk.search_text == f"{chunk.heading}\n{chunk.text}"
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
