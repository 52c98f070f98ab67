"""Clause rules on snippets copied from the corpus: one test per PDF pathology, plus sizes and ids."""

from __future__ import annotations

from pathlib import Path

from assistant.chunking import CHUNKER_VERSION, analyse_document, chunk_document, parse_heading
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
