"""The deployment files: docker-compose.yml validates, and holds what production needs.

`docker compose config` runs when docker is installed; the structural checks always run, so a
machine without docker (like CI runners without it) still catches an unpinned image, a missing
healthcheck, a port open to the world or a setting name the bot does not know.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings, load_settings
from core.vllm_engine import vllm_command

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


_TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}
_SERVICE_KEYS = {
    "build", "command", "container_name", "depends_on", "deploy", "entrypoint", "env_file",
    "environment", "expose", "extra_hosts", "healthcheck", "image", "init", "ipc", "network_mode",
    "networks", "ports", "profiles", "restart", "security_opt", "shm_size", "stop_grace_period",
    "stop_signal", "ulimits", "user", "volumes", "working_dir",
}  # fmt: skip
_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _schema_problems(data: dict[str, Any]) -> list[str]:
    """The parts of the Compose specification this file uses, checked without docker."""
    problems = [f"unknown top-level key {k}" for k in data if k not in _TOP_LEVEL and not k.startswith("x-")]
    volumes = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        problems += [f"{name}: unknown key {k}" for k in service if k not in _SERVICE_KEYS]
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        health = service.get("healthcheck") or {}
        problems += [f"{name}: unknown healthcheck key {k}" for k in health if k not in _HEALTHCHECK_KEYS]
        for dependency, spec in (service.get("depends_on") or {}).items():
            if dependency not in data["services"]:
                problems.append(f"{name}: depends on unknown service {dependency}")
            if isinstance(spec, dict) and spec.get("condition") not in _CONDITIONS:
                problems.append(f"{name}: bad depends_on condition {spec.get('condition')}")
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/", "$", "~")) and source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
        for port in service.get("ports") or []:
            if not re.fullmatch(r"[\d.]+:\d+:\d+(/(tcp|udp))?|\d+(:\d+)?", str(port)):
                problems.append(f"{name}: unreadable port mapping {port}")
    return problems


@pytest.mark.parametrize("profile", [[], ["--profile", "dev"]])
def test_compose_file_validates(profile: list[str], compose: dict[str, Any]) -> None:
    """`docker compose config` where docker is installed; the schema subset above everywhere."""
    assert _schema_problems(compose) == []
    if not _docker_compose_works():
        return
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_is_pinned_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"etcd", "minio", "milvus", "vllm", "bot"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} is not pinned"
        assert not image.endswith(":latest"), name
        check = service.get("healthcheck", {}).get("test")
        assert check and check[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is reachable from other hosts"


def test_dependencies_wait_for_healthy_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, rule in depends.items():
            assert dependency in services
            assert rule == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert set(services["bot"]["depends_on"]) == {"milvus", "vllm"}
    assert set(services["milvus"]["depends_on"]) == {"etcd", "minio"}


def test_milvus_and_vllm_are_the_production_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["milvus"]["image"].startswith("milvusdb/milvus:")
    assert "9091/healthz" in " ".join(services["milvus"]["healthcheck"]["test"])
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert "--model=meta-llama/Llama-3.1-8B-Instruct" in vllm["command"]
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert vllm["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"  # from the environment, never inline
    gpu = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    for name in ("etcd", "minio", "milvus", "vllm", "bot"):
        mounts = services[name].get("volumes", [])
        assert mounts and all(m.split(":")[0] in compose["volumes"] for m in mounts), name


def test_vllm_service_runs_a_current_release_with_the_flags_llm_serve_uses(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    assert vllm["image"] == "vllm/vllm-openai:v0.33.0"
    flags = [part for flag in vllm["command"] for part in flag.split("=", 1)]
    model = compose["services"]["bot"]["environment"]["LLM_MODEL"]
    settings = load_settings(env_file=None, llm_model=model, llm_base_url="http://0.0.0.0:8000/v1")
    expected = vllm_command(settings)[3:]  # after `python -m vllm.entrypoints.openai.api_server`
    assert flags == expected
    assert vllm["environment"]["VLLM_API_KEY"] == "${LLM_API_KEY:-}"  # the key the bot sends
    assert "127.0.0.1:8000:8000" in vllm["ports"]


def test_the_bot_points_at_the_services_with_settings_it_knows(compose: dict[str, Any]) -> None:
    services = compose["services"]
    bot = services["bot"]
    assert bot["environment"]["MILVUS_URI"] == "http://milvus:19530"
    assert bot["environment"]["LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert bot["env_file"] == [{"path": ".env", "required": False}]
    assert "build" in bot and bot["command"] == ["serve"]
    known = {name.upper() for name in Settings.model_fields}
    for name in ("bot", "bot-dev", "llm-dev"):
        unknown = set(services[name].get("environment", {})) - known
        assert not unknown, f"{name}: not docsbot settings: {unknown}"


def test_dev_profile_runs_lite_and_the_local_llm(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dev, llm = services["bot-dev"], services["llm-dev"]
    assert dev["profiles"] == ["dev"] and llm["profiles"] == ["dev"]
    assert "://" not in dev["environment"]["MILVUS_URI"]  # Milvus Lite file
    assert dev["environment"]["LLM_BASE_URL"] == "http://127.0.0.1:18080/v1"
    assert dev["network_mode"] == "service:llm-dev" and llm["command"] == ["llm", "serve"]
    assert "deploy" not in dev and "deploy" not in llm  # no GPU needed
    for name, service in services.items():
        if name not in {"bot-dev", "llm-dev"}:
            assert "profiles" not in service, f"{name} should start by default"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER\s+(?!root\b|0\b)\w+", runtime, re.MULTILINE)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert re.search(r'^VOLUME \["/data", "/models"\]', runtime, re.MULTILINE)
    assert "HF_HOME=/models" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data", ".git"} <= set(ignored)


FLAGS_SCRIPT = ROOT / "scripts" / "llama_cpu_flags.sh"


def _llama_flags(**env: str) -> set[str]:
    done = subprocess.run(
        ["sh", str(FLAGS_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to try the CPU's instructions with")
def test_llama_cpp_is_built_for_what_this_cpu_runs_and_never_for_amx() -> None:
    flags = _llama_flags()
    assert {"-DGGML_NATIVE=OFF", "-DLLAVA_BUILD=OFF"} <= flags
    assert not any("AMX" in flag for flag in flags)
    # an AVX-512 extension only on top of AVX-512 itself, which needs AVX2
    if any(flag.startswith("-DGGML_AVX512_") for flag in flags):
        assert {"-DGGML_AVX512=ON", "-DGGML_AVX2=ON"} <= flags
    assert "$(shell sh scripts/llama_cpu_flags.sh)" in (ROOT / "Makefile").read_text()


def test_llama_cpp_flags_stay_portable_without_a_compiler_to_try_with() -> None:
    flags = _llama_flags(CC="no-such-compiler")
    assert flags == {
        "-DLLAVA_BUILD=OFF",
        "-DGGML_NATIVE=OFF",
        "-DGGML_AVX=ON",
        "-DGGML_AVX2=ON",
        "-DGGML_FMA=ON",
        "-DGGML_F16C=ON",
    }
