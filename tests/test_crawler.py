"""The crawler against a local fake of milvus.io built from the fixture pages."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import NoArticleError
from core.sources import SnapshotSource
from core.sources.crawler import CrawlOptions, SiteCrawler
from core.sources.html import html_to_markdown
from core.sources.markdown import parse_page

from .conftest import FIXTURE_DOCS
from .fakes.docs_site import FakeDocsSite, render_page

BASE = "https://milvus.io/docs/"
AGENT = "MilvusDocsBot-test/0.1 (+https://example.org/contact)"
PUBLISHED = {
    "hnsw.md",
    "scann.md",
    "knowhere.md",
    "replica.md",
    "limitations.md",
    "install_standalone-docker.md",
}


@pytest.fixture
async def site() -> AsyncIterator[FakeDocsSite]:
    fake = await FakeDocsSite.from_folder(FIXTURE_DOCS).start()
    yield fake
    await fake.stop()


def crawler(site: FakeDocsSite, cache: Path | None = None, **options: object) -> SiteCrawler:
    values: dict[str, object] = {"user_agent": AGENT, "backoff": 0.05} | options
    return SiteCrawler(site.docs_url, BASE, CrawlOptions(**values), cache)  # type: ignore[arg-type]


async def test_crawl_reads_the_sitemap_index_and_extracts_the_snapshot_page_model(
    site: FakeDocsSite,
) -> None:
    result = await crawler(site).load()
    assert {p.id for p in result.pages} == PUBLISHED
    assert not result.errors and result.listed == len(PUBLISHED)
    # versioned, translated, blog and robots-disallowed URLs are listed but never fetched
    fetched = {r.path for r in site.requests}
    assert not any(p.startswith(("/docs/v2.6.x/", "/docs/de/", "/docs/private/", "/blog/")) for p in fetched)

    snapshot = {p.id: p for p in SnapshotSource(str(FIXTURE_DOCS), BASE).load_sync().pages}
    for page in result.pages:
        expected = snapshot[page.id]
        assert page.url == BASE + page.id  # links point at the public site, not the mirror
        assert [s.anchor for s in page.sections] == [s.anchor for s in expected.sections]
        assert [s.heading_path for s in page.sections] == [s.heading_path for s in expected.sections]
        text = "\n".join(s.text for s in page.sections)
        assert "Was this page helpful" not in text and "Copyright" not in text and "Copy" not in text
    hnsw = next(p for p in result.pages if p.id == "hnsw.md")
    code = next(s.text for s in hnsw.sections if "```" in s.text)
    assert "index_params.add_index(" in code  # code kept verbatim, in a fence


async def test_script_like_agents_are_refused_and_the_challenge_cookie_is_followed(
    site: FakeDocsSite, caplog: pytest.LogCaptureFixture
) -> None:
    good = await crawler(site).load()
    assert len(good.pages) == len(PUBLISHED)
    first = [r for r in site.page_requests() if r.path == "/docs/hnsw.md"]
    assert [r.status for r in first] == [302, 200]  # challenge, then the page with the cookie
    assert all(r.user_agent == AGENT for r in site.requests)

    site.requests.clear()
    with caplog.at_level(logging.WARNING):
        refused = await crawler(site, user_agent="python-requests/2.32").load()
    assert "looks like a script" in caplog.text
    assert not refused.pages and set(refused.errors.values()) == {"HTTP 403"}
    assert refused.failed_ids == PUBLISHED  # nothing would be deleted from the index


async def test_plain_sitemap_and_link_discovery_without_one(site: FakeDocsSite) -> None:
    site.sitemap_index = False
    assert {p.id for p in (await crawler(site).load()).pages} == PUBLISHED
    site.sitemap = False
    result = await crawler(site).load()
    assert {p.id for p in result.pages} == PUBLISHED  # found by following the docs' links


async def test_robots_crawl_delay_spaces_requests(site: FakeDocsSite) -> None:
    site.crawl_delay = 0.15
    await crawler(site, concurrency=4).load()
    starts = sorted(r.at for r in site.page_requests() if r.status != 302)  # 302: same request
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= len(PUBLISHED) and min(gaps) >= 0.13


async def test_429_is_retried_after_retry_after_and_500_is_an_error(site: FakeDocsSite) -> None:
    site.too_many["/docs/hnsw.md"] = 2
    site.errors.add("/docs/scann.md")
    started = time.monotonic()
    result = await crawler(site, retries=3).load()
    hnsw = [r.status for r in site.page_requests() if r.path == "/docs/hnsw.md"]
    assert hnsw == [302, 429, 429, 200] and time.monotonic() - started >= 2.0  # Retry-After: 1
    assert "hnsw.md" in {p.id for p in result.pages}
    assert result.errors == {f"{site.docs_url}scann.md": "HTTP 500"}
    assert result.failed_ids == {"scann.md"}
    scann = [r.status for r in site.page_requests() if r.path == "/docs/scann.md"]
    assert scann.count(500) == 4  # the first try and three retries


async def test_a_slow_page_times_out_and_the_rest_is_crawled(site: FakeDocsSite) -> None:
    site.slow["/docs/knowhere.md"] = 3.0
    result = await crawler(site, timeout=0.5, retries=1).load()
    assert result.errors == {f"{site.docs_url}knowhere.md": "timed out after 0.5 s"}
    assert {p.id for p in result.pages} == PUBLISHED - {"knowhere.md"}


async def test_recrawl_revalidates_every_page_and_downloads_no_unchanged_body(
    site: FakeDocsSite, tmp_path: Path
) -> None:
    site.lastmod = {page_id: "2026-11-01" for page_id in site.pages}
    first = await crawler(site, tmp_path).load()
    assert site.bodies_served == len(PUBLISHED)

    site.requests.clear()
    site.bodies_served = 0
    second = await crawler(site, tmp_path).load()
    assert {p.id: p.content_hash for p in second.pages} == {p.id: p.content_hash for p in first.pages}
    pages = {r.path: r for r in site.page_requests()}
    assert len(pages) == len(PUBLISHED)  # an unchanged lastmod is no reason to skip the request
    assert {r.status for r in pages.values()} == {304} and all(r.conditional for r in pages.values())
    assert site.bodies_served == 0  # ... and a 304 costs no body

    # edited without a lastmod bump: the conditional GET sees it
    site.pages["replica.md"] = site.pages["replica.md"].replace("in-memory replicas", "memory copies")
    site.requests.clear()
    third = await crawler(site, tmp_path).load()
    statuses = {r.path: r.status for r in site.page_requests()}
    assert statuses["/docs/replica.md"] == 200 and list(statuses.values()).count(200) == 1
    assert site.bodies_served == 1
    assert {p.id for p in third.pages} == PUBLISHED
    before = next(p for p in first.pages if p.id == "replica.md").content_hash
    assert next(p for p in third.pages if p.id == "replica.md").content_hash != before


async def test_removed_page_is_gone_not_an_error(site: FakeDocsSite) -> None:
    site.lastmod.clear()
    del site.pages["scann.md"]
    site.sitemap = False  # the stale sitemap would still list it; links no longer do
    result = await crawler(site).load()
    assert "scann.md" not in {p.id for p in result.pages} and not result.errors


async def test_large_pages_and_sitemaps_are_read_whole(site: FakeDocsSite) -> None:
    # a sitemap and a page well past one network read (64 KiB)
    for n in range(300):
        site.pages[f"page-{n:03d}.md"] = (
            f"---\nid: page-{n:03d}.md\ntitle: Page {n}\n---\n\n# Page {n}\n\nText.\n"
        )
    site.pages["hnsw.md"] += "\n## Appendix\n\n" + "padding words " * 20_000 + "\n\nTHE END OF HNSW\n"
    result = await crawler(site, concurrency=8).load()
    assert not result.errors and len(result.pages) == len(PUBLISHED) + 300
    hnsw = next(p for p in result.pages if p.id == "hnsw.md")
    assert hnsw.sections[-1].text.endswith("THE END OF HNSW")


async def test_oversized_pages_and_pages_without_an_article_are_reported(site: FakeDocsSite) -> None:
    result = await crawler(site, max_page_bytes=11_000).load()
    assert any("CRAWL_MAX_PAGE_BYTES" in reason for reason in result.errors.values())
    with pytest.raises(NoArticleError):
        html_to_markdown("<html><body><nav>menu</nav><p>no article</p></body></html>", "x.md")


def test_extraction_keeps_code_tables_and_anchors() -> None:
    source = (FIXTURE_DOCS / "getstarted" / "limitations.md").read_text()
    markdown = html_to_markdown(render_page(source, ["limitations.md"]), "limitations.md")
    assert markdown.startswith("---\nid: limitations.md\ntitle: ")
    assert "anchor-icon" not in markdown and "<svg" not in markdown
    assert " | " in markdown  # table rows as `cell | cell`


async def test_docsbot_crawl_writes_a_snapshot_the_snapshot_source_reads_back(
    site: FakeDocsSite, tmp_path: Path
) -> None:
    import asyncio
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"MILVUS_URI", "DOCS_SOURCE"}}
    env |= {"DATA_DIR": str(tmp_path / "data"), "CRAWL_USER_AGENT": AGENT, "LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "crawl",
        "--out",
        str(tmp_path / "snapshot"),
        "--source",
        site.docs_url,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert f"{len(PUBLISHED)} pages written" in out.decode()
    crawled = await crawler(site).load()
    reread = SnapshotSource(str(tmp_path / "snapshot"), BASE).load_sync()
    assert {p.id: p.content_hash for p in reread.pages} == {p.id: p.content_hash for p in crawled.pages}


def test_settings_build_a_crawler_rooted_at_the_source_url(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, data_dir=tmp_path, crawl_user_agent=AGENT)
    built = SiteCrawler.from_settings("http://127.0.0.1:9/docs/", settings)
    assert built.root == "http://127.0.0.1:9" and built.public_base_url == BASE
    assert built.cache_path == tmp_path / "crawl-cache" / "127.0.0.1_9.json"


def test_code_tab_groups_keep_the_first_language_like_the_snapshot() -> None:
    source = """---
id: tabs.md
title: Tabs
---

# Tabs

## Connect

<div class="multipleCode">
    <a href="#python">Python</a>
    <a href="#java">Java</a>
</div>

```python
client = MilvusClient("milvus.db")
```

```java
MilvusClientV2 client = new MilvusClientV2(config);
```

Then insert data.
"""
    snapshot = parse_page(source, BASE)
    crawled = parse_page(html_to_markdown(render_page(source, ["tabs.md"]), "tabs.md"), BASE)
    assert snapshot is not None and crawled is not None
    text = crawled.sections[-1].text
    assert "MilvusClient(" in text and "MilvusClientV2" not in text and "Java" not in text
    assert [s.text for s in crawled.sections] == [s.text for s in snapshot.sections]
