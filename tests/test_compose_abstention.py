"""Abstention on the real bundled index: the key-term test as `ask`, the page and eval run it."""

from __future__ import annotations

from assistant.compose import NOT_FOUND, answer_question, compose, retrieval_signals, term_rarity


def test_term_rarity_is_built_once_per_retriever(bundled_retriever):
    rarity = term_rarity(bundled_retriever)
    assert rarity is term_rarity(bundled_retriever)
    assert rarity.document_frequency("网约车") == 0 and rarity.document_frequency("地源热泵") > 0


def test_question_on_a_topic_the_corpus_lacks_abstains(bundled_retriever):
    # 网约车 (ride-hailing) is in no notice; the retrieved clauses share only 郑州/司机/从业/资格.
    answer = answer_question(bundled_retriever, "郑州网约车司机的从业资格证怎么考")
    assert answer.abstained and answer.quotes == [] and answer.text.startswith(NOT_FOUND)


def test_question_the_corpus_answers_is_still_answered(bundled_retriever):
    answer = answer_question(bundled_retriever, "地源热泵系统由哪个部门负责管理")
    assert not answer.abstained and "地源热泵" in answer.quotes[0].doc_title


def test_retrieval_signals_give_other_callers_the_same_decision(bundled_retriever):
    question = "三门峡女职工产假一共有多少天"
    hits = bundled_retriever.search(question, k=10)
    signals = retrieval_signals(bundled_retriever, question)
    assert set(signals) == {"dense_similarity", "term_rarity"}
    assert compose(question, hits, **signals).abstained == answer_question(bundled_retriever, question).abstained
