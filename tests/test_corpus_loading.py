"""Loading a corpus folder: every file left out is named with its reason, encodings are detected
(never indexed as mojibake), stray NUL bytes anywhere are handled, symlinks do not lead outside."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from assistant.corpus import load_corpus, report_skipped, scan_corpus
from assistant.loaders import UnreadableFile, decode_text, rare_share, read_source_file

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
NOTICE = [
    "鹤壁市人民政府办公室",
    "关于开展资源产出率统计工作的通知",
    "各县区人民政府、开发区管委会：",
    "一、充分认识开展资源产出率统计工作的重要性",
    "资源产出率是评价循环经济综合发展水平的核心指标。",
    "二、工作要求",
    "各县区要结合实际，统筹安排，认真抓好落实。",
]
# what a Big5 file became when it was decoded as GB18030 (issue 12)
MOJIBAKE = "闽鬾礥贺从干禟硄"


def corpus_paragraph(lines: int = 40) -> list[str]:
    """The first ``lines`` non-empty lines of the bundled corpus's first file (a real notice)."""
    text = (CORPUS / "000_ed0d53ce87970edb.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()][:lines]


def traditional(lines: list[str]) -> list[str]:
    from opencc import OpenCC

    converter = OpenCC("s2t")
    return [converter.convert(line) for line in lines]


def big5_encodable(lines: list[str]) -> list[str]:
    kept = []
    for line in lines:
        try:
            line.encode("big5")
        except UnicodeEncodeError:
            continue
        kept.append(line)
    return kept


def write_notice(directory: Path, name: str = "notice.txt") -> None:
    (directory / name).write_text("\n".join(NOTICE) + "\n", encoding="utf-8")


# --- 1. skipped files are named, library noise is captured ----------------------------------------

def _bad_corpus(directory: Path) -> None:
    write_notice(directory)
    (directory / "broken.pdf").write_bytes(b"mp\x05^\xc1" + os.urandom(200).replace(b"%", b"x"))
    (directory / "truncated.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    (directory / "table.xlsx").write_bytes(b"PK\x03\x04 not really")
    (directory / "empty.md").write_bytes(b"")
    (directory / "binary.txt").write_bytes(bytes(range(256)) * 50)


def test_every_skipped_file_is_named_with_its_reason_and_counted(tmp_path, capfd):
    _bad_corpus(tmp_path)
    corpus = load_corpus(tmp_path)
    printed = capfd.readouterr()
    # nothing reached the terminal on its own, without a file name (pypdf logs "invalid pdf header", ...)
    assert "pdf header" not in printed.err and "EOF marker" not in printed.err and printed.out == ""
    reasons = dict(corpus.skipped)
    assert set(reasons) == {"broken.pdf", "truncated.pdf", "table.xlsx", "empty.md", "binary.txt"}
    assert "PDF" in reasons["broken.pdf"] and "invalid pdf header" in reasons["broken.pdf"]
    assert [f.name for f in corpus.files] == ["notice.txt"]

    stream = io.StringIO()
    assert report_skipped(corpus, stream) == 5
    lines = stream.getvalue().splitlines()
    for name, reason in corpus.skipped:
        assert any(name in line and reason in line for line in lines), (name, lines)
    assert "skipped 5 of 6 corpus files" in lines[-1]


def test_load_corpus_can_report_at_once(tmp_path):
    _bad_corpus(tmp_path)
    stream = io.StringIO()
    corpus = load_corpus(tmp_path, report=stream)
    again = io.StringIO()
    report_skipped(corpus, again)
    assert stream.getvalue() == again.getvalue() and "broken.pdf" in stream.getvalue()


def test_report_defaults_to_stderr_and_is_silent_when_nothing_was_left_out(tmp_path, capsys):
    write_notice(tmp_path)
    corpus = load_corpus(tmp_path)
    assert report_skipped(corpus) == 0
    assert capsys.readouterr().err == ""
    (tmp_path / "table.xlsx").write_bytes(b"x")
    report_skipped(load_corpus(tmp_path))
    err = capsys.readouterr().err
    assert "table.xlsx" in err and "skipped 1 of 2 corpus files" in err


def test_a_pdf_pypdf_had_to_repair_loads_with_a_note(tmp_path, capfd):
    pytest.importorskip("reportlab")
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setFont("STSong-Light", 12)
    for row, line in enumerate(NOTICE):
        pdf.drawString(50, 800 - 20 * row, line)
    pdf.showPage()
    pdf.save()
    (tmp_path / "notice.pdf").write_bytes(b"mp\x05^\xc1" + buffer.getvalue())  # junk before the header
    corpus = load_corpus(tmp_path)
    assert capfd.readouterr().err == ""
    assert corpus.skipped == [] and corpus.files[0].lines[0] == NOTICE[0]
    assert any(name == "notice.pdf" and "invalid pdf header" in note for name, note in corpus.notes)
    stream = io.StringIO()
    report_skipped(corpus, stream)
    assert "notice.pdf" in stream.getvalue() and "invalid pdf header" in stream.getvalue()


def test_a_parser_crashing_on_one_file_skips_only_that_file(tmp_path, monkeypatch):
    import assistant.loaders as loaders

    def crash(raw):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(loaders, "_html_text", crash)
    write_notice(tmp_path)
    (tmp_path / "page.html").write_text("<p>x</p>", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [f.name for f in corpus.files] == ["notice.txt"]
    assert dict(corpus.skipped)["page.html"] == "could not be read (RecursionError: maximum recursion depth exceeded)"


# --- 2. encodings: Big5, UTF-16, GBK; never mojibake ----------------------------------------------

def _load_one(tmp_path: Path, raw: bytes, name: str = "notice.txt"):
    (tmp_path / name).write_bytes(raw)
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == [], corpus.skipped
    return corpus.files[0]


def test_big5_corpus_paragraph_is_decoded_as_big5(tmp_path):
    lines = big5_encodable(traditional(corpus_paragraph()))
    assert len(lines) >= 30
    source = _load_one(tmp_path, ("\r\n".join(lines) + "\r\n").encode("big5"))
    assert source.encoding in ("big5", "cp950", "big5hkscs")
    assert list(source.lines) == lines
    assert "鶴壁市" in "".join(source.lines)


def test_the_mojibake_of_issue_12_is_read_as_big5():
    raw = MOJIBAKE.encode("gb18030")  # the Big5 bytes the issue's file held
    text, encoding = decode_text(raw)
    assert encoding == "big5" and text != MOJIBAKE and "鬾" not in text
    assert rare_share(MOJIBAKE) > 0.4 and rare_share(text) <= 0.25


def test_big5_notice_is_indexed_without_mojibake(tmp_path):
    lines = big5_encodable(traditional(NOTICE))
    assert len(lines) == len(NOTICE)
    (tmp_path / "notice.txt").write_bytes("\n".join(lines).encode("big5"))
    corpus = load_corpus(tmp_path)
    texts = "".join(c.text for c in corpus.clauses)
    assert "資源產出率" in texts
    assert rare_share(texts) < 0.05


@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""),
                                        ("utf-16-be", b"")])
