"""The live docs site as a source: a polite aiohttp crawler of https://milvus.io/docs/.

    crawler = SiteCrawler.from_settings("https://milvus.io/docs/", settings)
    result = await crawler.load(progress)       # SourceResult, like the snapshot source

- Discovery: robots.txt's Sitemap lines (default /sitemap.xml; a sitemap index is followed), kept
  to the pages CRAWL_INCLUDE matches (the latest English docs: `/docs/<id>.md`, not versioned
  `/docs/v2.6.x/...` or translated `/docs/de/...`) minus CRAWL_EXCLUDE and robots.txt's Disallow.
  Without a sitemap the docs' own links are followed from the source URL.
- Staying on the site: every URL is compared on its parsed (scheme, host, port) with the site
  root, never by string prefix (`http://SITE@other-host/` is another host), and URLs carrying a
  user name are refused. Redirects are followed here, not by aiohttp, and every hop is checked
  the same way: nothing is ever requested from another host.
- Politeness: a descriptive User-Agent (the site answers 403 to script-like ones), a cookie jar
  (the site answers a first visit with a 302 that sets a challenge cookie), robots.txt's
  Crawl-delay, CRAWL_CONCURRENCY requests at most, a timeout per request, retries with backoff
  on 429/5xx and timeouts honouring Retry-After.
- Size: CRAWL_MAX_PAGE_BYTES counts decompressed bytes and is enforced while reading (gzip and
  deflate are inflated here, in bounded steps), so a compression bomb costs at most the limit.
- Incremental: a per-site cache under DATA_DIR/crawl-cache keeps each page's ETag,
  Last-Modified and extracted Markdown. Every known page is revalidated on every run with a
  conditional GET (sitemap `lastmod` is only a hint: pages get edited without it); a 304 costs
  no body and reuses the cached Markdown.
- Failures: anything that goes wrong with one page (fetch, decode, parse, extract, a bug) is that
  page's recorded error; it stays indexed as it was. Pages answering 404/410 are gone. Other pages
  are removal candidates only when absent from a sitemap that was read completely
  (`SourceResult.complete`); link discovery is never complete.
- Off the event loop: decoding, HTML extraction, page parsing, sitemap parsing and the cache file
  run in worker threads, so a crawl inside `docsbot serve` leaves the chats responsive.

The site root comes from the source URL (`http://HOST:PORT/docs/` reads `http://HOST:PORT/
robots.txt`), so mirrors and test sites work alike; answers still link to DOCS_PUBLIC_BASE_URL.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import random
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp
from yarl import URL

from core.errors import FetchError, NoArticleError, SourceError
from core.progress import ProgressTracker
from core.sources import SourceResult
from core.sources.html import html_to_markdown
from core.sources.markdown import parse_page

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}
GONE_STATUSES = {404, 410}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
#: Longest wait honoured from a Retry-After header, the most URLs one crawl takes on, the most
#: sitemaps it reads, and the most redirect hops one request follows.
MAX_RETRY_AFTER = 120.0
MAX_URLS = 20_000
MAX_SITEMAPS = 100
MAX_REDIRECTS = 5
READ_CHUNK = 64 * 1024
_SCRIPT_AGENT = re.compile(r"python|curl|wget|aiohttp|requests", re.I)
_HREF = re.compile(r"""href\s*=\s*["']([^"'#]+)""", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class _Fetched:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # decompressed; empty unless the status is 200
    url: str  # where the body came from (after same-site redirects)
    charset: str | None = None

    def text(self) -> str:
        return decode_body(self.body, self.charset)


@dataclass
class _CacheEntry:
    url: str
    markdown: str
    etag: str = ""
    last_modified: str = ""
    lastmod: str = ""  # the sitemap's, as last seen (kept for the record; never trusted)
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
        origin = _origin(source_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc or origin is None:
            raise SourceError(f"docs source {source_url!r} is not an http(s) URL")
        self.source_url = source_url if source_url.endswith("/") else source_url + "/"
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.origin = origin
        self.public_base_url = public_base_url
        self.options = options
        self.description = self.source_url
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.netloc)
        self.cache_path = cache_dir / f"{safe_host}.json" if cache_dir else None
        self.documents: dict[str, str] = {}  # page id -> Markdown, after `load`
        self.requests = 0
        self.requests_by_host: Counter[str] = Counter()  # "host:port" -> requests sent
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
        cache = await asyncio.to_thread(self._read_cache)
        self.requests = 0
        self.requests_by_host.clear()
        # Compressed bodies are inflated by `_read_body`, which enforces the size limit on the
        # inflated bytes; so aiohttp must not decompress, and only encodings we inflate are asked.
        headers = {
            "User-Agent": self.options.user_agent,
            "Accept-Language": "en",
            "Accept-Encoding": "gzip, deflate",
        }
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of IP-address hosts too
        async with aiohttp.ClientSession(headers=headers, cookie_jar=jar, auto_decompress=False) as session:
            await self._read_robots(session)
            sitemap, complete = await self._read_sitemaps(session)
            result = await self._crawl(session, sitemap, cache, tracker)
        result.requests = self.requests
        result.complete = result.complete and complete
        await asyncio.to_thread(self._write_cache, cache)
        log.info(
            "crawled %s: %d pages, %d errors, %d requests%s",
            self.source_url,
            len(result.pages),
            len(result.errors),
            self.requests,
            "" if result.complete else " (listing incomplete: only pages answering 404/410 may be deleted)",
        )
        return result

    async def _read_robots(self, session: aiohttp.ClientSession) -> None:
        url = f"{self.root}/robots.txt"
        try:
            fetched = await self._get(session, url)
        except FetchError as exc:
            raise SourceError(f"the docs site {self.root} could not be reached: {exc}") from exc
        if fetched.status >= 500:
            raise SourceError(f"the docs site {self.root} answered {fetched.status} for robots.txt")
        text = fetched.text() if fetched.status == 200 else ""
        self._robots.parse(text.splitlines())  # no robots.txt: everything allowed
        self._delay = _crawl_delay(text, self.options.user_agent)
        if self._delay:
            log.info("robots.txt asks for %.1f s between requests", self._delay)

    async def _read_sitemaps(self, session: aiohttp.ClientSession) -> tuple[dict[str, str] | None, bool]:
        """(page URL -> lastmod ("" when absent), complete) from the sitemaps; (None, False) when
        there is none. `complete` is False when any sitemap could not be read whole (a child that
        failed, one on another host, too many): then pages missing from it are not gone."""
        pending = list(self._robots.site_maps() or [f"{self.root}/sitemap.xml"])
        seen: set[str] = set()
        pages: dict[str, str] = {}
        found, complete = False, True
        while pending:
            url = pending.pop(0)
            if url in seen:
                continue
            if not self.on_site(url):
                log.warning("sitemap %s is not on the docs site %s: not read", url, self.root)
                complete = False
                continue
            if len(seen) >= MAX_SITEMAPS:
                log.warning("more than %d sitemaps: the rest are not read", MAX_SITEMAPS)
                complete = False
                break
            seen.add(url)
            try:
                fetched = await self._get(session, url)
                if fetched.status != 200:
                    raise FetchError(f"HTTP {fetched.status}")
                children, urls = await asyncio.to_thread(self._parse_sitemap, fetched.body)
            except Exception as exc:  # a broken sitemap of any kind: read the others, delete nothing
                log.warning("sitemap %s unusable: %s", url, _describe(exc))
                complete = False
                continue
            found = True
            pending.extend(children)
            pages.update(urls)
        if not found:
            log.warning("no usable sitemap on %s: following the docs' own links", self.root)
            return None, False
        return pages, complete

    def _parse_sitemap(self, body: bytes) -> tuple[list[str], dict[str, str]]:
        """(child sitemaps, wanted page URL -> lastmod) of one sitemap document (in a thread)."""
        root = ET.fromstring(body)  # bytes: the XML declaration names the encoding
        children: list[str] = []
        urls: dict[str, str] = {}
        for element in root:
            loc = _child_text(element, "loc")
            if _local(element.tag) == "sitemap" and loc:
                children.append(loc)
            elif _local(element.tag) == "url" and loc and self._wanted(loc):
                urls[_canonical(loc)] = _child_text(element, "lastmod")
        return children, urls

    def on_site(self, url: str) -> bool:
        """Whether `url` is on the docs site: same scheme, host and port as the root, http(s),
        no user name or password (compared parsed, as aiohttp would connect, never as strings)."""
        return _origin(url) == self.origin

    def _wanted(self, url: str) -> bool:
        if not self.on_site(url):
            return False
        path = urlsplit(url).path  # parses: on_site checked
        if not self._include.search(path):
            return False
        if self._exclude is not None and self._exclude.search(path):
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
        result = SourceResult(pages=[], complete=not follow_links)
        markdown: dict[str, str] = {}

        def enqueue(url: str) -> None:
            if url in seen:
                return
            if len(seen) >= MAX_URLS:
                result.complete = False
                return
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
                except Exception as exc:  # any failure of one page is that page's error, never the crawl's
                    log.debug("%s: unexpected failure", url, exc_info=exc)
                    self._failed(url, _page_id(url), _describe(exc), result, self._wanted(url))
                finally:
                    if self._wanted(url):
                        tracker.update(pages_fetched=tracker.current.pages_fetched + 1)
                    tracker.update(errors=len(result.errors))
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
        page_id = _page_id(url)
        cached = cache.get(page_id) if wanted else None
        if cached and cached.url != url:
            cached = None

        headers = {}  # always revalidate: a sitemap lastmod is not proof the page is unchanged
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
            return await self._accept(page_id, cached, result, markdown)
        if fetched.status in GONE_STATUSES:
            log.info("%s: gone (HTTP %d)", url, fetched.status)
            cache.pop(page_id, None)
            if wanted:
                result.gone_ids.add(page_id)
            return []
        if fetched.status != 200:
            return self._failed(url, page_id, f"HTTP {fetched.status}", result, wanted)
        try:
            text, links = await asyncio.to_thread(self._extract, fetched, page_id, wanted)
        except NoArticleError as exc:
            return self._failed(url, page_id, str(exc), result, wanted)
        if not wanted:
            return links
        entry = _CacheEntry(
            url=url,
            markdown=text,
            etag=fetched.headers.get("ETag", ""),
            last_modified=fetched.headers.get("Last-Modified", ""),
            lastmod=lastmod,
            links=links,
        )
        cache[page_id] = entry
        return await self._accept(page_id, entry, result, markdown)

    def _extract(self, fetched: _Fetched, page_id: str, wanted: bool) -> tuple[str, list[str]]:
        """(page Markdown, docs links) of a fetched HTML page; runs in a worker thread."""
        body = fetched.text()
        links = self._links(fetched.url, body)
        return (html_to_markdown(body, page_id) if wanted else ""), links

    async def _accept(
        self, page_id: str, entry: _CacheEntry, result: SourceResult, markdown: dict[str, str]
    ) -> list[str]:
        page = await asyncio.to_thread(parse_page, entry.markdown, self.public_base_url, origin=entry.url)
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
            try:
                url = _canonical(urljoin(base, href))
            except ValueError:
                continue  # e.g. a malformed IPv6 host
            if self._wanted(url):
                links.add(url)
        return sorted(links)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _get(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> _Fetched:
        """GET with the timeout, pacing, redirects and retries; a final 429/5xx is returned, not
        raised. FetchError for a network failure after the retries, an off-site redirect, too
        many redirects or a body over CRAWL_MAX_PAGE_BYTES (the last three are not retried)."""
        for attempt in range(self.options.retries + 1):
            last = attempt == self.options.retries
            try:
                fetched = await self._follow(session, url, headers or {})
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = (
                    f"timed out after {self.options.timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                if last:
                    raise FetchError(reason) from exc
                wait = self._backoff(attempt)
                log.info("%s: %s, retrying in %.1f s", url, reason, wait)
                await asyncio.sleep(wait)
                continue
            if fetched.status in RETRY_STATUSES and not last:
                asked = _retry_after(fetched.headers.get("Retry-After"))
                wait = asked if asked is not None else self._backoff(attempt)
                log.info("%s: HTTP %d, retrying in %.1f s", url, fetched.status, wait)
                await asyncio.sleep(wait)
                continue
            return fetched
        raise AssertionError("unreachable")

    async def _follow(self, session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> _Fetched:
        """One GET, following at most MAX_REDIRECTS redirects, each hop checked to be on site."""
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if not self.on_site(current):
                raise FetchError(f"redirected off the docs site, to {_host_of(current)}")
            await self._pace()
            target = URL(current)
            self.requests += 1
            self.requests_by_host[f"{target.host}:{target.port}"] += 1
            async with session.get(target, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in REDIRECT_STATUSES and location:
                    current = _canonical(urljoin(current, location))
                    continue
                body = await self._read_body(resp) if resp.status == 200 else b""
                return _Fetched(resp.status, resp.headers.copy(), body, current, resp.charset)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole (decompressed) body, or FetchError past CRAWL_MAX_PAGE_BYTES; counted while
        reading and inflating, never trusting Content-Length, so memory stays within the limit."""
        limit = self.options.max_page_bytes
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in {"gzip", "x-gzip", "deflate"}:
            inflater: Any = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding in {"", "identity"}:
            inflater = None
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}")
        body = bytearray()
        too_big = FetchError(f"larger than CRAWL_MAX_PAGE_BYTES={limit} (decompressed); cut off")
        try:
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                # inflate at most one byte past the limit: what a bomb would add beyond stays packed
                body += chunk if inflater is None else inflater.decompress(chunk, limit - len(body) + 1)
                if len(body) > limit:
                    raise too_big
            if inflater is not None:
                body += inflater.flush()
        except zlib.error as exc:
            raise FetchError(f"corrupt {encoding} body: {exc}") from exc
        if len(body) > limit:
            raise too_big
        return bytes(body)

    def _backoff(self, attempt: int) -> float:
        return float(self.options.backoff * (2**attempt) * random.uniform(0.75, 1.25))

    async def _pace(self) -> None:
        """robots.txt's Crawl-delay: request starts are at least that far apart."""
        if not self._delay:
            return
        async with self._pace_lock:  # held while waiting: the next start is stamped after this one
            wait = self._next_slot - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_slot = time.monotonic() + self._delay  # from the real start, however late

    # --- the cache (read and written in a worker thread) --------------------------------------

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


def decode_body(body: bytes, charset: str | None) -> str:
    """Text in the declared charset when Python knows it as a text encoding, else UTF-8; bytes
    that do not decode become U+FFFD. Never raises: an odd charset must not cost the page."""
    if charset:
        try:
            return body.decode(codecs.lookup(charset).name, errors="replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            log.debug("charset %r unknown (or not a text encoding): decoding as UTF-8", charset)
    return body.decode("utf-8", errors="replace")


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL as aiohttp would connect to it; None for anything
    else: other schemes, URLs with a user name or password, URLs that do not parse, and URLs
    that yarl (aiohttp's parser) and urllib read as different hosts."""
    try:
        parsed = URL(url)
        split = urlsplit(url)
        split_port = split.port
    except (ValueError, TypeError):
        return None
    if parsed.raw_user is not None or parsed.raw_password is not None or split.username is not None:
        return None
    scheme = parsed.scheme.lower()
    host = (parsed.host or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host or parsed.port is None:
        return None
    if (split.hostname or "").rstrip(".") != host or (split_port or _DEFAULT_PORTS[scheme]) != parsed.port:
        return None
    return scheme, host, parsed.port


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def _page_id(url: str) -> str:
    try:
        return urlsplit(url).path.rsplit("/", 1)[-1]
    except ValueError:
        return url


def _describe(exc: BaseException) -> str:
    """One line for a failure's record: our own errors by message, others by type and message."""
    if isinstance(exc, SourceError):  # PageError, FetchError, NoArticleError included
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:300]


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
