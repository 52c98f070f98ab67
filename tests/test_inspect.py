"""`corpus inspect` shows documents, metadata, clause trees and a summary a person can check."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.cli import main

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"

# Documents per file, established by reading each file top to bottom (titles are the lines that
# end in 通知/意见/办法/条例/报告…, followed by a 文号, date, salutation or 第一条/一、) and counting:
# a notice and the measure it issues/forwards are two documents (the measure is asked about by
# name); a titled attachment (附件N + its own title) is its own document; cover pages, tables of
# contents and editorial boards are not documents.
#   000: 5 notices (第一篇…第五篇 banners) + the measures 3 of them forward/issue (第二/四/五篇)
#        + 1 titled annex (资源产出率指标有关说明) = 9
#   001: 24 items of the 人大常委会 bulletin: news item, closing speech, 全会精神, 16 reports and
#        说明, the 民营企业权益保护条例 and 卫河保护条例 drafts (attachments of their 审议修改情况的
#        报告), the 决议（草案）, the 调查报告, the 人事任免名单 (with the attendance lists after it)
#   002: 11 郑州 notices/opinions standing alone + 16 印发 notices with the 方案/办法/规定 they
#        issue (2 x 16) + the titled attachment 郑州市2016年度百强工业企业名单 = 44
#   003: the gazette's table of contents lists 5 (政府工作报告, 2 通报, 2 印发 notices) + the
#        2 方案/措施 those notices issue = 7
#   004: 安阳 policy compilation: its table of contents lists 57 documents (7 national, 17
#        provincial, 33 city), all found; plus 43 measures those notices issue or forward and
#        titled attachments (企业申报材料清单, 用地预审与规划选址报件清单 …) = 100
DOCUMENTS_PER_FILE = {
    "000_ed0d53ce87970edb.txt": 9,
    "001_dd70fa745897e6d5.txt": 24,
    "002_009ccee41da37f96.txt": 44,
    "003_0d2851ec049d1a5f.txt": 7,
    "004_260f99d2aa0f9dae.txt": 100,
}


def test_summary_prints_the_document_count_of_every_file(capsys):
    assert main(["corpus", "inspect", "--corpus", str(CORPUS_DIR)]) == 0
    out = capsys.readouterr().out
    printed = dict(re.findall(r"^(\S+\.txt): (\d+) documents", out, flags=re.M))
    assert {name: int(count) for name, count in printed.items()} == DOCUMENTS_PER_FILE
    assert re.search(r"clause length \(chars\): p10 \d+, p50 \d+, p90 \d+, max \d+", out)
    assert re.search(r"noise lines: .*blank \d+", out)


def test_one_document_with_metadata_and_clause_tree(capsys):
    assert main(["corpus", "inspect", "--corpus", str(CORPUS_DIR), "--file", "000", "--doc", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[4] 鹤壁市地源热泵系统建设应用管理暂行办法\n")
    assert "文号: 鹤政办〔2025〕9号" in out and "日期: 2010-03-16" in out and "城市: 鹤壁市" in out
    assert "000_ed0d53ce87970edb.txt:48-105" in out
    assert "§ 第二章 建设管理" in out
    assert re.search(r"^\s+68-69  第十二条 \[\d+\] 第十二条 地源热泵系统勘察", out, flags=re.M)
    assert "000_ed0d53ce87970edb.txt: 9 documents" in out


def test_bad_arguments_are_clean_errors(capsys):
    assert main(["corpus", "inspect", "--corpus", str(CORPUS_DIR), "--file", "nope"]) == 2
    assert "no corpus file matches" in capsys.readouterr().err
    assert main(["corpus", "inspect", "--corpus", str(CORPUS_DIR), "--file", "000", "--doc", "99"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["corpus", "inspect", "--corpus", str(CORPUS_DIR / "missing")]) == 2


def test_skipped_files_are_warned_on_stderr(tmp_path, capsys):
    (tmp_path / "notice.txt").write_text("鹤壁市人民政府\n关于开展企业服务年活动的通知\n各县区人民政府：\n请认真贯彻执行。\n", encoding="utf-8")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    assert main(["corpus", "inspect", "--corpus", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped sheet.xlsx: unsupported file type .xlsx" in captured.err
    assert "[1] 鹤壁市人民政府关于开展企业服务年活动的通知" in captured.out
