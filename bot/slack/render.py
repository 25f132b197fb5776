"""Answers as Slack messages: Markdown -> mrkdwn, Block Kit blocks, Slack's size limits.

    messages = answer_messages(answer, answer_id)   # [[block, ...], ...]: usually one message
    text = streaming_text(partial_markdown)        # what an in-progress edit shows
    blocks = closing_blocks(answer, answer_id)      # sources + buttons under a native stream
    view = why_modal(answer_id, channel, thread)    # the 👎 dialog

Model output is untrusted: `&`, `<` and `>` are escaped everywhere (so `<!channel>`, `<!here>`
and `<@U123>` in an answer are shown, never triggered) and bare `@here`/`@channel`/`@everyone`
get an invisible joiner. Links we build ourselves are the only `<...>` markup that reaches Slack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from bot.chat.outcomes import is_votable
from bot.chat.texts import (
    ESCALATE_LABEL,
    WHY_DETAILS,
    WHY_QUESTION,
    WHY_REASONS,
    WHY_TITLE,
)
from core.models import Answer, Source

Block = dict[str, Any]

#: Slack's limits: characters in a section block's text, blocks per message, elements per context.
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
CONTEXT_ELEMENTS = 10
#: Room kept for the code fence we may have to close and reopen at a split.
_SPLIT_AT = SECTION_LIMIT - 16
#: Fallback `text` of a message with blocks (notifications, screen readers).
FALLBACK_LIMIT = 3000

FEEDBACK_UP = "feedback_up"
FEEDBACK_DOWN = "feedback_down"
ESCALATE = "escalate"
#: The 👎 dialog's callback id and its two inputs (block id = action id).
WHY_VIEW = "why_not_helpful"
WHY_REASON = "reason"
WHY_TEXT = "details"

#: A code block: an opening fence is ``` and an optional info string (the language) alone on
#: its line; "Run ```pip install pymilvus``` first" is inline code (`_ONE_LINE_FENCE`).
_FENCE = re.compile(r"^([ \t]*)```[^`\n]*\n(.*?)```", re.S | re.M)
_ONE_LINE_FENCE = re.compile(r"```([^`\n]+)```")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.M)
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.I)
_PLACEHOLDER = "\x00{}\x00"
_SLACK_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>|<(https?://[^>]+)>")
_SLACK_MENTION = re.compile(r"<([@#!])([^|>]+)(?:\|([^>]*))?>")
#: What a long line is never cut inside: our links and the escapes of `&`, `<` and `>`.
_UNCUTTABLE = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);")


def escape(text: str) -> str:
    """Slack's three control characters, escaped; broadcast words defused."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@\u2060" + m.group(1), text)


def to_mrkdwn(markdown: str) -> str:
    """Convert the Markdown an LLM writes to Slack mrkdwn: bold, italics, strike, links,
    headings, bullets and code. Code is kept verbatim (only escaped)."""
    kept: list[str] = []

    def keep(text: str) -> str:
        kept.append(text)
        return _PLACEHOLDER.format(len(kept) - 1)

    text = markdown.replace("\x00", "")
    text = _FENCE.sub(lambda m: m.group(1) + keep("```\n" + escape(m.group(2).rstrip("\n")) + "\n```"), text)
    text = _ONE_LINE_FENCE.sub(lambda m: keep("`" + escape(m.group(1).strip()) + "`"), text)
    text = _INLINE_CODE.sub(lambda m: keep(escape(m.group(0))), text)
    text = escape(text)
    text = _LINK.sub(lambda m: keep(_link(_unescape(m.group(2)), m.group(1))), text)
    text = _HEADING.sub(lambda m: keep("*" + m.group(1).strip("*_ ") + "*"), text)
    text = _BOLD.sub(lambda m: keep("*" + m.group(2) + "*"), text)
    text = _ITALIC.sub(lambda m: "_" + m.group(1) + "_", text)
    text = _STRIKE.sub(lambda m: "~" + m.group(1) + "~", text)
    text = _BULLET.sub(lambda m: m.group(1) + "• ", text)
    for _ in range(3):  # placeholders can nest (a link inside bold)
        text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return text.strip()


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link(url: str, label: str) -> str:
    """`<url|label>` with the characters that would break out of it removed."""
    url = re.sub(r"[\s<>|]", "", url)
    label = label.replace("|", "/").replace(">", "&gt;").replace("<", "&lt;")
    return f"<{url}|{label}>"


