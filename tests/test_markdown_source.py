import logging

import pytest

from core.config import load_settings
from core.errors import SourceError
from core.sources import BUNDLED, SnapshotSource, open_source, pages_from_files
from core.sources.markdown import heading_anchor, parse_page, split_front_matter

from .conftest import FIXTURE_DOCS, FIXTURE_PAGES

BASE = "https://milvus.io/docs/"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Index params", "Index-params"),
        ("`proxy.maxVectorFieldNum`", "proxymaxVectorFieldNum"),
        ("ARRAY_CONTAINS", "ARRAYCONTAINS"),
        ("Example 2: Using LIKE for Pattern Matching", "Example-2-Using-LIKE-for-Pattern-Matching"),
        ("Path A: Use built-in analyzers", "Path-A-Use-built-in-analyzers"),
        ("IS NULL and IS NOT NULL operators", "IS-NULL-and-IS-NOT-NULL-operators"),
        ("What's next", "Whats-next"),
    ],
)
def test_heading_anchor_matches_milvus_io(heading: str, anchor: str) -> None:
    assert heading_anchor(heading) == anchor


def test_page_maps_to_its_url_and_sections_to_anchors() -> None:
    page = parse_page((FIXTURE_DOCS / "indexes" / "hnsw.md").read_text(), BASE)
    assert page is not None
    assert (page.id, page.title, page.url) == ("hnsw.md", "HNSW", "https://milvus.io/docs/hnsw.md")
    assert page.summary.startswith("The HNSW index is a graph-based")
    by_anchor = {s.anchor: s for s in page.sections}
    building = by_anchor["Index-building-params"]
    assert building.heading_path == ("HNSW", "Index params", "Index building params")
    assert page.section_url(building.anchor) == "https://milvus.io/docs/hnsw.md#Index-building-params"
    assert by_anchor[""].heading_path == ("HNSW",)  # the intro links to the page itself


def test_tables_become_rows_and_markup_goes() -> None:
    text = """---
id: t.md
title: T
---

# T

Intro with a [link](other.md#x) and ![img](https://x/y.png) and \u200bzero width.

<table>
  <tr><th>Parameter</th><th>Default</th></tr>
  <tr><td><code>M</code></td><td>30</td></tr>
</table>
"""
    page = parse_page(text, BASE)
    assert page is not None
    body = page.sections[0].text
    assert "Intro with a link and  and zero width." in body
    assert "Parameter | Default\nM | 30" in body
    assert "<" not in body and "\u200b" not in body


def test_only_the_first_language_tab_of_a_code_group_is_kept() -> None:
    text = """---
id: t.md
title: T
---

# T

<div class="multipleCode">
    <a href="#python">Python</a>
    <a href="#java">Java</a>
</div>

```python
client.create_collection("a")
```

```java
client.createCollection("a");
```

Standalone example:

```bash
curl localhost
```
"""
    page = parse_page(text, BASE)
    assert page is not None
    body = page.sections[0].text
    assert "client.create_collection" in body and "createCollection" not in body
    assert "curl localhost" in body  # a block outside the tab group stays


def test_headings_inside_code_blocks_are_not_sections() -> None:
    text = "---\nid: t.md\ntitle: T\n---\n# T\n\n```bash\n# not a heading\nls\n```\n"
    page = parse_page(text, BASE)
    assert page is not None and len(page.sections) == 1
    assert "# not a heading" in page.sections[0].text


def test_missing_title_falls_back_to_first_heading() -> None:
    page = parse_page("---\nid: configure_x.md\n---\n\n# x-related Configurations\n\ntext\n", BASE)
    assert page is not None and page.title == "x-related Configurations"


def test_files_without_id_and_deprecated_pages_are_skipped() -> None:
    assert parse_page("# No front matter\n\ntext", BASE) is None
    assert parse_page("---\ntitle: no id\n---\n# x\n", BASE) is None
    assert parse_page("---\nid: d.md\ndeprecate: true\n---\n# d\n", BASE) is None


def test_malformed_front_matter_is_read_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        page = parse_page((FIXTURE_DOCS / "broken-front-matter.md").read_text(), BASE, origin="broken.md")
    assert page is not None and page.id == "broken-front-matter.md"
    assert page.title == "Broken: front matter"
    assert any("malformed front matter" in r.message for r in caplog.records)


def test_unclosed_front_matter_does_not_crash() -> None:
    meta = split_front_matter("---\nid: x.md\n# never closed\n")
    assert meta.meta == {}


def test_duplicate_ids_keep_the_first_file() -> None:
    page = "---\nid: same.md\ntitle: {}\n---\n# {}\n\ntext\n"
    result = pages_from_files([("a.md", page.format("A", "A")), ("b.md", page.format("B", "B"))], BASE)
    assert [p.title for p in result.pages] == ["A"] and result.skipped == 1


def test_content_hash_changes_with_content_only() -> None:
    text = (FIXTURE_DOCS / "reference" / "replica.md").read_text()
    first, again = parse_page(text, BASE), parse_page(text, BASE)
    changed = parse_page(text + "\nOne more sentence.\n", BASE)
    assert first is not None and again is not None and changed is not None
    assert first.content_hash == again.content_hash != changed.content_hash


def test_fixture_folder_source() -> None:
    result = SnapshotSource(str(FIXTURE_DOCS), BASE).load_sync()
    assert len(result.pages) == FIXTURE_PAGES
    assert result.skipped == 2  # README.md (no id) and deprecated.md
    assert "deprecated.md" not in {p.id for p in result.pages}


def test_bundled_snapshot_has_the_published_english_pages() -> None:
    result = SnapshotSource(BUNDLED, BASE).load_sync()
    ids = {p.id for p in result.pages}
    assert len(result.pages) == 476  # 492 files - 15 deprecated - 1 duplicate id
    assert {"hnsw.md", "index-vector-fields.md", "configure_proxy.md"} <= ids
    assert not result.errors


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="neither a URL, 'bundled' nor an existing directory"):
        open_source("/no/such/folder", load_settings(env_file=None))
