"""The plain dataclasses that flow between pipeline stages.

corpus files -> :class:`Document` -> :class:`Clause` -> indexes -> :class:`Hit` -> :class:`Answer`

Each stage module takes the previous stage's dataclasses and returns its own; no stage reaches
into another's internals. Line numbers are 1-based and inclusive, counted in the source file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceFile:
    """One corpus file as read from disk, decoded to text lines."""

    name: str  # file name inside the corpus directory, e.g. "000_ed0d53ce87970edb.txt"
    lines: tuple[str, ...]  # decoded lines without line terminators; line n is lines[n - 1]
    sha256: str  # hash of the raw bytes, for the index manifest
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Document:
    """One notice / opinion / measure / report inside a corpus file."""

    doc_id: str  # stable: "<file stem>#<ordinal within file, from 1>"
    source: str  # corpus file name
    title: str  # full title, split lines joined
    line_start: int
    line_end: int
    lines: tuple[str, ...]  # the original source lines line_start..line_end
    doc_number: str | None = None  # 文号, e.g. 郑政〔2016〕24号
    issuer: str | None = None  # issuing body, e.g. 郑州市人民政府
    date: str | None = None  # ISO yyyy-mm-dd when a date was found
    city: str | None = None  # e.g. 鹤壁市, for filtering


def index_text_of(doc_title: str, section_path: Sequence[str], text: str) -> str:
    """What BM25 and the encoder see of a clause: its document's title, its section path and its text."""
    return "\n".join(part for part in (doc_title, " › ".join(section_path), text) if part)


@dataclass(frozen=True)
class Clause:
    """The unit of retrieval and quoting: one article/item of one document."""

    clause_id: str  # stable across runs for the same corpus
    doc_id: str
    source: str
    doc_title: str
    section_path: tuple[str, ...]  # e.g. ("第二章 建设管理", "第十一条", "（三）")
    label: str  # short citation label, e.g. "第十一条（三）" or "二、（三）"
    text: str  # original text exactly as in the source (wrapped lines re-joined), for quoting
    index_text: str  # text for indexing: title + section path + text
    line_start: int
    line_end: int
    doc_number: str | None = None
    city: str | None = None
    part: int = 0  # >0 when a long clause was split: 1, 2, ... (each part keeps label and path)

    @property
    def section(self) -> str:
        """Human-readable section path, e.g. '第二章 建设管理 › 第十一条 › （三）'."""
        return " › ".join(self.section_path)

    def to_dict(self) -> dict[str, Any]:
        """The clause's JSON shape, shared by hits (which add score and ranks) and the HTTP API."""
        return {
            "clause_id": self.clause_id,
            "text": self.text,
            "doc_title": self.doc_title,
            "doc_number": self.doc_number,
            "doc_id": self.doc_id,
            "section": self.section,
            "section_path": list(self.section_path),
            "label": self.label,
            "source": self.source,
            "line_start": self.line_start,
            "line_end": self.line_end,
            "city": self.city,
        }


@dataclass
class Hit:
    """One retrieved clause with its score and the rank it got from each retrieval mode."""

    clause: Clause
    score: float
    ranks: dict[str, int | None] = field(default_factory=dict)  # mode -> 1-based rank, None if absent

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by `search --json`, `ask --json`, eval results and HTTP."""
        return {**self.clause.to_dict(), "score": float(self.score), "ranks": dict(self.ranks)}


class SearchResult(list):
    """The hits of one search, best first (it is a ``list[Hit]``), plus what the search measured on
    the way, so that nothing downstream searches or encodes again: ``dense_similarity`` is the
    question's cosine to its nearest clause under the dense encoder and ``query_vector`` the
    encoded question (both None when no dense search ran)."""

    def __init__(self, hits=(), *, mode: str = "hybrid", dense_similarity: float | None = None, query_vector=None):
        super().__init__(hits)
        self.mode = mode
        self.dense_similarity = dense_similarity
        self.query_vector = query_vector  # the encoded question (numpy), when a dense search ran

    def with_dense_similarity(self, value: float | None) -> "SearchResult":
        return SearchResult(self, mode=self.mode, dense_similarity=value, query_vector=self.query_vector)

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if isinstance(index, slice):
            return SearchResult(item, mode=self.mode, dense_similarity=self.dense_similarity, query_vector=self.query_vector)
        return item

    def __repr__(self) -> str:
        return f"SearchResult({len(self)} hits, mode={self.mode!r}, dense_similarity={self.dense_similarity})"


@dataclass(frozen=True)
class Quote:
    """A verbatim span of one clause, with the citation shown beside it."""

    text: str  # exact substring of the clause's text
    clause_id: str
    citation: str  # e.g. "鹤壁市地源热泵系统建设应用管理暂行办法（鹤政办〔2025〕9号） › 第四条 — 000_x.txt:57"
    doc_title: str
    label: str
    source: str
    line_start: int
    line_end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Why an answer abstained (``Answer.reason``); metrics count every one of them as an abstention.
ABSTENTION_REASONS = (
    "no_relevant_clause",  # nothing retrieved answers the question
    "fact_missing",  # the on-topic clauses do not state the kind of fact asked for (an amount, a date …)
    "needs_context",  # an elliptical follow-up (「那郑州呢？」) with no earlier question to complete it
    "not_found",  # a document or article asked for by 文号/title and number does not exist
)


@dataclass
class Answer:
    question: str
    text: str  # the composed answer shown to the user
    abstained: bool
    quotes: list[Quote] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    notice: str | None = None  # e.g. "问题过长，只检索了前 2000 个字"
    reason: str | None = None  # one of ABSTENTION_REASONS when abstained
    resolved_question: str | None = None  # what was searched, when a follow-up was completed
    summary: str | None = None  # a generative composer's own words (never shown inside 「」)
    composer: str = "extractive"  # which composer answered

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "reason": self.reason,
            "resolved_question": self.resolved_question,
            "quotes": [q.to_dict() for q in self.quotes],
            "hits": [h.to_dict() for h in self.hits],
            "notice": self.notice,
            "composer": self.composer,
        }
