"""``python -m assistant index build`` and ``search`` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from assistant.cli import main
from conftest import ROOT, write_tiny_corpus


def test_search_json_prints_one_object_with_hits(bundled_index, capsys):
    assert main(["search", "公司15个人没招残疾人，残保金要交吗", "--index", str(bundled_index), "-k", "5", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["hits"]) == 5 and "notice" not in payload
    for hit in payload["hits"]:
        assert {"text", "doc_title", "section", "source", "line_start", "line_end", "score", "ranks", "label", "clause_id"} <= set(hit)
    assert payload["hits"][0]["ranks"]["hybrid"] == 1


def test_search_modes_and_filters(bundled_index, capsys):
    for mode in ("bm25", "dense"):
        assert main(["search", "地源热泵", "--index", str(bundled_index), "--mode", mode, "--city", "鹤壁市", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
        assert hits and all(h["city"] == "鹤壁市" and set(h["ranks"]) == {mode} for h in hits)


def test_search_plain_output_cites_file_and_lines(bundled_index, capsys):
    assert main(["search", "地源热泵", "--index", str(bundled_index), "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(" 1. [") and ".txt:" in out


def test_huge_query_gets_a_notice_and_empty_query_a_clean_error(bundled_index, capsys):
    assert main(["search", "残保金" * 40_000, "--index", str(bundled_index), "--json", "--mode", "bm25"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert "2000" in payload["notice"] and "120000" in payload["notice"]
    assert main(["search", "   ", "--index", str(bundled_index)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "Traceback" not in err


def test_undecodable_bytes_in_a_query_are_dropped_not_a_traceback(bundled_index, capsys):
    # what the shell hands Python for `search "$(printf '\xff')残疾人"`: a lone surrogate escape
    assert main(["search", "\udcff残疾人", "--index", str(bundled_index), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["query"] == "残疾人" and payload["hits"]


def test_missing_index_is_a_clean_error(tmp_path, capsys):
    assert main(["search", "地源热泵", "--index", str(tmp_path / "none")]) == 2
    assert "index build" in capsys.readouterr().err


def test_index_build_then_search_in_a_subprocess(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    index = tmp_path / "index" / "tiny"
    run = lambda *args: subprocess.run([sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    built = run("index", "build", "--corpus", str(corpus), "--index", str(index))
    assert built.returncode == 0, built.stderr
    assert "built" in built.stdout and "clauses" in built.stdout
    again = run("index", "build", "--corpus", str(corpus), "--index", str(index))
    assert "up to date" in again.stdout
    found = run("search", "残保金要交吗", "--index", str(index), "--json", "-k", "1")
    assert found.returncode == 0, found.stderr
    assert "残疾人就业保障金" in json.loads(found.stdout)["hits"][0]["text"]
    bad = run("index", "build", "--corpus", str(tmp_path / "missing"), "--index", str(index))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
