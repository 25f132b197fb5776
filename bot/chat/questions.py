"""Is this message for the bot? The tests for messages that come without a mention.

`looks_like_question`, the auto-reply test: a top-level message in a help channel is answered
when it has a question mark anywhere, or a first word like how/what/why/can/does/is/should.
Thanks, greetings and chatter are not, so the bot stays out of ordinary conversation.

`wants_an_answer`, the follow-up test: in a thread the bot answered, the asker's next message
needs no question form ("it fails with 'collection not loaded'" is a follow-up), but thanks,
greetings and words for someone else ("@bob that fixed it") get no reply.

    looks_like_question("how do I pick nlist?")      # True
    looks_like_question("Is HNSW faster than IVF")   # True
    looks_like_question("thanks, that worked!")      # False
    wants_an_answer("it still fails after that")     # True
    wants_an_answer("thanks, that worked!")          # False
"""

from __future__ import annotations

import re

from core.prompting import is_small_talk

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
#: Thanks or an acknowledgement opening a message ("thanks, that worked", "ok got it").
_THANKS = re.compile(
    r"^\W*(thanks?|thank you|thx|ty|cheers|ok(ay)?|cool|nice|great|perfect|awesome|got it|lol|haha)\b", re.I
)
#: A message that opens with a mention is for that person: `@bob` (plain text), `<@123>` (Discord).
_ADDRESSED = re.compile(r"^\s*(@\w|<@)")


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


def wants_an_answer(text: str) -> bool:
    """True for a follow-up that is for the bot (see the module docstring): not empty, not
    small talk (the service's own test, `is_small_talk`, and the auto-reply test's chatter), not
    thanks with nothing asked after them, not opening with someone else's mention."""
    text = text.strip()
    if not re.search(r"\w", text) or is_small_talk(text) or _CHATTER.match(text) or _ADDRESSED.match(text):
        return False
    return not _THANKS.match(text) or looks_like_question(text)
