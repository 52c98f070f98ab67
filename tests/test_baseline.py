"""The baseline (500-character chunks + BM25 over jieba tokens) keeps correct line spans."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.baseline import CHUNK_SIZE, BaselineRetriever, corpus_texts, split_file
from assistant.errors import AssistantError

REPO = Path(__file__).resolve().parents[1]


def assert_spans_match(name: str, text: str) -> None:
    lines = text.split("\n")
    chunks = split_file(name, text)
    assert chunks, "no chunks"
    for chunk in chunks:
        assert 1 <= chunk.line_start <= chunk.line_end <= len(lines)
        assert len(chunk.text) <= CHUNK_SIZE
        chunk_lines = chunk.text.split("\n")
        # the chunk starts inside its first line and ends inside its last line
        assert chunk_lines[0] in lines[chunk.line_start - 1]
        assert chunk_lines[-1] in lines[chunk.line_end - 1]
        assert chunk.line_end - chunk.line_start == len(chunk_lines) - 1
        assert chunk.source == name and chunk.label == "" and chunk.section_path == ()


def test_line_spans_of_synthetic_text():
    long_line = "。".join(f"第{i}句关于补贴的规定内容" for i in range(80))  # ~1000 characters: split mid-line
    text = "\n".join(["标题", "", "第一条 短条款。", long_line, "第二条 另一条。", "", "", "附件"])
    chunks = split_file("t.txt", text)
    assert_spans_match("t.txt", text)
    # the long line yields several chunks, all on line 4
    assert sum(c.line_start == c.line_end == 4 for c in chunks) >= 2
    assert chunks[-1].line_end == 8 and chunks[-1].text.endswith("附件")


def test_repeated_text_gets_the_span_of_its_own_occurrence():
    block = "第一条 相同的内容。" * 40  # 400 characters
    text = "\n\n".join([block, block, block])
    chunks = split_file("r.txt", text)
    assert [(c.line_start, c.line_end) for c in chunks] == [(1, 1), (3, 3), (5, 5)]


def test_line_spans_on_a_real_corpus_file():
    name, text = next(t for t in corpus_texts(REPO / "corpus") if t[0].startswith("000_"))
    assert_spans_match(name, text)


def test_search_returns_hits_from_the_right_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("地源热泵管理办法\n第四条 地源热泵系统建设由市住房城乡建设局负责审批。\n", encoding="utf-8")
    (corpus / "b.txt").write_text("残疾人就业保障金征收办法\n用人单位安排残疾人就业比例不得低于1.5%。\n", encoding="utf-8")
    (corpus / "notes.bin").write_bytes(b"\x00\x01")  # unsupported files are ignored
    baseline = BaselineRetriever.build(corpus)
    hits = baseline.search("残疾人就业比例是多少", k=5)
    assert hits[0].clause.source == "b.txt"
    assert (hits[0].clause.line_start, hits[0].clause.line_end) == (1, 2)
    assert hits[0].ranks == {"baseline": 1} and hits[0].score > 0
    assert baseline.search("   ", k=5) == []


def test_empty_corpus_is_a_clean_error(tmp_path):
    with pytest.raises(AssistantError, match="--corpus"):
        BaselineRetriever.build(tmp_path)
