"""A quote's citation names the innermost item holding it, on the bundled corpus.

Golden cases read off corpus/004_260f99d2aa0f9dae.txt with `sed -n`: each was cited with the
wrong item before (the label in the comment), plus the item-label function on merged clauses and
a whole-corpus check that reading items from a clause's text gives what the tree knew.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from assistant.chunking import analyse_document, item_label_at, item_labels
from assistant.corpus import load_corpus
from assistant.documents import split_documents
from assistant.lines import clean_lines
from assistant.loaders import read_source_file

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"
FILE_004 = "004_260f99d2aa0f9dae.txt"


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CORPUS_DIR)


def _cite(corpus, sentence: str, *, title: str | None = None, doc_number: str | None = None) -> tuple[str, object]:
    """The item label a quote of ``sentence`` gets, and the clause it is quoted from."""
    found = [
        clause
        for clause in corpus.clauses
        if sentence in clause.text
        and (title is None or clause.doc_title == title)
        and (doc_number is None or clause.doc_number == doc_number)
    ]
    assert len(found) == 1, [(c.clause_id, c.label) for c in found]
    clause = found[0]
    return item_label_at(clause, clause.text.index(sentence)), clause


def test_bold_inline_article_is_its_own_article(corpus):
    # Line 340: "第八条 …有序推进。**第九条** 工业和信息化部发布…" (was cited as 第八条).
    title = "优质中小企业梯度培育管理暂行办法"
    label, clause = _cite(corpus, "工业和信息化部发布并适时更新创新型中小企业评价标准", title=title)
    assert label == clause.label == "第九条"
    assert clause.text.startswith("**第九条** 工业和信息化部发布")  # the markup stays: quotes are verbatim
    assert clause.section_path[-1] == "第九条"
    label, article_8 = _cite(corpus, "优质中小企业评价和认定工作坚持政策引领", title=title)
    assert label == article_8.label == "第八条"
    assert article_8.text.endswith("方式统筹开展、有序推进。")
    assert article_8.line_end == clause.line_start == 340  # the line both start on


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("满分100分,得分在80以上者可以申请最高10万元免反担保创业担保贷款", "附件 1."),
        ("荣誉内容或技术资格与创业项目相关", "附件 2."),  # was 附件 1.
        ("申请人对以上事项提供相应材料", "附件 3."),  # was 附件 1.
        ("此评分表使用期限至2021年12月31日", "附件 4."),  # was 附件 1.
        ("各县(市)可根据当地实际,在把控风险的前提下", "附件 5."),  # was 附件 1.
    ],
)
def test_items_on_one_line_of_an_attachment(corpus, sentence, expected):
    # Line 6053: "1、满分100分,…;2、荣誉内容…;3、…;4、…。5、…" under the 评分表 attachment.
    label, clause = _cite(corpus, sentence, doc_number="安人社就业〔2021〕2号")
    assert label == expected
    assert clause.line_start == clause.line_end == 6053
    assert clause.text in _source_line(6053)  # cut apart, but still the line's own characters


def test_inline_item_after_a_full_stop(corpus):
    # Line 7561: "…加倍计算投放总额。（六）支持外贸融资。…" (was cited as 三、（五）).
    title = "安阳市银行业金融机构信贷投放“百日竞赛”活动方案"
    label, clause = _cite(corpus, "各银行业机构要积极为大宗商品贸易企业积极配置信贷资源", title=title)
    assert label == clause.label == "三、（六）"
    assert clause.section_path == ("三、工作措施", "（六）支持外贸融资")
    label, clause = _cite(corpus, "对竞赛期间新投放（不含续贷和展期）的知识产权质押贷款加倍计算投放总额", title=title)
    assert label == clause.label == "三、（五）"


def test_item_labels_of_merged_items(corpus):
    # 安人社就业〔2021〕2号 一、（三）重点行业创业群体 (eight short items 1.–8.) and （四） merged.
    label, clause = _cite(corpus, "粮油行业。包括：批发、零售等。", doc_number="安人社就业〔2021〕2号")
    assert clause.label == "一、（三）–（四）"
    assert label == "一、（三）2."
    labels = item_labels(clause)
    assert labels[0] == (0, "一、（三）")
    assert [item for _, item in labels] == ["一、（三）", *[f"一、（三）{n}." for n in range(1, 9)], "一、（四）"]
    for offset, item in labels[1:]:
        assert clause.text[offset - 1] == "\n"  # each starts a paragraph of the clause
    assert item_label_at(clause, clause.text.index("各县（市、区）人社部门认定的创业担保贷款信用村信用用户")) == "一、（四）"
    assert item_label_at(clause, 0) == "一、（三）"


def test_item_labels_of_an_article_holding_its_items(corpus):
    title = "鹤壁市地源热泵系统建设应用管理暂行办法"
    label, clause = _cite(corpus, "有相应的注册资本金和设施、设备", title=title)
    assert clause.label == "第二十条"
    assert label == "第二十条（二）"
    assert item_label_at(clause, 0) == "第二十条"  # the article's own lead sentence
    assert [item for _, item in item_labels(clause)][:3] == ["第二十条", "第二十条（一）", "第二十条（二）"]


def test_bare_heading_in_front_of_its_first_item_is_cited_as_itself(corpus):
    # "一、信用评价对象" has lead text, but 三、 of 安金发〔2022〕24号's 方案 opens its first item.
    title = "安阳市银行业金融机构信贷投放“百日竞赛”活动方案"
    label, clause = _cite(corpus, "梳理融资需求。市直相关部门要认真落实银行机构月调度工作机制", title=title)
    assert clause.label == "三、（一）" and clause.text.startswith("三、工作措施\n（一）")
    assert label == "三、（一）"
    assert item_label_at(clause, 0) == "三、"


def test_reading_items_from_the_text_agrees_with_the_tree_on_the_whole_corpus():
    """item_labels works on a clause alone (as loaded from an index); it must give exactly the
    item starts the tree had when it cut the clause."""
    checked = several = 0
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        split = split_documents(read_source_file(path))
        for document, layout in zip(split.documents, split.layouts):
            chunks = analyse_document(document, layout=layout)
            for clause in chunks.clauses:
                expected = chunks.item_starts[clause.clause_id]
                assert item_labels(clause) == expected, (clause.clause_id, clause.label)
                assert expected[0][0] == 0 and all(0 < a < b for (a, _), (b, _) in pairwise(expected[1:]))
                checked += 1
                several += len(expected) > 1
    assert checked > 2000 and several > 300


def test_single_line_clauses_are_verbatim_pieces_of_their_line(corpus):
    """Cutting a line holding several articles or items never adds characters (no newline is put
    where the source had none): such a clause is a substring of its cleaned line."""
    cleaned = {source.name: clean_lines(source.lines) for source in corpus.files}
    for clause in corpus.clauses:
        if clause.line_start == clause.line_end:
            assert clause.text in cleaned[clause.source][clause.line_start - 1].text, clause.clause_id


def _source_line(number: int) -> str:
    return (CORPUS_DIR / FILE_004).read_text(encoding="utf-8").split("\n")[number - 1]
