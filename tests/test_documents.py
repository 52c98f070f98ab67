"""Document splitting and metadata, on the bundled corpus and on snippets copied from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.corpus import load_corpus
from assistant.documents import (
    chinese_date_to_iso,
    clean_line,
    clean_lines,
    normalize_doc_number,
    split_documents,
)
from assistant.types import SourceFile

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"

# (title, file, first line, last line), ranges read off the files with `sed -n`.
KNOWN_DOCUMENTS = [
    ("鹤壁市地源热泵系统建设应用管理暂行办法", "000_ed0d53ce87970edb.txt", 48, 105),
    ("鹤壁市卫河保护条例", "001_dd70fa745897e6d5.txt", 597, 781),
    ("郑州市市长质量奖管理办法", "002_009ccee41da37f96.txt", 254, 419),
    ("三门峡市稳经济支持企业发展若干措施", "003_0d2851ec049d1a5f.txt", 514, 616),
    ("优质中小企业梯度培育管理暂行办法", "004_260f99d2aa0f9dae.txt", 316, 638),
]


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CORPUS_DIR)


@pytest.mark.parametrize("title, source, start, end", KNOWN_DOCUMENTS)
def test_known_titles_are_documents_with_their_line_range(corpus, title, source, start, end):
    matches = [d for d in corpus.documents if d.title == title]
    assert len(matches) == 1, [d.title for d in corpus.documents if title[:6] in d.title]
    document = matches[0]
    assert (document.source, document.line_start, document.line_end) == (source, start, end)
    lines = (CORPUS_DIR / source).read_text(encoding="utf-8").split("\n")
    assert document.lines == tuple(lines[start - 1 : end])


def test_documents_tile_each_file_after_its_front_matter(corpus):
    for source in corpus.files:
        documents = corpus.documents_of(source.name)
        assert documents[-1].line_end == len(source.lines)
        for previous, current in zip(documents, documents[1:]):
            assert current.line_start == previous.line_end + 1
        roles = corpus.line_roles[source.name]
        assert all(not roles[line].startswith("clause:") for line in range(1, documents[0].line_start))


def test_forwarded_measure_carries_the_forwarding_notice_number(corpus):
    by_title = {d.title: d for d in corpus.documents}
    notice = by_title["鹤壁市人民政府办公室关于转发鹤壁市地源热泵系统建设应用管理暂行办法的通知"]
    measure = by_title["鹤壁市地源热泵系统建设应用管理暂行办法"]
    assert notice.doc_number == measure.doc_number == "鹤政办〔2025〕9号"
    assert notice.line_end + 1 == measure.line_start
    assert measure.issuer == "鹤壁市人民政府办公室" and measure.city == "鹤壁市"
    assert measure.date == notice.date == "2010-03-16"  # 二○一○年三月十六日 under the notice


def test_metadata_of_known_documents(corpus):
    by_title = {d.title: d for d in corpus.documents}
    grain = by_title["郑州市人民政府关于全面落实粮食安全省长责任制的实施意见"]  # title split by a space
    assert (grain.doc_number, grain.date, grain.issuer, grain.city) == ("郑政〔2016〕24号", "2016-08-01", "郑州市人民政府", "郑州市")
    ladder = by_title["优质中小企业梯度培育管理暂行办法"]
    assert ladder.doc_number == "工信部企业〔2022〕63号" and ladder.city is None  # a national measure
    old_town = by_title["鹤壁市人民政府关于印发加快推进老城区“退二进三”工作若干政策（试行）的通知"]
    assert old_town.doc_number == "鹤政〔2025〕55号"  # written 鹤政„2025‟55号 in the file
    assert old_town.date == "2009-12-31"  # 二○○九年十二月三十一日


def test_dates_and_doc_numbers():
    assert chinese_date_to_iso("二○一○年三月十六日") == "2010-03-16"
    assert chinese_date_to_iso("二〇一二年七月十三日") == "2012-07-13"
    assert chinese_date_to_iso("郑政〔2016〕24号 2016年8月1日") == "2016-08-01"
    assert chinese_date_to_iso("2022 年 5 月 24 日") == "2022-05-24"
    assert chinese_date_to_iso("年 月 日") is None
    assert normalize_doc_number("鹤政„2025‟55号") == "鹤政〔2025〕55号"
    assert normalize_doc_number("郑政文 [2016] 123 号") == "郑政文〔2016〕123号"


def _split(lines: list[str]):
    return split_documents(SourceFile(name="snippet.txt", lines=tuple(lines), sha256="x"))


def test_title_split_over_three_lines_is_joined():
    lines = [
        "第二篇：鹤壁市人民政府办公室文件",
        "鹤壁市人民政府办公室文件鹤政办〔2025〕9号",
        "鹤壁市人民政府办公室",
        "关于转发鹤壁市地源热泵系统建设应用管理",
        "暂行办法的通知",
        "各县区人民政府，市人民政府各部门：",
        "市住房和城乡建设局《鹤壁市地源热泵系统建设应用管理暂行办法》已经市政府同意，现转发给你们，请认真贯彻执行。",
        "二○一○年三月十六日",
    ]
    split = _split(lines)
    assert [d.title for d in split.documents] == ["鹤壁市人民政府办公室关于转发鹤壁市地源热泵系统建设应用管理暂行办法的通知"]
    document = split.documents[0]
    assert (document.line_start, document.doc_number, document.issuer) == (1, "鹤政办〔2025〕9号", "鹤壁市人民政府办公室")


def test_page_marker_before_a_title_is_cut_out():
    assert clean_line("— 1 — 鹤壁市地源热泵系统建设应用管理暂行办法").text == "鹤壁市地源热泵系统建设应用管理暂行办法"
    assert clean_line("— 3 —").noise == "page_marker"
    assert clean_line(" - 12 - ").noise == "page_marker"
    line = clean_line("（一）加强组织领导。全市企业服务年活动实行统一组织、— 8 —  上下联动、分级实施。")
    assert line.text == "（一）加强组织领导。全市企业服务年活动实行统一组织、上下联动、分级实施。"
    assert clean_line("增幅在20－30%（不含30%）的").text == "增幅在20－30%（不含30%）的"  # a range, not a marker
    assert clean_line("第一条第一条 为进一步规范督促检查工作程序").text == "第一条 为进一步规范督促检查工作程序"
    assert clean_line("  12 ").noise == "page_marker"  # a lone page number
    assert clean_line("1\t\t\t\t\t").text == "1"  # the first cell of an empty table row is kept
    # A page number left at the end of a line the PDF broke mid-word.
    assert clean_line("（一）工作目标。探索地区层面资源产出率指标的统计核算方 1").text.endswith("统计核算方")
    assert clean_line("三门峡市人民政府关于嘉奖全市财税系统的通报\t15").text.endswith("\t15")  # a table cell


def test_table_of_contents_and_editorial_board_are_not_documents():
    lines = [
        "三门峡市人民政府 公 报",
        "目 录",
        "【市政府文件】",
        "三门峡市人民政府关于嘉奖全市财税系统的通报",
        "..... 15",
        "三门峡市人民政府关于表扬三门峡金渠集团有限公司的通报\t16",
        "《三门峡市人民政府公报》",
        "编 委 会",
        "主 任：万战伟",
        "三门峡市人民政府",
        "关于嘉奖全市财税系统的通报",
        "三政〔2022〕2号",
        "各县（市、区）人民政府，市人民政府各部门：",
        "2021年，全市财税系统认真贯彻落实市委、市政府决策部署，圆满完成了全年各项工作任务。",
        "2022年1月30日",
    ]
    split = _split(lines)
    assert [d.title for d in split.documents] == ["三门峡市人民政府关于嘉奖全市财税系统的通报"]
    assert split.documents[0].line_start == 10
    assert split.noise[2] == "toc" and split.noise[5] == "toc" and split.noise[6] == "toc"
    assert split.noise[8] == "front_matter" and split.noise[9] == "front_matter"


def test_compilation_table_of_contents_with_sections_and_tabs():
    lines = [
        "安阳市“万人助万企”活动",
        "助企纾困政策汇编",
        "目 录",
        "一、国家、部委政策",
        "1. 国务院关于印发扎实稳住经济一揽子政策措施的通知（国发〔2022〕12号）\t1",
        "2. 国务院办公厅关于推动外贸保稳提质的意见（国办发〔2022〕18号）\t9",
        "国务院",
        "关于印发扎实稳住经济一揽子政策措施的通知",
        "国发〔2022〕12号",
        "各省、自治区、直辖市人民政府，国务院各部委、各直属机构：",
        "现将《扎实稳住经济的一揽子政策措施》印发给你们，请认真贯彻落实。",
    ]
    split = _split(lines)
    assert [(d.title, d.line_start, d.doc_number) for d in split.documents] == [
        ("国务院关于印发扎实稳住经济一揽子政策措施的通知", 7, "国发〔2022〕12号")
    ]
    assert [split.noise[n] for n in range(1, 7)] == ["front_matter", "front_matter", "toc", "toc", "toc", "toc"]


def test_split_hands_each_document_its_layout(corpus):
    """split_documents gives chunking, beside each document, its cleaned lines and where its title
    and header end; document_layout derives the same from a document's own lines."""
    from assistant.documents import document_layout

    for source in corpus.files:
        split = split_documents(source)
        assert len(split.layouts) == len(split.documents)
        for document, layout in zip(split.documents, split.layouts):
            assert layout.cleaned == tuple(clean_lines(document.lines))
            assert 0 <= layout.title_start <= layout.title_end <= layout.header_end < len(document.lines)
            assert document_layout(document) == layout, document.doc_id


