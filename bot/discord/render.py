"""Discord rendering: 2000-character messages, sources, reindex progress. Pure functions.

Discord limits a message to 2000 characters. Long answers are split on paragraph boundaries,
never inside a code block: a block too long for one message is closed at the end of one part
and reopened (same language) at the start of the next, so every part renders on its own.
Everything the model writes goes out with `NO_PINGS`, so "@everyone" in an answer is text, and
with every link in angle brackets (`no_previews`), so an answer never unfurls a link preview.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import discord

from core.models import Answer, Source
from core.progress import ReindexProgress
from core.runlog import IndexRun

#: Discord's limit for a message's content.
MESSAGE_LIMIT = 2000
#: Discord's limit for an embed description.
EMBED_LIMIT = 4096
#: For everything whose text comes from the model or a user: no @everyone, roles, users or reply pings.
NO_PINGS = discord.AllowedMentions.none()
#: Shown while streaming after the part that fits.
MORE = " …"

#: A line that opens or closes a code block: ``` with no other backtick after it (an info
#: string, the language, may follow), or ~~~. "```pip install pymilvus``` then run" is inline
#: code, which Discord shows fine; it opens no block.
_FENCE = re.compile(r"^\s*(`{3,}(?!.*`)|~{3,})")
#: Code blocks and inline code (left as they are: Discord shows no links there).
_CODE = re.compile(r"(`{3,}|~{3,}).*?(?:\1|\Z)|`[^`\n]*`", re.S)
#: A Markdown link's target not yet in angle brackets: `](https://...)`.
_LINK_TARGET = re.compile(r"\]\((https?://[^\s)<>]+)\)")
#: A bare URL not in angle brackets, without the punctuation that ends a sentence around it.
_BARE_URL = re.compile(r"(?<![<\w])(https?://[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"*_~|])")


def no_previews(text: str) -> str:
    """The text with every link in angle brackets, `<https://...>` and `[label](<https://...>)`,
    which Discord shows as a link without a preview card. Code is left as it is.

    Discord's SUPPRESS_EMBEDS message flag would do the same but also drops the message's own
    embeds (the sources), so answers use the link syntax instead.
    """
    out: list[str] = []
    last = 0
    for code in _CODE.finditer(text):
        out.append(_bracket_links(text[last : code.start()]))
        out.append(code.group(0))
        last = code.end()
    out.append(_bracket_links(text[last:]))
    return "".join(out)


def _bracket_links(prose: str) -> str:
    prose = _LINK_TARGET.sub(lambda m: f"](<{m.group(1)}>)", prose)
    return _BARE_URL.sub(lambda m: f"<{m.group(1)}>", prose)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut `text` into parts of at most `limit` characters.

    Parts end at paragraph boundaries where possible, then at line ends, then at spaces. Code
    blocks are kept whole when they fit; a longer one is cut between lines, each piece closed
    and reopened with the same fence line, so no part has an unbalanced fence.
    """
    text = text.strip()
    if not text:
        return []
    pieces: list[str] = []
    for block, fence in _blocks(text):
        if len(block) <= limit:
            pieces.append(block)
        elif fence:
            pieces.extend(_split_code(block, fence, limit))
        else:
            pieces.extend(_split_prose(block, limit))
    return _pack(pieces, "\n\n", limit)


