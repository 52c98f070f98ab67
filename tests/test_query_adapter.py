"""The query adapter: a low-rank map added to the encoded question before the dense search, fitted
on dev questions about the bundled corpus, and applied only to an index of that corpus and encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.compose import ABSTENTION_MODEL_FILE
from assistant.evaluation import query_adapter as fitting
from assistant.evaluation.qa import writing_batch
from assistant.learned import QUERY_ADAPTER_FILE, QueryAdapter, load_model
from assistant.retriever import Retriever


def _adapter(model_id="enc@1", corpus=("a" * 64,)) -> QueryAdapter:
    """3-d, rank 1: adds the first coordinate to the second."""
    return QueryAdapter(((1.0,), (0.0,), (0.0,)), ((0.0, 1.0, 0.0),), model_id, corpus, 0.6)


def test_a_query_adapter_adds_its_map_and_normalises():
    adapter = _adapter()
    assert adapter.apply(np.array([1.0, 0.0, 0.0])) == pytest.approx(np.array([1.0, 1.0, 0.0]) / np.sqrt(2))
    assert adapter.apply(np.array([0.0, 0.0, 2.0])) == pytest.approx([0.0, 0.0, 1.0])  # outside its span: only normalised
    batch = adapter.apply(np.eye(3))
    assert batch.shape == (3, 3) and np.linalg.norm(batch, axis=1) == pytest.approx(np.ones(3))
    assert adapter.applies_to("enc@1", ["a" * 64]) and not adapter.applies_to("enc@2", ["a" * 64])
    assert not adapter.applies_to("enc@1", ["a" * 64, "b" * 64])


def test_a_query_adapter_round_trips_and_refuses_bad_parameters():
    adapter = _adapter()
    assert QueryAdapter.from_dict(json.loads(json.dumps(adapter.to_dict()))) == adapter
    with pytest.raises(ValueError, match="4-d vector for a 3-d QueryAdapter"):
        adapter.apply(np.ones(4))
    with pytest.raises(ValueError, match="down \\(d x r\\) and up \\(r x d\\)"):
        QueryAdapter(((1.0,), (0.0,)), ((0.0, 1.0, 0.0),), "enc@1", ("a" * 64,), 0.6)  # 2 x 1 against 1 x 3
    with pytest.raises(ValueError, match="finite"):
        QueryAdapter(((float("nan"),), (0.0,), (0.0,)), ((0.0, 1.0, 0.0),), "enc@1", ("a" * 64,), 0.6)
    with pytest.raises(ValueError, match="dense_weight must be a positive number"):
        QueryAdapter(((1.0,), (0.0,), (0.0,)), ((0.0, 1.0, 0.0),), "enc@1", ("a" * 64,), 0.0)
    with pytest.raises(ValueError, match="encoder and the corpus"):
        _adapter(corpus=())
    with pytest.raises(ValueError, match="not a query adapter"):
        QueryAdapter.from_dict({**adapter.to_dict(), "kind": "logistic"})


def _pools(n=240, dimension=16, candidates=12, seed=0):
    """Questions asked in other words than their clause: the question is its clause's vector with
    coordinate pairs (0,1) … (14,15) swapped, so the raw cosine ranks the clause no better than chance."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n * candidates, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    swap = np.arange(dimension).reshape(-1, 2)[:, ::-1].reshape(-1)
    pools = []
    for i in range(n):
        rows = np.arange(i * candidates, (i + 1) * candidates)
        query = vectors[rows[0]][swap]
        pools.append(fitting.QuestionPool(f"w{i % 4}-{i:03d}", f"f{i % 3}.txt", query, rows,
                                          np.zeros(candidates, np.float32), np.arange(candidates) == 0))
    return pools, vectors


def test_fitting_learns_how_questions_word_their_clauses():
    pools, vectors = _pools()
    before = fitting.ranking_scores(fitting.first_covering_ranks(pools, vectors))
    down, up = fitting.fit_adapter(pools, vectors, rank=8, l2=0.0, epochs=40)
    after = fitting.ranking_scores(fitting.first_covering_ranks(pools, vectors, down, up))
    assert before["mrr@10"] < 0.6 and after["mrr@10"] > 0.9 and after["hit@1"] > before["hit@1"] + 0.3
    # and on questions it was not fitted on (the same wording, other clauses)
    held_out = fitting.held_out_ranks(pools, vectors, np.array([writing_batch(p.id) for p in pools]),
                                      rank=8, l2=0.0, epochs=40)
    assert fitting.ranking_scores(held_out)["mrr@10"] > 0.75  # chance is about 0.26


