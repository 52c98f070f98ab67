"""Hybrid retrieval over clauses: BM25 (jieba) + dense (e5 / USE / any sentence-transformers model).

The retriever opens a built index (:mod:`assistant.indexing` builds one) and searches it.

>>> from assistant.retriever import Retriever
>>> retriever = Retriever.load("index/default")
>>> result = retriever.search("小微企业贷款能延期还本付息吗", k=5)   # a SearchResult: a list of Hits
>>> result[0].clause.doc_title, result[0].clause.label, result[0].ranks, result.dense_similarity
('...', '（三）', {'hybrid': 1, 'bm25': 2, 'dense': 1}, 0.87)
>>> retriever.search("地源热泵", mode="bm25", filters={"city": ["鹤壁市"]})
>>> retriever.context(result[0].clause.clause_id)   # parent + neighbouring clauses, in document order

Hybrid scoring (:func:`fuse`, parameters in :class:`SearchConfig`): the top ``candidates`` of
BM25 and of dense search are pooled (the dense search is given the encoded question through the
shipped :class:`~assistant.learned.QueryAdapter`, and weighed with the adapter's dense weight, when
the index is of the corpus and encoder it was fitted on); every candidate gets both scores (BM25 over all clauses;
cosine computed exactly), BM25 divided by the best BM25, cosine min-max normalised over the pool,
mixed ``bm25_weight`` / ``dense_weight``. Then the clause's *document* counts, through a BM25 over
whole documents (title + every section path + text), added as ``document_weight`` x (document
score / best document score). Last, what the question's wording asks for
(:mod:`assistant.query`): +``intent_weight`` for each kind of request it makes (罚多少 -> a clause
with 违反/罚款; 谁负责 -> 主管部门/负责; 哪天施行 -> 自…起施行 …) that the clause carries, and
-``city_mismatch_penalty`` for a clause of another city's local notice when the question names a
city. How each step was chosen, with its measurements: eval/README.md.

Where candidates come from is the index's backend (:mod:`assistant.backends`: bm25s + FAISS in
this process, or a Milvus collection, named by the manifest); everything above runs on the pool it
returns, the same for every backend.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from assistant.backends import Candidates, Where, open_backend
from assistant.clause_table import factorize, factorize_values
from assistant.errors import AssistantError
from assistant.learned import QUERY_ADAPTER_FILE, QueryAdapter, applicable_model
from assistant.query import MAX_QUERY_CHARS, PreparedQuery, cities_named, clause_fits_cities, prepare_query, question_kinds
from assistant.store import StoredIndex, check_compatible, load_index, read_manifest
from assistant.text import normalize_query
from assistant.types import Clause, Document, Hit, SearchResult

__all__ = ["Retriever", "SearchConfig", "fuse", "prepare_query", "PreparedQuery", "MAX_QUERY_CHARS", "MODES", "FILTER_KEYS"]

MODES = ("hybrid", "bm25", "dense")
FILTER_KEYS = ("source", "doc_id", "city")


@dataclass(frozen=True)
class SearchConfig:
    """How hybrid search fuses and weighs its evidence (saved in the index manifest).

    >>> SearchConfig(bm25_weight=0.5, dense_weight=0.5).to_dict()["fusion"]
    'score'
    """

    candidates: int = 100  # top-N from each mode that enter fusion
    fusion: str = "score"  # "score": weighted sum of normalised scores; "rrf": weighted reciprocal rank fusion
    bm25_weight: float = 0.7
    dense_weight: float = 0.3
    rrf_k: int = 60
    document_weight: float = 0.3  # bonus: the clause's document's BM25 score (whole document), / best document's
    intent_weight: float = 0.12  # bonus per kind of request in the question the clause carries
    city_mismatch_penalty: float = 0.5  # a clause of another city's local notice than the city the question names
    query_adapter: bool = True  # adapt the encoded question with the shipped QueryAdapter where it applies

    def __post_init__(self):
        if not isinstance(self.query_adapter, bool):
            raise ValueError(f"SearchConfig.query_adapter must be true or false, not {self.query_adapter!r}")
        if self.fusion not in ("score", "rrf"):
            raise ValueError(f"SearchConfig.fusion must be 'score' or 'rrf', not {self.fusion!r}")
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"SearchConfig.candidates must be a positive integer, not {self.candidates!r}")
        if not isinstance(self.rrf_k, int) or self.rrf_k < 1:
            raise ValueError(f"SearchConfig.rrf_k must be a positive integer, not {self.rrf_k!r}")
        for name in ("bm25_weight", "dense_weight", "document_weight", "intent_weight", "city_mismatch_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"SearchConfig.{name} must be a finite number >= 0, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchConfig:
        """The config saved in a manifest (unknown keys refused, missing keys take the defaults)."""
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"a search config must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown search config keys {sorted(unknown)}")
        return cls(**data)


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise AssistantError(f"filter {key!r} must be a string or a list of strings, not {value!r}")


class Retriever:
    """Searches one index directory. Open with :meth:`load`; build one with :func:`assistant.indexing.build_index`."""

    def __init__(self, stored: StoredIndex, embedder=None, config: SearchConfig | None = None, *,
                 light_query_encoder: bool = False):
        self.stored = stored
        self.index_dir = stored.index_dir
        self.manifest = stored.manifest
        self.clauses: Sequence[Clause] = stored.clauses  # a ClauseTable when read from disk: clauses made on access
        self.documents: list[Document] = stored.documents
        self.lexical = stored.lexical  # None for an index whose backend is not local
        self.doc_lexical = stored.doc_lexical
        self.dense = stored.dense  # None for an index whose backend is not local
        self.backend = open_backend(stored)
        if config is None:
            try:
                config = SearchConfig.from_dict(self.manifest.get("search"))
            except (TypeError, ValueError) as error:
                from assistant.store import rebuild_hint

                raise AssistantError(f"the index at {self.index_dir} has an invalid search config ({error}); "
                                     f"{rebuild_hint(self.index_dir)}") from None
        self.config = config
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        # One-shot commands encode a question and a few sentences: numpy (assistant.numpy_encoder)
        # does that without the seconds torch takes to import; long-lived processes keep torch's bf16.
        self.light_query_encoder = light_query_encoder
        # per-clause maps from whole columns (assistant.clause_table), never a Clause per row; clause id
        # -> row is the backend's (ClauseList.row_of), built on first use
        doc_ids, doc_rows = factorize(self.clauses, "doc_id")  # documents in order of first appearance
        self._clause_doc_row = doc_rows  # same order as the document BM25
        order = np.argsort(doc_rows, kind="stable")
        ends = np.cumsum(np.bincount(doc_rows, minlength=len(doc_ids)))
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        self._by_doc: dict[str, list[int]] = {doc_id: order[start:end].tolist()
                                              for doc_id, start, end in zip(doc_ids, starts.tolist(), ends.tolist())}
        self._doc_city = {d.doc_id: d.city for d in self.documents}
        # filter key -> (distinct values, each clause's position among them); a clause's city is
        # its own, else its document's, else ""
        self._columns = {"source": factorize(self.clauses, "source"), "doc_id": (doc_ids, doc_rows)}
        cities, city_rows = factorize(self.clauses, "city")
        width = max(len(doc_ids), 1)
        pairs, pair_rows = np.unique(city_rows * width + doc_rows, return_inverse=True)  # (city, document) pairs
        effective = [cities[pair // width] or self._doc_city.get(doc_ids[pair % width]) or "" for pair in pairs.tolist()]
        city_values, pair_city = factorize_values(effective)
        self._columns["city"] = (city_values, pair_city[pair_rows.reshape(-1)])

    # --- opening ----------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def tokenizer(self):
        """The index's own tokenizer (its corpus user dictionary): questions are analysed with it."""
        # the document BM25 shares it (and is the only local BM25 of an index in Milvus)
        return (self.lexical or self.doc_lexical).tokenizer

    @property
    def embedder(self):
        """The query encoder, loaded on first dense/hybrid search (BM25-only use never loads torch)."""
        if self._embedder is not None:
            return self._embedder
        with self._embedder_lock:  # concurrent first requests (serve's warm-up and a question) load it once
            if self._embedder is None:
                self._embedder = self._load_embedder()
        return self._embedder

    def _load_embedder(self):
        source = self.manifest.get("model_source")
        embedder = None
        if self.light_query_encoder:
            from assistant.numpy_encoder import light_query_encoder

            embedder = light_query_encoder(source)
        if embedder is None:
            from assistant.embedding import load_embedder

            embedder = load_embedder(source)
        check_compatible(self.index_dir, self.manifest, model_id=embedder.model_id)
        return embedder

    @classmethod
    def load(cls, index_dir: str | Path, *, model: str | None = None, config: SearchConfig | None = None,
             light_query_encoder: bool = False) -> Retriever:
        """Open an index; AssistantError (with the command that fixes it) if it is missing, corrupt
        or from another model, chunker or BM25 setting."""
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        embedder = None
        if model is not None:
            from assistant.embedding import load_embedder

            embedder = load_embedder(model)
        check_compatible(index_dir, manifest, model_id=embedder.model_id if embedder else None)
        return cls(load_index(index_dir), embedder, config, light_query_encoder=light_query_encoder)

    def with_config(self, **changes) -> Retriever:
        """The same index searched with other parameters (for measuring them)."""
        other = Retriever.__new__(Retriever)
        # shares the state and the backend (a Milvus Lite file opens once per process), but not an
        # instance attribute standing in for a method: pytest's monkeypatch leaves the bound
        # method of this retriever behind, and the copy would search with this one's config
        other.__dict__.update({name: value for name, value in self.__dict__.items() if not hasattr(Retriever, name)})
        other.config = replace(self.config, **changes)
        return other

    def close(self) -> None:
        """Release the backend (a Milvus connection; nothing for the local backend)."""
        self.backend.close()

    # --- searching --------------------------------------------------------------------------------

    def allowed_rows(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Row numbers passing the filters (None = no filter). Unknown keys and bad values are refused."""
        if not filters:
            return None
        if not isinstance(filters, dict):
            raise AssistantError(f"filters must be an object such as {{'city': ['鹤壁市']}}, not {filters!r}")
        unknown = set(filters) - set(FILTER_KEYS)
        if unknown:
            raise AssistantError(f"unknown filter {sorted(unknown)}; use any of {list(FILTER_KEYS)}")
        mask = np.ones(len(self.clauses), dtype=bool)
        active = False
        for key in FILTER_KEYS:
            values = _as_list(filters.get(key), key)
            if not values:
                continue
            active = True
            distinct, rows = self._columns[key]
            wanted = set(values)
            mask &= np.isin(rows, [n for n, value in enumerate(distinct) if value in wanted])
        return np.flatnonzero(mask) if active else None

    def encode_query(self, text: str) -> np.ndarray:
        embedder = self.embedder
        encode = getattr(embedder, "encode_queries", None) or embedder.encode
        return encode([normalize_query(text)])[0]

    def search(self, query: str, k: int = 10, mode: str = "hybrid", filters: dict[str, Any] | None = None) -> SearchResult:
        """The k best clauses for a query, best first, as Hits with per-mode ranks (a SearchResult)."""
        if mode not in MODES:
            raise AssistantError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        text = prepare_query(query).text
        if k <= 0:
            return SearchResult(mode=mode)
        allowed = self.allowed_rows(filters)
        if allowed is not None and len(allowed) == 0:
            return SearchResult(mode=mode)
        where = Where.of({key: _as_list((filters or {}).get(key), key) for key in FILTER_KEYS}, allowed)
        if mode == "bm25":
            scores, rows = self.backend.bm25_top(text, k, where)
            return SearchResult([Hit(self.clauses[r], float(s), {"bm25": i + 1})
                                 for i, (r, s) in enumerate(zip(rows, scores))], mode=mode)
        if mode == "dense":
            vector = self.encode_query(text)
            scores, rows = self.backend.dense_top(self.search_vector(vector), k, where)
            hits = [Hit(self.clauses[r], float(s), {"dense": i + 1}) for i, (r, s) in enumerate(zip(rows, scores))]
            return SearchResult(hits, mode=mode, dense_similarity=float(scores[0]) if len(scores) else None,
                                query_vector=vector)
        return self._hybrid(text, k, where)

    def _hybrid(self, text: str, k: int, where: Where) -> SearchResult:
        query_vector = self.encode_query(text)
        pool = self.fusion_pool(text, query_vector, max(self.config.candidates, k), where)
        found = pool.candidates
        if len(found.rows) == 0:
            return SearchResult(mode="hybrid", dense_similarity=found.nearest, query_vector=query_vector)
        fused = pool.scores()
        bm25_rank = {int(r): int(n) for r, n in zip(found.rows, found.bm25_ranks) if n}
        dense_rank = {int(r): int(n) for r, n in zip(found.rows, found.dense_ranks) if n}
        order = np.argsort(-fused, kind="stable")[:k]
        hits = [
            Hit(
                self.clauses[int(found.rows[i])],
                float(fused[i]),
                {"hybrid": n + 1, "bm25": bm25_rank.get(int(found.rows[i])), "dense": dense_rank.get(int(found.rows[i]))},
            )
            for n, i in enumerate(order)
        ]
        return SearchResult(hits, mode="hybrid", dense_similarity=found.nearest, query_vector=query_vector)

    def fusion_pool(self, text: str, query_vector: np.ndarray, pool: int, where: Where | None = None) -> FusionPool:
        """The candidates of one hybrid search with every part of their fused score. ``query_vector``
        is the encoded question; the dense search is given it through the query adapter, where one
        applies (:attr:`query_adapter`)."""
        where = where or Where()  # no filters
        found = self.backend.candidates(text, self.search_vector(query_vector), pool, where)
        document = np.zeros(len(found.rows), dtype=np.float32)
        if len(found.rows) and self.doc_lexical is not None and self.config.document_weight:
            doc_scores = self.doc_lexical.scores(text)
            best = float(doc_scores.max()) if len(doc_scores) else 0.0
            if best > 0:
                document = (doc_scores[self._clause_doc_row[found.rows]] / best).astype(np.float32)
        adapter = self.query_adapter
        config = self.config if adapter is None else replace(self.config, dense_weight=adapter.dense_weight)
        return FusionPool(found, self._request_bonus(text, found.rows), document, config)

    @cached_property
    def query_adapter(self) -> QueryAdapter | None:
        """The shipped query adapter if it was fitted on this index's corpus files with its encoder
        (None otherwise, when the config turns it off, or for rank fusion: it was fitted for score fusion)."""
        if not self.config.query_adapter or self.config.fusion != "score":
            return None
        return applicable_model(QUERY_ADAPTER_FILE, QueryAdapter, self.manifest)

    def clause_vectors(self) -> np.ndarray:
        """Every clause's vector, by row (a local index's; fitting the query adapter needs them)."""
        if self.dense is None:
            raise AssistantError(f"the index at {self.index_dir} keeps its vectors in {self.backend.name}; "
                                 "build a local index to fit on it")
        return self.dense.vectors

    def search_vector(self, query_vector: np.ndarray) -> np.ndarray:
        """What the dense search is given for an encoded question: adapted where an adapter applies."""
        adapter = self.query_adapter
        return adapter.apply(query_vector) if adapter is not None else query_vector

    def _request_bonus(self, text: str, rows: np.ndarray) -> np.ndarray:
        """What the question's wording asks for, per candidate row: intent_weight for each kind of
        fact it asks for (罚多少, 谁负责, 什么时候施行 …) that the clause carries, and
        -city_mismatch_penalty for a clause of another city's local notice than the one it names."""
        bonus = np.zeros(len(rows), dtype=np.float32)
        kinds = question_kinds(text)
        cities = cities_named(normalize_query(text))
        if not kinds and not cities:
            return bonus
        for n, row in enumerate(rows):
            clause = self.clauses[int(row)]
            bonus[n] = self.config.intent_weight * sum(bool(kind.sentence.search(clause.text)) for kind in kinds)
            if cities and not clause_fits_cities(clause, cities):
                bonus[n] -= self.config.city_mismatch_penalty
        return bonus

    # --- clauses and context ----------------------------------------------------------------------

    def clause(self, clause_id: str) -> Clause:
        return self.backend.clauses([clause_id])[0]

    def clauses_of(self, doc_id: str) -> list[Clause]:
        """The clauses of one document, in document order."""
        return [self.clauses[r] for r in self._by_doc.get(doc_id, [])]

    def context(self, clause_id: str, *, neighbours: int = 1) -> list[Clause]:
        """The clause with its context, in document order: its parent clauses (whose section path is a
        prefix of its own), the other parts of a split clause, and ``neighbours`` clauses either side."""
        row = self.backend.row_of(clause_id)
        if row is None:
            raise AssistantError(f"no clause {clause_id!r} in the index at {self.index_dir}")
        clause = self.clauses[row]
        rows = self._by_doc[clause.doc_id]
        at = rows.index(row)
        keep = set(rows[max(0, at - neighbours): at + neighbours + 1])
        path = clause.section_path
        for other in rows:
            other_path = self.clauses[other].section_path
            if other_path and len(other_path) < len(path) and path[: len(other_path)] == other_path:
                keep.add(other)  # parent heading / clause
            if other_path == path and self.clauses[other].label == clause.label:
                keep.add(other)  # other parts of a split clause
        return [self.clauses[r] for r in sorted(keep)]


