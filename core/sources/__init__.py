"""Docs sources: where pages come from. Each yields `Page`s; chunking and indexing are shared.

- `SnapshotSource`: a folder of Markdown pages with front matter, or the snapshot bundled with
  the package (`DOCS_SOURCE=bundled`, the offline fallback).
- `SiteCrawler` (crawler.py): the live docs site, https://milvus.io/docs/ by default.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import SourceError
from core.models import Page
from core.progress import ProgressTracker
from core.sources.markdown import parse_page

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

BUNDLED = "bundled"
_BUNDLE_NAME = "milvus-docs-en.tar.xz"


@dataclass
class SourceResult:
    """Pages read from a source, and what could not be read (path or URL -> reason)."""

    pages: list[Page]
    errors: dict[str, str] = field(default_factory=dict)
    skipped: int = 0  # files without an id, deprecated pages, duplicate ids
    listed: int = 0  # pages the source listed (the safety gate's error-rate denominator)
    failed_ids: set[str] = field(default_factory=set)  # listed but not loaded: keep them indexed
    requests: int = 0  # HTTP requests made
    #: The source listed every page it has (a folder read without errors, a sitemap read whole):
    #: then an indexed page missing from it is gone. Otherwise only `gone_ids` are.
    complete: bool = True
    gone_ids: set[str] = field(default_factory=set)  # pages the site says are gone (404/410)

    def removal_candidates(self, indexed: Iterable[str]) -> list[str]:
        """The indexed page ids this result shows to be gone (the safety gate still applies).
        A page that failed to load is never one: a failure must not turn into a deletion."""
        loaded = {page.id for page in self.pages}
        gone = set(indexed) - loaded if self.complete else set(indexed) & self.gone_ids
        return sorted(gone - self.failed_ids)


class DocsSource(Protocol):
    """Anything that can produce the current set of docs pages."""

    description: str

    async def load(self, progress: ProgressTracker | None = None) -> SourceResult: ...


class SnapshotSource:
    """Markdown pages from a folder, or from the tar.xz archive bundled with the package."""

    def __init__(self, location: str, base_url: str, code_tabs: str = "first") -> None:
        self.location = location
        self.base_url = base_url
        self.code_tabs = code_tabs
        self.description = "bundled snapshot (v3.0.x)" if location == BUNDLED else location

    async def load(self, progress: ProgressTracker | None = None) -> SourceResult:
        tracker = progress or ProgressTracker()
        tracker.update(phase="fetching")
        result = await asyncio.to_thread(self.load_sync)
        loaded = len(result.pages) + result.skipped
        tracker.update(pages_seen=loaded + len(result.errors), pages_fetched=loaded)
        return result

    def load_sync(self) -> SourceResult:
        files = _bundled_files() if self.location == BUNDLED else _folder_files(Path(self.location))
        return pages_from_files(files, self.base_url, self.code_tabs)


def pages_from_files(
    files: Iterable[tuple[str, str | None]], base_url: str, code_tabs: str = "first"
) -> SourceResult:
    """Parse (name, text) pairs; text None means unreadable. First file wins on duplicate ids."""
    result = SourceResult(pages=[])
    seen: dict[str, str] = {}
    for name, text in files:
        result.listed += 1
        if text is None:
            result.errors[name] = "unreadable"
            continue
        try:
            page = parse_page(text, base_url, origin=name, code_tabs=code_tabs)
        except Exception as exc:  # one bad page must not sink the whole index
            log.warning("%s: could not be parsed: %s", name, exc)
            result.errors[name] = f"parse error: {exc}"
            continue
        if page is None:
            result.skipped += 1
        elif page.id in seen:
            log.warning(
                "%s: duplicate page id %s (already read from %s); skipped", name, page.id, seen[page.id]
            )
            result.skipped += 1
        else:
            seen[page.id] = name
            result.pages.append(page)
    result.complete = not result.errors  # an unreadable file may hold an indexed page: keep them all
    return result


def _folder_files(root: Path) -> Iterator[tuple[str, str | None]]:
    if not root.is_dir():
        raise SourceError(f"docs source {root} is not a directory (DOCS_SOURCE / --source)")
    for path in sorted(root.rglob("*.md")):
        try:
            yield str(path.relative_to(root)), path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.warning("%s: %s", path, exc)
            yield str(path.relative_to(root)), None


def _bundled_files() -> Iterator[tuple[str, str | None]]:
    archive = resources.files("core.sources") / "data" / _BUNDLE_NAME
    try:
        with resources.as_file(archive) as path, tarfile.open(path, "r:xz") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None and member.name.endswith(".md"):
                    yield member.name, handle.read().decode("utf-8", errors="replace")
    except (OSError, tarfile.TarError) as exc:
        raise SourceError(f"the bundled docs snapshot could not be read: {exc}") from exc


def is_site_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def open_source(location: str, settings: Settings) -> DocsSource:
    """The source for DOCS_SOURCE / --source: a docs site URL, 'bundled' or a folder of pages."""
    if is_site_url(location):
        from core.sources.crawler import SiteCrawler

        return SiteCrawler.from_settings(location, settings)
    if location != BUNDLED and not Path(location).is_dir():
        raise SourceError(f"docs source {location!r} is neither a URL, 'bundled' nor an existing directory")
    return SnapshotSource(location, settings.docs_public_base_url)
