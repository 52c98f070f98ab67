"""Chinese text normalisation for *matching* only; quoted text is never altered.

>>> normalize_for_matching("第１２条　（三）ＡＢＣ")
'第12条 (三)abc'
>>> to_simplified("資金補貼")
'资金补贴'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACES = re.compile(r"\s+")


def normalize_for_matching(text: str) -> str:
    """NFKC (full-width digits/letters/punctuation -> half-width), lower-case, one space for any run."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC  # opencc-python-reimplemented: pure Python, no native build

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified characters (queries only: the corpus is already simplified)."""
    return _t2s().convert(text)


def normalize_query(text: str) -> str:
    """What a user typed, made comparable with corpus text: simplified, half-width, one space."""
    return normalize_for_matching(to_simplified(text))


def strip_spaces(text: str) -> str:
    """Remove all whitespace (PDF extraction inserts stray spaces inside Chinese text)."""
    return _SPACES.sub("", text)
