"""The words the indexed docs use, to notice questions about things the docs never mention.

Dense cosine alone does not separate out-of-scope questions (all-MiniLM gives ~0.68 to in-scope
and ~0.65 to out-of-scope ones on the dev set), but a question naming a product or topic the docs
never mention ("podman", "GraphQL", "proxmox") is a strong, explainable signal: the gate reports
those terms, and the answer can say so. A term counts as known when the docs contain it, a word
starting with it minus an inflection ("timezones" -> "timezone", "autoscale" -> "autoscaling"), or a
word one typo away; common English words never count as unknown.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_\-.]*[a-z0-9]|[a-z0-9]")
_WORD = re.compile(r"[a-z0-9_]+")
_CHAT_WORDS = frozenset(
    [
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "thx",
        "pls",
        "please",
        "folks",
        "guys",
        "anybody",
        "anyone",
        "somebody",
        "someone",
        "doesnt",
        "dont",
        "cant",
        "wont",
        "isnt",
        "arent",
        "didnt",
        "im",
        "ive",
        "youre",
        "whats",
        "hows",
        "lol",
        "btw",
        "imo",
        "tbh",
        "gotcha",
        "gotchas",
        "does",
        "did",
        "doing",
        "know",
    ]
)
_ENDINGS = ("ing", "es", "ed", "s", "e")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Vocabulary:
    def __init__(self, texts: Iterable[str]) -> None:
        vocab: set[str] = set()
        for text in texts:
            vocab.update(words(text))
        self._sorted = sorted(vocab)
        self._set = vocab
        self._by_length: dict[int, list[str]] = {}
        for word in self._sorted:
            self._by_length.setdefault(len(word), []).append(word)

    def __len__(self) -> int:
        return len(self._set)

    def unknown_terms(self, query: str) -> list[str]:
        """Distinctive words of the query that the docs never use (in query order, once each)."""
        unknown: list[str] = []
        for word in dict.fromkeys(words(query)):
            if self._is_candidate(word) and not self.knows(word):
                unknown.append(word)
        return unknown

    def knows(self, word: str) -> bool:
        if word in self._set:
            return True
        for ending in _ENDINGS:  # an inflection of a docs word: its stem starts a docs word
            stem = word.removesuffix(ending)
            if stem != word and len(stem) >= 4:
                i = bisect.bisect_left(self._sorted, stem)
                if i < len(self._sorted) and self._sorted[i].startswith(stem):
                    return True
        if len(word) >= 5:  # one typo away from a docs word of about the same length
            near = [w for n in (len(word) - 1, len(word), len(word) + 1) for w in self._by_length.get(n, [])]
            return bool(difflib.get_close_matches(word, near, n=1, cutoff=0.85))
        return False

    @staticmethod
    def _is_candidate(word: str) -> bool:
        return (
            len(word) >= 3
            and not word.isdigit()
            and any(ch.isalpha() for ch in word)
            and word not in ENGLISH_STOP_WORDS
            and word not in _CHAT_WORDS
        )
