"""The server-URI path: Milvus Lite running as a gRPC server process on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.embedding import SentenceTransformerEmbedder
from core.errors import StoreError, StoreLockedError
from core.service import open_service
from core.store import ChunkStore

from .conftest import FIXTURE_PAGES, make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path / "server.db"
    port = _free_port()
    exe = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    process = subprocess.Popen(
        [exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "milvus-lite server exited"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("milvus-lite server did not start within 60 s")
        yield f"http://127.0.0.1:{port}", data_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_index_and_search_through_a_server_uri(
    tmp_path: Path, milvus_server: tuple[str, Path], embedder: SentenceTransformerEmbedder
) -> None:
    uri, _ = milvus_server
    settings = make_settings(tmp_path, milvus_uri=uri)
    async with open_service(settings, embedder=embedder) as service:
        run = await service.index()
        assert run.outcome == "ok" and run.added == FIXTURE_PAGES
        result = await service.search("what is knowhere?")
        status = await service.status()
    assert result.hits[0].chunk.page_id == "knowhere.md"
    assert status.hybrid and status.pages == FIXTURE_PAGES

    # a second client (another process in production) sees the same index, loaded
    async with open_service(settings, embedder=embedder) as again:
        assert (await again.search("SCANN reorder_k")).hits[0].chunk.page_id == "scann.md"


def test_lite_data_held_by_another_process_gives_a_clear_message(milvus_server: tuple[str, Path]) -> None:
    _, data_dir = milvus_server
    with pytest.raises(StoreLockedError) as info:
        ChunkStore.connect(str(data_dir), "test_docs")
    assert "in use by another docsbot process" in info.value.user_message


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        ChunkStore.connect(f"http://127.0.0.1:{_free_port()}", "test_docs", timeout=2)
