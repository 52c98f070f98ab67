"""Which item a quote cites: the full labels of the items inside one clause's text.

>>> clause = next(c for c in corpus.clauses if c.label == "一、（三）–（四）")        # doctest: +SKIP
>>> item_labels(clause)                                                             # doctest: +SKIP
[(0, '一、（三）'), (12, '一、（三）1.'), (55, '一、（三）2.'), …, (264, '一、（四）')]
>>> item_label_at(clause, clause.text.index("粮油行业"))                            # doctest: +SKIP
'一、（三）2.'

``Clause.label`` names a clause's item, or its first and last item when short items were merged
(``一、（三）–（四）``); a quote should name the innermost item holding the quoted sentence. These
functions read that from the clause alone - its text, label and part, as loaded from an index -
with the heading parser, the cut of lines holding several items and the nesting rule that
:mod:`assistant.outline` builds the tree with. ``chunking.DocumentChunks.item_starts`` holds what
the tree itself knew; ``tests/test_citations.py`` checks both agree on every clause of the corpus.

Both are importable from :mod:`assistant.chunking` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from assistant.outline import (
    Heading,
    inline_heading_offsets,
    may_run_on,
    parse_heading,
    place_heading,
)
from assistant.types import Clause


def item_labels(clause: Clause) -> list[tuple[int, str]]:
    """Where each item starts in ``clause.text`` and the full label to cite from there on.

    The first entry is at offset 0. A clause of merged items (``三、（五）–（六）``) lists each item
    (``[(0, '三、（五）'), (212, '三、（六）')]``); an article holding its items lists the article
    and each item (``[(0, '第十条'), (35, '第十条（一）'), …]``); a bare heading put in front of its
    first item is cited as its own item. Read from the text alone with the parser and nesting rule
    the tree uses, so it works on clauses loaded from an index.
    """
    return list(_item_labels(clause.text, clause.label, clause.part))


@lru_cache(maxsize=4096)
def _item_labels(text: str, clause_label: str, part: int) -> tuple[tuple[int, str], ...]:
    head = clause_label.split("–")[0]
    prefix, seed = _label_units(head)
    if seed is None:
        return ((0, clause_label),)
    stack: list[_Open] = [_Open("root", 0, "")]
    last_number = {unit.kind: unit.number for unit in seed}
    last_article = next((unit.number for unit in seed if unit.kind == "article"), 0)
    starts: list[tuple[int, str]] = []
    follows_heading = False  # the previous paragraph opened an item
    for offset, heading in _paragraph_headings(text):
        accepted = True
        if offset == 0:
            depth = _seed_depth(seed, heading) if part <= 1 else None
            stack.extend(seed if depth is None else seed[: depth + 1])
            accepted = depth is not None
        elif heading is None:
            accepted = False
        elif len(stack) <= len(seed) and stack[1:] == seed[: len(stack) - 1] and _same(seed[len(stack) - 1], heading):
            stack.append(seed[len(stack) - 1])  # the next item on the way down to the clause's own item
        elif heading.kind in ('annex', 'chapter', 'section'):
            accepted = False  # chapters and attachments never start inside a clause
        else:
            # Numbering that runs on from an earlier section (二、 then （七）) can only be seen as such
            # where the list opens right under its parent's heading; elsewhere only a list from 1 opens.
            seen = dict(last_number)
            if follows_heading and heading.kind not in seen and may_run_on(stack, heading.kind):
                seen[heading.kind] = heading.number - 1
            accepted = place_heading(stack, heading, last_article, seen)
            if accepted:
                stack.append(_Open(heading.kind, heading.number, heading.label))
                last_number[heading.kind] = heading.number
                if heading.kind == "article":
                    last_article = heading.number  # an article's last item merged with the next article
        follows_heading = accepted
        if not accepted and offset:
            continue
        label = (prefix + "".join(unit.label for unit in stack[1:])) or clause_label
        if not starts or starts[-1][1] != label:
            starts.append((offset, label))
    return tuple(starts)


def item_label_at(clause: Clause, offset: int) -> str:
    """The full label of the innermost item holding ``clause.text[offset]`` (see :func:`item_labels`)."""
    label = clause.label
    for start, item in item_labels(clause):
        if start > offset:
            break
        label = item
    return label


@dataclass(frozen=True)
class _Open:
    kind: str
    number: int
    label: str


def _same(unit: _Open, heading: Heading | None) -> bool:
    return heading is not None and unit.kind == heading.kind and unit.number == heading.number


def _seed_depth(seed: list[_Open], heading: Heading | None) -> int | None:
    """Which unit of the clause's label the text opens with (a bare parent heading put in front
    of its first item opens with an outer one), None when the text opens inside the item."""
    # The deepest match: a label may repeat a unit ("三、3.三、" when a list restarts under an item).
    return next((depth for depth in range(len(seed) - 1, -1, -1) if _same(seed[depth], heading)), None)


_LABEL_UNIT = re.compile(r"第[^章节条]{1,12}[章节条]|[（(][^）)]{1,6}[）)]|[①-⑳]|\d{1,2}\.|[一二三四五六七八九十百千零〇○两]+、")
_ANNEX_PREFIX = re.compile(r"^附件\d*(?: |$)")


def _label_units(label: str) -> tuple[str, list[_Open] | None]:
    """``'附件 1.'`` -> ('附件 ', [arabic 1]); ``'第十条（三）'`` -> ('', [article 10, paren_cn 3]).
    None when the label is not made of heading units (``正文``)."""
    prefix = ""
    annex = _ANNEX_PREFIX.match(label)
    if annex:
        prefix, label = annex.group(0), label[annex.end() :]
        if not label:
            return prefix, None
    units: list[_Open] = []
    position = 0
    while position < len(label):
        match = _LABEL_UNIT.match(label, position)
        heading = parse_heading(match.group(0)) if match else None
        if heading is None:
            return prefix, None
        units.append(_Open(heading.kind, heading.number, heading.label))
        position = match.end()
    return prefix, units or None


def _paragraph_headings(text: str) -> list[tuple[int, Heading | None]]:
    """Offsets where a paragraph of ``text`` starts (0, after each newline, and where the chunker
    cut a line holding several items), with the heading it opens with."""
    found: list[tuple[int, Heading | None]] = []
    start = 0
    while start <= len(text):
        newline = text.find("\n", start)
        end = len(text) if newline < 0 else newline
        segment = text[start:end]
        first = parse_heading(segment[:64])
        found.append((start, first))
        for offset in inline_heading_offsets(segment, first):
            found.append((start + offset, parse_heading(segment[offset : offset + 64])))
        if newline < 0:
            break
        start = newline + 1
    return found
