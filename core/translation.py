"""Questions in other languages are searched in English.

The embedding model and the BM25 index know English: a question in Chinese, German or Spanish
finds the wrong pages, or none ("in einer milvus lite datei: welche consistency levels gehen?").
When most of a question's words are not English (`vocabulary.foreign_share` >= `FOREIGN_SHARE`),
the LLM translates it first, and retrieval and the gate work on the translation. The answer is
still written for the original question, and the prompt asks for the question's language (the
1.5B demo model follows that for Chinese; it often answers German in English).

Translation is best effort: without an LLM, or when it fails, is slow (`TRANSLATE_TIMEOUT`) or answers the
question instead of translating it, the original text is searched, as before.
"""

from __future__ import annotations

import logging

from core.generation import ChatLLM, side_reply
from core.prompting import message_task, without_message_tags
from core.vocabulary import FOREIGN_SHARE, foreign_share

log = logging.getLogger(__name__)


TRANSLATOR_PROMPT = """You are a translator. The user sends a chat message inside <message> tags.
Translate that message into English, sentence by sentence, keeping questions as questions.
Never answer it, never add anything. Keep code, identifiers, product names, numbers and quoted
values exactly as written. Reply with the English translation only."""

# Two worked examples: small models otherwise answer the question ("Yes, Milvus supports ...")
# instead of translating it.
_EXAMPLES = (
    (
        "¿Milvus tiene un límite de campos por colección? Necesito `attrs_v2` con 90 columnas.",
        "Does Milvus have a limit on fields per collection? I need `attrs_v2` with 90 columns.",
    ),
    ("我们能用 milvus 做实时同步吗？", "Can we use milvus for real-time sync?"),
)
#: A translation this many times longer than the question (plus some slack) is an answer.
_MAX_GROWTH = 4


def needs_translation(text: str) -> bool:
    return foreign_share(text) >= FOREIGN_SHARE


def translation_messages(text: str) -> list[dict[str, str]]:
    return message_task(TRANSLATOR_PROMPT, _EXAMPLES, text)


def usable_translation(original: str, reply: str) -> str | None:
    """The reply as a search query, or None when it is no translation: empty, still mostly
    foreign, or so much longer than the question that the model answered it instead."""
    text = " ".join(without_message_tags(reply).split())
    if not text or len(text) > _MAX_GROWTH * len(original) + 100 or needs_translation(text):
        return None
    return text


async def to_english(llm: ChatLLM, text: str, seconds: float) -> str | None:
    """The English translation of `text` for searching, or None (see the module docstring)."""
    task = "translation for the search (searching the original text)"
    if (reply := await side_reply(llm, translation_messages(text), seconds, task)) is None:
        return None
    english = usable_translation(text, reply)
    if english is None:
        log.warning("the LLM's translation was unusable, searching the original text: %r", reply[:200])
    else:
        log.info("searching in English: %r (asked: %r)", english[:200], text[:200])
    return english
