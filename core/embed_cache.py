"""Reuse every passage vector ever computed: a SQLite cache, plus the vectors shipped with the snapshot.

A passage vector depends only on the model and the exact text embedded, so the cache key is
(model fingerprint, sha256 of the text). The fingerprint names everything that shapes a vector:
the model name, a digest of its weights and configs, the dimension, the normalisation and the
query/passage prefixes. Change any of these (another EMBEDDING_MODEL, new weights) and every
lookup misses, so two vector spaces can never mix.

Lookups go, in order:
1. the vectors shipped inside the package for the bundled snapshot and the default model
   (`core/sources/data/snapshot-vectors.npz`, fp16, made by `scripts/build_snapshot_vectors.py`);
2. the cache in DATA_DIR (`embeddings.sqlite3`), capped at EMBEDDING_CACHE_MAX_MB: the least
   recently used rows go first;
3. the encoder, for whatever is left; its vectors are stored in the cache.

So a fresh `docsbot index` of the bundled snapshot runs no encoder at all, live pages whose chunks
match the snapshot's cost nothing, and a changed page re-embeds only its new chunks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.embedding import Embedder, make_encoder, resolve_model_path

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

SHIPPED_VECTORS = "snapshot-vectors.npz"
#: Files of a sentence-transformers model folder that shape its vectors.
_MODEL_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class ModelFingerprint:
    """What determines a passage vector, besides the text."""

    name: str
    weights: str  # sha256 over the model's weights and configs ("" when the folder is unknown)
    dimension: int  # 0 when it can't be read from the folder without loading the model
    normalize: str = "l2"
    query_prefix: str = ""
    passage_prefix: str = ""
    precision: str = "fp32"

    @property
    def key(self) -> str:
        """A short stable id for this fingerprint (the cache's key prefix)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def model_fingerprint(name: str, query_prefix: str = "", passage_prefix: str = "") -> ModelFingerprint:
    """Fingerprint a model from its files, without loading it (hashing ~90 MB takes ~0.2 s)."""
    folder = _model_folder(name)
    if folder is None:
        return ModelFingerprint(name, "", 0, query_prefix=query_prefix, passage_prefix=passage_prefix)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name in _MODEL_FILES):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return ModelFingerprint(
        name,
        digest.hexdigest(),
        _dimension_from_files(folder),
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
    )


def _model_folder(name: str) -> Path | None:
    try:
        path = Path(resolve_model_path(name))
    except Exception:
        return None
    if path.is_dir():
        return path
    try:  # a hub name already in the local Hugging Face cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        return None


