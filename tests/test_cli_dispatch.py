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
