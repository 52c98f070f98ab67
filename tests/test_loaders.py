"""Each supported format is read from a small file the test writes itself; bad files are skipped."""

from __future__ import annotations

import pytest

from assistant.corpus import load_corpus
from assistant.loaders import UnreadableFile, decode_text, read_source_file

NOTICE = [
    "鹤壁市人民政府办公室",
    "关于开展资源产出率统计工作的通知",
    "各县区人民政府、开发区管委会：",
    "一、充分认识开展资源产出率统计工作的重要性",
    "资源产出率是评价循环经济综合发展水平的核心指标。",
    "二、工作要求",
    "各县区要结合实际，统筹安排，认真抓好落实。",
]


def _assert_notice_loaded(corpus, name):
    documents = corpus.documents_of(name)
    assert [d.title for d in documents] == ["鹤壁市人民政府办公室关于开展资源产出率统计工作的通知"]
    clauses = corpus.clauses_of(documents[0].doc_id)
    assert [c.label for c in clauses] == ["正文", "一、", "二、"]
    assert clauses[1].text == "一、充分认识开展资源产出率统计工作的重要性\n资源产出率是评价循环经济综合发展水平的核心指标。"


def test_gbk_text_file_is_detected_and_decoded(tmp_path):
    (tmp_path / "notice.txt").write_bytes("\n".join(NOTICE).encode("gbk"))
    corpus = load_corpus(tmp_path)
    assert corpus.files[0].encoding == "gb18030"
    _assert_notice_loaded(corpus, "notice.txt")


def test_utf8_markdown_with_bom_and_crlf(tmp_path):
    (tmp_path / "notice.md").write_bytes(("\ufeff" + "\r\n".join(NOTICE) + "\r\n").encode("utf-8"))
    corpus = load_corpus(tmp_path)
    assert corpus.files[0].lines[0] == NOTICE[0] and len(corpus.files[0].lines) == len(NOTICE)
    _assert_notice_loaded(corpus, "notice.md")


def test_docx(tmp_path):
    docx = pytest.importorskip("docx")
    document = docx.Document()
    for line in NOTICE:
        document.add_paragraph(line)
    document.save(tmp_path / "notice.docx")
    corpus = load_corpus(tmp_path)
    _assert_notice_loaded(corpus, "notice.docx")


def test_pdf_written_with_a_cid_font(tmp_path):
    pytest.importorskip("reportlab")
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(tmp_path / "notice.pdf"))
    pdf.setFont("STSong-Light", 12)
    for row, line in enumerate(NOTICE):
        pdf.drawString(50, 800 - 20 * row, line)
    pdf.drawString(280, 40, "- 1 -")  # a page marker at the foot of the page
    pdf.showPage()
    pdf.save()
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == []
    _assert_notice_loaded(corpus, "notice.pdf")
    assert corpus.noise["notice.pdf"].get("page_marker") == 1


def test_html(tmp_path):
    body = "".join(f"<p>{line}</p>" for line in NOTICE)
    html = f"<html><head><title>x</title><style>p{{}}</style></head><body><div>{body}</div><script>var a=1;</script></body></html>"
    (tmp_path / "notice.html").write_text(html, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    _assert_notice_loaded(corpus, "notice.html")


def test_bad_files_are_skipped_with_a_reason_and_the_rest_loads(tmp_path):
    (tmp_path / "notice.txt").write_text("\n".join(NOTICE), encoding="utf-8")
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 100)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tmp_path / "broken.docx").write_bytes(b"not a zip")
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "README.md").write_text("# about this corpus", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    _assert_notice_loaded(corpus, "notice.txt")
    reasons = dict(corpus.skipped)
    assert set(reasons) == {"table.xlsx", "binary.txt", "broken.pdf", "broken.docx", "empty.md"}
    assert "unsupported file type .xlsx" in reasons["table.xlsx"]
    assert "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert ".docx" in reasons["broken.docx"]
    assert "empty" in reasons["empty.md"]


def test_file_without_a_title_is_one_document(tmp_path):
    (tmp_path / "memo.txt").write_text("小微企业贷款可以延期还本付息。\n具体办法另行通知。\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [d.title for d in corpus.documents] == ["memo"]
    assert corpus.clauses[0].text == "小微企业贷款可以延期还本付息。\n具体办法另行通知。"


def test_decode_rejects_undecodable_bytes():
    with pytest.raises(UnreadableFile):
        decode_text(b"\x00\x00\x00binary")
    assert decode_text("资金补贴".encode("gb18030")) == ("资金补贴", "gb18030")
    assert decode_text("资金补贴".encode("utf-8")) == ("资金补贴", "utf-8")


def test_unsupported_suffix_raises(tmp_path):
    path = tmp_path / "a.rtf"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(UnreadableFile, match="unsupported"):
        read_source_file(path)


def test_markdown_headings_and_subfolders(tmp_path):
    (tmp_path / "2024").mkdir()
    markdown = [
        "# 鹤壁市人民政府办公室",
        "## 关于开展资源产出率统计工作的通知",
        "各县区人民政府、开发区管委会：",
        "### 一、充分认识开展资源产出率统计工作的重要性",
        "资源产出率是评价循环经济综合发展水平的核心指标。",
        "### 二、工作要求",
        "各县区要结合实际，统筹安排，认真抓好落实。",
    ]
    (tmp_path / "2024" / "notice.md").write_text("\n".join(markdown), encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("ignored", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [source.name for source in corpus.files] == ["2024/notice.md"]
    document = corpus.documents[0]
    assert (document.title, document.issuer) == ("鹤壁市人民政府办公室关于开展资源产出率统计工作的通知", "鹤壁市人民政府办公室")
    clauses = corpus.clauses_of(document.doc_id)
    assert [c.label for c in clauses] == ["正文", "一、", "二、"]
    assert clauses[1].text.startswith("### 一、充分认识")  # quoted as written


def test_files_with_the_same_stem_get_distinct_document_ids(tmp_path):
    (tmp_path / "notice.txt").write_text("\n".join(NOTICE), encoding="utf-8")
    (tmp_path / "notice.md").write_text("\n".join(NOTICE), encoding="utf-8")
    corpus = load_corpus(tmp_path)
    ids = [d.doc_id for d in corpus.documents]
    assert len(set(ids)) == 2 and ids[0] == "notice#1"
    assert len({c.clause_id for c in corpus.clauses}) == len(corpus.clauses)
