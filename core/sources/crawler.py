"""The live docs site as a source: a polite aiohttp crawler of https://milvus.io/docs/.

    crawler = SiteCrawler.from_settings("https://milvus.io/docs/", settings)
    result = await crawler.load(progress)       # SourceResult, like the snapshot source

- Discovery: robots.txt's Sitemap lines (default /sitemap.xml; a sitemap index is followed), kept
  to the pages CRAWL_INCLUDE matches (the latest English docs: `/docs/<id>.md`, not versioned
  `/docs/v2.6.x/...` or translated `/docs/de/...`) minus CRAWL_EXCLUDE and robots.txt's Disallow.
  Without a sitemap the docs' own links are followed from the source URL.
- Politeness: a descriptive User-Agent (the site answers 403 to script-like ones), a cookie jar
  (the site answers a first visit with a 302 that sets a challenge cookie), robots.txt's
  Crawl-delay, CRAWL_CONCURRENCY requests at most, a timeout per request, retries with backoff
  on 429/5xx and timeouts honouring Retry-After, and a page-size cap.
- Incremental: a per-site cache under DATA_DIR/crawl-cache keeps each page's ETag,
  Last-Modified, sitemap lastmod and extracted Markdown. An unchanged sitemap lastmod costs no
  request, any other known page one conditional GET (a 304 reuses the cached Markdown).
- Pages answering 404/410 are gone (the indexer deletes them); other failures are errors, and
  their pages stay indexed as they were.

The site root comes from the source URL (`http://HOST:PORT/docs/` reads `http://HOST:PORT/
robots.txt`), so mirrors and test sites work alike; answers still link to DOCS_PUBLIC_BASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp

from core.errors import SourceError
from core.progress import ProgressTracker
from core.sources import SourceResult
from core.sources.html import NoArticleError, html_to_markdown
from core.sources.markdown import parse_page

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}
GONE_STATUSES = {404, 410}
#: Longest wait honoured from a Retry-After header, and the most URLs one crawl takes on.
MAX_RETRY_AFTER = 120.0
MAX_URLS = 20_000
_SCRIPT_AGENT = re.compile(r"python|curl|wget|aiohttp|requests", re.I)
_HREF = re.compile(r"""href\s*=\s*["']([^"'#]+)""", re.I)


class FetchError(Exception):
    """A request that failed for good (after retries)."""


@dataclass
class _Fetched:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: str


@dataclass
class _CacheEntry:
    url: str
    markdown: str
    etag: str = ""
    last_modified: str = ""
    lastmod: str = ""
    links: list[str] = field(default_factory=list)


@dataclass
class CrawlOptions:
    user_agent: str
    concurrency: int = 4
    timeout: float = 20.0
    retries: int = 3
    max_page_bytes: int = 5_000_000
    include: str = r"^/docs/[^/]+\.md$"
    exclude: str = ""
    backoff: float = 1.0  # first retry waits about this long, then doubles


class SiteCrawler:
    def __init__(
        self, source_url: str, public_base_url: str, options: CrawlOptions, cache_dir: Path | None
    ) -> None:
        parts = urlsplit(source_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SourceError(f"docs source {source_url!r} is not an http(s) URL")
        self.source_url = source_url if source_url.endswith("/") else source_url + "/"
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.public_base_url = public_base_url
        self.options = options
        self.description = self.source_url
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.netloc)
        self.cache_path = cache_dir / f"{safe_host}.json" if cache_dir else None
        self.documents: dict[str, str] = {}  # page id -> Markdown, after `load`
        self.requests = 0
        if _SCRIPT_AGENT.search(options.user_agent):
            log.warning(
                "CRAWL_USER_AGENT %r looks like a script; milvus.io answers such agents with 403",
                options.user_agent,
            )
        self._include = re.compile(options.include)
        self._exclude = re.compile(options.exclude) if options.exclude else None
        self._robots = RobotFileParser()
        self._delay = 0.0
        self._next_slot = 0.0
        self._pace_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, source_url: str, settings: Settings) -> SiteCrawler:
        options = CrawlOptions(
            user_agent=settings.crawl_user_agent,
            concurrency=settings.crawl_concurrency,
            timeout=settings.crawl_timeout,
            retries=settings.crawl_retries,
            max_page_bytes=settings.crawl_max_page_bytes,
            include=settings.crawl_include,
            exclude=settings.crawl_exclude,
        )
        return cls(source_url, settings.docs_public_base_url, options, settings.data_dir / "crawl-cache")

    # --- the crawl ----------------------------------------------------------------------------

    async def load(self, progress: ProgressTracker | None = None) -> SourceResult:
        tracker = progress or ProgressTracker()
        tracker.update(phase="discovering")
        cache = self._read_cache()
        self.requests = 0
        headers = {"User-Agent": self.options.user_agent, "Accept-Language": "en"}
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of IP-address hosts too
        async with aiohttp.ClientSession(headers=headers, cookie_jar=jar) as session:
            await self._read_robots(session)
            sitemap = await self._read_sitemaps(session)
            result = await self._crawl(session, sitemap, cache, tracker)
        result.requests = self.requests
        self._write_cache(cache)
        log.info(
            "crawled %s: %d pages, %d errors, %d requests",
            self.source_url,
            len(result.pages),
            len(result.errors),
            self.requests,
        )
        return result

    async def _read_robots(self, session: aiohttp.ClientSession) -> None:
        url = f"{self.root}/robots.txt"
        try:
            fetched = await self._get(session, url)
        except FetchError as exc:
            raise SourceError(f"the docs site {self.root} could not be reached: {exc}") from exc
        if fetched.status == 200:
            self._robots.parse(fetched.body.splitlines())
        elif fetched.status >= 500:
            raise SourceError(f"the docs site {self.root} answered {fetched.status} for robots.txt")
        else:
            self._robots.parse([])  # no robots.txt: everything allowed
        self._delay = _crawl_delay(fetched.body, self.options.user_agent) if fetched.status == 200 else 0.0
        if self._delay:
            log.info("robots.txt asks for %.1f s between requests", self._delay)

    async def _read_sitemaps(self, session: aiohttp.ClientSession) -> dict[str, str] | None:
        """Page URL -> lastmod ("" when absent) from the sitemaps; None when there is none."""
        pending = list(self._robots.site_maps() or [f"{self.root}/sitemap.xml"])
        seen: set[str] = set()
        pages: dict[str, str] = {}
        found = False
        while pending and len(seen) < 100:
            url = pending.pop(0)
            if url in seen or not url.startswith(self.root):
                continue
            seen.add(url)
            try:
                fetched = await self._get(session, url)
                if fetched.status != 200:
                    log.warning("sitemap %s: HTTP %d", url, fetched.status)
                    continue
                root = ET.fromstring(fetched.body)
            except (FetchError, ET.ParseError) as exc:
                log.warning("sitemap %s unusable: %s", url, exc)
                continue
            found = True
            for element in root:
                loc = _child_text(element, "loc")
                if _local(element.tag) == "sitemap" and loc:
                    pending.append(loc)
                elif _local(element.tag) == "url" and loc and self._wanted(loc):
                    pages[_canonical(loc)] = _child_text(element, "lastmod")
        if not found:
            log.warning("no usable sitemap on %s: following the docs' own links", self.root)
            return None
        return pages

    def _wanted(self, url: str) -> bool:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.root:
            return False
        if not self._include.search(parts.path):
            return False
        if self._exclude is not None and self._exclude.search(parts.path):
            return False
        return self._robots.can_fetch(self.options.user_agent, url)

    async def _crawl(
        self,
        session: aiohttp.ClientSession,
        sitemap: dict[str, str] | None,
        cache: dict[str, _CacheEntry],
        tracker: ProgressTracker,
    ) -> SourceResult:
        follow_links = sitemap is None
        queue: asyncio.Queue[str] = asyncio.Queue()
        seen: set[str] = set()
        lastmods = sitemap or {}
        result = SourceResult(pages=[])
        markdown: dict[str, str] = {}

        def enqueue(url: str) -> None:
            if url not in seen and len(seen) < MAX_URLS:
                seen.add(url)
                queue.put_nowait(url)
                if self._wanted(url):
                    result.listed += 1

        for url in sorted(sitemap) if sitemap is not None else [self.source_url]:
            enqueue(url)
        tracker.update(phase="fetching", pages_seen=result.listed)

        async def worker() -> None:
            while True:
                url = await queue.get()
                try:
                    links = await self._page(session, url, lastmods.get(url, ""), cache, result, markdown)
                    if follow_links:
                        for link in links:
                            enqueue(link)
                        tracker.update(pages_seen=result.listed)
                    if self._wanted(url):
                        tracker.update(pages_fetched=tracker.current.pages_fetched + 1)
                    tracker.update(errors=len(result.errors))
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(self.options.concurrency)]
        try:
            await queue.join()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        for entry_id in [i for i, e in cache.items() if e.url not in seen]:
            del cache[entry_id]  # no longer listed anywhere
        self.documents = markdown
        return result

    async def _page(
        self,
        session: aiohttp.ClientSession,
        url: str,
        lastmod: str,
        cache: dict[str, _CacheEntry],
        result: SourceResult,
        markdown: dict[str, str],
    ) -> list[str]:
        """Fetch one URL into `result`; returns the docs links on it (for link discovery)."""
        wanted = self._wanted(url)
        page_id = urlsplit(url).path.rsplit("/", 1)[-1]
        cached = cache.get(page_id) if wanted else None
        if cached and cached.url != url:
            cached = None
        if cached and lastmod and cached.lastmod == lastmod:
            return self._accept(page_id, cached, result, markdown)  # unchanged per sitemap

        headers = {}
        if cached and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        try:
            fetched = await self._get(session, url, headers)
        except FetchError as exc:
            return self._failed(url, page_id, str(exc), result, wanted)
        if fetched.status == 304 and cached:
            cached.lastmod = lastmod
            return self._accept(page_id, cached, result, markdown)
        if fetched.status in GONE_STATUSES:
            log.info("%s: gone (HTTP %d)", url, fetched.status)
            cache.pop(page_id, None)
            return []
        if fetched.status != 200:
            return self._failed(url, page_id, f"HTTP {fetched.status}", result, wanted)
        links = self._links(url, fetched.body)
        if not wanted:
            return links
        try:
            text = html_to_markdown(fetched.body, page_id)
        except NoArticleError as exc:
            return self._failed(url, page_id, str(exc), result, wanted)
        entry = _CacheEntry(
            url=url,
            markdown=text,
            etag=fetched.headers.get("ETag", ""),
            last_modified=fetched.headers.get("Last-Modified", ""),
            lastmod=lastmod,
            links=links,
        )
        cache[page_id] = entry
        return self._accept(page_id, entry, result, markdown)

    def _accept(
        self, page_id: str, entry: _CacheEntry, result: SourceResult, markdown: dict[str, str]
    ) -> list[str]:
        page = parse_page(entry.markdown, self.public_base_url, origin=entry.url)
        if page is None:
            result.skipped += 1
        else:
            result.pages.append(page)
            markdown[page_id] = entry.markdown
        return entry.links

    def _failed(self, url: str, page_id: str, reason: str, result: SourceResult, wanted: bool) -> list[str]:
        log.warning("%s: %s", url, reason)
        if wanted:
            result.errors[url] = reason
            result.failed_ids.add(page_id)
        return []

    def _links(self, base: str, body: str) -> list[str]:
        links = set()
        for href in _HREF.findall(body):
            url = _canonical(urljoin(base, href))
            if self._wanted(url):
                links.add(url)
        return sorted(links)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _get(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> _Fetched:
        """GET with the timeout, pacing and retries; a final 429/5xx is returned, not raised."""
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        for attempt in range(self.options.retries + 1):
            last = attempt == self.options.retries
            await self._pace()
            try:
                async with session.get(url, headers=headers, timeout=timeout, max_redirects=5) as resp:
                    self.requests += 1 + len(resp.history)
                    if resp.status in RETRY_STATUSES and not last:
                        wait = _retry_after(resp.headers.get("Retry-After"))
                        wait = wait if wait is not None else self._backoff(attempt)
                        log.info("%s: HTTP %d, retrying in %.1f s", url, resp.status, wait)
                        await asyncio.sleep(wait)
                        continue
                    body = await self._read_body(resp)
                    charset = resp.charset or "utf-8"
                    return _Fetched(resp.status, resp.headers.copy(), body.decode(charset, "replace"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = (
                    f"timed out after {self.options.timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc)
                )
                self.requests += 1
                if last:
                    raise FetchError(reason) from exc
                wait = self._backoff(attempt)
                log.info("%s: %s, retrying in %.1f s", url, reason, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, or FetchError past CRAWL_MAX_PAGE_BYTES (read in chunks, not trusting
        Content-Length)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.options.max_page_bytes:
                raise FetchError(f"larger than CRAWL_MAX_PAGE_BYTES={self.options.max_page_bytes}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _backoff(self, attempt: int) -> float:
        return float(self.options.backoff * (2**attempt) * random.uniform(0.75, 1.25))

    async def _pace(self) -> None:
        """robots.txt's Crawl-delay: request starts are at least that far apart."""
        if not self._delay:
            return
        async with self._pace_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._delay
        if wait > 0:
            await asyncio.sleep(wait)

    # --- the cache ----------------------------------------------------------------------------

    def _read_cache(self) -> dict[str, _CacheEntry]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        try:
            raw: dict[str, dict[str, Any]] = json.loads(self.cache_path.read_text(encoding="utf-8"))
            return {page_id: _CacheEntry(**entry) for page_id, entry in raw.items()}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("crawl cache %s unreadable (%s): fetching everything", self.cache_path, exc)
            return {}

    def _write_cache(self, cache: dict[str, _CacheEntry]) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.cache_path.with_suffix(".tmp")
        data = {page_id: entry.__dict__ for page_id, entry in sorted(cache.items())}
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(self.cache_path)


def _crawl_delay(robots: str, user_agent: str) -> float:
    """robots.txt's Crawl-delay for our agent (its own group first, else `*`), in seconds.
    (urllib's parser only reads whole numbers; sites write 0.5 too.)"""
    product = user_agent.split("/", 1)[0].strip().lower()
    delays: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for raw in robots.splitlines():
        key, _, value = raw.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        elif key:
            in_rules = True
            if key == "crawl-delay":
                try:
                    for agent in agents:
                        delays.setdefault(agent, max(0.0, float(value)))
                except ValueError:
                    log.warning("robots.txt: unreadable Crawl-delay %r ignored", value)
    specific = [d for agent, d in delays.items() if agent != "*" and agent in product]
    return specific[0] if specific else delays.get("*", 0.0)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), capped; None when absent/unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _canonical(url: str) -> str:
    return urldefrag(url.strip())[0]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""
