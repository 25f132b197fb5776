"""Markdown pages with YAML front matter -> `Page` objects with sections and deep-link anchors.

The layout is the one of milvus-io/web-content (`v3.0.x/site/en/**.md`): the front matter holds
`id` (also the URL's last segment), `title`, `summary` and `deprecate`. Headings become sections;
each heading's anchor follows milvus.io (punctuation dropped, spaces -> "-": "Index params" ->
"Index-params", "`proxy.maxVectorFieldNum`" -> "proxymaxVectorFieldNum").
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from core.models import Page, Section

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"<[^>]+>")
_TABLE = re.compile(r"<table\b.*?</table>", re.S | re.I)
_ROW = re.compile(r"<tr\b.*?</tr>", re.S | re.I)
_CELL = re.compile(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", re.S | re.I)
_HTML_LINE = re.compile(r"^\s*</?(div|a|span|p|br|img|button|ul|li)\b[^>]*>.*$", re.I)
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff"), None)


@dataclass(frozen=True)
class FrontMatter:
    meta: dict[str, Any]
    body: str


def split_front_matter(text: str, origin: str = "<page>") -> FrontMatter:
    """Split `---\\n yaml \\n---` off the top. Malformed YAML falls back to `key: value` lines."""
    if not text.startswith("---"):
        return FrontMatter({}, text)
    end = re.search(r"^---\s*$", text[3:], re.M)
    if end is None:
        log.warning("%s: front matter is not closed; reading the page without it", origin)
        return FrontMatter({}, text)
    raw, body = text[3 : 3 + end.start()], text[3 + end.end() :]
    try:
        meta = yaml.safe_load(raw) or {}
        if not isinstance(meta, dict):
            raise yaml.YAMLError("front matter is not a mapping")
    except yaml.YAMLError as exc:
        log.warning(
            "%s: malformed front matter (%s); reading key: value lines", origin, " ".join(str(exc).split())
        )
        meta = {}
        for line in raw.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and not key.startswith((" ", "\t")):
                meta[key.strip()] = value.strip().strip("'\"")
    return FrontMatter(meta, body.lstrip("\n"))


def heading_anchor(heading: str) -> str:
    """milvus.io's anchor for a heading: keep letters, digits, spaces and '-'; spaces -> '-'."""
    kept = "".join(ch for ch in clean_inline(heading) if ch.isalnum() or ch in " -")
    return "-".join(kept.split())


def clean_inline(text: str) -> str:
    """Markdown/HTML inline markup -> plain words (links keep their text, images go)."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = text.replace("**", "").replace("`", "")
    return html.unescape(text).strip()


def _table_to_text(match: re.Match[str]) -> str:
    rows = []
    for row in _ROW.findall(match.group(0)):
        cells = [" ".join(clean_inline(cell).split()) for cell in _CELL.findall(row)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n" + "\n".join(rows) + "\n"


def _prose(line: str) -> str | None:
    """Clean one non-code line; None drops it (layout-only HTML such as tab bars)."""
    if _HTML_LINE.match(line):
        return None
    line = _IMAGE.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _TAG.sub("", line)
    return html.unescape(line.replace("**", "")).rstrip()


def _lines(body: str, code_tabs: str) -> Iterator[tuple[str, bool]]:
    """Yield (line, is_code). With code_tabs="first", of a language-tab group
    (`<div class="multipleCode">` then consecutive fenced blocks) only the first block is kept."""
    body = _TABLE.sub(_table_to_text, body.translate(_ZERO_WIDTH))
    in_code = False
    tab_group = False  # inside a multipleCode group, after its first block
    skipping = False
    blocks_in_group = 0
    for line in body.splitlines():
        if not in_code and 'class="multipleCode"' in line:
            tab_group, blocks_in_group = True, 0
            continue
        if _FENCE.match(line):
            if not in_code:
                in_code = True
                if tab_group:
                    blocks_in_group += 1
                    skipping = code_tabs == "first" and blocks_in_group > 1
            else:
                in_code = False
                if not skipping:
                    yield line, True
                skipping = False
                continue
        if in_code:
            if not skipping:
                yield line, True
            continue
        if tab_group and line.strip() and not _HTML_LINE.match(line):
            tab_group = False  # prose ends the tab group
        cleaned = _prose(line)
        if cleaned is not None:
            yield cleaned, False


def parse_sections(body: str, title: str, code_tabs: str = "first") -> tuple[Section, ...]:
    """Split a page body on headings (outside code) into sections with heading paths."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []  # (level, heading)
    anchor = ""
    buffer: list[str] = []

    def flush() -> None:
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(buffer)).strip()
        if text:
            path = tuple(h for _, h in stack) or (title,)
            if path[0] != title:
                path = (title, *path)
            sections.append(Section(heading_path=path, anchor=anchor, text=text))
        buffer.clear()

    for line, is_code in _lines(body, code_tabs):
        match = None if is_code else _HEADING.match(line)
        if match is None:
            buffer.append(line)
            continue
        flush()
        level, heading = len(match.group(1)), clean_inline(match.group(2))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        anchor = heading_anchor(heading) if level > 1 else ""
    flush()
    return tuple(sections)


def parse_page(text: str, base_url: str, origin: str = "<page>", code_tabs: str = "first") -> Page | None:
    """One Markdown file -> Page, or None when it has no id or is deprecated (unpublished)."""
    front = split_front_matter(text, origin)
    page_id = str(front.meta.get("id") or "").strip()
    if not page_id:
        log.debug("%s: no id in front matter; skipped", origin)
        return None
    if str(front.meta.get("deprecate", "")).lower() == "true":
        log.debug("%s: deprecated (not published); skipped", origin)
        return None
    title = clean_inline(str(front.meta.get("title") or ""))
    if not title:
        first_h1 = re.search(r"^#\s+(.+)$", front.body, re.M)
        title = clean_inline(first_h1.group(1)) if first_h1 else page_id.removesuffix(".md")
    summary = clean_inline(str(front.meta.get("summary") or ""))
    sections = parse_sections(front.body, title, code_tabs)
    digest = hashlib.sha256()
    for part in (title, summary, *(f"{s.anchor}\0{'/'.join(s.heading_path)}\0{s.text}" for s in sections)):
        digest.update(part.encode())
        digest.update(b"\1")
    return Page(
        id=page_id,
        title=title,
        url=base_url + page_id,
        sections=sections,
        summary=summary,
        content_hash=digest.hexdigest()[:32],
    )
