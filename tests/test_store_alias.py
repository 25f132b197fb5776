"""Reindexing never serves a broken index: the alias switch, the fingerprint, repair after a
stop midway. Real Milvus Lite and the real model on the fixture pages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core import store as store_module
from core.chunking import Chunker
from core.embedding import resolve_model_path
from core.errors import IndexMismatchError, StoreError
from core.service import RagService, open_service
from core.store import ChunkStore

from .conftest import FIXTURE_PAGES, CountingEmbedder, make_settings


def collections(service: RagService) -> list[str]:
    return sorted(service.store.client.list_collections())


def rebuilt_names(service: RagService) -> list[str]:
    return [c for c in collections(service) if c.startswith("test_docs_v")]


async def test_first_index_serves_through_an_alias_and_a_full_rebuild_switches_it(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        first = await service.index()
        assert first.outcome == "ok"
        live = service.store.live_collection()
        assert live is not None and live.startswith("test_docs_v")  # test_docs is the alias
        assert rebuilt_names(service) == [live]

        full = await service.index(full=True)
        assert full.outcome == "ok" and "rebuilt (--full)" in full.message
        new = service.store.live_collection()
        assert new != live and rebuilt_names(service) == [new]  # the old one was dropped
        assert (await service.status()).pages == FIXTURE_PAGES
        assert (await service.search("what is knowhere?")).hits[0].chunk.page_id == "knowhere.md"


async def test_a_collection_released_under_the_bot_is_loaded_again(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    """An operator releases the collection (Attu, the CLI): the next search loads it again
    instead of failing until someone notices."""
    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        assert (await service.search("what is knowhere?")).hits
        live = service.store.live_collection()
        assert live is not None
        service.store.client.release_collection(live)
        retrieval = await service.search("what is knowhere?")
        assert retrieval.hits[0].chunk.page_id == "knowhere.md"


async def test_a_failed_rebuild_leaves_the_old_index_serving_and_drops_the_half_built_one(
    tmp_path: Path, counting_embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        live = service.store.live_collection()

        def broken_switch(self: ChunkStore, new: ChunkStore) -> None:
            raise StoreError("Milvus went away during the switch")

        monkeypatch.setattr(ChunkStore, "switch_to", broken_switch)
        run = await service.index(full=True)
        monkeypatch.undo()
        assert run.outcome == "failed" and "went away" in run.message
        assert service.store.live_collection() == live and rebuilt_names(service) == [live]
        assert (await service.search("what is knowhere?")).hits[0].chunk.page_id == "knowhere.md"

        # a rebuild killed outright leaves its collection behind: the next run drops it
        orphan = service.store.build_beside(8, {})
        assert orphan.collection in collections(service)
        assert (await service.index()).outcome == "ok"
        assert rebuilt_names(service) == [live]


async def test_a_changed_fingerprint_stops_questions_and_index_rebuilds_by_itself(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        old = service.store.live_collection()
        assert old is not None
        built = service.store.fingerprint()
        assert built is not None and built["embedding_model"] == counting_embedder.name
        assert built["dimension"] == 384 and built["chunk_size"] == 512 and "chunker_version" in built
        # as if built by another model of the same dimension
        other = built | {"embedding_model": "another-384-dim-model"}
        service.store.client.alter_collection_properties(
            old, properties={"docsbot.fingerprint": json.dumps(other)}
        )
        service._ready = False  # a fresh process: opens (and checks) the index again

        with pytest.raises(IndexMismatchError) as info:
            await service.check_index()
        line = info.value.user_message
        assert "another-384-dim-model" in line and "EMBEDDING_MODEL" in line and "\n" not in line
        answer = await service.ask("what is knowhere?")
        assert answer.outcome == "error" and not answer.sources

        counting_embedder.embedded.clear()
        run = await service.index()  # no --full needed: the fingerprint differs
        assert run.outcome == "ok" and "rebuilt (EMBEDDING_MODEL" in run.message
        assert run.chunks_embedded == len(counting_embedder.embedded) > 50
        assert service.store.live_collection() != old and old not in collections(service)
        await service.check_index()
        assert (await service.search("what is knowhere?")).hits[0].chunk.page_id == "knowhere.md"


async def test_an_index_from_before_aliases_is_replaced_by_an_aliased_one(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    settings = make_settings(tmp_path)
    async with open_service(settings, embedder=counting_embedder, generation=False) as service:
        # what older versions made: a real collection named COLLECTION, without a fingerprint
        legacy = ChunkStore(service.store.client, settings.collection, service.store.uri)
        legacy._create(384, with_bm25=True, properties={})
        assert service.store.live_collection() == "test_docs" and service.store.fingerprint() is None
        run = await service.index()
        assert run.outcome == "ok" and "no fingerprint" in run.message
        live = service.store.live_collection()
        assert live is not None and live.startswith("test_docs_v")
        assert collections(service) == sorted([live, "test_docs_lease"])
        assert (await service.status()).pages == FIXTURE_PAGES
        assert (await service.index()).unchanged == FIXTURE_PAGES  # in place from now on


async def test_a_run_stopped_between_writing_and_deleting_is_repaired_by_the_next(
    tmp_path: Path, docs_copy: Path, counting_embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, docs_source=str(docs_copy))
    async with open_service(settings, embedder=counting_embedder, generation=False) as service:
        assert (await service.index()).outcome == "ok"
        old_chunks = service.store.chunks_of(["replica.md"])
        # the page keeps its first part (same chunk ids, same position 0) and loses the rest
        replica = docs_copy / "reference" / "replica.md"
        text = replica.read_text()
        replica.write_text(text[: len(text) // 2] + "\n\nA sentence that only the new version has.\n")

        def killed(self: ChunkStore, page_id: str, page_hash: str) -> None:
            raise StoreError("killed after writing the new chunks")

        monkeypatch.setattr(ChunkStore, "delete_stale", killed)
        stopped = await service.index()
        monkeypatch.undo()
        assert stopped.outcome == "failed" and "killed" in stopped.message
        assert service.store.page_hashes()["replica.md"] == ""  # two versions mixed: not indexed
        mixed = service.store.chunks_of(["replica.md"])
        assert len({c.page_hash for c in mixed}) == 2

        repaired = await service.index()
        assert (repaired.outcome, repaired.changed, repaired.unchanged) == ("ok", 1, FIXTURE_PAGES - 1)
        now = service.store.chunks_of(["replica.md"])
        assert len({c.page_hash for c in now}) == 1 and now[0].page_hash != old_chunks[0].page_hash
        assert [c.position for c in now] == list(range(len(now)))  # no stale, no duplicate chunk
        assert len(now) < len(old_chunks)
        assert any("only the new version has" in c.text for c in now)

        # more chunks than one query returns: the same hashes, read with the iterator
        hashes = service.store.page_hashes()
        monkeypatch.setattr(store_module, "_QUERY_WINDOW", 10)
        assert service.store.page_hashes() == hashes and len(hashes) == FIXTURE_PAGES


async def test_stopping_a_run_waits_for_the_write_in_flight_before_releasing_the_lock(
    tmp_path: Path, counting_embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[tuple[str, float]] = []
    upsert = ChunkStore.upsert

    def slow_upsert(self: ChunkStore, chunks: Any, vectors: Any) -> None:
        writes.append(("start", time.monotonic()))
        time.sleep(1.5)
        upsert(self, chunks, vectors)
        writes.append(("end", time.monotonic()))

    monkeypatch.setattr(ChunkStore, "upsert", slow_upsert)
    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        job, _ = service.start_reindex(trigger="admin")
        while not writes:  # noqa: ASYNC110 (the write runs in a worker thread)
            await asyncio.sleep(0.05)
        assert job.task is not None
        job.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job.task
        stopped_at = time.monotonic()
        assert [w for w, _ in writes] == ["start", "end"] and writes[1][1] <= stopped_at
        last = service.last_run()
        assert last is not None and last.outcome == "failed" and last.message.startswith("interrupted")
        monkeypatch.undo()
        again = await service.index()  # lock and lease were released: the next run completes
        assert again.outcome == "ok" and (await service.status()).pages == FIXTURE_PAGES


async def test_chunking_runs_off_the_event_loop(
    tmp_path: Path, counting_embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heavy pages (0.3 s of chunking each) must not stall the loop that serves the chats."""
    chunk_page = Chunker.chunk_page

    def heavy(self: Chunker, page: Any) -> Any:
        time.sleep(0.3)
        return chunk_page(self, page)

    monkeypatch.setattr(Chunker, "chunk_page", heavy)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with open_service(make_settings(tmp_path), embedder=counting_embedder, generation=False) as service:
        await service.check_index()  # nothing indexed yet: passes
        ticking = asyncio.create_task(ticker())
        run = await service.index()
        ticking.cancel()
    assert run.outcome == "ok" and len(gaps) > 50
    assert max(gaps) < 0.3 * FIXTURE_PAGES / 2  # chunking all pages on the loop would block ~2 s


def test_docsbot_ask_with_another_model_configured_stops_with_one_line(  # real processes
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    settings = make_settings(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "EMBEDDING_", "DOCS_"))},
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "MILVUS_URI": settings.milvus_uri,
        "DATA_DIR": str(settings.data_dir),
        "COLLECTION": settings.collection,
        "DOCS_SOURCE": settings.docs_source,
        "EMBEDDING_MODEL": counting_embedder.name,
    }

    def docsbot(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=env | overrides,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert docsbot("index").returncode == 0
    # the same weights under another name: a model change as far as the index can tell
    result = docsbot(
        "ask", "--no-llm", "what is knowhere?", EMBEDDING_MODEL=resolve_model_path(env["EMBEDDING_MODEL"])
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("docsbot:")]
    assert len(lines) == 1 and "EMBEDDING_MODEL" in lines[0] and "docsbot index" in lines[0]
    assert "Traceback" not in result.stderr
