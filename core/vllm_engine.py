"""The production engine: vLLM's OpenAI-compatible server (`docsbot llm serve --engine vllm`).

It serves LLM_MODEL under that same name on LLM_BASE_URL's host and port, so the bot reaches it
exactly as it reaches the embedded llama.cpp server: only the URL and the model name differ. The
flags (context length, GPU memory share) come from settings and are the ones docker-compose's
`vllm` service passes (tests/test_deploy.py checks that the two agree). The API key travels in
the VLLM_API_KEY environment variable, never on the command line (where `ps` would show it).

Hosts without vLLM or without an NVIDIA GPU get one clear EngineUnavailableError.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from core.config import Settings
from core.errors import EngineUnavailableError

log = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
_NO_KEY = {"", "not-needed"}


def vllm_flags(model: str, max_model_len: int, gpu_memory_utilization: float) -> list[str]:
    """The engine flags shared with docker-compose's `vllm` service (everything but host/port)."""
    return [
        "--model", model,
        "--served-model-name", model,
        "--max-model-len", str(max_model_len),
        "--gpu-memory-utilization", f"{gpu_memory_utilization:.2f}",
    ]  # fmt: skip


def vllm_command(settings: Settings, python: str = sys.executable) -> list[str]:
    """The exact command `llm serve --engine vllm` runs (a pure function of the settings)."""
    url = urlparse(settings.llm_base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return [
        python, "-m", VLLM_MODULE,
        *vllm_flags(settings.llm_model, settings.vllm_max_model_len, settings.vllm_gpu_memory_utilization),
        "--host", url.hostname or "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip


def vllm_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours plus VLLM_API_KEY when LLM_API_KEY is a real key."""
    env = dict(os.environ if base is None else base)
    key = settings.llm_api_key.get_secret_value()
    if key not in _NO_KEY:
        env["VLLM_API_KEY"] = key
    return env


def _has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_vllm_available() -> None:
    """Raise EngineUnavailableError (one line) unless vLLM is installed and a GPU is present."""
    if not _vllm_installed():
        raise EngineUnavailableError(
            "vLLM is not installed: on a host with an NVIDIA GPU run `pip install -e '.[vllm]'`, "
            "or use docker-compose's vllm service, or --engine llama.cpp"
        )
    if not _has_nvidia_gpu():
        raise EngineUnavailableError(
            "vLLM needs an NVIDIA GPU and driver, and none was found on this host; "
            "use --engine llama.cpp for the CPU model"
        )


async def run_vllm(settings: Settings) -> int:
    """Run vLLM in the foreground until it exits or we are cancelled (Ctrl-C stops it)."""
    check_vllm_available()
    command = vllm_command(settings)
    log.info("starting vLLM: %s", " ".join(command))
    process = await asyncio.create_subprocess_exec(*command, env=vllm_environment(settings))
    try:
        return await process.wait()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
