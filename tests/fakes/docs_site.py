"""A fake of the milvus.io docs site on 127.0.0.1, built from Markdown pages.

Pages are rendered to HTML with the real site's structure (header/nav, side menu, the article in
`div.doc-style.doc-post-content` with `common-anchor-header` headings and anchor buttons, code
blocks with copy buttons, a feedback widget, footer). Like the real site it answers 403 to
script-like user agents and 302 + a challenge cookie to a first visit; it serves robots.txt, a
sitemap index with versioned and translated URLs mixed in, ETag/Last-Modified with 304s. Tests
switch faults per path: 429 with Retry-After, 500s, slowness, removal. Every request is recorded.

Hostile switches (what a misbehaving mirror does): extra robots.txt `Sitemap:` lines (e.g. with a
user name that hides another host), child sitemaps answering 500, redirects (to other hosts, or in
loops), a charset Python does not know, gzip-compressed pages, gzip bombs, and raw bodies served
in place of a page. A second `FakeDocsSite` makes a good "other host": it records every request.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import html
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import markdown
import yaml
from aiohttp import web

from core.sources import pages_from_files
from core.sources.markdown import heading_anchor, split_front_matter

from .loopback import serve_on_loopback

SCRIPT_AGENTS = re.compile(r"python|curl|wget|go-http|java/", re.I)
CHALLENGE_COOKIE = "cf_challenge"


@dataclass
class Request:
    path: str
    status: int
    user_agent: str
    conditional: bool
    at: float  # time.monotonic() when it arrived


@dataclass
class FakeDocsSite:
    """`pages` maps page id ("hnsw.md") to its Markdown (front matter included)."""

    pages: dict[str, str]
    crawl_delay: float | None = None
    disallow: list[str] = field(default_factory=lambda: ["/docs/private/"])
    sitemap_index: bool = True
    sitemap: bool = True
    too_many: dict[str, int] = field(default_factory=dict)  # path -> 429s before success
    retry_after: str = "1"
    errors: set[str] = field(default_factory=set)  # paths answering 500
    slow: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    requests: list[Request] = field(default_factory=list)
    base_url: str = ""
    lastmod: dict[str, str] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)  # page ids still listed after their removal
    extra_sitemaps: list[str] = field(default_factory=list)  # more robots.txt Sitemap: lines
    broken_sitemaps: set[str] = field(default_factory=set)  # child sitemap names answering 500
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (302)
    charsets: dict[str, str] = field(default_factory=dict)  # path -> charset named in Content-Type
    raw: dict[str, bytes] = field(default_factory=dict)  # path -> body served as text/html instead
    bombs: dict[str, int] = field(default_factory=dict)  # path -> bytes a gzip body inflates to
    compress: bool = False  # gzip pages for clients that accept it
    bodies_served: int = 0  # 200 responses to page requests (a 304 costs no body)
    _runner: web.AppRunner | None = None
    _html_cache: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path, **options: object) -> FakeDocsSite:
        """Every published page (id, not deprecated) of a folder of Markdown files."""
        files = [(str(p), p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.md"))]
        texts = dict(files)
        result = pages_from_files(files, "https://milvus.io/docs/")
        origins = {name for name, text in files}
        pages = {}
        for name in sorted(origins):
            if not _valid_front_matter(texts[name]):
                continue  # the real site renders only pages whose front matter parses
            meta = split_front_matter(texts[name]).meta
            page_id = str(meta.get("id") or "")
            if page_id and any(p.id == page_id for p in result.pages) and page_id not in pages:
                pages[page_id] = texts[name]
        return cls(pages=pages, **options)  # type: ignore[arg-type]

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> FakeDocsSite:
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/sitemap.xml", self._sitemap)
        app.router.add_get("/sitemaps/{name}", self._child_sitemap)
        app.router.add_get("/docs/", self._docs_home)
        app.router.add_get("/docs/{page}", self._page)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def docs_url(self) -> str:
        return f"{self.base_url}/docs/"

    def page_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/docs/") and r.path.endswith(".md")]

    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.page_requests())

    # --- the site's gatekeeping ---------------------------------------------------------------

    def _gate(self, request: web.Request, arrived: float | None = None) -> web.Response | None:
        """403 for script agents; 302 + challenge cookie on the first visit (like the real site)."""
        agent = request.headers.get("User-Agent", "")
        if SCRIPT_AGENTS.search(agent):
            return self._record(request, web.Response(status=403, text="Forbidden"), arrived)
        if request.cookies.get(CHALLENGE_COOKIE) != "passed":
            response = web.Response(status=302, headers={"Location": str(request.rel_url)})
            response.set_cookie(CHALLENGE_COOKIE, "passed", path="/")
            return self._record(request, response, arrived)
        return None

    def _record(
        self, request: web.Request, response: web.Response, arrived: float | None = None
    ) -> web.Response:
        conditional = "If-None-Match" in request.headers or "If-Modified-Since" in request.headers
        agent = request.headers.get("User-Agent", "")
        self.requests.append(
            Request(request.path, response.status, agent, conditional, arrived or time.monotonic())
        )
        return response

    # --- handlers -----------------------------------------------------------------------------

    async def _robots(self, request: web.Request) -> web.Response:
        lines = ["User-agent: *", *(f"Disallow: {path}" for path in self.disallow)]
        if self.crawl_delay is not None:
            lines.append(f"Crawl-delay: {self.crawl_delay:g}")
        lines += [f"Sitemap: {url}" for url in self.extra_sitemaps]
        lines.append(f"Sitemap: {self.base_url}/sitemap.xml")
        return self._record(request, web.Response(text="\n".join(lines) + "\n"))

    async def _sitemap(self, request: web.Request) -> web.Response:
        if not self.sitemap:
            return self._record(request, web.Response(status=404))
        if not self.sitemap_index:
            return self._record(request, _xml(_urlset(self._urls())))
        index = "".join(
            f"<sitemap><loc>{self.base_url}/sitemaps/{name}</loc></sitemap>"
            for name in ("docs.xml", "blog.xml")
        )
        body = f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="{_NS}">{index}</sitemapindex>'
        return self._record(request, _xml(body))

    async def _child_sitemap(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name in self.broken_sitemaps:
            return self._record(request, web.Response(status=500, text="Internal Server Error"))
        if name == "blog.xml":
            return self._record(request, _xml(_urlset([(f"{self.base_url}/blog/hello.md", None)])))
        return self._record(request, _xml(_urlset(self._urls())))

    def _urls(self) -> list[tuple[str, str | None]]:
        urls: list[tuple[str, str | None]] = []
        for page_id in sorted(self.pages.keys() | self.stale):
            urls.append((f"{self.base_url}/docs/{page_id}", self.lastmod.get(page_id)))
            urls.append((f"{self.base_url}/docs/v2.6.x/{page_id}", None))  # versioned: excluded
            urls.append((f"{self.base_url}/docs/de/{page_id}", None))  # translated: excluded
        urls.append((f"{self.base_url}/docs/private/secret.md", None))  # robots.txt disallows it
        return urls

    async def _docs_home(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        links = "".join(f'<li><a href="/docs/{p}">{p}</a></li>' for p in sorted(self.pages))
        return self._record(request, web.Response(text=f"<ul>{links}</ul>", content_type="text/html"))

    async def _page(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        if (refused := self._gate(request, arrived)) is not None:
            return refused
        path, page_id = request.path, request.match_info["page"]
        if delay := self.slow.get(path):
            await asyncio.sleep(delay)
        if self.too_many.get(path, 0) > 0:
            self.too_many[path] -= 1
            headers = {"Retry-After": self.retry_after}
            return self._record(request, web.Response(status=429, headers=headers), arrived)
        if path in self.errors:
            return self._record(request, web.Response(status=500, text="Internal Server Error"), arrived)
        if path in self.redirects:
            response = web.Response(status=302, headers={"Location": self.redirects[path]})
            return self._record(request, response, arrived)
        if path in self.bombs:
            return self._serve(request, gzip_bomb(self.bombs[path]), {"Content-Encoding": "gzip"}, arrived)
        if path in self.raw:
            return self._serve(request, self.raw[path], {}, arrived)
        if page_id not in self.pages:
            return self._record(request, web.Response(status=404, text="Not Found"), arrived)
        body, etag = self._render(page_id)
        if request.headers.get("If-None-Match") == etag:
            return self._record(request, web.Response(status=304, headers={"ETag": etag}), arrived)
        headers = {"ETag": etag, "Last-Modified": formatdate(usegmt=True)}
        data = body.encode()
        if self.compress and "gzip" in request.headers.get("Accept-Encoding", ""):
            data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
        return self._serve(request, data, headers, arrived)

    def _serve(
        self, request: web.Request, body: bytes, headers: dict[str, str], arrived: float
    ) -> web.Response:
        charset = self.charsets.get(request.path, "utf-8")
        headers = headers | {"Content-Type": f"text/html; charset={charset}"}
        self.bodies_served += 1
        return self._record(request, web.Response(body=body, headers=headers), arrived)

    def _render(self, page_id: str) -> tuple[str, str]:
        source = self.pages[page_id]
        cached = self._html_cache.get(page_id)
        if cached is not None and cached[0] == source:
            body = cached[1]
        else:
            body = render_page(source, sorted(self.pages))
            self._html_cache[page_id] = (source, body)
        return body, '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """A gzip stream of `size` zero bytes (1 GB packs into about 1 MB), built without ever
    holding the inflated bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = []
    for start in range(0, size, len(block)):
        parts.append(packer.compress(block[: min(len(block), size - start)]))
    parts.append(packer.flush())
    return b"".join(parts)