@dataclass(frozen=True)
class FusionPool:
    """One hybrid search's candidates and the parts of their fused score, in candidate order:
    :meth:`scores` is what the search ranks by; the parts are for measuring and fitting
    (``assistant.evaluation.query_adapter`` replaces the cosines while it fits the adapter)."""

    candidates: Candidates
    request_bonus: np.ndarray  # per candidate: +intent_weight per kind of request carried, -city mismatch
    document: np.ndarray  # per candidate: its document's BM25 / the best document's (0 when unused)
    config: SearchConfig

    def scores(self) -> np.ndarray:
        return self.scores_besides_dense() + fuse(
            bm25_scores=np.zeros_like(self.candidates.bm25), dense_scores=self.candidates.dense,
            bm25_ranks=self.candidates.bm25_ranks, dense_ranks=self.candidates.dense_ranks, config=self.config,
            bm25_weight=0.0)

    def scores_besides_dense(self) -> np.ndarray:
        """The fused score without the dense part (BM25, document, request bonus)."""
        found = self.candidates
        bm25 = fuse(bm25_scores=found.bm25, dense_scores=np.zeros_like(found.dense), bm25_ranks=found.bm25_ranks,
                    dense_ranks=found.dense_ranks, config=self.config, dense_weight=0.0)
        return (bm25 + self.request_bonus + self.config.document_weight * self.document).astype(np.float32)


