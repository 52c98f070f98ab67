"""Question analysis shared by retrieval and composition: kinds of request, cities named."""

from __future__ import annotations

import pytest

from assistant.query import INTENT_KINDS, cities_named, fact_kinds, question_kinds
from assistant.text import normalize_query


def _names(question):
    return [kind.name for kind in question_kinds(question)]


@pytest.mark.parametrize(
    "question, expected",
    [
        ("往淇河里直接排没处理的畜禽粪便，罚多少", {"amount", "penalty"}),
        ("郑州市长质量奖评选要走哪些程序", {"procedure"}),
        ("三门峡2022年GDP打算增长多少", {"target"}),
        ("鹤壁国家级传统村落有多少个", {"count"}),
        ("优质中小企业梯度培育办法哪天开始施行", {"effective", "date"}),
        ("公司成立两年能申报郑州市长质量奖吗", {"qualify"}),
        ("郑州企业上了信用红名单有什么好处", {"benefit"}),
    ],
)
def test_question_kinds_name_what_is_asked(question, expected):
    assert expected <= set(_names(question))


def test_a_plain_topic_question_asks_for_no_particular_kind():
    assert _names("地源热泵系统是什么") == []
    # the composer's fact kinds stay the four it was calibrated on
    assert {k.name for k in fact_kinds("往淇河里排畜禽粪便罚多少")} <= {"amount", "date", "unit", "condition"}


def test_clause_patterns_find_the_fact_and_not_an_article_number():
    kinds = {kind.name: kind.sentence for kind in INTENT_KINDS}
    assert kinds["penalty"].search("违反本条例第二十六条规定的，责令改正，处五千元以上罚款")
    assert kinds["effective"].search("本办法自 2022 年 8 月 1 日起实施")
    assert kinds["count"].search("组织国有企业参与设立基金 17 支")
    assert kinds["count"].search("全市共有3家炼钢企业")
    for label in ("第二十六条 禁止向河道排放", "按照第3项办理", "第十二条"):
        assert not kinds["count"].search(label), label


def test_cities_named_uses_short_names_after_normalisation():
    assert cities_named(normalize_query("鄭州小微企業")) == {"郑州"}
    assert cities_named("三门峡市和鹤壁市") == {"三门峡", "鹤壁"}
    assert cities_named("河南省") == set()