def _valid_front_matter(text: str) -> bool:
    end = text.find("\n---", 3)
    try:
        return text.startswith("---") and isinstance(yaml.safe_load(text[3:end]), dict)
    except yaml.YAMLError:
        return False


_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _urlset(urls: list[tuple[str, str | None]]) -> str:
    entries = "".join(
        f"<url><loc>{html.escape(loc)}</loc>" + (f"<lastmod>{mod}</lastmod>" if mod else "") + "</url>"
        for loc, mod in urls
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{_NS}">{entries}</urlset>'


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


def render_page(source: str, menu: list[str]) -> str:
    """Markdown page -> HTML in the layout of milvus.io/docs."""
    front = split_front_matter(source)
    title = str(front.meta.get("title") or front.meta.get("id"))
    summary = html.escape(str(front.meta.get("summary") or ""), quote=True)
    article = markdown.markdown(front.body, extensions=["fenced_code", "tables"])
    article = re.sub(r"<h([1-6])>(.*?)</h\1>", _anchored_heading, article, flags=re.S)
    article = article.replace("<pre>", '<pre><button class="copy-code-btn">Copy</button>')
    links = "".join(f'<li><a href="/docs/{p}">{p}</a></li>' for p in menu)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Milvus Documentation</title>
<meta name="description" content="{summary}"><script>window.dataLayer = [];</script></head>
<body><header><nav class="header-nav">
<a href="/">Milvus</a><a href="/docs">Docs</a><a href="/blog">Blog</a></nav></header>
<div class="doc-wrapper"><aside class="doc-menu"><ul>{links}</ul></aside>
<main><div class="doc-style doc-post-content">{article}</div>
<div class="doc-feedback"><p>Was this page helpful?</p>
<button>Yes</button><button>No</button></div></main></div>
<footer><p>Milvus is an open-source vector database. Copyright LF AI &amp; Data.</p></footer></body></html>"""


def _anchored_heading(match: re.Match[str]) -> str:
    level, inner = match.group(1), match.group(2)
    anchor = heading_anchor(re.sub(r"<[^>]+>", "", html.unescape(inner)))
    button = (
        f'<button data-href="#{anchor}" class="anchor-icon" translate="no">'
        '<svg viewBox="0 0 16 16"><path d="M4 9h1v1H4"></path></svg></button>'
    )
    return f'<h{level} id="{anchor}" class="common-anchor-header">{inner}{button}</h{level}>'