def fuse(*, bm25_scores: np.ndarray, dense_scores: np.ndarray, bm25_ranks: np.ndarray, dense_ranks: np.ndarray,
         config: SearchConfig | None = None, method: str | None = None, bm25_weight: float | None = None,
         dense_weight: float | None = None) -> np.ndarray:
    """Fused score of each candidate from both modes (ranks: 1-based, 0 = not in that mode's top list).

    "score": weighted sum of BM25 / max BM25 and min-max-normalised cosine over the candidates;
    "rrf": weighted reciprocal rank fusion, w / (rrf_k + rank). Explicit arguments override ``config``.
    """
    config = config or SearchConfig()
    method = method or config.fusion
    bm25_weight = config.bm25_weight if bm25_weight is None else bm25_weight
    dense_weight = config.dense_weight if dense_weight is None else dense_weight
    if method == "rrf":
        fused = np.where(bm25_ranks > 0, bm25_weight / (config.rrf_k + bm25_ranks), 0.0)
        fused += np.where(dense_ranks > 0, dense_weight / (config.rrf_k + dense_ranks), 0.0)
        return fused.astype(np.float32)
    top = float(bm25_scores.max()) if len(bm25_scores) else 0.0
    bm25_norm = bm25_scores / top if top > 0 else np.zeros_like(bm25_scores)
    low, high = float(dense_scores.min()), float(dense_scores.max())
    dense_norm = (dense_scores - low) / (high - low) if high > low else np.zeros_like(dense_scores)
    return (bm25_weight * bm25_norm + dense_weight * dense_norm).astype(np.float32)
