"""EMBEDDING_BACKEND=onnx: the same sentence-transformers model, run by onnxruntime.

On first use the model (transformer, pooling and L2 normalisation together) is exported once with
`torch.onnx.export` into DATA_DIR/onnx/<fingerprint>/model.onnx; later runs load that file and
need no export. Tokenisation is the model's own tokenizer, batching sorts by token count like the
torch path, and onnxruntime runs the graph. The vectors equal the torch backend's to ~1e-6, so
the index, the cache and the shipped vectors are shared between the two backends.

onnxruntime comes with the `onnx` extra (`pip install -e '.[onnx]'`): it adds two wheels and pins
nothing else back (sentence-transformers' own ONNX backend needs optimum, which holds
transformers below 4.58).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.embedding import encode_by_length, resolve_model_path
from core.errors import EmbeddingError

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)


class OnnxEmbedder:
    """`Embedder` running an exported copy of a sentence-transformers model in onnxruntime."""

    def __init__(
        self, model: str, export_dir: Path, batch_size: int = 32, query_instruction: str = ""
    ) -> None:
        self.name = model
        self.export_dir = export_dir
        self.batch_size = batch_size
        self.query_instruction = query_instruction
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Any = None
        self._max_length = 512
        self._dimension = 0
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        self._ensure()
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._ensure()
        lengths = [len(ids) for ids in self._tokenize(list(texts))["input_ids"]]
        return encode_by_length(texts, lengths, self.batch_size, self._dimension, self._encode)

    def embed_query(self, text: str) -> np.ndarray:
        self._ensure()
        vector: np.ndarray = self._encode([self.query_instruction + text])[0]
        return vector

    def _tokenize(self, texts: list[str], padding: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._tokenizer(
            texts,
            truncation=True,
            max_length=self._max_length,
            padding=padding,
            return_tensors="np" if padding else None,
        )
        return result

    def _encode(self, texts: list[str]) -> np.ndarray:
        assert self._session is not None
        batch = self._tokenize(texts, padding=True)
        wanted = {i.name for i in self._session.get_inputs()}
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items() if k in wanted}
        (vectors,) = self._session.run(["sentence_embedding"], feeds)
        out: np.ndarray = np.asarray(vectors, dtype=np.float32)
        return out

    def _ensure(self) -> None:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._load()

    def _load(self) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise EmbeddingError(
                "EMBEDDING_BACKEND=onnx needs onnxruntime: pip install -e '.[onnx]' "
                "(or set EMBEDDING_BACKEND=torch)"
            ) from exc
        from core.embed_cache import model_fingerprint

        fingerprint = model_fingerprint(self.name, self.query_instruction)
        folder = self.export_dir / fingerprint.key
        path = folder / "model.onnx"
        from transformers import AutoTokenizer

        source = resolve_model_path(self.name)
        if not path.exists():
            self._export(source, folder)
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._max_length = int((folder / "max_length").read_text())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._dimension = int(self._session.get_outputs()[0].shape[-1])
        log.info("embedding model %s runs in onnxruntime from %s", self.name, path)

    def _export(self, source: str, folder: Path) -> None:
        """Export transformer + pooling + normalisation as one graph (once, ~10 s for MiniLM)."""
        import torch
        from sentence_transformers import SentenceTransformer

        log.info("exporting %s to ONNX in %s (once)", self.name, folder)
        try:
            model = SentenceTransformer(source, device="cpu").eval()
        except Exception as exc:
            raise EmbeddingError(f"embedding model {self.name!r} could not be loaded: {exc}") from exc
        tokenizer = model.tokenizer
        sample = tokenizer(["an example passage"], return_tensors="pt")
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                features = dict(zip(names, inputs, strict=True))
                embedding = self.model(features)["sentence_embedding"]
                return torch.nn.functional.normalize(embedding, p=2, dim=1)

        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "model.onnx.partial"
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        with torch.no_grad():
            torch.onnx.export(
                Graph(),
                tuple(sample[n] for n in names),
                str(partial),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        tokenizer.save_pretrained(str(folder))
        (folder / "max_length").write_text(str(model.max_seq_length))
        partial.replace(folder / "model.onnx")