def test_utf16_with_or_without_bom(tmp_path, codec, bom):
    lines = corpus_paragraph()
    source = _load_one(tmp_path, bom + ("\n".join(lines) + "\n").encode(codec))
    assert list(source.lines) == lines
    assert source.encoding.startswith("utf-16")


def test_utf16_without_bom_of_a_notice_loads_its_clauses(tmp_path):
    (tmp_path / "notice.txt").write_bytes("\n".join(NOTICE).encode("utf-16-le"))
    corpus = load_corpus(tmp_path)
    assert [d.title for d in corpus.documents] == ["鹤壁市人民政府办公室关于开展资源产出率统计工作的通知"]


@pytest.mark.parametrize("codec", ["gbk", "gb18030", "gb2312"])
def test_gbk_corpus_paragraph_still_loads(tmp_path, codec):
    lines = []
    for line in corpus_paragraph():
        try:
            line.encode(codec)
        except UnicodeEncodeError:
            continue
        lines.append(line)
    source = _load_one(tmp_path, ("\n".join(lines) + "\n").encode(codec))
    assert source.encoding == "gb18030" and list(source.lines) == lines


def test_utf16_bom_with_broken_data_is_refused_not_a_traceback(tmp_path):
    (tmp_path / "notice.txt").write_bytes(b"\xff\xfe" + "通知".encode("utf-16-le") + b"\x00\xd8")  # lone surrogate
    write_notice(tmp_path, "ok.txt")
    corpus = load_corpus(tmp_path)
    assert "UTF-16" in dict(corpus.skipped)["notice.txt"]


