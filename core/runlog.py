"""Index run records, kept as JSON lines under DATA_DIR (one file per collection)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ReindexBusyError

log = logging.getLogger(__name__)


@dataclass
class IndexRun:
    """What one `docsbot index` (or scheduled reindex) did. outcome: ok | needs_review | failed."""

    started_at: str
    source: str
    trigger: str = "cli"
    outcome: str = "running"
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0
    #: of those, how many the model encoded (the rest came from the shipped vectors or the cache)
    chunks_encoded: int = 0
    errors: int = 0
    seconds: float = 0.0
    finished_at: str = ""
    error_samples: dict[str, str] = field(default_factory=dict)
    message: str = ""
    refused_deletions: list[str] = field(default_factory=list)  # when needs_review
    requests: int = 0  # HTTP requests a crawl made (0 for snapshots)

    def counts(self) -> str:
        """`3 added, 1 changed, 0 removed, 472 unchanged, 120 chunks embedded (...), 0 errors`."""
        return (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged, {self.embedded()}, {self.errors} errors"
        )

    def embedded(self) -> str:
        """`120 chunks embedded`, saying how many the model encoded when the rest were reused."""
        text = f"{self.chunks_embedded} chunks embedded"
        if self.chunks_encoded < self.chunks_embedded:
            text += f" ({self.chunks_encoded} encoded, the rest from the shipped vectors or the cache)"
        return text


class RunLog:
    def __init__(self, data_dir: Path, collection: str) -> None:
        self.path = data_dir / "index-runs" / f"{collection}.jsonl"

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the collection's reindex lock (a file lock next to the records): a second
        process reindexing the same collection from the same DATA_DIR fails at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with lock_path.open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReindexBusyError(
                    f"another docsbot process is reindexing this collection ({lock_path} is locked); "
                    "try again when it is done"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self, run: IndexRun) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(run)) + "\n")

    def last(self) -> IndexRun | None:
        if not self.path.exists():
            return None
        lines = self.path.read_text(encoding="utf-8").strip().splitlines()
        for line in reversed(lines):
            try:
                data: dict[str, Any] = json.loads(line)
                return IndexRun(**{k: v for k, v in data.items() if k in IndexRun.__dataclass_fields__})
            except (ValueError, TypeError):
                log.warning("%s: unreadable run record skipped", self.path)
        return None
