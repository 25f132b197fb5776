"""The words the indexed docs use, and which words of a question could name something they don't.

A word the docs never use is weak evidence that they don't cover a question: users paste their own
identifiers, make typos, write sizes ("64gb") and ordinary words in any language. So a query word
is an *unknown name* only when all of these hold:

- it is not a number or a quantity ("50m", "20k", "v2.4", "1e6"), nor a short half of an
  abbreviation pair ("lat/lon", "pub/sub");
- it has no identifier shape: snake_case, camelCase (but UpperCamel product names like GraphQL
  stay candidates), dotted paths, digits mixed in, UUIDs/hex, placeholders like "aaa", or
  anything inside quotes or backticks;
- the docs don't use it, an inflection of it ("timezones" -> "timezone") or a near miss of it
  ("equel" -> "equal", "memroy" -> "memory": `rapidfuzz` edit distance, a swapped pair counting as
  one edit). A word of its own, ordinary or a name, is no near miss: "consul" is not a typo of
  the docs' "consult" (it still counts as a docs word for the support signal, as the gate was fitted);
- it is written in Latin script and is not an ordinary word in a common language (`wordfreq`
  Zipf frequency; a capitalised word in mid-sentence, like "Consul", must be more common to
  count as ordinary);
- or it is common but used alike in every language (`is_name`): ordinary words are a language's
  own ("crazy", "pros", "asap" are far more common in English than elsewhere), while the names
  of products and places are the same everywhere ("cassandra", "php", "wordpress", "ubuntu" are
  as common in German, Spanish or Dutch text as in English). Such a name counts as unknown too,
  with a low rarity (`NAME_ZIPF`): it may tip the gate's balance, never decide alone. Everyday
  loanwords ("pizza", "internet") are too common to be names (`NAME_MAX_ZIPF`).

In a question mostly in another language (`FOREIGN_SHARE`), a word that only the lists of other
languages know ("zeitstempel", "umbiegen") is an ordinary word of that language, however rare.

Each unknown name carries its rarity (how uncommon the word is in ordinary language) and whether it
describes the asker's setup rather than what they ask about (after the first sentence, or after
"our", "using", "behind", ...: "our fastapi app"). The gate (`core.gate`) weighs it together with
the retrieval evidence; nothing here declines anything. The vocabulary also knows each word's
document frequency, for the gate's key-term support signal, and how specific a docs word is (rare
in the docs and in ordinary English), for its specific-term signal.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from wordfreq import zipf_frequency

#: Languages whose ordinary words never count as names (wordfreq's large Latin-script lists).
LANGUAGES = ("en", "de", "es", "fr", "pt", "it", "nl")
#: Zipf frequency (log10 of uses per billion words) from which a word is ordinary: 3 is about
#: once per million words ("swap" 3.9, "asap" 3.6; "podman" and "proxmox" are far below).
ORDINARY_ZIPF = 3.0
#: The same for a capitalised word in mid-sentence, which reads as a name ("Consul", "Redis").
ORDINARY_ZIPF_CAPITALISED = 4.0
#: A word whose Zipf frequency in each of `LANGUAGES` is within this of its English one is used
#: alike everywhere: a name ("cassandra" 0.32, "php" 0.29), not an ordinary word ("pros" 1.5,
#: "meh" 1.2, "boss" 1.4).
NAME_SPREAD = 0.75
#: Names are less common than this in English; everyday loanwords used alike everywhere
#: ("pizza" 4.4, "taxi" 4.2, "internet" 5.1) are more common.
NAME_MAX_ZIPF = 4.0
#: An unknown name's rarity is 1 - Zipf / NAME_ZIPF: "cassandra" (3.25) 0.59, "ubuntu" 0.59.
NAME_ZIPF = 8.0
#: English Zipf frequencies between which a docs word goes from fully specific to not specific
#: at all (`Vocabulary.specificity`): "materialized" (2.9) and "consul" (3.6) are specific, "got"
#: (5.9) and "team" (5.7) are hardly specific.
SPECIFIC_ZIPF, GENERIC_ZIPF = 2.0, 6.0

_WORD = re.compile(r"\w+")
_RAW_TOKEN = re.compile(r"[^\W_](?:[\w.\-/:]*[^\W_])?")
_QUOTED = re.compile(
    r"`[^`]*`|\"[^\"\n]{0,200}\"|“[^”\n]{0,200}”|‘[^’\n]{0,200}’|(?<!\w)'[^'\n]{0,200}'(?!\w)"
)
_QUANTITY = re.compile(r"^v?\d[\d.,]*(?:e\d+)?[a-z]{0,3}$", re.I)
_HEX = re.compile(r"^(?=.*\d)[0-9a-f]{8,}$|^[0-9a-f]{8}-[0-9a-f]{4}-", re.I)
#: camelCase starting lower case (collectionName); product names are UpperCamel (GraphQL, MongoDB)
_CAMEL = re.compile(r"^[a-z]+[A-Z]")
_SENTENCE_END = re.compile(r"[.!?:\n]\s*$")
#: Words that introduce the asker's own setup rather than what they ask about: "our fastapi app",
#: "sits behind traefik", "we use celery", "embeddings come from airflow".
_SETUP_CUE = re.compile(
    r"\b(?:our|my|we(?:'re| are)?\s+(?:use|using|run|running|on)|i(?:'m| am)?\s+using|using|behind|from|via)"
    r"\s+(?:[\w-]+\s+){0,2}$",
    re.I,
)
_FIRST_SENTENCE = re.compile(r"[.!?\n](?:\s|$)")
_ENDINGS = ("ing", "es", "ed", "s", "e")
_CHAT_WORDS = frozenset(
    [
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "thx",
        "pls",
        "plz",
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
        "afaik",
        "iirc",
        "fyi",
    ]
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A crude stem for matching inflections: "indexes" and "indexing" -> "index"."""
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    return word