def _dimension_from_files(folder: Path) -> int:
    """The output dimension: the last Dense layer's, else the pooling's, else the transformer's."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dimension = 0
        for module in modules:
            config_path = folder / module.get("path", "") / "config.json"
            kind = module.get("type", "")
            if kind.endswith("Dense") and config_path.exists():
                dimension = int(json.loads(config_path.read_text())["out_features"])
            elif kind.endswith("Pooling") and config_path.exists() and not dimension:
                dimension = int(json.loads(config_path.read_text())["word_embedding_dimension"])
        return dimension
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass
class CacheStats:
    rows: int
    bytes: int
    hits: int
    shipped_hits: int
    misses: int
    path: str


class EmbeddingCache:
    """Passage vectors in SQLite, keyed by (fingerprint key, sha256 of text); least recently used go first."""

    def __init__(self, path: Path, max_bytes: int = 512 * 2**20) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, text_sha BLOB NOT NULL, "
            "vector BLOB NOT NULL, used_at INTEGER NOT NULL, PRIMARY KEY (model, text_sha)) WITHOUT ROWID"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, model: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        now = int(time.time())
        with self._lock:
            for start in range(0, len(keys), 500):
                batch = list(keys[start : start + 500])
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT text_sha, vector FROM vectors WHERE model = ? AND text_sha IN ({marks})",
                    [model, *batch],
                ).fetchall()
                for text_sha, blob in rows:
                    found[bytes(text_sha)] = np.frombuffer(blob, dtype=np.float32)
                if rows:
                    self._db.execute(
                        f"UPDATE vectors SET used_at = ? WHERE model = ? AND text_sha IN ({marks})",
                        [now, model, *batch],
                    )
        return found

    def put(self, model: str, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        now = int(time.time())
        rows = [(model, key, np.asarray(v, dtype=np.float32).tobytes(), now) for key, v in items]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            self._prune()

    def count(self, **counts: int) -> None:
        """Add to the hit/miss counters shown by `docsbot cache`."""
        with self._lock:
            for name, value in counts.items():
                if value:
                    self._db.execute(
                        "INSERT INTO counters VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (name, value),
                    )

    def stats(self) -> CacheStats:
        with self._lock:
            rows, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(vector)), 0) FROM vectors"
            ).fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return CacheStats(
            rows=rows,
            bytes=size,
            hits=counters.get("hits", 0),
            shipped_hits=counters.get("shipped_hits", 0),
            misses=counters.get("misses", 0),
            path=str(self.path),
        )

    def _prune(self) -> None:
        """Drop the least recently used rows until the vectors fit in max_bytes (lock held)."""
        (size,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(vector)), 0) FROM vectors").fetchone()
        if size <= self.max_bytes:
            return
        (row_bytes,) = self._db.execute("SELECT MAX(LENGTH(vector)) FROM vectors").fetchone()
        excess_rows = (size - self.max_bytes) // max(row_bytes, 1) + 1
        self._db.execute(
            "DELETE FROM vectors WHERE (model, text_sha) IN "
            "(SELECT model, text_sha FROM vectors ORDER BY used_at LIMIT ?)",
            (excess_rows,),
        )
        log.info(
            "embedding cache over %d MB: dropped %d least recently used vectors",
            self.max_bytes >> 20,
            excess_rows,
        )


class ShippedVectors:
    """The bundled snapshot's passage vectors for one model, read from the package (fp16)."""

    def __init__(self, fingerprint_key: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.fingerprint_key = fingerprint_key
        self._rows = {bytes(k): i for i, k in enumerate(keys)}
        self._vectors = vectors

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> np.ndarray | None:
        row = self._rows.get(key)
        if row is None:
            return None
        vector: np.ndarray = self._vectors[row].astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    @classmethod
    def load(cls, path: Path | None = None) -> ShippedVectors | None:
        """The shipped file, or None when the package carries none or it can't be read."""
        try:
            if path is None:
                with resources.as_file(resources.files("core.sources") / "data" / SHIPPED_VECTORS) as p:
                    return cls._read(p) if p.exists() else None
            return cls._read(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("shipped snapshot vectors could not be read (%s); embedding instead", exc)
            return None

    @classmethod
    def _read(cls, path: Path) -> ShippedVectors:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(meta["fingerprint_key"], data["keys"], data["vectors"])

    @staticmethod
    def write(
        path: Path,
        fingerprint: ModelFingerprint,
        texts: Sequence[str],
        vectors: np.ndarray,
        extra: dict[str, object],
    ) -> None:
        keys = np.array([np.frombuffer(text_key(t), dtype=np.uint8) for t in texts], dtype=np.uint8)
        meta = {"fingerprint_key": fingerprint.key, "fingerprint": asdict(fingerprint), **extra}
        np.savez_compressed(
            path, keys=keys, vectors=np.asarray(vectors, dtype=np.float16), meta=np.array(json.dumps(meta))
        )


def shipped_meta() -> dict[str, object] | None:
    """The metadata stored with the shipped vectors (fingerprint, snapshot digest, chunking)."""
    try:
        with resources.as_file(resources.files("core.sources") / "data" / SHIPPED_VECTORS) as path:
            if not path.exists():
                return None
            with np.load(path, allow_pickle=False) as data:
                meta: dict[str, object] = json.loads(str(data["meta"]))
                return meta
    except (OSError, ValueError, KeyError):
        return None


class CachedEmbedder:
    """An `Embedder` that looks passages up (shipped vectors, then the cache) before encoding.

    Queries are not cached: each is one short encode, and caching them would keep users' questions.
    """

    def __init__(
        self,
        inner: Embedder,
        fingerprint: ModelFingerprint,
        cache: EmbeddingCache | None,
        shipped: ShippedVectors | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.fingerprint = fingerprint
        self.cache = cache
        self.shipped = shipped if shipped is not None and shipped.fingerprint_key == fingerprint.key else None
        self.last = {"shipped": 0, "cached": 0, "encoded": 0}  # per call, for logs and benchmarks

    @property
    def dimension(self) -> int:
        # Known from the model's files without loading it, so an all-hit index loads no model.
        return self.fingerprint.dimension or self.inner.dimension

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        found: dict[int, np.ndarray] = {}
        if self.shipped is not None:
            for i, key in enumerate(keys):
                vector = self.shipped.get(key)
                if vector is not None:
                    found[i] = vector
        shipped = len(found)
        todo = [i for i in range(len(texts)) if i not in found]
        if self.cache is not None and todo:
            cached = self.cache.get(self.fingerprint.key, [keys[i] for i in todo])
            for i in todo:
                if keys[i] in cached:
                    found[i] = cached[keys[i]]
        hits = len(found) - shipped
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            encoded = self.inner.embed_documents([texts[i] for i in missing])
            for i, vector in zip(missing, encoded, strict=True):
                found[i] = vector
            if self.cache is not None:
                self.cache.put(self.fingerprint.key, [(keys[i], found[i]) for i in missing])
        if self.cache is not None:
            self.cache.count(hits=hits, shipped_hits=shipped, misses=len(missing))
        self.last = {"shipped": shipped, "cached": hits, "encoded": len(missing)}
        if texts:
            log.debug("passage vectors: %d shipped, %d cached, %d encoded", shipped, hits, len(missing))
        dim = self.dimension if not found else len(next(iter(found.values())))
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i, vector in found.items():
            out[i] = vector
        return out


def build_embedder(settings: Settings) -> tuple[CachedEmbedder, EmbeddingCache | None]:
    """The configured encoder behind the shipped vectors and the DATA_DIR cache (close the cache)."""
    inner = make_encoder(settings)
    fingerprint = model_fingerprint(settings.embedding_model, settings.query_instruction)
    cache = None
    if settings.embedding_cache_max_mb > 0:
        cache = EmbeddingCache(
            settings.data_dir / "embeddings.sqlite3", settings.embedding_cache_max_mb * 2**20
        )
    return CachedEmbedder(inner, fingerprint, cache, ShippedVectors.load()), cache