def _pack(pieces: Iterable[str], separator: str, limit: int) -> list[str]:
    """Join consecutive pieces (each at most `limit` long) with `separator` into parts of at
    most `limit` characters, starting a new part whenever the next piece would not fit."""
    parts: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}{separator}{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _blocks(text: str) -> list[tuple[str, str]]:
    """Paragraphs and code blocks in order: (text, opening fence line or "" for prose).

    A code block the model never closed is closed here, so it renders as code.
    """
    blocks: list[tuple[str, str]] = []
    paragraph: list[str] = []
    code: list[str] = []
    fence = ""
    marker = ""

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(("\n".join(paragraph).strip("\n"), ""))
            paragraph.clear()

    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence:
            code.append(line)
            if _closes(line, marker):
                blocks.append(("\n".join(code), fence))
                code, fence = [], ""
        elif match:
            flush_paragraph()
            fence, marker = line.strip(), match.group(1)
            code = [line]
        elif line.strip():
            paragraph.append(line)
        else:
            flush_paragraph()
    flush_paragraph()
    if fence:
        blocks.append(("\n".join([*code, marker]), fence))
    return [(block, fence) for block, fence in blocks if block.strip()]


def _closes(line: str, marker: str) -> bool:
    """Whether `line` closes a code block opened with `marker` (``` or ~~~, maybe longer)."""
    bare = line.strip()
    return len(bare) >= len(marker) and set(bare) == {marker[0]}


def _split_code(block: str, fence: str, limit: int) -> list[str]:
    """A code block too long for one message, as several closed-and-reopened blocks."""
    lines = block.split("\n")[1:-1]  # without the opening and closing fence lines
    opening = _FENCE.match(fence)
    closing = opening.group(1) if opening else "```"
    room = limit - len(fence) - len(closing) - 2  # two newlines around the body
    if room < 20:
        return _split_prose(block, limit)
    pieces: list[str] = []
    body: list[str] = []
    size = 0
    for line in lines:
        for chunk in _hard_wrap(line, room) if line else [""]:
            if body and size + len(chunk) + 1 > room:
                pieces.append("\n".join([fence, *body, closing]))
                body, size = [], 0
            body.append(chunk)
            size += len(chunk) + 1
    if body:
        pieces.append("\n".join([fence, *body, closing]))
    return pieces


def _split_prose(block: str, limit: int) -> list[str]:
    """A paragraph too long for one message: cut at line ends, then spaces, then anywhere."""
    return _pack((chunk for line in block.split("\n") for chunk in _hard_wrap(line, limit)), "\n", limit)


def _hard_wrap(line: str, limit: int) -> list[str]:
    """One line as pieces of at most `limit` characters, cut at the last space that fits."""
    pieces: list[str] = []
    while len(line) > limit:
        cut = line.rfind(" ", 0, limit + 1)
        if cut <= limit // 2:
            cut = limit
        pieces.append(line[:cut].rstrip())
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces


def preview(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """What a message shows while the answer is still streaming: the first part that fits,
    with an open code block closed so it renders, and a "…" when more follows."""
    text = no_previews(text.strip())
    if not text:
        return "…"
    parts = split_message(text, limit - len(MORE) - 4)
    shown = parts[0]
    if sum(1 for line in shown.split("\n") if _FENCE.match(line)) % 2:
        shown += "\n```"
    return shown + MORE if len(parts) > 1 else shown


def source_label(source: Source) -> str:
    """`HNSW › Index params` (the title alone when the heading repeats it)."""
    heading = source.heading.strip()
    if not heading or heading == source.title:
        label = source.title
    elif heading.startswith(source.title):
        label = heading.replace(" > ", " › ")
    else:
        label = f"{source.title} › {heading.replace(' > ', ' › ')}"
    return label.replace("[", "(").replace("]", ")")


def sources_embed(sources: Sequence[Source]) -> discord.Embed | None:
    """The sources as one embed of numbered links, or None when there are none."""
    if not sources:
        return None
    lines: list[str] = []
    size = 0
    for source in sources:
        line = f"[{source.number}] [{source_label(source)}]({source.url})"
        if size + len(line) + 1 > EMBED_LIMIT:
            break
        lines.append(line)
        size += len(line) + 1
    return discord.Embed(title="Sources", description="\n".join(lines), colour=discord.Colour.blurple())


def answer_parts(answer: Answer) -> list[str]:
    """The answer text as messages of at most 2000 characters (at least one), links without
    previews."""
    return split_message(no_previews(answer.text)) or ["(no answer)"]


def progress_text(progress: ReindexProgress, *, joined: bool = False) -> str:
    """The reindex progress message."""
    head = "A reindex is already running; following it." if joined else "Reindexing the Milvus docs."
    return f"{head}\n`{progress.describe()}`"


def run_text(run: IndexRun) -> str:
    """One short summary of a finished reindex."""
    counts = f"{run.counts()}, {run.seconds:.0f} s"
    if run.outcome == "ok":
        head = "Reindex finished."
    elif run.outcome == "needs_review":
        head = "Reindex finished, but some deletions need review (run `/reindex force:True` to apply them)."
    else:
        head = "Reindex failed."
    text = f"{head}\n{counts}"
    if run.message:
        text += f"\n{run.message[:500]}"
    return text


def status_text(progress: ReindexProgress | None, last: IndexRun | None) -> str:
    """`/reindex status`: the running job, else the last finished run."""
    if progress is not None:
        return f"A reindex is running.\n`{progress.describe()}`"
    if last is None:
        return "No reindex has run yet."
    when = last.finished_at or last.started_at
    return f"Last reindex ({when}, trigger {last.trigger}): {run_text(last)}"
