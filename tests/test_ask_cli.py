"""`python -m assistant ask` end to end on the bundled index (subprocess, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_ask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "ask", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_empty_question_is_a_clear_error():
    result = run_ask("   ", "--index", str(ROOT / "no-such-index"))
    assert result.returncode == 2
    assert "empty" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_ask_prints_quotes_with_citations(bundled_index):
    result = run_ask("地源热泵系统由哪个部门负责管理", "--index", str(bundled_index))
    assert result.returncode == 0, result.stderr
    assert "鹤壁市地源热泵系统建设应用管理暂行办法" in result.stdout
    assert "「" in result.stdout and "000_ed0d53ce87970edb.txt:5" in result.stdout
    # the full clause follows the short answer
    full = result.stdout.split("引用条款全文", 1)[1]
    assert "市规划、国土资源、水利、电力、环保、质量技术监督等部门按照各自职责" in full


@pytest.mark.slow
def test_ask_json(bundled_index):
    result = run_ask("地源热泵系统由哪个部门负责管理", "--index", str(bundled_index), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"answer", "abstained", "quotes", "hits", "notice"}
    assert data["abstained"] is False
    quote = data["quotes"][0]
    assert {"text", "clause_id", "citation"} <= set(quote)
    hit_texts = {h["clause_id"]: h["text"] for h in data["hits"]}
    assert all(q["text"] in hit_texts[q["clause_id"]] for q in data["quotes"])
    assert "住房和城乡建设局" in data["answer"]


@pytest.mark.slow
def test_ask_abstains_on_something_the_files_do_not_cover(bundled_index):
    result = run_ask("个人养老金账户一年最多能存多少钱", "--index", str(bundled_index), "--json")
    data = json.loads(result.stdout)
    assert data["abstained"] is True and data["quotes"] == []
    assert data["answer"].startswith("未在现有文件中找到相关规定")