def test_bytes_that_decode_only_to_rare_characters_are_refused_as_mojibake(tmp_path):
    raw = "".join(chr(0x3400 + n) for n in range(300)).encode("gb18030")  # CJK extension A only
    (tmp_path / "odd.txt").write_bytes(raw)
    write_notice(tmp_path)
    corpus = load_corpus(tmp_path)
    reason = dict(corpus.skipped)["odd.txt"]
    assert "mojibake" in reason and "rare" in reason
    assert [f.name for f in corpus.files] == ["notice.txt"]


def test_no_clause_of_a_mixed_encoding_corpus_is_mojibake(tmp_path):
    paragraph = corpus_paragraph(30)
    (tmp_path / "a_utf8.txt").write_text("\n".join(paragraph), encoding="utf-8")
    (tmp_path / "b_gbk.txt").write_bytes("\n".join(paragraph).encode("gb18030"))
    (tmp_path / "c_big5.txt").write_bytes("\n".join(big5_encodable(traditional(paragraph))).encode("big5"))
    (tmp_path / "d_utf16.txt").write_bytes("\n".join(paragraph).encode("utf-16"))
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == [] and len(corpus.files) == 4
    for clause in corpus.clauses:
        assert rare_share(clause.text) < 0.15, (clause.source, clause.text[:40])


# --- 3. NUL bytes anywhere, not only in the first 4 KB --------------------------------------------

def _with_nul_after(raw: bytes, offset: int) -> bytes:
    cut = raw.index(b"\n", offset) + 1  # at a line start: never inside a multi-byte character
    return raw[:cut] + b"\x00" + raw[cut:]


@pytest.mark.parametrize("codec", ["utf-8", "gb18030"])
def test_stray_nul_after_the_first_4kb_is_removed_and_reported(tmp_path, codec):
    original = "\n".join(corpus_paragraph(200)) + "\n"
    raw = original.encode(codec)
    assert len(raw) > 8192
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "notice.txt").write_bytes(raw)
    (tmp_path / "dirty").mkdir()
    (tmp_path / "dirty" / "notice.txt").write_bytes(_with_nul_after(raw, 6000))
    clean, dirty = load_corpus(tmp_path / "clean"), load_corpus(tmp_path / "dirty")
    assert all("\x00" not in c.text and "\x00" not in c.index_text for c in dirty.clauses)
    assert [c.text for c in dirty.clauses] == [c.text for c in clean.clauses]
    assert dirty.notes == [("notice.txt", "removed 1 NUL character")]
    stream = io.StringIO()
    report_skipped(dirty, stream)
    assert "notice.txt: removed 1 NUL character" in stream.getvalue()


def test_binary_data_after_the_first_4kb_is_refused(tmp_path):
    text = ("\n".join(corpus_paragraph(60)) + "\n").encode("utf-8")
    assert len(text) > 4096
    (tmp_path / "notice.txt").write_bytes(text[:5000].rsplit(b"\n", 1)[0] + b"\n" + bytes(range(256)) * 80)
    write_notice(tmp_path, "ok.txt")
    corpus = load_corpus(tmp_path)
    assert "binary" in dict(corpus.skipped)["notice.txt"]


