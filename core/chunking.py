"""Pages -> chunks: split on headings first (the page parser did), then the tutorial's
RecursiveCharacterTextSplitter at CHUNK_SIZE / CHUNK_OVERLAP with Markdown-aware separators, so
code blocks and tables break between lines rather than inside them where a line fits.

Each chunk keeps its page id, title, heading path and deep link; what is embedded and
BM25-indexed (`search_text`) is the heading path followed by the passage, which puts words like
"HNSW" or "Index params" into passages that never repeat them. A chunk that starts inside a
Markdown table gets the table's header row back (`with_table_header`), so the rows of a split
table still say what their columns are ("| Hybrid search | ... | Yes(Only RRFRanker) |" means
nothing without "| | HNSW | ... | SPARSE_INVERTED_INDEX |").

The search text reads a table the way a reader does (`searchable`): without the rule under its
header row and the padding inside its cells. A passage of a table with padded columns spent much
of the embedding model's word pieces on dashes and spaces ("| Field   | 64        |").
"""

from __future__ import annotations

import hashlib
import re

from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.models import Chunk, Page

#: Bump when a change here changes the chunks of an unchanged page: the index fingerprint
#: (core.fingerprint) then differs and the next `docsbot index` rebuilds the collection.
CHUNKER_VERSION = 3

# Paragraphs, then fenced-code boundaries, then lines (table rows, code lines), then words.
_SEPARATORS = ["\n\n", "\n```", "\n", " ", ""]
#: The line under a Markdown table's header row: | --- | :---: |
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?$")


class Chunker:
    def __init__(self, chunk_size: int = 512, chunk_overlap: int = 51) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=_SEPARATORS,
            keep_separator="start",
            strip_whitespace=True,
        )

    def chunk_page(self, page: Page) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in page.sections:
            heading = " > ".join(section.heading_path)
            start = 0
            for piece in self._splitter.split_text(section.text):
                if not piece.strip("`\n "):
                    continue  # a lone code fence left over from a split
                found = section.text.find(piece, start)
                if found >= 0:  # pieces come in order (overlapping): search on from the last one
                    start = found
                    piece = with_table_header(piece, section.text, found)
                position = len(chunks)
                chunks.append(
                    Chunk(
                        id=chunk_id(page.id, position, piece),
                        page_id=page.id,
                        title=page.title,
                        heading=heading,
                        url=page.section_url(section.anchor),
                        text=piece,
                        search_text=f"{heading}\n{searchable(piece)}",
                        position=position,
                        page_hash=page.content_hash,
                    )
                )
        return chunks


def with_table_header(piece: str, before: str, at: int | None = None) -> str:
    """`piece` with its table's header row and rule in front when it starts on a table row below
    them (`before[:at]`: the section text up to the piece; all of `before` without `at`);
    otherwise `piece` unchanged. Reads backwards from `at` one line at a time, only as far as the
    table goes, without copying the text before it."""
    if not piece.lstrip(" ").startswith("|"):
        return piece
    end = len(before) if at is None else at
    while end > 0 and before[end - 1] == "\n":
        end -= 1
    while (start := before.rfind("\n", 0, end) + 1) > 0:  # a line with one above it
        line = before[start:end].strip()
        if not line.startswith("|"):
            return piece  # left the table without meeting its rule: no header to restore
        if _TABLE_RULE.match(line):
            above = before[before.rfind("\n", 0, start - 1) + 1 : start - 1]
            cells = [cell.strip() for cell in above.strip().strip("|").split("|")]
            header = "| " + " | ".join(cells) + " |"  # without the padding: it costs tokens
            return f"{header}\n|{'---|' * len(cells)}\n{piece}"
        end = start - 1
    return piece


def searchable(piece: str) -> str:
    """The passage as it is embedded and BM25-indexed: table rows without their cell padding
    ("| Field | 64 |") and without the rule lines under their headers."""
    lines = []
    for line in piece.split("\n"):
        stripped = line.strip()
        if stripped.startswith("|"):
            if _TABLE_RULE.match(stripped):
                continue
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            line = "| " + " | ".join(cells) + " |"
        lines.append(line)
    return "\n".join(lines)


def chunk_id(page_id: str, position: int, text: str) -> str:
    """Same page, position and text -> same id, so re-indexing an unchanged page is a no-op."""
    return hashlib.sha256(f"{page_id}\0{position}\0{text}".encode()).hexdigest()[:32]
