"""Reindexing from the (fake) docs site: incremental, single-flight, safe, and readable meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Settings
from core.progress import ReindexProgress
from core.service import open_service

from .conftest import FIXTURE_DOCS, CountingEmbedder, make_settings
from .fakes.docs_site import FakeDocsSite

AGENT = "MilvusDocsBot-test/0.1 (+https://example.org/contact)"
SITE_PAGES = 6  # the fixture pages the fake site publishes


@pytest.fixture
async def site() -> AsyncIterator[FakeDocsSite]:
    fake = await FakeDocsSite.from_folder(FIXTURE_DOCS).start()
    yield fake
    await fake.stop()


def site_settings(tmp_path: Path, site: FakeDocsSite, **overrides: object) -> Settings:
    values: dict[str, object] = {"docs_source": site.docs_url, "crawl_user_agent": AGENT, "crawl_retries": 1}
    return make_settings(tmp_path, **(values | overrides))


async def test_recrawl_is_incremental_changes_and_removals_follow_the_site(
    tmp_path: Path, site: FakeDocsSite, counting_embedder: CountingEmbedder
) -> None:
    settings = site_settings(tmp_path, site)
    async with open_service(settings, embedder=counting_embedder, generation=False) as service:
        first = await service.index()
        assert (first.outcome, first.added, first.errors) == ("ok", SITE_PAGES, 0)
        assert first.requests > SITE_PAGES

        counting_embedder.embedded.clear()
        site.requests.clear()
        again = await service.index()
        assert (again.outcome, again.unchanged, again.chunks_embedded) == ("ok", SITE_PAGES, 0)
        assert {r.status for r in site.page_requests() if r.status != 302} == {304}

        site.pages["replica.md"] = site.pages["replica.md"].replace("in-memory replicas", "memory copies")
        changed = await service.index()
        assert (changed.changed, changed.unchanged) == (1, SITE_PAGES - 1)
        assert counting_embedder.embedded and all(
            t.startswith("In-Memory Replica") for t in counting_embedder.embedded
        )

        del site.pages["scann.md"]  # gone from the sitemap and answering 404
        removed = await service.index()
        assert (removed.outcome, removed.removed) == ("ok", 1)
        hits = await service.search("SCANN reorder_k", k=10)
        assert all(h.chunk.page_id != "scann.md" for h in hits.hits)
        assert all(h.chunk.url.startswith("https://milvus.io/docs/") for h in hits.hits)


async def test_mass_removal_is_refused_until_forced(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        for page_id in ("scann.md", "knowhere.md", "replica.md"):
            del site.pages[page_id]
        refused = await service.index()
        assert refused.outcome == "needs_review" and refused.removed == 0
        assert "3 of 6 indexed pages would be deleted" in refused.message
        assert sorted(refused.refused_deletions) == ["knowhere.md", "replica.md", "scann.md"]
        assert (await service.status()).pages == SITE_PAGES
        assert service.last_run() is not None and service.last_run().outcome == "needs_review"  # type: ignore[union-attr]

        forced = await service.index(force=True)
        assert (forced.outcome, forced.removed) == ("ok", 3)
        assert (await service.status()).pages == SITE_PAGES - 3


async def test_failed_fetches_keep_their_pages_and_a_sick_crawl_deletes_nothing(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        site.errors |= {"/docs/hnsw.md", "/docs/knowhere.md"}  # 2 of 6 fail: above 10 %
        del site.pages["limitations.md"]
        run = await service.index()
        assert run.outcome == "needs_review" and run.errors == 2 and run.removed == 0
        assert "2 of 5 pages failed to load" in run.message  # 5 still listed
        assert (await service.status()).pages == SITE_PAGES  # nothing deleted, failed pages kept
        hits = await service.search("HNSW M efConstruction")
        assert hits.hits[0].chunk.page_id == "hnsw.md"


async def test_a_second_reindex_joins_the_running_one(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    site.slow["/docs/hnsw.md"] = 0.5
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        seen: list[ReindexProgress] = []
        job, started = service.start_reindex(trigger="admin")
        job.subscribe(seen.append)
        await asyncio.sleep(0.2)
        second, second_started = service.start_reindex(trigger="schedule")
        assert started and not second_started and second is job
        assert 0 <= second.progress.percent < 100 and "pages read" in second.progress.describe()
        run = await second.wait()
        assert run.outcome == "ok" and run.trigger == "admin"
        assert [r.path for r in site.requests].count("/sitemap.xml") == 1  # one crawl only
        phases = [p.phase for p in seen]
        assert phases.index("fetching") < phases.index("embedding") < phases.index("done")
        assert seen[-1].percent == 100 and seen[-1].pages_changed == SITE_PAGES
        assert service.running_reindex is None
        assert service.start_reindex()[1]  # finished: the next request starts a new run
        await service.running_reindex.wait()  # type: ignore[union-attr]


async def test_readers_get_answers_from_a_consistent_index_during_a_reindex(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        for page_id in list(site.pages):
            site.pages[page_id] = site.pages[page_id].replace("Milvus", "Milvus (vector database)")
        job, _ = service.start_reindex()
        searches = 0
        while not job.done:
            result = await service.search("What does M control in HNSW?")
            hnsw = [h for h in result.hits if h.chunk.page_id == "hnsw.md"]
            assert service.is_covered(result) and hnsw  # never a page missing mid-swap
            searches += 1
        run = await job.wait()
        assert run.outcome == "ok" and run.changed == SITE_PAGES and searches >= 3
        assert (await service.search("HNSW")).hits


async def test_unreachable_site_falls_back_to_the_snapshot_only_when_the_index_is_empty(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    settings = make_settings(
        tmp_path, docs_source="http://127.0.0.1:9/docs/", crawl_retries=0, crawl_timeout=2
    )
    async with open_service(settings, embedder=embedder, generation=False) as service:
        service.fallback_source = str(FIXTURE_DOCS)  # stands in for the bundled snapshot
        run = await service.index()
        assert run.outcome == "ok" and run.added == 7
        assert "could not be crawled" in run.message and "bundled snapshot instead" in run.message

        again = await service.index()
        assert again.outcome == "failed" and "could not be reached" in again.message
        assert (await service.status()).pages == 7  # a failed crawl changes nothing


async def test_service_answers_while_the_index_is_rebuilt(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    """`RagService` keeps serving questions while a reindex runs (no lock around reads)."""
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        await service.index()
        job, _ = service.start_reindex(full=False)
        answer = await service.ask("How do I install Milvus standalone with Docker?")
        assert answer.outcome == "answered" and answer.sources
        await job.wait()
