"""Where the retriever's candidates come from: the seam between ranking and clause storage.

The :class:`~assistant.retriever.Retriever` ranks; a backend only finds. A backend answers three
questions about the clauses of one index, each restricted by the same filters:

- ``bm25_top(text, k, where)``: the k best clauses by BM25 (scores, row numbers), best first;
- ``dense_top(vector, k, where)``: the k nearest clauses by cosine (scores, row numbers);
- ``candidates(text, vector, pool, where)``: the union of the top ``pool`` of both, with *both*
  scores for every candidate and its rank in each list (0 = not in that list): a :class:`Candidates`.

and fetches clauses by id (``clauses(ids)``, ``row_of(id)``). Row numbers index the index's clause list
(``StoredIndex.clauses``, in the index's clause order), which both backends keep locally. The fusion,
the document prior, the request-kind bonus, the city check, learned reranking and the composer all
run on what ``candidates`` returns, so they are the same code for every backend.

Two backends: :class:`LocalBackend` (bm25s + FAISS in this process: what the retriever did before
the seam, computed the same way to the bit) and ``assistant.milvus_backend.MilvusBackend`` (Milvus
Lite or a Milvus server). :func:`open_backend` picks the one the index manifest names.

>>> backend = open_backend(load_index(Path("index/default")))
>>> found = backend.candidates("地源热泵谁审批", vector, 100, Where.of(None, None))
>>> found.rows, found.bm25, found.dense, found.bm25_ranks, found.nearest
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from assistant.clause_table import column
from assistant.errors import AssistantError
from assistant.types import Clause

BACKENDS = ("local", "milvus")


@dataclass(frozen=True)
class Where:
    """The filters of one search, in both shapes a backend may need: ``values`` (filter key -> the
    accepted values, as the user gave them: an engine turns them into its own expression) and
    ``rows`` (the row numbers that pass, None = every row: computed from the local clause list)."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: np.ndarray | None = None

    @classmethod
    def of(cls, values: dict[str, Sequence[str]] | None, rows: np.ndarray | None) -> Where:
        return cls({k: tuple(v) for k, v in (values or {}).items() if v}, rows)


@dataclass
class Candidates:
    """The pool one hybrid search fuses: per candidate row, both scores and both ranks."""

    rows: np.ndarray  # int64 row numbers, ascending, unique
    bm25: np.ndarray  # float32 BM25 score of each row over all clauses (0 = shares no query term)
    dense: np.ndarray  # float32 cosine of each row with the query vector
    bm25_ranks: np.ndarray  # int64 1-based rank in the BM25 top list, 0 = not in it
    dense_ranks: np.ndarray  # int64 1-based rank in the dense top list, 0 = not in it
    nearest: float | None  # cosine of the nearest clause passing the filters (None: none)

    @classmethod
    def empty(cls, nearest: float | None = None) -> Candidates:
        zero = np.zeros(0, np.int64)
        return cls(zero, np.zeros(0, np.float32), np.zeros(0, np.float32), zero, zero, nearest)


class Backend(Protocol):
    name: str

    def bm25_top(self, text: str, k: int, where: Where) -> tuple[np.ndarray, np.ndarray]: ...

    def dense_top(self, vector: np.ndarray, k: int, where: Where) -> tuple[np.ndarray, np.ndarray]: ...

    def candidates(self, text: str, vector: np.ndarray, pool: int, where: Where) -> Candidates: ...

    def clauses(self, clause_ids: Sequence[str]) -> list[Clause]: ...

    def row_of(self, clause_id: str) -> int | None: ...

    def close(self) -> None: ...


