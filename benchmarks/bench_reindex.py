"""Freshness cost: recrawl + reindex of an unchanged site against the first crawl + index.

    python benchmarks/bench_reindex.py [--pages N] [--concurrency 4]

A fake milvus.io on 127.0.0.1 (tests/fakes/docs_site.py: the real site's HTML layout, robots.txt,
sitemap index, challenge cookie, ETags) serves the bundled snapshot (or its first N pages).
Prints one JSON object:
- crawl_only_s, crawl_pages_per_s, crawl_requests: a first crawl (no cache) at the concurrency
- first_s, first_requests: the first crawl + index (chunk, embed, write) into a fresh collection
- unchanged_s, unchanged_requests, unchanged_embedded: the same again with nothing changed
- unchanged_vs_first: the ratio of the two times (goal <= 0.05)
- one_changed_s: a run after one page changed (only that page is re-embedded)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (import path and quiet start-up)

from core.config import load_settings
from core.embedding import SentenceTransformerEmbedder
from core.service import open_service
from core.sources import _bundled_files, pages_from_files
from core.sources.crawler import SiteCrawler
from core.sources.markdown import split_front_matter
from tests.fakes.docs_site import FakeDocsSite, _valid_front_matter

AGENT = "MilvusDocsBot-bench/0.1 (+https://example.org/contact)"


def snapshot_pages(limit: int | None) -> dict[str, str]:
    """Page id -> Markdown of the published pages of the bundled snapshot (first `limit`)."""
    files = [(name, text) for name, text in _bundled_files() if text and _valid_front_matter(text)]
    published = {p.id for p in pages_from_files(files, "https://milvus.io/docs/").pages}
    pages: dict[str, str] = {}
    for _name, text in files:
        page_id = str(split_front_matter(text or "").meta.get("id") or "")
        if page_id in published and page_id not in pages:
            pages[page_id] = text or ""
    return dict(list(pages.items())[:limit])


async def main(args: argparse.Namespace) -> dict[str, object]:
    site = await FakeDocsSite(pages=snapshot_pages(args.pages)).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            settings = load_settings(
                env_file=None,
                milvus_uri=str(root / "milvus.db"),
                data_dir=root / "data",
                docs_source=site.docs_url,
                crawl_user_agent=AGENT,
                crawl_concurrency=args.concurrency,
            )
            crawl_settings = settings.model_copy(update={"data_dir": root / "crawl-only"})
            crawler = SiteCrawler.from_settings(site.docs_url, crawl_settings)
            started = time.perf_counter()
            crawled = await crawler.load()
            crawl_s = time.perf_counter() - started

            embedder = SentenceTransformerEmbedder(settings.embedding_model)
            _ = embedder.model  # loaded outside the timings
            async with open_service(settings, embedder=embedder, generation=False) as service:
                started = time.perf_counter()
                first = await service.index()
                first_s = time.perf_counter() - started
                started = time.perf_counter()
                again = await service.index()
                again_s = time.perf_counter() - started
                page_id = sorted(site.pages)[0]
                site.pages[page_id] += "\n\nOne more sentence about this page.\n"
                started = time.perf_counter()
                changed = await service.index()
                changed_s = time.perf_counter() - started
    finally:
        await site.stop()
    assert first.outcome == again.outcome == changed.outcome == "ok", (first, again, changed)
    assert again.chunks_embedded == 0 and changed.changed == 1
    return {
        "benchmark": "reindex",
        "pages": len(site.pages),
        "concurrency": args.concurrency,
        "crawl_only_s": round(crawl_s, 2),
        "crawl_pages_per_s": round(len(crawled.pages) / crawl_s, 1),
        "crawl_requests": crawled.requests,
        "first_s": round(first_s, 2),
        "first_requests": first.requests,
        "first_chunks_embedded": first.chunks_embedded,
        "unchanged_s": round(again_s, 2),
        "unchanged_requests": again.requests,
        "unchanged_embedded": again.chunks_embedded,
        "unchanged_vs_first": round(again_s / first_s, 4),
        "one_changed_s": round(changed_s, 2),
        "one_changed_embedded": changed.chunks_embedded,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=None, help="only the first N pages")
    parser.add_argument("--concurrency", type=int, default=4)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
