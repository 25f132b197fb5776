"""Fixtures of the Discord tests: the fake Discord, the fake LLM, and a bot running against both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.service import RagService

from ..fakes.discord_api import FakeDiscord
from ..fakes.llm_server import FakeLLM
from .helpers import ANSWER, Bot, running_bot


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord().start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    server = await FakeLLM(answer=ANSWER).start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> AsyncIterator[Bot]:
    async with running_bot(indexed_service, fake_discord, fake_llm, tmp_path) as running:
        yield running
