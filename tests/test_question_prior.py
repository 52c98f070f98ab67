"""The question prior: a linear model over the encoded question, fitted on dev questions about the
bundled corpus, read by the prior abstention model, and applied only to an index of that corpus
built with that encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.abstention import ABSTENTION_FEATURES, ABSTENTION_PRIOR_FEATURES
from assistant.compose import (
    ABSTENTION_MODEL_FILE,
    PRIOR_ABSTENTION_MODEL_FILE,
    QUESTION_PRIOR_FILE,
    AnswerRequest,
    ExtractiveComposer,
)
from assistant.evaluation.learning import MAX_FALSE_ABSTENTION
from assistant.evaluation.qa import load_qa
from assistant.learned import LogisticModel, QuestionPrior, load_model
from assistant.pipeline import Assistant, applicable_question_prior
from assistant.query import QueryProfile
from assistant.types import SearchResult
from compose_fixtures import HEBI_ART4, HEBI_ART6, hits


def _prior(coef=(0.5, -1.0, 2.0), model_id="enc@1", corpus=("b" * 64, "a" * 64)) -> QuestionPrior:
    return QuestionPrior(tuple(coef), 0.25, model_id, tuple(sorted(corpus)))


def test_a_question_prior_applies_only_to_its_encoder_and_corpus():
    prior = _prior()
    assert prior.applies_to("enc@1", ["a" * 64, "b" * 64])  # any order
    assert not prior.applies_to("enc@2", ["a" * 64, "b" * 64])  # another encoder
    assert not prior.applies_to("enc@1", ["a" * 64])  # a file fewer
    assert not prior.applies_to("enc@1", ["a" * 64, "b" * 64, "c" * 64])  # a file more
    assert prior.logit([1.0, 1.0, 1.0]) == pytest.approx(0.5 - 1.0 + 2.0 + 0.25)


def test_a_question_prior_round_trips_and_refuses_bad_parameters(tmp_path):
    prior = _prior()
    assert QuestionPrior.from_dict(json.loads(json.dumps(prior.to_dict()))) == prior
    with pytest.raises(ValueError, match="3-d QuestionPrior"):
        prior.logit(np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        _prior(coef=(0.5, float("nan")))
    with pytest.raises(ValueError, match="encoder and the corpus"):
        _prior(corpus=())
    (tmp_path / "odd.json").write_text(json.dumps({"kind": "forest"}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model kind 'forest'.*refit it"):
        load_model.__wrapped__("odd.json", tmp_path)


def test_the_shipped_prior_and_its_abstention_model_load_and_match():
    prior, model = load_model(QUESTION_PRIOR_FILE), load_model(PRIOR_ABSTENTION_MODEL_FILE)
    assert isinstance(prior, QuestionPrior) and isinstance(model, LogisticModel)
    assert prior.info["fitted_on"] == model.info["fitted_on"] == "eval/qa.jsonl"  # the dev set only
    assert model.features == ABSTENTION_PRIOR_FEATURES and model.info["nested_cv"] is True
    assert prior.dimension == 384 and len(prior.corpus) == 5  # e5-small, the five bundled files
    # it counts for answering: a higher prior, a higher P(answerable)
    assert model.coef[model.features.index("question_prior")] > 0


def test_the_shipped_abstention_models_were_fitted_on_todays_dev_set_at_todays_budget():
    """A dev question added, or the false-abstention budget moved, without a refit fails here:
    the shipped thresholds would then belong to other data or another rule."""
    dev = load_qa(Path(__file__).parents[1] / "eval" / "qa.jsonl")  # what learning.py fits on
    answerable = sum(item.answerable for item in dev)
    for name in (ABSTENTION_MODEL_FILE, PRIOR_ABSTENTION_MODEL_FILE):
        info = load_model(name).info
        assert (info["answerable"], info["unanswerable"]) == (answerable, len(dev) - answerable), name
        assert info["max_false_abstention"] == MAX_FALSE_ABSTENTION, name
        assert info["held_out_batches_false_abstention_answerable"] <= MAX_FALSE_ABSTENTION, name
    assert load_model(QUESTION_PRIOR_FILE).info["questions"] == len(dev)


def test_the_bundled_index_gets_the_prior_and_an_answer_reads_it(bundled_retriever, monkeypatch):
    assistant = Assistant(bundled_retriever)
    assert assistant.question_prior is load_model(QUESTION_PRIOR_FILE)
    read = []
    reason = assistant.composer.abstention_reason
    monkeypatch.setattr(assistant.composer, "abstention_reason", lambda s: read.append(s) or reason(s))
    answer = assistant.ask("鹤壁地源热泵系统由哪个部门负责管理")
    assert not answer.abstained and "住房和城乡建设局" in answer.text
    assert read and read[0].question_prior is not None
    vector = bundled_retriever.encode_query("鹤壁地源热泵系统由哪个部门负责管理")
    assert read[0].question_prior == pytest.approx(assistant.question_prior.logit(vector), abs=1e-4)


def test_another_corpus_gets_no_prior(tiny_index):
    from assistant.retriever import Retriever

    retriever = Retriever.load(tiny_index)
    assert applicable_question_prior(retriever) is None
    assistant = Assistant(retriever)
    assert assistant.question_prior is None
    assert assistant._question_prior(retriever.search("地源热泵系统由哪个部门负责管理")) is None


def _stub(features, intercept):
    n = len(features)
    return LogisticModel(tuple(features), (0.0,) * n, (1.0,) * n, (0.0,) * n, intercept, 0.5)


def test_the_prior_model_decides_where_the_prior_applies_and_the_general_one_elsewhere():
    from assistant.sentences import SENTENCE_FEATURES

    # the general model answers everything, the prior model refuses everything
    composer = ExtractiveComposer(sentence_model=_stub(SENTENCE_FEATURES, 0.0),
                                  abstention_model=_stub(ABSTENTION_FEATURES, 10.0),
                                  prior_abstention_model=_stub(ABSTENTION_PRIOR_FEATURES, -10.0))
    question = "鹤壁地源热泵系统由哪个部门负责管理"

    def request(prior):
        return AnswerRequest(QueryProfile.of(question), SearchResult(hits(HEBI_ART4, HEBI_ART6), dense_similarity=0.8),
                             similarity=lambda texts: np.zeros(len(texts)), question_prior=prior)

    assert composer.compose(request(1.5)).abstained
    assert not composer.compose(request(None)).abstained
    # without a shipped prior model, the general model decides even where a prior value is given
    composer.prior_abstention_model = None
    assert not composer.compose(request(1.5)).abstained
