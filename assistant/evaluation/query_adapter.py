"""Fit the query adapter (:class:`assistant.learned.QueryAdapter`) on the DEV set.

    python -m assistant.evaluation.learning --index index/default    # fits it first, then the other models

The adapter is a map added to the encoded question before the dense search (the mean of the
rank-``RANK`` maps fitted from each of ``SEEDS``), with the dense weight of the fusion it was fitted
for (``DENSE_WEIGHT``). It is fitted on the hybrid fusion itself: for each answerable dev question,
the candidate pool of one search without the adapter (BM25, document and request parts fixed, the
cosines recomputed from the adapted question), with a softmax over the pool whose target is the
candidates that cover the question's evidence. L2 on the map keeps it close to the encoder's own
geometry.

How well it does is read on questions from writers it was not fitted on: one fit per writing batch
(the id prefix) without that batch, scored on it, against the fusion without the adapter. A second
figure holds out whole corpus files: what it does for questions about notices no dev question asked
about (it learned these notices, so expect nothing there).

>>> pools = collect_pools(retriever.with_config(query_adapter=False), items)
>>> adapter, info = fit_query_adapter(pools, retriever.clause_vectors(), model_id, corpus,
...                                   unadapted_dense_weight=retriever.config.dense_weight)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.evaluation.metrics import EvidenceMatcher
from assistant.evaluation.qa import writing_batch
from assistant.learned import QueryAdapter
from assistant.retriever import prepare_query

# Chosen on dev by the held-out scores below (eval/README.md, "Query adapter"): ranks 4-32 and
# L2 0.03-0.3 all gained about 0.01 MRR on held-out writers; L2 below 0.1 cost MRR on held-out files.
# Searches that adapt the question weigh its cosine this much in the fusion (the index's config
# weighs it 0.3): adapted, the cosine is worth more (held-out writers: MRR 0.896 at 0.3, 0.906-0.908
# at 0.6, 0.911 at 0.8; held-out files 0.884 / 0.881-0.885 / 0.880-0.882).
DENSE_WEIGHT = 0.6
RANK = 8
L2 = 0.1
EPOCHS = 3
TEMPERATURE = 0.05  # of the softmax over fused scores (they span about 0-1.5)
LEARNING_RATE = 3e-3
BATCH = 32
SEED = 0
# The adapter shipped (and each held-out fold's) is the mean of the maps fitted from these seeds:
# one seed's fit varies with the seed more than the choices above do (eval/README.md, "Query adapter").
SEEDS = (0, 1, 2, 3, 4)


@dataclass
class QuestionPool:
    """One answerable dev question's candidate pool, as the fit needs it."""

    id: str
    source_file: str
    query_vector: np.ndarray  # (d,) the encoded question, not adapted
    rows: np.ndarray  # (P,) candidate clause rows
    besides_dense: np.ndarray  # (P,) fused score without the dense part
    covers: np.ndarray  # (P,) bool: the candidate covers the question's evidence


def collect_pools(retriever, items) -> list[QuestionPool]:
    """The pool of each answerable question that has a covering candidate (``retriever`` must not
    adapt: pass ``retriever.with_config(query_adapter=False)``)."""
    if retriever.query_adapter is not None:
        raise ValueError("collect the pools without the adapter: retriever.with_config(query_adapter=False)")
    if retriever.config.fusion != "score":
        raise ValueError("the query adapter is fitted for score fusion, not rrf")
    pools = []
    for item in items:
        if not item.answerable:
            continue
        text = prepare_query(item.question).text
        vector = retriever.encode_query(text)
        pool = retriever.fusion_pool(text, vector, retriever.config.candidates)
        rows = pool.candidates.rows
        matchers = [EvidenceMatcher(e) for e in item.evidence]
        covers = np.array([any(m.covered_by(retriever.clauses[int(r)].text) for m in matchers) for r in rows], dtype=bool)
        if covers.any():
            pools.append(QuestionPool(item.id, item.source_file or "", np.asarray(vector, np.float32), rows,
                                      pool.scores_besides_dense(), covers))
    return pools


def _padded(pools: list[QuestionPool]):
    import torch

    width = max(len(p.rows) for p in pools)
    n = len(pools)
    rows = np.zeros((n, width), np.int64)
    fixed = np.zeros((n, width), np.float32)
    valid = np.zeros((n, width), bool)
    covers = np.zeros((n, width), bool)
    for i, p in enumerate(pools):
        m = len(p.rows)
        rows[i, :m], fixed[i, :m], valid[i, :m], covers[i, :m] = p.rows, p.besides_dense, True, p.covers
    queries = np.stack([p.query_vector for p in pools])
    return (torch.from_numpy(queries), torch.from_numpy(rows), torch.from_numpy(fixed), torch.from_numpy(valid),
            torch.from_numpy(covers))


def _fused(vectors, queries, rows, fixed, valid, dense_weight: float, down=None, up=None):
    """The fused score of every candidate with the (adapted) questions: torch, differentiable."""
    import torch

    if down is not None:
        queries = queries + (queries @ down) @ up
        queries = queries / queries.norm(dim=1, keepdim=True)
    cosines = torch.einsum("bpd,bd->bp", vectors[rows], queries)
    high = cosines.masked_fill(~valid, -np.inf).max(dim=1, keepdim=True).values
    low = cosines.masked_fill(~valid, np.inf).min(dim=1, keepdim=True).values
    spread = high - low
    dense = torch.where(spread > 0, (cosines - low) / spread.clamp_min(1e-12), torch.zeros_like(cosines))
    return (fixed + dense_weight * dense).masked_fill(~valid, -np.inf)


