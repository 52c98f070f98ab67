"""Abstention on the real bundled index, as `ask`, the page and eval run it (through the Assistant)."""

from __future__ import annotations

import pytest

from assistant.pipeline import Assistant
from assistant.render import NOT_FOUND


@pytest.fixture(scope="module")
def assistant(bundled_retriever):
    return Assistant(bundled_retriever)


def test_term_rarity_is_built_once_per_assistant(assistant):
    rarity = assistant.term_rarity
    assert rarity.document_frequency("网约车") == 0 and rarity.document_frequency("地源热泵") > 0


def test_question_on_a_topic_the_corpus_lacks_abstains(assistant):
    # 网约车 (ride-hailing) is in no notice; the retrieved clauses share only 郑州/司机/从业/资格.
    answer = assistant.ask("郑州网约车司机的从业资格证怎么考")
    assert answer.abstained and answer.quotes == [] and answer.text.startswith(NOT_FOUND)


def test_question_the_corpus_answers_is_still_answered(assistant):
    answer = assistant.ask("地源热泵系统由哪个部门负责管理")
    assert not answer.abstained and "地源热泵" in answer.quotes[0].doc_title


def test_one_search_per_answer(assistant, monkeypatch):
    calls = []
    search = assistant.retriever.search
    monkeypatch.setattr(assistant.retriever, "search", lambda *a, **kw: calls.append(a) or search(*a, **kw))
    answer = assistant.ask("三门峡女职工产假一共有多少天")
    assert len(calls) == 1
    assert answer.abstained == assistant.answer("三门峡女职工产假一共有多少天", search("三门峡女职工产假一共有多少天")).abstained


def test_the_composer_reads_the_question_with_the_index_dictionary(assistant):
    # 浚县古城 is in the index's corpus dictionary (a quoted name in file 001) but not in jieba's own.
    terms = assistant.profile("浚县古城保护得怎么样").terms
    assert "浚县古城" in terms
