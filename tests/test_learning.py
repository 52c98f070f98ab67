"""Fitting the learned decisions (assistant/evaluation/learning.py) on synthetic questions: no index."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.abstention import ABSTENTION_PRIOR_FEATURES, AbstentionSignals
from assistant.evaluation import learning


def _questions(n=300, seed=0):
    """Questions whose answerability shows in vector dimension 0 and, more weakly, in coverage."""
    rng = np.random.default_rng(seed)
    answerable = rng.random(n) < 0.6
    vectors = rng.normal(size=(n, 8))
    vectors[:, 0] += np.where(answerable, 1.5, -1.5)
    coverage = np.clip(rng.normal(np.where(answerable, 0.7, 0.5), 0.2), 0, 1)
    questions = [{"id": f"w{i % 4}-{i:03d}", "answerable": bool(a), "query_vector": v, "index": i}
                 for i, (a, v) in enumerate(zip(answerable, vectors))]
    signals = [AbstentionSignals(coverage=float(c), relevance=float(c), top_score=1.0, modes_agree=True,
                                 dense_similarity=0.8, best_sentence=0.5) for c in coverage]
    return questions, signals


def test_the_question_prior_learns_what_the_vectors_say_and_is_stamped():
    questions, _ = _questions()
    prior, oof, info = learning.fit_question_prior(questions, "enc@1", ["f" * 64, "e" * 64])
    assert prior.model_id == "enc@1" and prior.corpus == ("e" * 64, "f" * 64) and prior.dimension == 8
    assert info["C"] in learning.PRIOR_C_GRID and set(info["cv_auc_by_C"]) == {str(c) for c in learning.PRIOR_C_GRID}
    assert max(info["cv_auc_by_C"].values()) > 0.9
    assert abs(prior.coef[0]) == max(abs(c) for c in prior.coef) and prior.coef[0] > 0  # the dimension that tells
    y = np.array([q["answerable"] for q in questions])
    assert oof.shape == (len(questions),) and (oof[y] > 0).mean() > 0.8 and (oof[~y] < 0).mean() > 0.8


def test_the_prior_abstention_model_reads_the_prior_and_reports_a_nested_cv():
    questions, signals = _questions()
    prior, oof, _ = learning.fit_question_prior(questions, "enc@1", ["f" * 64])
    model, info = learning.fit_prior_abstention_model(questions, signals, prior, oof)
    assert model.features == ABSTENTION_PRIOR_FEATURES and info["nested_cv"] is True
    assert model.coef[model.features.index("question_prior")] > 0
    ua, fa = info["cv_abstention_unanswerable"], info["cv_false_abstention_answerable"]
    assert len(ua) == len(fa) == 5 and min(ua) > 0.5  # the prior separates these questions well
    assert max(fa) <= 0.15  # thresholds chosen for <= 4 % on each training part hold roughly out of fold
    # the general model on the same questions, without the prior, refuses fewer
    general, general_info = learning.fit_abstention_model(questions, signals)
    assert "question_prior" not in general.features
    assert np.mean(general_info["cv_abstention_unanswerable"]) < np.mean(ua)


def test_the_threshold_is_read_on_questions_from_writing_batches_the_model_did_not_see():
    questions, signals = _questions()
    assert list(learning.writing_batches(questions[:5])) == ["w0", "w1", "w2", "w3", "w0"]
    model, info = learning.fit_abstention_model(questions, signals)
    assert info["threshold_from"] == "writing batches held out" and model.threshold == pytest.approx(info["threshold"], abs=1e-4)
    assert info["held_out_batches_false_abstention_answerable"] <= learning.MAX_FALSE_ABSTENTION
    # each batch is held out once, and never in its own training part
    X = np.arange(12, dtype=float).reshape(-1, 1)
    y = np.array([False] * 6 + [True] * 6)
    seen = []

    def matrices(train, test):
        seen.append((train.copy(), test.copy()))
        return X[train], X[test]

    learning._held_out_batches(matrices, y, np.array(["a", "b", "c"] * 4), 1.0)
    assert len(seen) == 3 and all(not (train & test).any() and (train | test).all() for train, test in seen)


def test_learning_refuses_the_blind_test_set(capsys):
    assert learning.main(["--qa", "eval/qa_test.jsonl"]) == 2
    assert "refusing to fit on the blind test set" in capsys.readouterr().err


@pytest.mark.parametrize("limit", [0.0, 0.04])
def test_the_threshold_keeps_false_abstention_within_its_limit(limit):
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.6
    p = np.clip(rng.normal(np.where(y, 0.7, 0.4), 0.15), 0, 1)
    t = learning._best_threshold(p, y, limit)
    assert (p[y] < t).mean() <= limit
