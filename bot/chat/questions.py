"""The auto-reply test: does a top-level message in a help channel look like a question?

A question mark anywhere, or a first word like how/what/why/can/does/is/should, counts.
Thanks, greetings and chatter do not, so the bot stays out of ordinary conversation.

    looks_like_question("how do I pick nlist?")      # True
    looks_like_question("Is HNSW faster than IVF")   # True
    looks_like_question("thanks, that worked!")      # False
"""

from __future__ import annotations

import re

#: First words that start a question without a question mark.
QUESTION_STARTS = frozenset(
    {
        "how", "what", "why", "when", "where", "which", "who", "whom", "whose",
        "can", "could", "does", "do", "did", "is", "are", "was", "were",
        "should", "would", "will", "may", "might", "has", "have", "any", "anyone",
    }
)  # fmt: skip
#: Short messages that are thanks or chatter even with a question mark ("thanks?" "lol?").
_CHATTER = re.compile(
    r"^(thanks?|thank you|thx|ty|cheers|ok(ay)?|cool|nice|great|lol|haha|hi|hello|hey|bye|\+1|👍)\W*$",
    re.I,
)
_WORD = re.compile(r"[a-z']+")
#: Greetings before the question ("hi all, how do I ..."): skipped before looking at the first word.
_GREETING = re.compile(r"^((hi|hello|hey|folks|all|team|everyone|guys|there|again)\b[\s,!.:;-]*)+", re.I)


def looks_like_question(text: str) -> bool:
    """True for a message that reads as a question (see the module docstring)."""
    text = text.strip()
    if not text or _CHATTER.match(text):
        return False
    # Leave out code blocks and inline code: a `?` in a regex or URL query is no question.
    prose = re.sub(r"```.*?```|`[^`]*`|<[^>]*>|https?://\S+", " ", text, flags=re.S)
    if "?" in prose:
        return True
    first = _WORD.search(_GREETING.sub("", prose.strip()).lower())
    return first is not None and first.group(0) in QUESTION_STARTS