@lru_cache(maxsize=20_000)
def ordinary_zipf(word: str) -> float:
    """The highest Zipf frequency over `LANGUAGES` of the word or its base form ("gotchas" ->
    "gotcha"); 0 for words no list has."""
    forms = [word] + [
        word[: -len(e)] for e in ("s", "es", "ed", "ing") if word.endswith(e) and len(word) > len(e) + 3
    ]
    return max(zipf_frequency(form, lang) for form in forms for lang in LANGUAGES)


def is_name(word: str) -> bool:
    """A word used alike in every language of `LANGUAGES` and less common than everyday words: a
    product or place name (see the module docstring). Words no list has are left to the rarity
    rule; everyday loanwords ("pizza", "internet", "taxi") are too common to count."""
    english = zipf_frequency(word, "en")
    return 0 < english < NAME_MAX_ZIPF and all(
        abs(zipf_frequency(word, language) - english) <= NAME_SPREAD for language in LANGUAGES[1:]
    )


def _a_word_of_its_own(word: str) -> bool:
    """An ordinary word or a name, not a typo: "consul" is one edit from the docs' "consult",
    but means something else ("equel", "memroy" are no language's words)."""
    return ordinary_zipf(word) >= ORDINARY_ZIPF or is_name(word)


def _words_of_another_language(word: str) -> bool:
    """Only lists of languages other than English know the word ("umbiegen", "zeitstempel")."""
    return zipf_frequency(word, "en") == 0 and any(zipf_frequency(word, lang) > 0 for lang in LANGUAGES[1:])


@dataclass(frozen=True)
class UnknownTerm:
    word: str  # lower case
    zipf: float  # how common it is in ordinary language (0: unheard of)
    rarity: float  # 1 for a word no language list has, down to 0 at the ordinary threshold
    in_context: bool = False  # the asker's setup, not the question: after the first sentence or a cue


@dataclass(frozen=True)
class QueryTerms:
    """What the vocabulary makes of a query's words."""

    unknown: tuple[UnknownTerm, ...]  # the unknown names, in query order
    identifiers: tuple[str, ...]  # the user's own names and values (never unknown)
    key_terms: tuple[str, ...]  # distinctive docs words of the query (for the support signal)
    english: float = 1.0  # share of its words that are common English words or contain digits


