"""Live progress of one reindex: what the CLI bar and the chat progress messages show.

The crawler and the indexer update one `ReindexProgress`; every update calls the listeners
(synchronously, on the event loop), which read a consistent snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexProgress:
    phase: str = "starting"  # starting, discovering, fetching, embedding, deleting, done
    pages_seen: int = 0  # pages the source listed
    pages_fetched: int = 0  # pages downloaded, revalidated or read
    pages_changed: int = 0  # added or changed: to be embedded
    pages_removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    errors: int = 0

    @property
    def percent(self) -> int:
        """A rough overall figure: fetching is the first half, embedding the second."""
        if self.phase == "done":
            return 100
        fetched = self.pages_fetched / self.pages_seen if self.pages_seen else 0.0
        embedded = self.chunks_embedded / self.chunks_total if self.chunks_total else 0.0
        if self.phase in {"embedding", "deleting"}:
            return int(50 + 49 * embedded) if self.chunks_total else 99
        return int(50 * fetched)

    def describe(self) -> str:
        """One line for a chat message or a log: `fetching: 120/476 pages, 3 changed, 0 errors`."""
        text = f"{self.phase} ({self.percent}%): {self.pages_fetched}/{self.pages_seen} pages read"
        text += f", {self.pages_changed} new or changed, {self.pages_removed} removed"
        if self.chunks_total:
            text += f", {self.chunks_embedded}/{self.chunks_total} chunks embedded"
        return text + f", {self.errors} errors"


ProgressListener = Callable[[ReindexProgress], None]


class ProgressTracker:
    """Holds the current `ReindexProgress` and tells the listeners about each change."""

    def __init__(self, listener: ProgressListener | None = None) -> None:
        self.current = ReindexProgress()
        self._listeners: list[ProgressListener] = [listener] if listener else []

    def subscribe(self, listener: ProgressListener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        self._listeners.append(listener)
        listener(self.current)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def update(self, **changes: Any) -> None:
        self.current = dataclasses.replace(self.current, **changes)
        for listener in list(self._listeners):
            try:
                listener(self.current)
            except Exception:  # a broken progress message must not stop the reindex
                log.exception("progress listener failed")

    def add(self, **increments: int) -> None:
        """Increment counters: `tracker.add(pages_fetched=1)`."""
        self.update(**{k: getattr(self.current, k) + v for k, v in increments.items()})
