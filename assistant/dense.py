"""Dense retrieval: FAISS inner product over L2-normalised vectors (= cosine similarity).

Exact search (``IndexFlatIP``) up to ``HNSW_THRESHOLD`` vectors; above it an HNSW graph
(``IndexHNSWFlat``, inner-product metric), whose build cost and recall@10 against exact search
are measured by ``eval/benchmark.py`` (see eval/BENCHMARKS.md for the figures behind the threshold).

>>> index = DenseIndex.build(vectors)                 # (N, d) float32, unit rows
>>> scores, ids = index.search(query_vector, k=10)     # best first; ids are row numbers
>>> scores, ids = index.search(query_vector, k=10, allowed=np.array([3, 7, 9]))   # filtered
>>> index.save(Path("index/default/dense.faiss")); DenseIndex.load(Path(...), vectors)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Exact search up to this many vectors. Measured by eval/benchmark.py (512-d, 1 thread): flat search
# p50 1.9 ms at 25k and 18.9 ms at 250k vectors, while HNSW (M=32, efSearch=128) answered in 0.4-0.7 ms
# but took 61 s to build at 250k and reached only recall@10 0.795 there (0.994 at 25k). Flat stays
# well inside the 150 ms hybrid budget until about a million vectors (~75 ms), so only then is an
# approximate index worth its lost recall.
HNSW_THRESHOLD = 1_000_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def _single_thread_search() -> None:
    """One query vector at a time: FAISS's OpenMP threads only add overhead, and on a busy 2-core
    machine spinning threads made a 25k-vector flat search 21 ms instead of 2.5 ms."""
    import faiss

    faiss.omp_set_num_threads(1)


class _Storage:
    """Keeps a FAISS index alive for as long as a numpy view of its vectors is (the view's base)."""

    def __init__(self, index, view: np.ndarray):
        self.index = index
        self.__array_interface__ = view.__array_interface__


def _flat_storage(index, rows: int, dimension: int) -> np.ndarray:
    """The (rows, dimension) float32 vectors an exact FAISS index holds, as a writable numpy view."""
    import faiss

    if rows == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    view = faiss.rev_swig_ptr(index.get_xb(), rows * dimension).reshape(rows, dimension)
    return np.asarray(_Storage(index, view))


class DenseIndex:
    def __init__(self, index, vectors: np.ndarray):
        self.index = index
        # kept for exact filtered search and for cache reuse; for an exact index this is a view of
        # FAISS's own storage, so the vectors are held once
        self.vectors = vectors

    @property
    def kind(self) -> str:
        return "hnsw" if "HNSW" in type(self.index).__name__ else "flat"

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def build(cls, vectors: np.ndarray, *, kind: str | None = None) -> DenseIndex:
        """Flat index below HNSW_THRESHOLD vectors, HNSW above (or force ``kind='flat'|'hnsw'``)."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dimension = vectors.shape[1]
        kind = kind or ("hnsw" if len(vectors) > HNSW_THRESHOLD else "flat")
        if kind == "hnsw":
            from assistant.embedding import encoder_threads

            index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
            faiss.omp_set_num_threads(encoder_threads())  # building the graph does use threads well
        else:
            flat = cls.flat(len(vectors), dimension)
            flat.vectors[:] = vectors  # what index.add does for a flat index, without a second copy kept
            return flat
        if len(vectors):
            index.add(vectors)
        _single_thread_search()
        return cls(index, vectors)

    @classmethod
    def flat(cls, rows: int, dimension: int) -> DenseIndex:
        """An exact index of ``rows`` vectors, all zero until the caller fills ``.vectors`` (a
        writable view of FAISS's own storage: fill it in place, e.g. straight from a file)."""
        import faiss

        index = faiss.IndexFlatIP(dimension)
        if rows:
            try:
                index.codes.resize(rows * dimension * 4)  # float32 codes, uninitialised until filled
                index.ntotal = rows
            except AttributeError:  # a FAISS whose codes vector is not exposed to Python
                index.add(np.zeros((rows, dimension), dtype=np.float32))
        _single_thread_search()
        return cls(index, _flat_storage(index, rows, dimension))

    def search(self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row ids) for one query vector, best first; ``allowed`` restricts to those rows."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if allowed is not None:
            # A filter leaves few rows: scoring them exactly is both faster and exact.
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(allowed) == 0:
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            scores = self.vectors[allowed] @ query[0]
            top = np.argsort(-scores, kind="stable")[:k]
            return scores[top], allowed[top]
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores, ids = self.index.search(query, k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep].astype(np.int64)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, vectors: np.ndarray) -> DenseIndex:
        import faiss

        index = faiss.read_index(str(path))
        if index.ntotal != len(vectors):
            raise ValueError(f"FAISS index holds {index.ntotal} vectors, expected {len(vectors)}")
        if "HNSW" in type(index).__name__:
            faiss.downcast_index(index).hnsw.efSearch = HNSW_EF_SEARCH
        _single_thread_search()
        return cls(index, vectors)
