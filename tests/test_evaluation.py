"""The eval command: coverage rule, metrics, Q&A validation, outputs (fake and real retrievers)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from assistant import evaluation
from assistant.errors import AssistantError
from assistant.evaluation import (
    EvidenceMatcher,
    QAItem,
    QuestionResult,
    covers,
    load_qa,
    longest_common_substring,
    run_eval,
    score_passages,
    summarize,
    visible_prefixes,
)
from assistant.types import Answer, Clause, Hit, Quote

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"

EVIDENCE = "对延期还本付息企业维护正常信用记录"  # 17 characters: 11 needed
FILLER = "甲乙丙丁戊己庚辛壬癸"


def clause(text: str, source: str = "a.txt", line: int = 1) -> Clause:
    return Clause(
        clause_id=f"{source}:{line}",
        doc_id="a#1",
        source=source,
        doc_title="测试通知",
        section_path=("第一条",),
        label="第一条",
        text=text,
        index_text=text,
        line_start=line,
        line_end=line,
    )


def hit(text: str, score: float = 1.0, line: int = 1) -> Hit:
    return Hit(clause=clause(text, line=line), score=score, ranks={})


def item(id: str, evidence: tuple[str, ...] = (EVIDENCE,), type: str = "lookup", source: str = "a.txt") -> QAItem:
    answerable = type != "unanswerable"
    return QAItem(
        id=id,
        question=f"问题{id}",
        answer="",
        evidence=evidence if answerable else (),
        source_file=source if answerable else "",
        doc_title="",
        type=type,
        answerable=answerable,
    )


# --- coverage rule -----------------------------------------------------------------------------


def test_coverage_ignores_whitespace_and_line_breaks():
    passage = "对延期 还本付息企业\n维护正常　信用记录，不按逾期报送信息"
    assert covers(passage, EVIDENCE)
    assert covers("对延期还本付息企业维护正常信用记录", "对延期 还本付息企业 维护正常信用记录")


@pytest.mark.parametrize(
    "length, needed",
    [(10, 6), (11, 7), (15, 9), (17, 11), (20, 12), (120, 72)],
)
def test_coverage_threshold_is_60_percent_on_both_sides(length, needed):
    evidence = "".join(chr(0x4E00 + i) for i in range(length))  # distinct characters: no accidental repeats
    just_enough = FILLER + evidence[3 : 3 + needed] + FILLER
    one_short = FILLER + evidence[3 : 3 + needed - 1] + FILLER
    assert covers(just_enough, evidence)
    assert not covers(one_short, evidence)
    # the rule is about the evidence's length, not the passage's: a long passage still covers
    assert covers(FILLER * 50 + evidence[:needed] + FILLER * 50, evidence)


def test_fast_coverage_agrees_with_difflib_longest_match():
    rng = random.Random(5)
    alphabet = "的了是在企业补贴审批市政府资金"
    for _ in range(400):
        evidence = "".join(rng.choice(alphabet) for _ in range(rng.randint(10, 40)))
        passage = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.5:  # plant a piece of the evidence
            start = rng.randint(0, len(evidence) - 1)
            passage += evidence[start : start + rng.randint(1, len(evidence))]
        expected = longest_common_substring(passage, evidence) * 5 >= 3 * len(evidence)
        assert EvidenceMatcher(evidence).covered_by(passage) == expected, (passage, evidence)


# --- ranks, MRR, character budgets --------------------------------------------------------------


def test_first_rank_counts_any_evidence_string():
    second = "本息最长可延期6个月的临时性安排"
    passages = ["无关内容" * 5, f"……{second}……", f"前文{EVIDENCE}"]
    score = score_passages(passages, [EVIDENCE, second])
    assert score.evidence_ranks == [3, 2]
    assert score.first_rank == 2
    assert not score.hit_at(1) and score.hit_at(3)


def test_ranks_beyond_depth_are_misses():
    passages = ["无关"] * 12 + [EVIDENCE]
    assert score_passages(passages, [EVIDENCE], depth=10).first_rank is None
    assert score_passages(passages, [EVIDENCE]).first_rank == 13


def _result(qa: QAItem, passages: list[str], answer: Answer | None = None) -> QuestionResult:
    score = score_passages(passages, qa.evidence, depth=10) if qa.answerable else None
    return QuestionResult(item=qa, mode="fake", hits=[hit(p) for p in passages], score=score, seconds=0.0, answer=answer)


def test_hit_at_k_and_mrr_over_answerable_questions_only():
    miss = ["无关"] * 10
    results = [
        _result(item("q1"), [EVIDENCE] + miss),  # rank 1
        _result(item("q2"), ["无关", EVIDENCE] + miss),  # rank 2
        _result(item("q3"), ["无关"] * 3 + [EVIDENCE] + miss),  # rank 4
        _result(item("q4"), miss + [EVIDENCE]),  # rank 11: outside @10
        _result(item("q5", type="unanswerable"), miss),  # not counted in retrieval metrics
    ]
    metrics = summarize(results)
    assert metrics["answerable"] == 4 and metrics["unanswerable"] == 1
    assert metrics["hit@1"] == 0.25
    assert metrics["hit@3"] == 0.5
    assert metrics["hit@5"] == 0.75
    assert metrics["hit@10"] == 0.75
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 0) / 4, abs=1e-4)
    assert "answer_covers_evidence" not in metrics  # nothing composed


def test_character_budget_cuts_the_passage_it_ends_in():
    evidence = "".join(chr(0x4E00 + i) for i in range(20))  # needs 12 characters covered
    first = "无" * 990  # leaves 10 characters of budget for the second passage
    assert visible_prefixes([first, "x" * 50], 1000) == [first, "x" * 10]
    cut = score_passages([first, evidence], [evidence])
    assert cut.first_rank == 2
    assert cut.within_chars == {1000: False, 2000: True}  # only 10 of 20 evidence characters fit
    fits = score_passages(["无" * 988, evidence], [evidence])
    assert fits.within_chars[1000]  # 12 characters fit: exactly 60 %
    # whitespace does not use up the budget
    spaced = score_passages([" ".join("无" * 988), evidence], [evidence])
    assert spaced.within_chars[1000]


def test_answer_metrics_and_abstention_rates():
    def answer(quotes: list[str], abstained: bool = False) -> Answer:
        return Answer(
            question="q",
            text="…",
            abstained=abstained,
            quotes=[Quote(text=t, clause_id="c", citation="", doc_title="", label="", source="a.txt", line_start=1, line_end=1) for t in quotes],
        )

    qa_items = [item("a1"), item("a2"), item("a3"), item("u1", type="unanswerable"), item("u2", type="unanswerable")]
    answers = [
        answer([EVIDENCE[2:]]),  # covers
        answer(["无关的引文内容"]),  # does not cover
        answer([], abstained=True),  # false abstention
        answer([], abstained=True),  # right to abstain
        answer(["随便引用"]),  # should have abstained
    ]
    results = []
    for qa, ans in zip(qa_items, answers):
        result = _result(qa, [EVIDENCE], answer=ans)
        if qa.answerable:
            matchers = [EvidenceMatcher(e) for e in qa.evidence]
            quotes = [] if ans.abstained else [q.text for q in ans.quotes]
            result.answer_covers = any(m.covered_by(q) for m in matchers for q in quotes)
        results.append(result)
    metrics = summarize(results)
    assert metrics["answer_covers_evidence"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["false_abstention_answerable"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["abstention_unanswerable"] == 0.5


# --- Q&A file validation -------------------------------------------------------------------------

LINE = "第二条 本办法所称地源热泵系统是指以岩土体为低温热源的供热制冷系统。"


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("某市地源热泵管理办法\n" + LINE + "\n第三条 由市住建局负责审批。\n", encoding="utf-8")
    return corpus


def record(**changes) -> dict:
    base = {
        "id": "t001",
        "question": "地源热泵是什么",
        "answer": "以岩土体为热源的系统",
        "evidence": ["本办法所称地源热泵系统是指以岩土体"],
        "source_file": "a.txt",
        "doc_title": "某市地源热泵管理办法",
        "type": "paraphrase",
        "answerable": True,
    }
    base.update(changes)
    return base


def write_qa(path: Path, records: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n",
        encoding="utf-8",
    )
    return path


def test_valid_file_loads(tmp_path, tiny_corpus):
    unanswerable = record(id="t002", evidence=[], type="unanswerable", answerable=False, source_file="", doc_title="")
    items = load_qa(write_qa(tmp_path / "qa.jsonl", [record(), "", unanswerable]), tiny_corpus)
    assert [i.id for i in items] == ["t001", "t002"]
    assert items[0].evidence == ("本办法所称地源热泵系统是指以岩土体",) and items[1].line == 3


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "line 2: not valid JSON"),
        (record(id="t001"), "line 2: id 't001' already used on line 1"),
        ({k: v for k, v in record(id="x").items() if k != "answer"}, "line 2: missing keys ['answer']"),
        (record(id="x", extra=1), "line 2: unknown keys ['extra']"),
        (record(id="x", type="opinion"), "line 2: type 'opinion' is not one of"),
        (record(id="x", answerable="yes"), "line 2: 'answerable' must be true or false"),
        (record(id="x", evidence=["地源热泵"]), "line 2: evidence 1 has 4 characters (allowed 10–120)"),
        (record(id="x", evidence=["地" * 121]), "line 2: evidence 1 has 121 characters"),
        (record(id="x", evidence=["本办法所称地源热泵系统是指以岩石"]), "is not an exact substring of a line of a.txt"),
        (record(id="x", evidence=["热制冷系统。\n第三条 由市住建局"]), "spans lines"),
        (record(id="x", source_file="missing.txt"), "source_file 'missing.txt' is not a file in"),
        (record(id="x", evidence=[]), "needs at least one evidence string"),
        (record(id="x", type="unanswerable", answerable=False), "must have empty evidence"),
        (record(id="x", type="unanswerable"), "type 'unanswerable' goes with answerable false"),
        (record(id="x", question="  "), "'question' is empty"),
    ],
)
def test_bad_files_name_line_and_problem(tmp_path, tiny_corpus, bad, message):
    path = write_qa(tmp_path / "qa.jsonl", [record(), bad])
    with pytest.raises(AssistantError) as error:
        load_qa(path, tiny_corpus)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_missing_qa_file_is_a_clean_error(tmp_path, tiny_corpus):
    with pytest.raises(AssistantError, match="not found"):
        load_qa(tmp_path / "nope.jsonl", tiny_corpus)


# --- the whole run with fake retrievers ------------------------------------------------------------


def test_run_eval_writes_every_output(tmp_path, tiny_corpus):
    qa_path = write_qa(
        tmp_path / "qa.jsonl",
        [
            record(),
            record(id="t002", question="谁审批", evidence=["第三条 由市住建局负责审批"], type="responsibility"),
            record(id="t003", question="补贴多少", evidence=[], type="unanswerable", answerable=False, source_file="", doc_title=""),
        ],
    )
    items = load_qa(qa_path, tiny_corpus)
    corpus_lines = (tiny_corpus / "a.txt").read_text(encoding="utf-8").splitlines()

    def perfect(question: str, k: int) -> list[Hit]:
        ordered = corpus_lines[2:] + corpus_lines[:2] if "审批" in question else corpus_lines[1:] + corpus_lines[:1]
        return [hit(text, score=1.0 / n, line=n) for n, text in enumerate(ordered, start=1)][:k]

    def empty(question: str, k: int) -> list[Hit]:
        return []

    def compose(question: str, hits: list[Hit]) -> Answer:
        if not hits or "补贴" in question:
            return Answer(question=question, text="未找到", abstained=True, hits=list(hits))
        c = hits[0].clause
        quote = Quote(text=c.text, clause_id=c.clause_id, citation="", doc_title="", label="", source=c.source, line_start=1, line_end=1)
        return Answer(question=question, text=c.text, abstained=False, quotes=[quote], hits=list(hits))

    out = tmp_path / "run"
    metrics = run_eval(items, {"hybrid": perfect, "dense": empty}, out, k=10, compose=compose, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["hit_at_k.png", "metrics.json", "report.md", "results.jsonl"]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    hybrid, dense = metrics["modes"]["hybrid"]["overall"], metrics["modes"]["dense"]["overall"]
    assert hybrid["hit@1"] == 1.0 and hybrid["mrr@10"] == 1.0 and hybrid["hit@1000ch"] == 1.0
    assert hybrid["answer_covers_evidence"] == 1.0 and hybrid["abstention_unanswerable"] == 1.0
    assert dense["hit@10"] == 0.0 and dense["false_abstention_answerable"] == 1.0
    assert metrics["modes"]["hybrid"]["by_type"]["responsibility"]["hit@1"] == 1.0
    assert metrics["modes"]["hybrid"]["by_file"]["a.txt"]["answerable"] == 2
    assert metrics["modes"]["hybrid"]["hit_at_k"] == [1.0] * 10
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and {r["mode"] for r in lines} == {"hybrid", "dense"}
    first = lines[0]
    assert first["covered"] == [{"evidence": "本办法所称地源热泵系统是指以岩土体", "rank": 1}]
    assert {"text", "doc_title", "section", "source", "line_start", "line_end", "score"} <= set(first["hits"][0])
    assert first["abstained"] is False and first["answer"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Modes side by side" in report and "Misses: dense (2 answerable" in report
    assert (out / "hit_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_short_passages_are_fetched_deeper_for_the_character_budget():
    asked = []

    def search(question: str, k: int) -> list[Hit]:
        asked.append(k)
        return [hit("短句" * 10, line=n) for n in range(1, k + 1)]  # 20 characters each

    hits = evaluation.fetch_hits(search, "问题", k=10)
    assert asked == [10, 30, 90, 270]  # 270 × 20 ≥ 2000 characters
    assert len(hits) == 270


# --- the real command on the bundled index ---------------------------------------------------------


E2E_QA = [
    {
        "id": "e2e1",
        "question": "三门峡小微企业贷款到期了能延期吗",
        "answer": "可以，本息最长可延期6个月",
        "evidence": ["给与企业一定期限的临时性延期还本付息安排，本息最长可延期6个月"],
        "source_file": "003_0d2851ec049d1a5f.txt",
        "doc_title": "",
        "type": "paraphrase",
        "answerable": True,
    },
    {
        "id": "e2e2",
        "question": "鹤壁资源产出率统计数据什么时候报",
        "answer": "8月10日前报市统计局",
        "evidence": ["8月10日前，各县区、各单位将电子版统计数据报市统计局"],
        "source_file": "000_ed0d53ce87970edb.txt",
        "doc_title": "鹤壁市人民政府办公室关于开展资源产出率统计工作的通知",
        "type": "date",
        "answerable": True,
    },
    {
        "id": "e2e3",
        "question": "上海市新能源汽车牌照怎么申请",
        "answer": "",
        "evidence": [],
        "source_file": "",
        "doc_title": "",
        "type": "unanswerable",
        "answerable": False,
    },
]


def test_eval_command_end_to_end(tmp_path, bundled_index, capsys):
    from assistant.cli import main

    qa_path = write_qa(tmp_path / "qa.jsonl", E2E_QA)
    out = tmp_path / "run"
    status = main(
        ["eval", "--qa", str(qa_path), "--index", str(bundled_index), "--corpus", str(CORPUS), "--mode", "all", "--out", str(out)]
    )
    assert status == 0
    for name in ("metrics.json", "results.jsonl", "report.md", "hit_at_k.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["modes"]) == ["hybrid", "bm25", "dense", "baseline"]
    assert metrics["questions"] == {"total": 3, "answerable": 2, "unanswerable": 1}
    for mode in metrics["modes"].values():
        assert {"hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "hit@1000ch", "hit@2000ch"} <= set(mode["overall"])
        assert {"paraphrase", "date", "unanswerable"} == set(mode["by_type"])
        assert len(mode["hit_at_k"]) == 10
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == 12
    assert all(len(r["hits"]) >= 10 for r in results)
    baseline = [r for r in results if r["mode"] == "baseline"]
    assert baseline[0]["hits"][0]["source"].endswith(".txt") and baseline[0]["hits"][0]["line_start"] >= 1
    printed = capsys.readouterr().out
    assert "hit@10" in printed and "baseline" in printed


def test_eval_from_another_directory_checks_evidence_against_the_corpus_the_index_was_built_from(
        tmp_path, tiny_index, monkeypatch, capsys):
    from assistant.cli import main

    qa_path = write_qa(tmp_path / "qa.jsonl", [{
        "id": "t1", "question": "小微企业贷款能延期还本付息吗", "answer": "最长可延至2021年3月31日",
        "evidence": ["对小微企业贷款实施延期还本付息"], "source_file": "b_zz.txt",
        "doc_title": "郑州市关于支持小微企业健康发展的若干措施", "type": "paraphrase", "answerable": True,
    }])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./corpus here
    status = main(["eval", "--qa", str(qa_path), "--index", str(tiny_index), "--mode", "bm25", "--out", str(tmp_path / "run")])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["modes"]["bm25"]["overall"]["hit@1"] == 1.0