def test_a_title_over_five_lines_is_header_not_body(corpus):
    # 004 lines 7571-7578: three issuer lines, "转发《…通知》的", "通 知", the 文号 - all header.
    # (Chunking used to look for the title itself and missed it, so these lines were cited as 正文.)
    document = next(d for d in corpus.documents if d.doc_number == "安金发〔2022〕29号")
    assert document.line_start == 7571 and document.title.endswith("纾困的通知》的通知")
    roles = corpus.line_roles["004_260f99d2aa0f9dae.txt"]
    assert [roles[n] for n in (7571, 7572, 7573, 7574, 7575, 7577)] == ["doc_header"] * 6
    first = corpus.clauses_of(document.doc_id)[0]
    assert first.line_start == 7579 and first.text.startswith("各县（市、区）金融局（办）")


def test_one_numeral_parser_for_headings_and_dates():
    from assistant.lines import parse_number

    assert [parse_number(raw) for raw in ("一", "十", "十二", "二十", "三十一", "一百零五", "两千", "二○", "二〇一〇")] == [
        1, 10, 12, 20, 31, 105, 2000, 20, 2010,
    ]
    assert [parse_number(raw) for raw in ("12", "③", "⑳", "", "第", "十a")] == [12, 3, 20, None, None, None]
    assert chinese_date_to_iso("二〇二二年十二月三十一日") == "2022-12-31"


def test_annex_lines_have_one_pattern():
    from assistant.lines import ANNEX_LINE

    assert [bool(ANNEX_LINE.match(text)) for text in ("附件", "附件 2", "附 件2：", "附件1.创新型中小企业评价标准", "附件：1. 申请表")] == [
        True, True, True, False, False,
    ]
