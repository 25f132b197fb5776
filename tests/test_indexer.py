"""Incremental indexing against real Milvus Lite and the real model."""

from pathlib import Path

from core.service import open_service

from .conftest import FIXTURE_PAGES, CountingEmbedder, make_settings


async def test_incremental_index_embeds_only_what_changed(
    tmp_path: Path, docs_copy: Path, counting_embedder: CountingEmbedder
) -> None:
    settings = make_settings(tmp_path, docs_source=str(docs_copy))
    async with open_service(settings, embedder=counting_embedder) as service:
        first = await service.index()
        assert (first.outcome, first.added, first.changed, first.removed) == ("ok", FIXTURE_PAGES, 0, 0)
        total = first.chunks_embedded
        assert total == len(counting_embedder.embedded) > 50
        status = await service.status()
        assert (status.pages, status.chunks) == (FIXTURE_PAGES, total)

        # unchanged -> nothing embedded
        counting_embedder.embedded.clear()
        again = await service.index()
        assert (again.unchanged, again.added, again.changed, again.chunks_embedded) == (
            FIXTURE_PAGES,
            0,
            0,
            0,
        )
        assert counting_embedder.embedded == []

        # one page changed -> only its chunks embedded, its old version gone
        replica = docs_copy / "reference" / "replica.md"
        replica.write_text(replica.read_text().replace("in-memory replicas", "memory copies"))
        counting_embedder.embedded.clear()
        changed = await service.index()
        assert (changed.changed, changed.unchanged, changed.added) == (1, FIXTURE_PAGES - 1, 0)
        assert counting_embedder.embedded
        assert all(text.startswith("In-Memory Replica") for text in counting_embedder.embedded)
        hits = await service.search("memory copies", k=10)
        replica_texts = [h.chunk.text for h in hits.hits if h.chunk.page_id == "replica.md"]
        assert replica_texts and not any("in-memory replicas" in t for t in replica_texts)
        assert (await service.status()).chunks == total  # replaced, not added

        # page removed -> its chunks gone
        (docs_copy / "indexes" / "scann.md").unlink()
        counting_embedder.embedded.clear()
        removed = await service.index()
        assert (removed.removed, removed.chunks_embedded) == (1, 0)
        result = await service.search("SCANN reorder_k", k=10)
        assert all(h.chunk.page_id != "scann.md" for h in result.hits)
        assert (await service.status()).pages == FIXTURE_PAGES - 1


async def test_full_reindex_rebuilds_everything(tmp_path: Path, counting_embedder: CountingEmbedder) -> None:
    async with open_service(make_settings(tmp_path), embedder=counting_embedder) as service:
        first = await service.index()
        counting_embedder.embedded.clear()
        full = await service.index(full=True)
    assert full.added == FIXTURE_PAGES and full.chunks_embedded == first.chunks_embedded
    assert len(counting_embedder.embedded) == first.chunks_embedded


async def test_empty_source_fails_and_deletes_nothing(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    async with open_service(make_settings(tmp_path), embedder=counting_embedder) as service:
        await service.index()
        run = await service.index(str(empty))
        status = await service.status()
    assert run.outcome == "failed" and "produced no pages" in run.message
    assert status.pages == FIXTURE_PAGES
    assert status.last_run is not None and status.last_run.outcome == "failed"


_HOLD_LOCK = (
    "import fcntl, sys, time; h = open(sys.argv[1], 'w'); fcntl.flock(h, fcntl.LOCK_EX); "
    "print(1, flush=True); time.sleep(60)"
)


async def test_a_second_process_reindexing_the_same_collection_is_refused(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    import asyncio
    import sys

    async with open_service(make_settings(tmp_path), embedder=counting_embedder) as service:
        lock = service.runs.path.with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        # another process holding the lock, like a `docsbot index` running beside `docsbot serve`
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLD_LOCK, str(lock), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert holder.stdout is not None and (await holder.stdout.readline()).strip() == b"1"
            run = await service.index()
        finally:
            holder.kill()
            await holder.wait()
        assert run.outcome == "failed" and "another docsbot process is reindexing" in run.message
        assert (await service.index()).outcome == "ok"  # released: the next run goes ahead