def test_many_nuls_spread_through_a_text_file_are_binary(tmp_path):
    raw = "\n".join(corpus_paragraph(60)).encode("utf-8")
    spread = b"".join(raw[n:n + 40] + b"\x00" for n in range(0, len(raw), 40))
    (tmp_path / "notice.txt").write_bytes(spread)
    write_notice(tmp_path, "ok.txt")
    assert "binary" in dict(load_corpus(tmp_path).skipped)["notice.txt"]


# --- 4. symlinks ------------------------------------------------------------------------------------

@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("机密文件\n第一条 不应被索引的内容。\n", encoding="utf-8")
    return folder


def test_symlink_to_a_file_outside_the_corpus_is_skipped(tmp_path, outside):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    write_notice(corpus_dir)
    os.symlink(outside / "secret.txt", corpus_dir / "linked.txt")
    corpus = load_corpus(corpus_dir)
    assert [f.name for f in corpus.files] == ["notice.txt"]
    assert "outside the corpus folder" in dict(corpus.skipped)["linked.txt"]
    assert not any("不应被索引" in c.text for c in corpus.clauses)


def test_symlink_to_a_folder_outside_the_corpus_is_skipped(tmp_path, outside):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    write_notice(corpus_dir)
    os.symlink(outside, corpus_dir / "more", target_is_directory=True)
    corpus = load_corpus(corpus_dir)
    assert [f.name for f in corpus.files] == ["notice.txt"]
    assert "outside the corpus folder" in dict(corpus.skipped)["more"]


def test_relative_symlink_climbing_out_of_the_corpus_is_skipped(tmp_path, outside):
    corpus_dir = tmp_path / "corpus"
    (corpus_dir / "sub").mkdir(parents=True)
    write_notice(corpus_dir)
    os.symlink("../../outside/secret.txt", corpus_dir / "sub" / "up.txt")
    corpus = load_corpus(corpus_dir)
    assert "outside the corpus folder" in dict(corpus.skipped)["sub/up.txt"]
    with pytest.raises(UnreadableFile, match="outside the corpus folder"):
        read_source_file(corpus_dir / "sub" / "up.txt", root=corpus_dir)


def test_symlinks_inside_the_corpus_are_followed_once(tmp_path):
    corpus_dir = tmp_path / "corpus"
    (corpus_dir / ".drafts").mkdir(parents=True)
    write_notice(corpus_dir / ".drafts", "draft.txt")  # hidden: not loaded itself
    write_notice(corpus_dir, "notice.txt")
    os.symlink(".drafts/draft.txt", corpus_dir / "a_published.txt")  # inside -> inside: followed
    os.symlink("notice.txt", corpus_dir / "alias.txt")  # the same file twice: loaded once
    os.symlink(".", corpus_dir / "loop", target_is_directory=True)  # a folder linked into itself
    corpus = load_corpus(corpus_dir)
    assert [f.name for f in corpus.files] == ["a_published.txt", "notice.txt"]
    reasons = dict(corpus.skipped)
    assert "same file as notice.txt" in reasons["alias.txt"]
    assert "already included" in reasons["loop/"]
    assert ".drafts/" in corpus.ignored


def test_broken_symlink_and_special_files_are_named(tmp_path):
    write_notice(tmp_path)
    os.symlink("missing.txt", tmp_path / "dangling.txt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.txt")
    corpus = load_corpus(tmp_path)
    reasons = dict(corpus.skipped)
    assert "broken symlink" in reasons["dangling.txt"]
    if hasattr(os, "mkfifo"):
        assert "not a regular file" in reasons["pipe.txt"]
    assert [f.name for f in corpus.files] == ["notice.txt"]


def test_scan_keeps_name_order_across_subfolders(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a.txt", "a/b.txt", "b.txt", "README.md"):
        write_notice(tmp_path, name)
    scan = scan_corpus(tmp_path)
    assert [name for name, _ in scan.files] == ["a.txt", "a/b.txt", "b.txt"]
    assert scan.ignored == ["README.md"] and scan.skipped == []
