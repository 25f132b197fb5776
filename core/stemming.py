"""Words reduced to their stems for the BM25 search, on both sides: "running" finds "run".

Milvus's own analyzers can stem (a `stemmer` filter), but Milvus Lite, the embedded default,
ignores analyzer settings; stemming the text before it reaches Milvus works on both. The Snowball
English stemmer (the `snowballstemmer` package, pure Python) is the one Milvus's filter and most
search engines use. Questions in other languages go through it too, unharmed: it only takes
English endings off.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

#: Recorded in the index fingerprint (`core.fingerprint`): an index whose BM25 text was made
#: another way is rebuilt by `docsbot index`.
BM25_FORM = "snowball-english"
_STEMMER = snowballstemmer.stemmer("english")
_LETTERS = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def bm25_form(text: str) -> str:
    """`text` in lower case with each run of letters replaced by its English stem; digits,
    underscores and punctuation stay, so identifiers keep their shape ("ivf_flat", "2.5")."""
    return _LETTERS.sub(lambda m: _stem(m.group()), text.lower())
