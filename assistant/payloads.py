"""The JSON every way in returns: ``search --json``, the REST API, MCP and the adapters.

One function per shape, so the CLI, ``/v1/search`` and the MCP tools cannot drift apart; each
takes what was already searched or answered and only turns it into plain dicts (nothing here
searches). Clause and hit fields are :meth:`Clause.to_dict` / :meth:`Hit.to_dict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.query import PreparedQuery
from assistant.types import Clause, Document, Hit


def search_payload(prepared: PreparedQuery, mode: str, hits: Sequence[Hit]) -> dict[str, Any]:
    """``{"query", "mode", "hits", ["notice"]}``: what ``search --json`` prints and ``/v1/search`` returns."""
    payload: dict[str, Any] = {"query": prepared.text, "mode": mode, "hits": [h.to_dict() for h in hits]}
    if prepared.notice:
        payload["notice"] = prepared.notice
    return payload


def document_payload(document: Document, clause_count: int) -> dict[str, Any]:
    return {
        "doc_id": document.doc_id,
        "title": document.title,
        "doc_number": document.doc_number,
        "issuer": document.issuer,
        "date": document.date,
        "city": document.city,
        "source": document.source,
        "line_start": document.line_start,
        "line_end": document.line_end,
        "clause_count": clause_count,
    }


def documents_payload(retriever) -> dict[str, Any]:
    """Every document with its 文号, file and city, plus the distinct files and cities (what filters take)."""
    from collections import Counter

    from assistant.clause_table import column, factorize

    # whole columns, not a Clause per row (an index's clauses are made on access)
    counts = Counter(column(retriever.clauses, "doc_id"))
    documents = [document_payload(d, counts.get(d.doc_id, 0)) for d in retriever.documents]
    files = sorted({d.source for d in retriever.documents} | set(factorize(retriever.clauses, "source")[0]))
    cities = sorted({d.city for d in retriever.documents if d.city}
                    | {city for city in factorize(retriever.clauses, "city")[0] if city})
    return {"documents": documents, "files": files, "cities": cities}


def clause_payload(retriever, clause_id: str) -> dict[str, Any]:
    """One clause with its context (parents, other parts, neighbours) and its document.
    AssistantError when the index has no such clause."""
    clause: Clause = retriever.clause(clause_id)
    context = [c.to_dict() for c in retriever.context(clause_id)]
    document = next((d for d in retriever.documents if d.doc_id == clause.doc_id), None)
    return {
        "clause": clause.to_dict(),
        "context": context,
        "document": document_payload(document, len(retriever.clauses_of(clause.doc_id))) if document else None,
    }


__all__ = ["clause_payload", "document_payload", "documents_payload", "search_payload"]