def english_share(text: str) -> float:
    """0..1: the share of the words that are common English words (`wordfreq` Zipf >= 3) or
    contain digits. Low for questions in other languages, where the English embedding model's
    cosines are low whether or not the docs cover the question."""
    tokens = words(text)
    if not tokens:
        return 1.0
    english = [
        w.isascii() and (any(c.isdigit() for c in w) or zipf_frequency(w, "en") >= ORDINARY_ZIPF)
        for w in tokens
    ]
    return sum(english) / len(tokens)


#: From this share of words in other languages (`foreign_share`) on, a question is in another
#: language: the LLM translates it before the search (`core.translation`), and a word only the
#: lists of other languages know is an ordinary word of that language, however rare. English
#: questions full of identifiers stay far below (<= 0.15 on the labelled questions); questions in
#: other languages are 0.38 and up.
FOREIGN_SHARE = 0.3
#: A word this much more frequent (Zipf) in another language than in English is that language's
#: word ("die", "con", "como"), though English uses it too.
_FOREIGN_MARGIN = 1.5


def foreign_share(text: str) -> float:
    """0..1: of the words that belong to a language, the share that are not English: words in
    other scripts (Chinese, Japanese, Russian, accented Latin) and common German, Spanish, French,
    Portuguese, Italian or Dutch words. Identifiers, product names and numbers belong to no
    language and count for neither side, so "AISAQ vs DISKANN?" is 0 (`core.translation`)."""
    english = foreign = 0
    for word in words(text):
        if any(c.isdigit() for c in word):
            continue
        if not word.isascii():
            foreign += 1
            continue
        in_english = zipf_frequency(word, "en")
        elsewhere = max(zipf_frequency(word, language) for language in LANGUAGES[1:])
        if in_english >= ORDINARY_ZIPF and elsewhere < in_english + _FOREIGN_MARGIN:
            english += 1
        elif elsewhere >= ORDINARY_ZIPF:
            foreign += 1
    return foreign / (english + foreign) if english + foreign else 0.0


