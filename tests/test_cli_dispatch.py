"""How `docsbot` dispatches: one `run=` per command, and the commands that must not open the
service (Milvus, the embedding model) say so with `needs_service=False`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.cli
from bot.cli import _parser, main

NO_SERVICE = {
    ("serve",): "cmd_serve",
    ("crawl", "--out", "x"): "cmd_crawl",
    ("report",): "report_command",
    ("llm", "serve"): "cmd_llm_serve",
}
WITH_SERVICE = [("index",), ("chat",), ("ask", "q"), ("status",), ("eval", "--questions", "q.jsonl")]


@pytest.mark.parametrize("argv", list(NO_SERVICE))
def test_commands_that_must_not_open_the_service_say_so(argv: tuple[str, ...]) -> None:
    args = _parser().parse_args(argv)
    assert args.needs_service is False
    assert args.run.__name__ == NO_SERVICE[argv]


@pytest.mark.parametrize("argv", WITH_SERVICE)
def test_the_other_commands_run_with_the_service(argv: tuple[str, ...]) -> None:
    args = _parser().parse_args(argv)
    assert args.needs_service is True
    assert callable(args.run)


def test_report_runs_without_opening_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextlib.asynccontextmanager
    async def no_service(*_args: Any, **_kwargs: Any) -> AsyncIterator[None]:
        raise AssertionError("report must not open the service")
        yield

    monkeypatch.setattr(bot.cli, "open_service", no_service)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "milvus.db"))
    assert main(["report"]) == 1  # no records yet: says so, opens nothing
    assert "no records yet" in capsys.readouterr().err
    assert not (tmp_path / "milvus.db").exists()


def test_llm_serve_never_opens_milvus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`docsbot llm serve` starts the LLM server and waits for it; the service (and so Milvus)
    is never opened. The llama.cpp process is the one thing stood in for here."""

    @contextlib.asynccontextmanager
    async def no_service(*_args: Any, **_kwargs: Any) -> AsyncIterator[None]:
        raise AssertionError("llm serve must not open the service")
        yield

    class Exited:
        async def wait(self) -> int:
            return 0

    started: list[tuple[Any, ...]] = []

    @contextlib.asynccontextmanager
    async def server(*args: Any) -> AsyncIterator[Exited]:
        started.append(args)
        yield Exited()

    monkeypatch.setattr(bot.cli, "open_service", no_service)
    monkeypatch.setattr(bot.cli, "resolve_model", lambda *_args: tmp_path / "model.gguf")
    monkeypatch.setattr(bot.cli, "local_llm_server", server)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "milvus.db"))
    assert main(["llm", "serve"]) == 0
    assert started and started[0][0] == tmp_path / "model.gguf"
    assert "local LLM server" in capsys.readouterr().out
    assert not (tmp_path / "milvus.db").exists()
