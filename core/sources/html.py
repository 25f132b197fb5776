"""A milvus.io docs page (HTML) -> the Markdown-with-front-matter layout the snapshot uses.

The article is the `div.doc-style.doc-post-content`; everything outside it (navigation, menus,
footer) is dropped, and so are buttons, scripts, SVG icons and feedback widgets inside it.
Headings become `#` lines, code blocks stay verbatim in fences (with their language), tables
become `cell | cell` rows, links keep their text. Going through Markdown means the crawled page
is parsed by the same `parse_page` as the snapshot: one page model, one chunker, one hash rule,
and `docsbot crawl --out` can write pages the snapshot source reads back.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import yaml

from core.errors import NoArticleError

_SKIP_TAGS = {"script", "style", "svg", "button", "nav", "footer", "form", "noscript", "template", "img"}
_SKIP_CLASSES = {"feedback", "anchor-icon", "copy-code-btn", "doc-feedback", "toc"}
_VOID_TAGS = {"br", "img", "hr", "input", "meta", "link", "source", "wbr", "col"}
_BLOCK_TAGS = {"p", "div", "section", "ul", "ol", "blockquote", "table", "dl", "dd", "dt", "hr"}


def html_to_markdown(document: str, page_id: str) -> str:
    """The page as Markdown with `id`/`title`/`summary` front matter, ready for `parse_page`."""
    parser = _ArticleParser()
    parser.feed(document)
    parser.close()
    lines = (line.rstrip() for line in "".join(parser.out).splitlines())
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not parser.found or not re.search(r"\w", body):  # markup only (e.g. `**` of empty <b>s)
        raise NoArticleError("no article (div.doc-style.doc-post-content) in the page")
    title = parser.h1 or parser.title.split("|")[0].strip() or page_id.removesuffix(".md")
    meta = {"id": page_id, "title": title, "summary": parser.description}
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=10_000)
    return f"---\n{front}---\n\n{body}\n"


class _ArticleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.found = False
        self.title = ""
        self.h1 = ""
        self.description = ""
        self._depth = 0  # open tags inside the article (0: outside)
        self._skip_depth = 0  # open tags inside a skipped element (0: not skipping)
        self._in_title = False
        self._heading: list[str] | None = None
        self._heading_level = 0
        self._pre: list[str] | None = None
        self._pre_lang = ""
        self._lists: list[str] = []  # "ul" / "ol" stack
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._inline_code = False

    # --- tags -------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if tag == "title":
            self._in_title = True
        if tag == "meta" and attributes.get("name") == "description":
            self.description = " ".join((attributes.get("content") or "").split())
        if not self._depth:
            if tag == "div" and {"doc-style", "doc-post-content"} <= classes and not self.found:
                self.found, self._depth = True, 1
            return
        if tag not in _VOID_TAGS:
            self._depth += 1
        if self._skip_depth:
            if tag not in _VOID_TAGS:
                self._skip_depth += 1
            return
        if tag == "div" and "multipleCode" in classes:
            # a language-tab bar: the marker the Markdown parser knows (it keeps the first tab's
            # code block of those that follow); the tab links themselves are not content
            self.out.append('\n\n<div class="multipleCode"></div>\n')
            self._skip_depth = 1
            return
        if tag in _SKIP_TAGS or classes & _SKIP_CLASSES:
            if tag not in _VOID_TAGS:
                self._skip_depth = 1
            return
        self._open(tag, attributes, classes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if not self._depth or tag in _VOID_TAGS:
            return
        self._depth -= 1
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if self._depth:
            self._close(tag)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self._depth or self._skip_depth:
            return
        if self._pre is not None:
            self._pre.append(data)
            return
        text = re.sub(r"\s+", " ", data)
        if self._after_list_marker() or (self.out and self.out[-1].endswith("\n")):
            text = text.lstrip()
        if self._inline_code:
            text = text.replace("`", "")
        target = self._cell if self._cell is not None else self._heading
        if target is not None:
            target.append(text)
        else:
            self.out.append(text)

    # --- Markdown for each element ------------------------------------------------------------

    def _open(self, tag: str, attributes: dict[str, str | None], classes: set[str]) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self._heading, self._heading_level = [], int(tag[1])
        elif tag == "pre":
            self._pre, self._pre_lang = [], ""
        elif tag == "code" and self._pre is not None:
            lang = next((c for c in classes if c.startswith("language-")), "")
            self._pre_lang = lang.removeprefix("language-")
        elif tag == "code":
            self._inline_code = True
            self._emit("`")
        elif tag in {"ul", "ol"}:
            self._lists.append(tag)
            self.out.append("\n")
        elif tag == "li":
            indent = "  " * (len(self._lists) - 1)
            marker = "1." if self._lists and self._lists[-1] == "ol" else "-"
            self.out.append(f"\n{indent}{marker} ")
        elif tag == "tr":
            self._row = []
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag in {"strong", "b"}:
            self._emit("**")
        elif tag == "br":
            self._emit("\n")
        elif tag in _BLOCK_TAGS and not self._after_list_marker():
            self.out.append("\n\n")

    def _after_list_marker(self) -> bool:
        """A block right after `- ` (markdown's `<li><p>`) stays on the marker's line."""
        tail = "".join(self.out[-3:])
        return bool(re.search(r"\n *(-|1\.) \s*$", tail))

    def _close(self, tag: str) -> None:
        if re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            text = " ".join("".join(self._heading).split())
            if self._heading_level == 1 and not self.h1:
                self.h1 = text
            if text:
                self.out.append(f"\n\n{'#' * self._heading_level} {text}\n\n")
            self._heading = None
        elif tag == "pre" and self._pre is not None:
            code = "".join(self._pre).strip("\n")
            self.out.append(f"\n\n```{self._pre_lang}\n{code}\n```\n\n")
            self._pre = None
        elif tag == "code" and self._inline_code:
            self._inline_code = False
            self._emit("`")
        elif tag in {"ul", "ol"} and self._lists:
            self._lists.pop()
            self.out.append("\n\n")
        elif tag in {"td", "th"} and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if any(self._row):
                self.out.append("\n" + " | ".join(self._row))
            self._row = None
        elif tag in {"strong", "b"}:
            self._emit("**")
        elif tag in _BLOCK_TAGS:
            self.out.append("\n\n")

    def _emit(self, text: str) -> None:
        target = self._cell if self._cell is not None else self._heading
        (target if target is not None else self.out).append(text)