def test_the_fitted_adapter_is_the_mean_of_each_seeds_map():
    pools, vectors = _pools(n=40)
    down, up = fitting.fit_averaged_adapter(pools, vectors, seeds=(0, 1, 2), epochs=2)
    maps = [d @ u for d, u in (fitting.fit_adapter(pools, vectors, seed=seed, epochs=2) for seed in (0, 1, 2))]
    assert down.shape == (16, 3 * fitting.RANK) and up.shape == (3 * fitting.RANK, 16)
    assert down @ up == pytest.approx(sum(maps) / 3, abs=1e-6)
    assert not np.allclose(maps[0], maps[1])  # the seeds do differ


def test_fit_query_adapter_reports_its_held_out_scores_and_stamps_the_corpus():
    pools, vectors = _pools(n=80)
    adapter, info = fitting.fit_query_adapter(pools, vectors, "enc@1", ["f" * 64, "e" * 64], unadapted_dense_weight=0.3)
    assert adapter.model_id == "enc@1" and adapter.corpus == ("e" * 64, "f" * 64)
    assert adapter.dense_weight == fitting.DENSE_WEIGHT and info["unadapted_dense_weight"] == 0.3
    assert adapter.dimension == 16 and len(adapter.up) == fitting.RANK * len(fitting.SEEDS)
    assert {"pool_order_without_adapter", "held_out_writing_batches", "held_out_corpus_files", "in_sample"} <= set(info)
    assert info["questions"] == 80


def test_the_fused_pool_is_what_the_search_ranks_by(tiny_index):
    retriever = Retriever.load(tiny_index)
    question = "地源热泵系统由哪个部门管理"
    result = retriever.search(question, k=5)
    pool = retriever.fusion_pool(question, retriever.encode_query(question), retriever.config.candidates)
    scores = pool.scores()
    order = pool.candidates.rows[np.argsort(-scores, kind="stable")[:5]]
    assert [retriever.clauses[int(r)].clause_id for r in order] == [hit.clause.clause_id for hit in result]
    assert [hit.score for hit in result] == pytest.approx(sorted(scores.tolist(), reverse=True)[:5], abs=1e-5)


def test_the_retriever_adapts_the_question_only_where_an_adapter_applies(tiny_index):
    retriever = Retriever.load(tiny_index)
    assert retriever.query_adapter is None  # the shipped adapter learned the bundled corpus, not this one
    question = "地源热泵系统由哪个部门管理"
    raw = retriever.encode_query(question)
    assert np.array_equal(retriever.search_vector(raw), raw)
    plain = retriever.search(question, k=7, mode="dense")
    # an adapter that applies here and pulls every question towards the last clause of the plain order
    target = retriever.clause_vectors()[retriever.backend.row_of(plain[-1].clause.clause_id)]
    pull = QueryAdapter(tuple((float(v),) for v in raw), (tuple(float(v) * 10 for v in target),), retriever.model_id,
                        tuple(sorted(retriever.manifest["files"].values())), 0.9)
    assert pull.applies_to(retriever.model_id, retriever.manifest["files"].values())
    retriever.query_adapter = pull
    adapted = retriever.search(question, k=7, mode="dense")
    assert adapted[0].clause.clause_id == plain[-1].clause.clause_id != plain[0].clause.clause_id
    assert np.array_equal(adapted.query_vector, raw)  # what the prior and the sentences read stays the encoder's
    hybrid = {hit.clause.clause_id: hit.ranks for hit in retriever.search(question, k=7)}
    assert hybrid[plain[-1].clause.clause_id]["dense"] == 1  # hybrid searches with it too
    # the fusion weighs the adapted cosine as the adapter was fitted for
    assert retriever.fusion_pool(question, raw, 10).config.dense_weight == 0.9 != retriever.config.dense_weight
    assert retriever.with_config(query_adapter=False).query_adapter is None
    assert retriever.with_config(fusion="rrf").query_adapter is None  # fitted for score fusion


def test_the_search_config_refuses_a_non_boolean_adapter_switch():
    from assistant.retriever import SearchConfig

    with pytest.raises(ValueError, match="query_adapter must be true or false"):
        SearchConfig(query_adapter="yes")
    assert SearchConfig.from_dict({"bm25_weight": 0.7}).query_adapter is True  # an older manifest: on


def test_the_shipped_adapter_applies_to_the_bundled_index_and_was_fitted_with_the_other_models(bundled_retriever):
    adapter = load_model(QUERY_ADAPTER_FILE)
    assert isinstance(adapter, QueryAdapter) and adapter.dimension == 384 and len(adapter.corpus) == 5
    assert bundled_retriever.query_adapter is adapter
    info = adapter.info
    assert info["fitted_on"] == "eval/qa.jsonl"
    assert info["seeds"] == len(fitting.SEEDS) and len(adapter.up) == fitting.RANK * len(fitting.SEEDS)  # averaged
    # kept because it ranks better for writers it was not fitted on
    assert info["held_out_writing_batches"]["mrr@10"] > info["pool_order_without_adapter"]["mrr@10"]
    # one run of learning.py fitted it and the abstention models, on searches made with it
    assert info["fitted"] == load_model(ABSTENTION_MODEL_FILE).info["fitted"]