def split_mrkdwn(text: str, limit: int = _SPLIT_AT) -> list[str]:
    """Split at line boundaries into pieces of at most `limit` characters. A piece that ends
    inside a code block closes it and the next one reopens it; over-long lines are cut."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False

    def flush() -> None:
        nonlocal current, size
        if current:
            body = "\n".join(current)
            pieces.append(body + ("\n```" if in_code else ""))
        current, size = (["```"], 4) if in_code else ([], 0)

    for line in _cut_long_lines(text.split("\n"), limit - 8):
        if size + len(line) + 1 > limit and current and current != ["```"]:
            flush()
        current.append(line)
        size += len(line) + 1
        if line.lstrip().startswith("```"):
            in_code = not in_code
    if current and current != ["```"]:
        in_code = False
        flush()
    return [piece for piece in (p.strip("\n") for p in pieces) if piece.strip()]


def _cut_long_lines(lines: Sequence[str], limit: int) -> Iterator[str]:
    """Each line, cut into pieces of at most `limit` characters where it is longer."""
    for line in lines:
        while len(line) > limit:
            cut = _cut_point(line, limit)
            yield line[:cut]
            line = line[cut:].lstrip(" ")
        yield line


def _cut_point(line: str, limit: int) -> int:
    """Where to cut a line longer than `limit`: at the last space in the second half of the first
    `limit` characters, else as late as fits. Never inside a `<url|label>` link (a label has
    spaces, a URL may hold a raw `&`) or an `&amp;` escape, unless one alone is over the limit."""
    whole = [m.span() for m in _UNCUTTABLE.finditer(line) if m.start() < limit]

    def outside(at: int) -> int:  # `at`, or the start of the link or escape it falls inside
        return next((start for start, end in whole if start < at < end), at)

    space = line.rfind(" ", 0, limit + 1)
    while space > limit // 2:
        if outside(space) == space:
            return space
        space = line.rfind(" ", 0, outside(space))
    return outside(limit) or limit


def source_elements(sources: Sequence[Source]) -> list[Block]:
    """One context element per source: `[1] Title › Heading` linking to the section."""
    elements = []
    for source in sources:
        heading = source.heading if source.heading and source.heading != source.title else ""
        label = f"[{source.number}] {source.title}" + (f" › {heading.split(' > ')[-1]}" if heading else "")
        elements.append({"type": "mrkdwn", "text": _link(source.url, label[:200])})
    return elements


def feedback_block(answer_id: str, escalate: bool = False) -> Block:
    """👍/👎 (and "Still need help?" when a user group takes escalations) for one answer."""
    block: Block = {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {
                "type": "button",
                "action_id": FEEDBACK_UP,
                "text": {"type": "plain_text", "text": "👍 Helpful", "emoji": True},
                "value": answer_id,
            },
            {
                "type": "button",
                "action_id": FEEDBACK_DOWN,
                "text": {"type": "plain_text", "text": "👎 Not helpful", "emoji": True},
                "value": answer_id,
            },
        ],
    }
    if escalate:
        block["elements"].append(
            {
                "type": "button",
                "action_id": ESCALATE,
                "text": {"type": "plain_text", "text": f"🙋 {ESCALATE_LABEL}", "emoji": True},
                "value": answer_id,
            }
        )
    return block


def closing_blocks(answer: Answer, answer_id: str = "", escalate: bool = False) -> list[Block]:
    """What ends a natively streamed answer (chat.stopStream's blocks): the sources as context
    links, then the buttons. The answer text itself was streamed."""
    blocks: list[Block] = []
    elements = source_elements(answer.sources)
    for start in range(0, len(elements), CONTEXT_ELEMENTS):
        blocks.append({"type": "context", "elements": elements[start : start + CONTEXT_ELEMENTS]})
    if answer_id and is_votable(answer.outcome):
        blocks.append(feedback_block(answer_id, escalate))
    return blocks[:MAX_BLOCKS]


def why_modal(answer_id: str, channel: str = "", thread: str = "") -> Block:
    """The 👎 dialog: a required reason and optional free text. `private_metadata` carries the
    answer id and where to say thanks."""
    options = [
        {"text": {"type": "plain_text", "text": label}, "value": value}
        for value, label in WHY_REASONS.items()
    ]
    return {
        "type": "modal",
        "callback_id": WHY_VIEW,
        "private_metadata": json.dumps({"answer_id": answer_id, "channel": channel, "thread": thread}),
        "title": {"type": "plain_text", "text": WHY_TITLE},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": WHY_REASON,
                "label": {"type": "plain_text", "text": WHY_QUESTION},
                "element": {"type": "radio_buttons", "action_id": WHY_REASON, "options": options},
            },
            {
                "type": "input",
                "block_id": WHY_TEXT,
                "optional": True,
                "label": {"type": "plain_text", "text": WHY_DETAILS},
                "element": {
                    "type": "plain_text_input",
                    "action_id": WHY_TEXT,
                    "multiline": True,
                    "max_length": 1000,
                },
            },
        ],
    }


def answer_messages(
    answer: Answer, answer_id: str = "", header: str = "", escalate: bool = False
) -> list[list[Block]]:
    """The final answer as one or more messages of blocks (more only past 50 blocks): text
    sections, then the sources as context blocks of links, then the feedback buttons.
    `header` (already mrkdwn, e.g. "<@U1> asked: ...") goes first as a context line."""
    blocks: list[Block] = []
    if header:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": header[:SECTION_LIMIT]}]})
    for piece in split_mrkdwn(to_mrkdwn(answer.text)):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    elements = source_elements(answer.sources)
    for start in range(0, len(elements), CONTEXT_ELEMENTS):
        blocks.append({"type": "context", "elements": elements[start : start + CONTEXT_ELEMENTS]})
    if answer_id and is_votable(answer.outcome):
        blocks.append(feedback_block(answer_id, escalate))
    return [blocks[start : start + MAX_BLOCKS] for start in range(0, len(blocks), MAX_BLOCKS)] or [[]]


def fallback_text(answer: Answer) -> str:
    """The plain `text` sent along with the blocks (shown in notifications)."""
    text = to_mrkdwn(answer.text)
    return text if len(text) <= FALLBACK_LIMIT else text[: FALLBACK_LIMIT - 1] + "…"


def defuse(markdown: str) -> str:
    """Model Markdown for a native stream (`markdown_text`): Slack's special `<...>` sequences
    (`<!channel>`, `<@U1>`, `<#C1>`, `<!subteam^S1>`) and bare broadcast words can't trigger."""
    markdown = re.sub(r"<([!@#])", "<\u2060\\1", markdown)
    return _BROADCAST.sub(lambda m: "@\u2060" + m.group(1), markdown)


def streaming_text(partial: str, limit: int = SECTION_LIMIT) -> str:
    """An in-progress answer for an edit: converted, with a cursor, cut to fit one message."""
    text = to_mrkdwn(partial)
    if len(text) > limit - 40:
        text = text[: limit - 40].rsplit(" ", 1)[0] + " …"
    return text + " ▍"


def slack_to_plain(text: str, bot_user_id: str = "") -> str:
    """A user's Slack message as the plain question text: the bot's mention removed, other
    mentions and links reduced to their labels, entities unescaped."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1) or m.group(3), text)
    text = _SLACK_MENTION.sub(lambda m: m.group(3) or ("@" if m.group(1) == "@" else "") + m.group(2), text)
    return _unescape(re.sub(r"[ \t]+", " ", text)).strip()
