"""Each passage the LLM reads, widened with its neighbours in the same docs section.

The chunks are small (CHUNK_SIZE 512 characters, about 320 on average), which suits the search:
one chunk says one thing, and its words decide its rank. But the value a question asks for often
sits beside the chunk that matched its words: the row under the table header that named the
parameter, the paragraph after the one that named the feature. So the passages are searched
narrow and read wide: after ranking, each hit's text grows by the chunks after and before it in
its section (the same heading, so its deep link still points at all of it) until it holds about
`PASSAGE_CHARS` characters. Ranking, the gate's signals and the scope check (`core.scope_check`)
still read the matched chunks.

Measured without an LLM (`context_fact_proxy`: the share of the answer facts' numbers and
identifiers found in the five passages an answer reads): dev 0.622 -> 0.699, tune split 0.497 ->
0.619, held-out split 0.546 -> 0.619, for about 1,600 -> 3,400 characters of passages. Three
more passages instead (top 8, about 2,600 characters) reached only 0.653 / 0.564 / 0.596.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.models import Chunk, Hit

#: The default PASSAGE_CHARS.
PASSAGE_CHARS = 1000
#: A widened passage may run this far past `PASSAGE_CHARS` to take in a whole neighbour.
OVERRUN = 1.2
#: Neighbours fetched on each side of a hit (chunks average about 320 characters).
SPAN = 3
_OVERLAP_MAX = 400  # CHUNK_OVERLAP is 51 by default
#: Shorter shared ends are left doubled: "...as" + "soon" must not become "...asoon".
_OVERLAP_MIN = 12


def limit(chars: int) -> int:
    """The longest a passage widened to `chars` can get."""
    return int(chars * OVERRUN)


def widen(hits: Sequence[Hit], stored: Sequence[Chunk], chars: int) -> list[Hit]:
    """`hits` with a `context`: each chunk's text grown by its section's neighbours among `stored`
    while it is shorter than `chars`, never past `limit(chars)`: by the chunks after it first
    (a table's rows, a list's items and a parameter's values go on downwards), by those before
    it once the section ends. A hit already that long, or alone in its section, is unchanged."""
    by_position = {(c.page_id, c.position): c for c in stored}
    widened = []
    for hit in hits:
        chunk = hit.chunk
        first = last = chunk.position
        text = chunk.text
        grew = True
        while grew and len(text) < chars:
            grew = False
            for position, after in ((last + 1, True), (first - 1, False)):
                neighbour = by_position.get((chunk.page_id, position))
                if neighbour is None or neighbour.heading != chunk.heading:
                    continue
                longer = joined(text, neighbour.text) if after else joined(neighbour.text, text)
                if len(longer) > limit(chars):
                    continue
                text, grew = longer, True
                first, last = min(first, position), max(last, position)
                break
        widened.append(hit if text == chunk.text else dataclasses.replace(hit, context=text))
    return widened


def joined(before: str, after: str) -> str:
    """Two consecutive chunks of a section as one text: without the table header the chunker
    put back in front of `after` when `before` already has it (`chunking.with_table_header`),
    and without the characters the two share (CHUNK_OVERLAP; a share shorter than
    `_OVERLAP_MIN` could be chance and is kept twice)."""
    lines = after.split("\n")
    if len(lines) > 2 and lines[0].startswith("|") and lines[1].startswith("|-") and lines[0] in before:
        after = "\n".join(lines[2:])
    for size in range(min(len(before), len(after), _OVERLAP_MAX), _OVERLAP_MIN - 1, -1):
        if before.endswith(after[:size]):
            return before + after[size:]
    return f"{before}\n{after}"