def pool_of(bm25_rows: np.ndarray, dense_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate rows (ascending, unique) of two top lists and each row's rank in each list."""
    if len(bm25_rows) or len(dense_rows):
        rows = np.unique(np.concatenate([bm25_rows, dense_rows]).astype(np.int64))
    else:
        rows = np.zeros(0, np.int64)
    bm25_rank = {int(r): i + 1 for i, r in enumerate(bm25_rows)}
    dense_rank = {int(r): i + 1 for i, r in enumerate(dense_rows)}
    return (rows, np.array([bm25_rank.get(int(r), 0) for r in rows], dtype=np.int64),
            np.array([dense_rank.get(int(r), 0) for r in rows], dtype=np.int64))


def top_positive(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k highest positive scores, best first (argpartition: O(N), matters at x100 scale)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        part = np.argpartition(-scores[positive], k - 1)[:k]
        positive = positive[part]
    return positive[np.argsort(-scores[positive], kind="stable")]


class ClauseList:
    """Clauses by id from the index's own clause list (both backends keep the metadata locally)."""

    def __init__(self, clauses: Sequence[Clause], index_dir):
        self._clauses = clauses
        self._index_dir = index_dir
        self._position: dict[str, int] | None = None

    @property
    def position(self) -> dict[str, int]:
        """clause id -> row (built on first use: the local backend's searches never need it)."""
        if self._position is None:
            self._position = {clause_id: i for i, clause_id in enumerate(column(self._clauses, "clause_id"))}
        return self._position

    def row_of(self, clause_id: str) -> int | None:
        """The row of a clause id, None when the index has no such clause."""
        try:
            return self.position.get(clause_id)
        except TypeError:  # not a string (an id from a JSON request, say)
            return None

    def clauses(self, clause_ids: Sequence[str]) -> list[Clause]:
        rows = [self.row_of(clause_id) for clause_id in clause_ids]
        if None in rows:
            missing = list(clause_ids)[rows.index(None)]
            raise AssistantError(f"no clause {missing!r} in the index at {self._index_dir}")
        return [self._clauses[row] for row in rows]


class LocalBackend(ClauseList):
    """bm25s over every clause + FAISS (flat or HNSW), in this process."""

    name = "local"

    def __init__(self, stored):
        super().__init__(stored.clauses, stored.index_dir)
        self.lexical = stored.lexical
        self.dense = stored.dense

    def _bm25_scores(self, text: str, where: Where) -> np.ndarray:
        scores = self.lexical.scores(text)
        if where.rows is not None:
            masked = np.zeros_like(scores)
            masked[where.rows] = scores[where.rows]
            scores = masked
        return scores

    def bm25_top(self, text: str, k: int, where: Where) -> tuple[np.ndarray, np.ndarray]:
        scores = self._bm25_scores(text, where)
        rows = top_positive(scores, k)
        return scores[rows], rows

    def dense_top(self, vector: np.ndarray, k: int, where: Where) -> tuple[np.ndarray, np.ndarray]:
        return self.dense.search(vector, k, allowed=where.rows)

    def candidates(self, text: str, vector: np.ndarray, pool: int, where: Where) -> Candidates:
        bm25_all = self._bm25_scores(text, where)
        bm25_rows = top_positive(bm25_all, pool)
        dense_scores, dense_rows = self.dense.search(vector, pool, allowed=where.rows)
        nearest = float(dense_scores[0]) if len(dense_scores) else None
        rows, bm25_ranks, dense_ranks = pool_of(bm25_rows, dense_rows)
        if len(rows) == 0:
            return Candidates.empty(nearest)
        # every candidate gets both scores: BM25 over all clauses, cosine computed exactly
        return Candidates(rows, bm25_all[rows], self.dense.vectors[rows] @ vector, bm25_ranks, dense_ranks, nearest)

    def close(self) -> None:
        pass


def open_backend(stored) -> Backend:
    """The backend the index's manifest names (``"backend"``; an index without one is local)."""
    name = stored.manifest.get("backend", "local")
    if name == "local":
        return LocalBackend(stored)
    if name == "milvus":
        from assistant.milvus_backend import MilvusBackend

        return MilvusBackend.open(stored)
    from assistant.store import rebuild_hint

    raise AssistantError(f"the index at {stored.index_dir} names backend {name!r}; this program knows "
                         f"{', '.join(BACKENDS)}; {rebuild_hint(stored.index_dir)}")