class Vocabulary:
    def __init__(self, texts: Iterable[str]) -> None:
        document_frequency: Counter[str] = Counter()
        documents = 0
        for text in texts:
            documents += 1
            document_frequency.update(set(words(text)))
        self._df = document_frequency
        self._documents = max(1, documents)
        self._sorted = sorted(document_frequency)
        self._by_length: dict[int, list[str]] = {}
        for word in self._sorted:
            self._by_length.setdefault(len(word), []).append(word)

    def __len__(self) -> int:
        return len(self._df)

    def idf(self, word: str) -> float:
        """Inverse document frequency over the indexed chunks (0 for words in every chunk)."""
        df = self._df.get(word) or self._df.get(stem(word)) or 0
        return math.log((self._documents + 1) / (df + 1))

    def uses(self, word: str) -> bool:
        """The docs use the word itself or its stem (no near misses: "colection" is not used)."""
        return word in self._df or stem(word) in self._df

    def specificity(self, word: str) -> float:
        """0..1: how specific a docs word is, rare in the docs *and* in ordinary English. The
        question's most specific words name what it asks about ("consul", "swarm", "trigger"),
        not how it is asked ("got", "team", "instead"). 0 for words the docs don't use."""
        if not self.uses(word):
            return 0.0
        rare_in_docs = self.idf(word) / math.log(self._documents + 1)
        zipf = zipf_frequency(word, "en")
        uncommon = (GENERIC_ZIPF - zipf) / (GENERIC_ZIPF - SPECIFIC_ZIPF)
        return rare_in_docs * max(0.0, min(1.0, uncommon))

    def unknown_terms(self, query: str) -> list[str]:
        """The unknown names of the query (see the module docstring), in query order."""
        return [term.word for term in self.analyse(query).unknown]

    def analyse(self, query: str) -> QueryTerms:
        quoted = [m.group(0) for m in _QUOTED.finditer(query)]
        identifiers: list[str] = [q.strip("`\"'“”‘’ ") for q in quoted if q.strip("`\"'“”‘’ ")]
        text = _QUOTED.sub(" _ ", query)
        first_end = m.end() if (m := _FIRST_SENTENCE.search(text)) else len(text)
        unknown: dict[str, UnknownTerm] = {}
        key_terms: dict[str, None] = {}
        in_other_language = foreign_share(query) >= FOREIGN_SHARE
        for match in _RAW_TOKEN.finditer(text):
            raw = match.group(0)
            if _QUANTITY.match(raw):
                continue
            if _looks_like_identifier(raw):
                identifiers.append(raw)
                continue
            mid_sentence = match.start() > 0 and not _SENTENCE_END.search(text[: match.start()])
            for part in re.split(r"[-/:]", raw):
                word = part.lower()
                if not _is_candidate(word) or word in unknown:
                    continue
                inflects = self._inflects(word)
                if inflects or self._near_miss(word):
                    key_terms[word] = None
                    if inflects or not _a_word_of_its_own(word):
                        continue  # a docs word, an inflection of one, or a typo of one
                if "/" in raw and len(word) <= 3:
                    continue  # one half of an abbreviation pair: "lat/lon", "pub/sub", "r/w"
                zipf = ordinary_zipf(word)
                capitalised = part[:1].isupper() and mid_sentence
                ordinary = ORDINARY_ZIPF_CAPITALISED if capitalised else ORDINARY_ZIPF
                if zipf < ordinary and in_other_language and _words_of_another_language(word):
                    continue  # "zeitstempel" in a German question: a German word, if a rare one
                if zipf < ordinary:
                    rarity = 1.0 - zipf / ordinary
                elif is_name(word):
                    rarity = max(0.0, 1.0 - zipf_frequency(word, "en") / NAME_ZIPF)
                else:
                    continue
                setup = match.start() >= first_end or bool(_SETUP_CUE.search(text[: match.start()]))
                unknown[word] = UnknownTerm(word, round(zipf, 2), round(rarity, 3), setup)
        return QueryTerms(
            tuple(unknown.values()), tuple(dict.fromkeys(identifiers)), tuple(key_terms), english_share(query)
        )

    def knows(self, word: str) -> bool:
        """The docs use the word, an inflection of it, or a word one or two typos away."""
        return self._inflects(word) or self._near_miss(word)

    def _inflects(self, word: str) -> bool:
        """The docs use the word or an inflection of it."""
        if word in self._df:
            return True
        for ending in _ENDINGS:  # an inflection of a docs word: its stem starts a docs word
            base = word.removesuffix(ending)
            if base != word and len(base) >= 4:
                i = bisect.bisect_left(self._sorted, base)
                if i < len(self._sorted) and self._sorted[i].startswith(base):
                    return True
        return False

    def _near_miss(self, word: str) -> bool:
        if len(word) < 4:
            return False
        allowed = 1 if len(word) < 8 else 2
        near = [
            w for n in range(len(word) - allowed, len(word) + allowed + 1) for w in self._by_length.get(n, [])
        ]
        return process.extractOne(word, near, scorer=OSA.distance, score_cutoff=allowed) is not None


def _is_candidate(word: str) -> bool:
    return (
        len(word) >= 3
        and all(ch < "\u0250" for ch in word)  # Latin script: other scripts are ordinary words here
        and any(ch.isalpha() for ch in word)
        and word not in ENGLISH_STOP_WORDS
        and word not in _CHAT_WORDS
    )


def _looks_like_identifier(raw: str) -> bool:
    """Code-shaped tokens: the user's own names and values, never evidence of a missing topic."""
    core = raw.strip(".-/:")
    if "_" in core or "." in core or _HEX.match(core) or _CAMEL.search(core):
        return True
    if any(ch.isdigit() for ch in core) and any(ch.isalpha() for ch in core):
        return True  # vec1, ip4, s3bucket: digits mixed with letters
    letters = core.lower()
    return len(letters) >= 2 and len(set(letters)) == 1  # placeholders: aaa, xxx
