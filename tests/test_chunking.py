"""Clause rules on snippets copied from the corpus: one test per PDF pathology, plus sizes and ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chunking import (
    CHUNKER_VERSION,
    DEFAULT_MAX_CHARS,
    DEFAULT_MIN_CHARS,
    analyse_document,
    chunk_document,
    item_labels,
    parse_heading,
)
from assistant.corpus import load_corpus
from assistant.documents import split_documents
from assistant.types import SourceFile

MEASURE_HEADER = [
    "— 1 — 鹤壁市地源热泵系统建设应用管理暂行办法",
    "第一章 总则",
    "第一条 为规范地源热泵系统建设及应用管理，进一步优化我市能源结构，提高能源利用效率，制定本办法。",
]


def _clauses(lines: list[str], **sizes):
    split = split_documents(SourceFile(name="snippet.txt", lines=tuple(lines), sha256="x"))
    assert len(split.documents) == 1, [d.title for d in split.documents]
    return chunk_document(split.documents[0], **sizes)


def _analysis(lines: list[str], **sizes):
    split = split_documents(SourceFile(name="snippet.txt", lines=tuple(lines), sha256="x"))
    return analyse_document(split.documents[0], **sizes)


def test_page_marker_before_title_and_in_text():
    clauses = _clauses([*MEASURE_HEADER, "第二条 本办法所称地源热泵系统是指以岩土体、地下水为低温热源的供热制冷系统。— 2 —", "- 3 -"])
    assert clauses[0].doc_title == "鹤壁市地源热泵系统建设应用管理暂行办法"
    assert [c.label for c in clauses] == ["第一条", "第二条"]
    assert clauses[1].text.endswith("供热制冷系统。")
    assert clauses[0].section_path == ("第一章 总则", "第一条")


def test_several_articles_on_one_line_are_split():
    lines = [
        *MEASURE_HEADER,
        "第十一条 应用地源热泵系统建设项目的建设单位，应当履行以下有关要求：",
        "（一）建设项目应符合《鹤壁市地源热泵应用专项规划》；",
        "（二）与供热特许经营企业签订安装和经营管理协议。第十二条 地源热泵系统勘察、设计、施工、监理应当通过招标委托具有相应资质的单位进行。",
        "热源井的设计、施工应当符合现行国家标准《供水管井技术规范》的规定。",
    ]
    analysis = _analysis(lines)
    clauses = analysis.clauses
    assert [c.label for c in clauses] == ["第一条", "第十一条", "第十二条"]
    article_11, article_12 = clauses[1], clauses[2]
    assert article_11.text.endswith("签订安装和经营管理协议。")
    assert article_12.text.startswith("第十二条 地源热泵系统勘察")
    assert article_12.text.endswith("《供水管井技术规范》的规定。")
    # The shared line 6 is owned by 第十一条 (its first character is there); 第十二条 starts on it too.
    assert article_11.line_end == article_12.line_start == 6
    assert analysis.line_roles[6] == f"clause:{article_11.clause_id}"
    assert analysis.line_roles[7] == f"clause:{article_12.clause_id}"


def test_cross_references_are_not_headings():
    assert parse_heading("第十二条规定的情形") is None
    assert parse_heading("第五条、第六条所列事项") is None
    lines = [
        *MEASURE_HEADER,
        "第二条 违反本办法规定的，依照本办法",
        "第十二条规定处理；按照第三条第二款执行。根据前款规定，第五条、第六条所列单位",
        "第五条、第六条所列事项由市住房和城乡建设局负责。",
        "第三条 本办法自发布之日起施行。",
    ]
    clauses = _clauses(lines)
    assert [c.label for c in clauses] == ["第一条", "第二条", "第三条"]
    assert "依照本办法第十二条规定处理" in clauses[1].text
    assert "第五条、第六条所列事项由" in clauses[1].text


def test_wrapped_lines_are_rejoined():
    lines = [
        "郑州市市长质量奖管理办法",
        "第一章 总 则",
        "第五条 市长质量奖的奖金和评审经费列",
        "",
        "入市财政预算,实行专款专用。",
        "第六条 建立与郑州市质量发展相适应的市长质量奖评定与推广一体化机制。",
    ]
    clauses = _clauses(lines)
    assert clauses[0].text == "第五条 市长质量奖的奖金和评审经费列入市财政预算,实行专款专用。"
    assert (clauses[0].line_start, clauses[0].line_end) == (3, 5)


def test_line_broken_at_a_page_end_is_rejoined_without_its_page_number():
    lines = [
        "鹤壁市人民政府办公室",
        "关于开展资源产出率统计工作的通知",
        "各县区人民政府、开发区管委会，市发改委、市统计局：",
        "一、试点工作的目标和范围",
        "（一）工作目标。通过主要资源实物消费量统计调查试点，探索地区层面资源产出率指标的统计核算方 1",
        "法，为进一步完善循环经济统计评价指标体系奠定基础。",
        "— 2 —",
        "（二）工作范围。全市各县区。",
    ]
    clauses = _clauses(lines)
    assert clauses[1].text == (
        "一、试点工作的目标和范围\n（一）工作目标。通过主要资源实物消费量统计调查试点，"
        "探索地区层面资源产出率指标的统计核算方法，为进一步完善循环经济统计评价指标体系奠定基础。\n（二）工作范围。全市各县区。"
    )
    assert (clauses[1].line_start, clauses[1].line_end) == (4, 8)


def test_notice_hierarchy_and_bare_headings_live_in_the_path():
    body = "完善资金保障机制，" * 30
    lines = [
        "鹤壁市人民政府",
        "关于在全市开展企业服务年活动的实施意见",
        "各县区人民政府，市人民政府各部门：",
        "为优化发展环境，解决企业经营困难，现提出如下意见。",
        "一、工作重点",
        "（一）加强银企沟通，缓解企业资金矛盾",
        f"建立资金保障机制。{body}。",
        "（二）抓好各项优惠政策落实，支持企业发展",
        f"加大对企业的政策支持力度。{body}。",
    ]
    analysis = _analysis(lines, max_chars=400)
    labels = [(c.label, c.section_path, c.part) for c in analysis.clauses]
    assert labels[0] == ("正文", (), 0)
    assert labels[1][:2] == ("一、（一）", ("一、工作重点", "（一）加强银企沟通，缓解企业资金矛盾"))
    # The bare heading 一、工作重点 is never a chunk alone: it opens the text of its first item.
    first = analysis.clauses[1]
    assert first.text.startswith("一、工作重点\n（一）加强银企沟通，缓解企业资金矛盾\n建立资金保障机制。")
    assert analysis.line_roles[5] == f"clause:{first.clause_id}"
    assert not analysis.clauses[2].text.startswith("一、")
    assert all(len(c.text) <= 400 + len("一、工作重点\n") for c in analysis.clauses)


def test_short_items_stay_with_their_article():
    lines = [
        *MEASURE_HEADER,
        "第二十条 取得集中供热特许经营权必须具备以下条件：",
        "（一）依法注册的企业法人；",
        "（二）有相应的注册资本金和设施、设备；",
        "（三）法律法规规章规定的其他条件。",
    ]
    clauses = _clauses(lines)
    assert [c.label for c in clauses] == ["第一条", "第二十条"]
    assert clauses[1].text.count("\n") == 3


def test_long_clause_is_split_at_sentence_ends_keeping_label_and_path():
    sentence = "各银行业金融机构要积极争取扩大我市信贷投放额度，加大对中小企业的贷款支持。"
    lines = [*MEASURE_HEADER, "第二条 " + sentence * 30]
    clauses = _clauses(lines, min_chars=40, max_chars=300)
    parts = [c for c in clauses if c.label == "第二条"]
    assert len(parts) >= 4
    assert [c.part for c in parts] == list(range(1, len(parts) + 1))
    assert all(c.section_path == ("第一章 总则", "第二条") for c in parts)
    assert all(len(c.text) <= 300 and c.text.endswith("。") for c in parts)
    assert "".join(c.text for c in parts) == "第二条 " + sentence * 30


def test_index_text_carries_title_and_path_but_text_is_original():
    clauses = _clauses(MEASURE_HEADER)
    clause = clauses[0]
    assert clause.text == MEASURE_HEADER[2]
    assert clause.index_text.startswith("鹤壁市地源热泵系统建设应用管理暂行办法\n第一章 总则 › 第一条\n")
    assert clause.index_text.endswith(clause.text)


def test_size_bounds_are_parameters_and_ids_are_stable():
    corpus_dir = Path(__file__).resolve().parent.parent / "corpus"
    small = load_corpus(corpus_dir, min_chars=20, max_chars=200)
    large = load_corpus(corpus_dir, min_chars=60, max_chars=800)
    assert len(small.clauses) > len(large.clauses)
    assert max(len(c.text) for c in small.clauses) < max(len(c.text) for c in large.clauses)
    again = load_corpus(corpus_dir, min_chars=20, max_chars=200)
    assert [c.clause_id for c in again.clauses] == [c.clause_id for c in small.clauses]
    assert CHUNKER_VERSION


def test_running_header_inside_a_document_is_noise():
    lines = [
        *MEASURE_HEADER,
        "第二条 本办法所称地源热泵系统是指以岩土体、地下水为低温热源，",
        "三门峡市人民政府公报2022年第6号",
        "由水源热泵机组组成的供热制冷系统。",
    ]
    analysis = _analysis(lines)
    assert analysis.line_roles[5] == "running_header"
    assert analysis.clauses[1].text == "第二条 本办法所称地源热泵系统是指以岩土体、地下水为低温热源，由水源热泵机组组成的供热制冷系统。"


def test_bold_article_label_inside_a_line_starts_the_article():
    lines = [
        *MEASURE_HEADER,
        "第二条 评价和认定工作坚持政策引领、企业自愿的原则，统筹开展、有序推进。**第三条** 工业和信息化部发布评价标准。",
    ]
    clauses = _clauses(lines)
    assert [c.label for c in clauses] == ["第一条", "第二条", "第三条"]
    assert clauses[1].text.endswith("有序推进。")
    assert clauses[2].text == "**第三条** 工业和信息化部发布评价标准。"  # the original characters
    assert parse_heading("**第三条** 工业和信息化部").label == "第三条"
    assert parse_heading("**要加大乡村企业上市挂牌培育力度。**充分") is None


def test_items_on_one_line_are_cut_apart_and_keep_their_characters():
    lines = [
        "鹤壁市人民政府",
        "关于在全市开展企业服务年活动的实施意见",
        "各县区人民政府，市人民政府各部门：",
        "一、工作措施",
        "（一）梳理融资需求。市直相关部门要认真落实银行机构月调度工作机制，定期汇总分管领域项目和企业融资需求，及时向银行机构推送。",
        (
            "（二）助力科技创新。鼓励各银行机构积极申报合作机构，参与“专精特新贷”业务，扩大信贷投放，促进科技创新型企业高质量发展。"
            "（三）支持外贸融资。各银行业机构要积极为大宗商品贸易企业配置信贷资源，加大信贷投放，提供外贸融资支持。"
        ),
        "二、附则",
        "1、满分100分,得分在80以上者可以申请贷款;2、荣誉内容相关;3、提供相应材料。",
    ]
    analysis = _analysis(lines, max_chars=150)
    labels = [c.label for c in analysis.clauses]
    assert labels[1:4] == ["一、（一）", "一、（二）", "一、（三）"]
    assert analysis.clauses[3].text.startswith("（三）支持外贸融资。")
    assert analysis.clauses[2].line_end == analysis.clauses[3].line_start == 6
    assert analysis.line_roles[6] == f"clause:{analysis.clauses[2].clause_id}"
    # The short items 1、2、3、 merge back into one clause: joined by what stood between them.
    last = analysis.clauses[-1]
    assert last.text == "二、附则\n" + lines[-1]
    assert item_labels(last) == [(0, "二、"), (5, "二、1."), (5 + lines[-1].index("2、"), "二、2."), (5 + lines[-1].index("3、"), "二、3.")]
    assert analysis.repairs["inline_item_split"] == 3


def test_a_list_not_continuing_a_sequence_is_not_cut():
    lines = [*MEASURE_HEADER, "第二条 申报材料包括：1. 申请表；2. 营业执照；（三）其他材料。第五条规定的除外。"]
    clauses = _clauses(lines)
    assert [c.label for c in clauses] == ["第一条", "第二条"]
    assert clauses[1].text == lines[-1]


def test_layout_from_the_split_is_what_chunking_uses():
    lines = [*MEASURE_HEADER, "第二条 本办法自发布之日起施行。"]
    split = split_documents(SourceFile(name="snippet.txt", lines=tuple(lines), sha256="x"))
    (document,), (layout,) = split.documents, split.layouts
    assert (layout.title_start, layout.title_end, layout.header_end) == (0, 0, 0)
    with_layout = analyse_document(document, layout=layout)
    without = analyse_document(document)  # derives the same layout from the document's lines
    assert with_layout.clauses == without.clauses and with_layout.line_roles == without.line_roles
    assert with_layout.line_roles[1] == "doc_header"


def _single_line_document(megabytes: float, sentence: str) -> tuple[list[str], str]:
    characters = int(megabytes * 1_000_000 / 3)  # CJK text: three bytes a character in UTF-8
    body = "第一条 " + (sentence * (characters // len(sentence) + 1))[:characters]
    return ["鹤壁市地源热泵系统建设应用管理暂行办法", body], body


@pytest.mark.parametrize(
    "sentence",
    [
        "各银行业金融机构要积极争取扩大我市信贷投放额度，加大对中小企业的贷款支持。",  # sentence ends to cut at
        "加大对中小企业的贷款支持力度",  # no punctuation at all: hard cuts only
    ],
    ids=["sentences", "no-punctuation"],
)
def test_a_huge_line_is_chunked_with_linear_work(monkeypatch, sentence):
    """A single 1 MB / 2 MB line: the clauses tile it exactly, each within the size bounds, and
    the work done - characters of clause texts assembled and characters the heading parser reads -
    grows in proportion to the input (the old chunker rebuilt the whole text for every part)."""
    from assistant import chunking, outline

    work = {"joined": 0, "parsed": 0}
    base = chunking._Joined

    class CountingJoined(base):
        @property
        def text(self):
            fresh = self._text is None
            value = base.text.fget(self)
            if fresh:
                work["joined"] += len(value)
            return value

    real_parse = outline.parse_heading

    def counting_parse(text):
        work["parsed"] += len(text)
        return real_parse(text)

    monkeypatch.setattr(chunking, "_Joined", CountingJoined)
    monkeypatch.setattr(outline, "parse_heading", counting_parse)
    monkeypatch.setattr(chunking, "parse_heading", counting_parse)
    measured = []
    for megabytes in (1, 2):
        lines, body = _single_line_document(megabytes, sentence)
        split = split_documents(SourceFile(name="huge.txt", lines=tuple(lines), sha256="x"))
        work.update(joined=0, parsed=0)
        clauses = chunk_document(split.documents[0], layout=split.layouts[0])
        assert "".join(c.text for c in clauses) == body  # every character exactly once, in order
        assert all(len(c.text) <= DEFAULT_MAX_CHARS + DEFAULT_MIN_CHARS for c in clauses)
        assert [c.part for c in clauses] == list(range(1, len(clauses) + 1))
        assert {c.line_start for c in clauses} == {c.line_end for c in clauses} == {2}
        measured.append((len(body), len(clauses), work["joined"], work["parsed"]))
    (small, small_clauses, small_joined, small_parsed), (large, large_clauses, large_joined, large_parsed) = measured
    assert large_joined <= 2 * large and large_parsed <= 2 * large  # a constant per character
    assert large_joined / small_joined <= 2.2 * large / small / 2
    assert large_parsed / small_parsed <= 2.2 * large / small / 2
    assert large_clauses <= 2.2 * small_clauses


def test_a_paragraph_wrapped_over_many_lines_is_joined_with_linear_work(monkeypatch):
    from assistant import outline

    parsed = {"chars": 0}
    real_parse = outline.parse_heading

    def counting_parse(text):
        parsed["chars"] += len(text)
        return real_parse(text)

    monkeypatch.setattr(outline, "parse_heading", counting_parse)
    piece = "加大对中小企业的贷款支持力度和广度"  # no sentence end: every line continues the article
    measured = []
    for count in (20_000, 40_000):
        lines = ["鹤壁市地源热泵系统建设应用管理暂行办法", "第一条 " + piece, *[piece] * count]
        split = split_documents(SourceFile(name="wrapped.txt", lines=tuple(lines), sha256="x"))
        parsed["chars"] = 0
        analysis = analyse_document(split.documents[0], layout=split.layouts[0])
        assert "".join(c.text for c in analysis.clauses) == "".join(lines[1:])
        assert analysis.repairs["wrapped_line_joined"] == count
        measured.append(parsed["chars"])
    assert measured[1] <= 2.2 * measured[0]
