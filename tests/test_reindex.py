"""Reindexing from the (fake) docs site: incremental, single-flight, safe, and readable meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.config import Settings
from core.lease import ReindexLease
from core.progress import ReindexProgress
from core.service import open_service

from .conftest import FIXTURE_DOCS, CountingEmbedder, make_settings
from .fakes.docs_site import FakeDocsSite
from .test_server_uri import _free_port, milvus_server  # noqa: F401 (a fixture)

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
        next_job, started_again = service.start_reindex()
        assert started_again  # finished: the next request starts a new run
        await next_job.wait()


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


# --- reindexing never serves a broken index (issue 12, section 2) -----------------------------


async def _until(condition: Callable[[], bool], limit: float = 120) -> None:
    """Poll: the state changes in another task, thread or process."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_a_run_past_reindex_timeout_fails_deletes_nothing_and_the_next_starts_clean(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        del site.pages["scann.md"]  # this run would delete it
        site.slow["/docs/hnsw.md"] = 5.0
        service.indexer.timeout = 1.0
        started = time.monotonic()
        run = await service.index()
        assert time.monotonic() - started < 4.0
        assert run.outcome == "failed" and "REINDEX_TIMEOUT=1" in run.message and run.removed == 0
        assert (await service.status()).pages == SITE_PAGES  # nothing deleted

        site.slow.clear()
        service.indexer.timeout = 3600.0
        again = await service.index()  # the file lock and the lease were released
        assert (again.outcome, again.removed) == ("ok", 1)


async def test_two_processes_sharing_a_milvus_server_reindex_one_at_a_time(
    tmp_path: Path,
    site: FakeDocsSite,
    embedder: CountingEmbedder,
    milvus_server: tuple[str, Path],  # noqa: F811 (the fixture imported above)
) -> None:
    """Like `docsbot serve` and a `docsbot index` CronJob in another pod: separate DATA_DIRs (the
    file lock cannot see the other), one Milvus server; the lease in Milvus keeps them apart."""
    uri, _ = milvus_server
    site.slow["/docs/hnsw.md"] = 2.0
    bot_settings = site_settings(tmp_path / "bot", site, milvus_uri=uri)
    cron_settings = site_settings(tmp_path / "cron", site, milvus_uri=uri)
    async with (
        open_service(bot_settings, embedder=embedder, generation=False) as bot,
        open_service(cron_settings, embedder=embedder, generation=False) as cron,
    ):
        job, _ = bot.start_reindex(trigger="schedule")
        await _until(lambda: job.progress.phase != "starting")  # the bot holds the lease
        refused = await cron.index()
        assert refused.outcome == "failed" and "another docsbot process" in refused.message
        assert "same Milvus" in refused.message and job.progress.phase != "done"
        assert (await job.wait()).outcome == "ok"

        site.slow.clear()
        again = await cron.index()  # released at the end of the bot's run
        assert (again.outcome, again.unchanged) == ("ok", SITE_PAGES)


async def test_an_expired_lease_is_taken_over_and_a_live_one_is_respected(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    async with open_service(make_settings(tmp_path), embedder=embedder, generation=False) as service:
        other = ReindexLease(service.store, ttl=600)  # another process, alive
        await asyncio.to_thread(other._ensure_collection)
        await asyncio.to_thread(other._write)
        busy = await service.index()
        assert busy.outcome == "failed" and other.holder in busy.message

        crashed = ReindexLease(service.store, ttl=0.01)  # another process that died
        await asyncio.to_thread(crashed._write)
        await asyncio.sleep(0.1)  # its lease expired
        run = await service.index()
        assert run.outcome == "ok" and run.added == 7


async def test_an_alias_switch_is_observed_by_a_concurrent_reader_as_old_then_new(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        old_hash = service.store.chunks_of(["hnsw.md"])[0].page_hash
        for page_id in list(site.pages):
            site.pages[page_id] = site.pages[page_id].replace("Milvus", "Milvus (vector database)")
        job, _ = service.start_reindex(full=True)
        seen: list[str] = []  # per search: "old" or "new" (the hnsw.md hits' page hash)
        while not job.done:
            result = await service.search("What does M control in HNSW?")
            hashes = {h.chunk.page_hash for h in result.hits if h.chunk.page_id == "hnsw.md"}
            assert service.is_covered(result) and len(hashes) == 1  # never empty, never mixed
            seen.append("old" if hashes == {old_hash} else "new")
        run = await job.wait()
        assert run.outcome == "ok" and "rebuilt (--full)" in run.message
        final = await service.search("What does M control in HNSW?")
        assert {h.chunk.page_hash for h in final.hits if h.chunk.page_id == "hnsw.md"} != {old_hash}
        # the old index until the switch, then only the new one: one flip, never back
        assert seen and seen[0] == "old" and seen.count("old") >= 3
        flips = [i for i in range(1, len(seen)) if seen[i] != seen[i - 1]]
        assert len(flips) <= 1 and (not flips or seen[flips[0]] == "new")


async def test_sigterm_during_a_cli_reindex_records_it_interrupted_and_the_next_run_completes(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    settings = site_settings(tmp_path, site)
    site.slow["/docs/hnsw.md"] = 60.0
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "DOCS_", "REINDEX_"))},
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "MILVUS_URI": settings.milvus_uri,
        "DATA_DIR": str(settings.data_dir),
        "COLLECTION": settings.collection,
        "DOCS_SOURCE": site.docs_url,
        "CRAWL_USER_AGENT": AGENT,
        "SHUTDOWN_GRACE": "10",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "index", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        await _until(lambda: any(r.path == "/docs/hnsw.md" for r in site.requests))
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 143, stderr.decode()[-2000:]
    assert "recorded as interrupted" in stderr.decode() and "Traceback" not in stderr.decode()

    site.slow.clear()
    async with open_service(settings, embedder=embedder, generation=False) as service:
        last = service.last_run()
        assert last is not None and last.outcome == "failed" and last.message.startswith("interrupted")
        run = await service.index()  # not refused: the lease was released, not left to expire
        assert run.outcome == "ok" and run.added == SITE_PAGES