def fit_adapter(pools: list[QuestionPool], vectors: np.ndarray, *, dense_weight: float = DENSE_WEIGHT, rank: int = RANK,
                l2: float = L2, epochs: int = EPOCHS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) of the adapter fitted on these pools (``vectors``: every clause's vector, by row)
    for a fusion that weighs the dense part ``dense_weight``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    clause_vectors = torch.from_numpy(np.asarray(vectors, np.float32))
    queries, rows, fixed, valid, covers = _padded(pools)
    dimension = queries.shape[1]
    down = (torch.randn(dimension, rank, generator=generator) * 0.01).requires_grad_()
    up = torch.zeros(rank, dimension, requires_grad=True)
    optimiser = torch.optim.Adam([down, up], lr=LEARNING_RATE)
    for _ in range(epochs):
        order = torch.randperm(len(pools), generator=generator)
        for start in range(0, len(pools), BATCH):
            batch = order[start:start + BATCH]
            fused = _fused(clause_vectors, queries[batch], rows[batch], fixed[batch], valid[batch], dense_weight, down, up)
            fused = fused / TEMPERATURE
            target = torch.logsumexp(fused.masked_fill(~covers[batch], -np.inf), dim=1)
            loss = (torch.logsumexp(fused, dim=1) - target).mean() + l2 * ((down @ up) ** 2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return down.detach().numpy(), up.detach().numpy()


def fit_averaged_adapter(pools: list[QuestionPool], vectors: np.ndarray, *, seeds=SEEDS, rank: int = RANK,
                         **fit) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) whose map ``down @ up`` is the mean of the maps :func:`fit_adapter` fits from each
    seed: rank ``rank`` x len(seeds)."""
    maps = [fit_adapter(pools, vectors, rank=rank, seed=seed, **fit) for seed in seeds]
    return (np.concatenate([down for down, _ in maps], axis=1) / len(maps),
            np.concatenate([up for _, up in maps], axis=0))


def first_covering_ranks(pools: list[QuestionPool], vectors: np.ndarray, down=None, up=None, *,
                         dense_weight: float = DENSE_WEIGHT) -> np.ndarray:
    """Per pool: the 1-based rank of the first covering candidate in the fused order, 0 if below 10."""
    import torch

    queries, rows, fixed, valid, covers = _padded(pools)
    with torch.no_grad():
        fused = _fused(torch.from_numpy(np.asarray(vectors, np.float32)), queries, rows, fixed, valid,
                       dense_weight, None if down is None else torch.from_numpy(down),
                       None if up is None else torch.from_numpy(up)).numpy()
    ranks = np.zeros(len(pools), np.int64)
    for i in range(len(pools)):
        order = np.argsort(-fused[i], kind="stable")[:10]
        hit = np.flatnonzero(covers[i].numpy()[order])
        ranks[i] = hit[0] + 1 if len(hit) else 0
    return ranks


def ranking_scores(ranks: np.ndarray) -> dict[str, float]:
    found = ranks > 0
    return {"hit@1": round(float((ranks == 1).mean()), 3), "hit@5": round(float((found & (ranks <= 5)).mean()), 3),
            "mrr@10": round(float(np.where(found, 1.0 / np.maximum(ranks, 1), 0.0).mean()), 3)}


def held_out_ranks(pools: list[QuestionPool], vectors: np.ndarray, groups: np.ndarray, *,
                   dense_weight: float = DENSE_WEIGHT, **fit) -> np.ndarray:
    """Each pool's rank under an adapter fitted (as shipped: averaged over the seeds) without its group."""
    ranks = np.zeros(len(pools), np.int64)
    for group in np.unique(groups):
        test = np.flatnonzero(groups == group)
        train = [pools[i] for i in np.flatnonzero(groups != group)]
        down, up = fit_averaged_adapter(train, vectors, dense_weight=dense_weight, **fit)
        ranks[test] = first_covering_ranks([pools[i] for i in test], vectors, down, up, dense_weight=dense_weight)
    return ranks


def fit_query_adapter(pools: list[QuestionPool], vectors: np.ndarray, model_id: str, corpus, *,
                      unadapted_dense_weight: float) -> tuple[QueryAdapter, dict]:
    """The adapter fitted on every pool, with its held-out scores (by writing batch and by file)
    against the search without it (``unadapted_dense_weight``: the index's own dense weight)."""
    batches = np.array([writing_batch(p.id) for p in pools])
    files = np.array([p.source_file for p in pools])
    without = first_covering_ranks(pools, vectors, dense_weight=unadapted_dense_weight)
    by_batch = held_out_ranks(pools, vectors, batches)
    by_file = held_out_ranks(pools, vectors, files)
    down, up = fit_averaged_adapter(pools, vectors)
    info = {"rank": RANK, "seeds": len(SEEDS), "l2": L2, "unadapted_dense_weight": unadapted_dense_weight, "epochs": EPOCHS, "temperature": TEMPERATURE, "questions": len(pools),
            "pool_order_without_adapter": ranking_scores(without),
            "held_out_writing_batches": ranking_scores(by_batch),
            "held_out_corpus_files": ranking_scores(by_file),
            "in_sample": ranking_scores(first_covering_ranks(pools, vectors, down, up))}
    adapter = QueryAdapter(tuple(tuple(round(float(v), 6) for v in row) for row in down),
                           tuple(tuple(round(float(v), 6) for v in row) for row in up),
                           model_id, tuple(sorted(corpus)), DENSE_WEIGHT, info)
    return adapter, info
