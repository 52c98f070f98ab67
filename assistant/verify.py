"""Quotes are verbatim, and cite their exact source lines.

:func:`verify_answer` runs on every answer, whatever composer produced it: every quote must be an
exact span of the clause it cites, and every 「…」 shown in the answer text must be one of those
quotes (or verbatim in a retrieved clause). :class:`LineLocator` finds a quote's source lines in
its document's original lines.

>>> locator = LineLocator(retriever.documents)
>>> locator.lines(clause, "责任单位：市粮食局、市农委…")
(32, 34)
>>> verify_answer(answer, answer.hits)     # QuoteVerificationError on any altered quote
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.text import strip_spaces
from assistant.types import Answer, Clause, Hit


class QuoteVerificationError(RuntimeError):
    """A composer produced a quote that is not an exact span of its clause: a bug, never shown."""


class LineLocator:
    """Finds the exact source lines of a quote from its document's original lines.

    Clause text re-joins wrapped lines and drops blank ones, so counting line breaks in it is
    only an estimate; the document keeps the source lines, where the quote is looked up
    (whitespace-insensitively, since PDF extraction scatters spaces).
    """

    def __init__(self, documents: Iterable):
        self._documents = {d.doc_id: d for d in documents}

    def lines(self, clause: Clause, text: str) -> tuple[int, int] | None:
        document = self._documents.get(clause.doc_id)
        if document is None:
            return None
        first = max(clause.line_start, document.line_start)
        last = min(clause.line_end, document.line_end)
        chars: list[str] = []
        line_of_char: list[int] = []
        for number in range(first, last + 1):
            for ch in document.lines[number - document.line_start]:
                if not ch.isspace():
                    chars.append(ch)
                    line_of_char.append(number)
        haystack = "".join(chars)
        needle = strip_spaces(text)
        if not needle:
            return None
        start = haystack.find(needle)
        if start >= 0:
            return line_of_char[start], line_of_char[start + len(needle) - 1]
        # Noise removed inside the clause (a page footer): locate both ends separately.
        head, tail = needle[:12], needle[-12:]
        start, end = haystack.find(head), haystack.rfind(tail)
        if start < 0 or end < start:
            return None
        return line_of_char[start], line_of_char[end + len(tail) - 1]


_SHOWN_QUOTE_RE = re.compile(r"「([^「」]*)」")


def verify_answer(answer: Answer, hits: Iterable[Hit]) -> Answer:
    """Raise :class:`QuoteVerificationError` unless every quote is an exact span of its clause.

    Checks each ``answer.quotes[i].text`` against the text of the clause named by its clause_id
    (which must be among ``hits``), and every 「…」 span in ``answer.text`` against the quotes
    and retrieved clauses, so no altered policy text is ever shown as a quote.
    """
    clauses = {h.clause.clause_id: h.clause for h in hits}
    for quote in answer.quotes:
        clause = clauses.get(quote.clause_id)
        if clause is None:
            raise QuoteVerificationError(f"quote cites clause {quote.clause_id!r}, which was not retrieved")
        if not quote.text or quote.text not in clause.text:
            raise QuoteVerificationError(f"quote is not an exact span of clause {quote.clause_id}: 「{quote.text}」")
    quoted = {q.text for q in answer.quotes}
    for match in _SHOWN_QUOTE_RE.finditer(answer.text):
        shown = match.group(1)
        # (a title quoting a name in 「」 is shown verbatim too)
        if shown not in quoted and not any(shown in c.text or shown in c.doc_title for c in clauses.values()):
            raise QuoteVerificationError(f"answer text shows 「{shown}」, which is not verbatim in any retrieved clause")
    return answer