async def test_a_full_rebuild_carries_over_pages_that_failed_and_deletions_it_may_not_make(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        site.errors.add("/docs/hnsw.md")  # 1 of 5 listed pages fails: above 10 %
        del site.pages["scann.md"]
        run = await service.index(full=True)
        assert run.outcome == "needs_review" and run.message.startswith("rebuilt (--full)")
        assert run.refused_deletions == ["scann.md"] and run.removed == 0
        assert (await service.status()).pages == SITE_PAGES  # both kept in the new collection
        hits = await service.search("What does M control in HNSW?")
        assert hits.hits[0].chunk.page_id == "hnsw.md"

        site.errors.clear()
        forced = await service.index(full=True, force=True)
        assert (forced.outcome, forced.removed) == ("ok", 1)
        assert (await service.status()).pages == SITE_PAGES - 1


async def test_sigterm_during_a_serve_reindex_stops_it_cleanly_and_the_next_run_completes(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    """A real `docsbot serve` process indexing its empty index at start-up gets SIGTERM."""
    settings = site_settings(tmp_path, site)
    site.slow["/docs/hnsw.md"] = 60.0
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MILVUS_", "DOCS_", "REINDEX_", "SLACK_", "DISCORD_", "LLM_"))
        },
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "MILVUS_URI": settings.milvus_uri,
        "DATA_DIR": str(settings.data_dir),
        "RECORDS_PATH": str(tmp_path / "records.sqlite3"),
        "COLLECTION": settings.collection,
        "DOCS_SOURCE": site.docs_url,
        "CRAWL_USER_AGENT": AGENT,
        "LLM_BASE_URL": f"http://127.0.0.1:{_free_port()}/v1",  # down: serve starts anyway
        "OPS_PORT": "0",
        "ASK_PORT": str(_free_port()),
        "SHUTDOWN_GRACE": "5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.ask_adapter", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        await _until(lambda: any(r.path == "/docs/hnsw.md" for r in site.requests))
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = stderr.decode()
    assert process.returncode == 0, log[-2000:]
    assert "interrupts the running reindex" in log and "Traceback" not in log

    site.slow.clear()
    async with open_service(settings, embedder=embedder, generation=False) as service:
        last = service.last_run()
        assert last is not None and last.trigger == "startup" and last.message.startswith("interrupted")
        run = await service.index()  # the lease was released at shutdown, not left to expire
        assert run.outcome == "ok" and run.added == SITE_PAGES


async def test_a_run_whose_lease_was_taken_over_stops_before_writing(
    tmp_path: Path, site: FakeDocsSite, embedder: CountingEmbedder
) -> None:
    async with open_service(site_settings(tmp_path, site), embedder=embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        site.pages["replica.md"] = site.pages["replica.md"].replace("in-memory replicas", "memory copies")
        service.indexer.lease = ReindexLease(service.store, ttl=0.6)  # renewed every 0.2 s
        site.slow["/docs/hnsw.md"] = 1.5
        site.requests.clear()
        job, _ = service.start_reindex()
        await _until(lambda: any(r.path == "/docs/hnsw.md" for r in site.requests))
        thief = ReindexLease(service.store, ttl=600)  # as if our lease had expired meanwhile
        await asyncio.to_thread(thief._write)
        run = await job.wait()
        assert run.outcome == "failed" and "took over the reindex lease" in run.message
        assert run.chunks_embedded == 0
        assert service.store.chunks_of(["replica.md"])[0].page_hash != ""  # nothing written
        assert (await asyncio.to_thread(thief._read) or {}).get("holder") == thief.holder  # not released
