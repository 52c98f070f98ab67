"""The hand-made word lists, loaded once from ``assistant/data/``: one file per list, one entry per line.

Retrieval (tokenizer, query expansion), question analysis and the composer all read their words
from here, so a list lives in exactly one place and each entry can be tested.

>>> from assistant.lexicon import LEXICON
>>> LEXICON.abbreviations["残保金"]
'残疾人就业保障金'
>>> LEXICON.colloquial_terms["开公司"]
('企业开办',)
>>> "郑州" in LEXICON.cities
True
>>> [kind.name for kind in LEXICON.fact_kinds][:4]
['amount', 'date', 'unit', 'condition']

Files (``#`` starts a comment line; TSV columns are tab-separated):

    cities.txt            Henan cities (short names)
    domain_terms.txt      policy terms jieba would cut apart (index user dictionary)
    question_words.txt    how-it-is-asked words, dropped from tokens
    stopwords.txt         function words, dropped from tokens
    abbreviations.tsv     abbreviation -> full term (searched too)
    colloquial_terms.tsv  everyday word -> official terms (searched too)
    everyday_words.tsv    everyday word -> looser forms (counted as found; never searched)
    function_chars.txt    characters marking a colloquial fragment, not a topic term
    aspect_words.txt      words naming an aspect of a subject (follow-up questions)
    quantity_units.txt    units that make a question's number a situation, not a specific (abstention)
    fact_kinds.tsv        kinds of fact a question asks for, with question and sentence patterns
    detail_kinds.tsv      precise details (an amount in 元, a date, a ratio, a phone number, a count)
                          an answer must state, with the name the fact-missing answer gives them
    open_value_phrases.txt  how a notice leaves a value open (一定的奖励, 另行制定), one regex a line
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

# One numeral character, Chinese or Arabic, full- or half-width: ``{NUM}`` in fact_kinds.tsv.
NUMERAL_CLASS = "[0-9０-９.．一二三四五六七八九十百千万亿两]"


@dataclass(frozen=True)
class FactKind:
    """A kind of fact a question may ask for (an amount, a date, a responsible unit …).

    ``question`` matches a question asking for it, ``sentence`` a clause sentence carrying it.
    ``role`` is "fact" (the composer quotes a carrier first), "intent" (retrieval weighs it only) or
    "number" (abstention reads whether the first quote states any number).
    """

    name: str
    role: str
    question: re.Pattern[str]
    sentence: re.Pattern[str]


@dataclass(frozen=True)
class DetailKind:
    """A precise detail an answer must state (an amount in 元, a date, a ratio …): ``question``
    matches a question asking for it, ``sentence`` a sentence stating it; ``shown`` names it in
    the answer that says it is not written (「现有文件未写明具体金额」)."""

    name: str
    shown: str
    question: re.Pattern[str]
    sentence: re.Pattern[str]


@dataclass(frozen=True)
class Lexicon:
    cities: tuple[str, ...]
    domain_terms: tuple[str, ...]
    question_words: frozenset[str]
    stopwords: frozenset[str]
    abbreviations: dict[str, str]
    colloquial_terms: dict[str, tuple[str, ...]]
    everyday_words: dict[str, tuple[str, ...]]
    function_chars: frozenset[str]
    aspect_words: tuple[str, ...]
    fact_kinds: tuple[FactKind, ...]  # role "fact", in the order the composer checks them
    intent_kinds: tuple[FactKind, ...]  # role "intent"
    number_kind: FactKind | None = None  # role "number": how much / how many, answered by any number
    detail_kinds: tuple["DetailKind", ...] = ()  # detail_kinds.tsv
    quantity_units: tuple[str, ...] = ()  # quantity_units.txt
    open_value: re.Pattern[str] | None = None  # open_value_phrases.txt, one alternation


def _rows(name: str, columns: int = 1, directory: Path = DATA_DIR) -> list[list[str]]:
    rows = []
    for number, line in enumerate((directory / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t") if columns > 1 else [line.strip()]
        if len(cells) != columns or not all(c.strip() for c in cells):
            raise ValueError(f"{directory / name}:{number}: expected {columns} non-empty tab-separated column(s): {line!r}")
        rows.append([c.strip() for c in cells])
    return rows


def _words(name: str, directory: Path) -> list[str]:
    return [word for row in _rows(name, 1, directory) for word in row[0].split()]


def _mapping(name: str, directory: Path) -> dict[str, tuple[str, ...]]:
    mapping: dict[str, tuple[str, ...]] = {}
    for key, value in _rows(name, 2, directory):
        if key in mapping:
            raise ValueError(f"{directory / name}: {key!r} is listed twice")
        mapping[key] = tuple(value.split())
    return mapping


def _fact_kinds(directory: Path) -> list[FactKind]:
    kinds = []
    for name, role, question, sentence in _rows("fact_kinds.tsv", 4, directory):
        if role not in ("fact", "intent", "number"):
            raise ValueError(f"fact_kinds.tsv: {name}: role must be fact, intent or number, not {role!r}")
        expand = lambda pattern: re.compile(pattern.replace("{NUM}", NUMERAL_CLASS))  # noqa: E731
        kinds.append(FactKind(name, role, expand(question), expand(sentence)))
    return kinds


def _detail_kinds(directory: Path) -> list[DetailKind]:
    expand = lambda pattern: re.compile(pattern.replace("{NUM}", NUMERAL_CLASS))  # noqa: E731
    return [DetailKind(name, shown, expand(question), expand(sentence))
            for name, shown, question, sentence in _rows("detail_kinds.tsv", 4, directory)]


def _alternation(name: str, directory: Path) -> re.Pattern[str]:
    """One pattern matching any line's regular expression (ValueError naming a line that does not compile)."""
    patterns = [row[0] for row in _rows(name, 1, directory)]
    for number, pattern in enumerate(patterns, 1):
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{directory / name}: pattern {number} ({pattern!r}) does not compile: {error}") from error
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def load_lexicon(directory: Path = DATA_DIR) -> Lexicon:
    """Read every list from ``directory`` (ValueError naming the file and line of a bad entry)."""
    kinds = _fact_kinds(directory)
    abbreviations = {k: v[0] for k, v in _mapping("abbreviations.tsv", directory).items()}
    return Lexicon(
        cities=tuple(_words("cities.txt", directory)),
        domain_terms=tuple(_words("domain_terms.txt", directory)),
        question_words=frozenset(_words("question_words.txt", directory)),
        stopwords=frozenset(_words("stopwords.txt", directory)),
        abbreviations=abbreviations,
        colloquial_terms=_mapping("colloquial_terms.tsv", directory),
        everyday_words=_mapping("everyday_words.tsv", directory),
        function_chars=frozenset("".join(_words("function_chars.txt", directory))),
        aspect_words=tuple(_words("aspect_words.txt", directory)),
        quantity_units=tuple(_words("quantity_units.txt", directory)),
        fact_kinds=tuple(k for k in kinds if k.role == "fact"),
        intent_kinds=tuple(k for k in kinds if k.role == "intent"),
        number_kind=next((k for k in kinds if k.role == "number"), None),
        detail_kinds=tuple(_detail_kinds(directory)),
        open_value=_alternation("open_value_phrases.txt", directory),
    )


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return load_lexicon()


LEXICON = lexicon()
