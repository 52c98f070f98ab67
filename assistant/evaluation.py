"""Score retrieval and composed answers on a Q&A set: ``python -m assistant eval``.

    python -m assistant eval                       # eval/qa.jsonl, all four modes, eval/runs/<UTC time>/
    python -m assistant eval --mode hybrid -k 10 --qa my_questions.jsonl --out /tmp/run

A passage *covers* an evidence string when, with all whitespace removed from both, their longest
common substring is at least 60 % of the evidence's length. A question is a *hit* when ANY of its
evidence strings is covered.

>>> covers("第四条 项目由 市住建局 负责审批。", "地源热泵项目由市住建局负责审批")  # 11 of 15 characters
True
>>> covers("第四条 由市住建局审批。", "地源热泵项目由市住建局负责审批")  # 5 of 15
False
>>> score_passages(["无关", "地源热泵系统由市住建局审批"], ["由市住建局审批"]).first_rank
2

Validate a Q&A file on its own (what tests/test_qa_file.py does):

    python -m assistant.evaluation my_questions.jsonl
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Callable, Iterable

from assistant.errors import AssistantError
from assistant.paths import DEFAULT_CORPUS_DIR
from assistant.text import normalize_for_matching, strip_spaces
from assistant.types import Answer, Hit

QA_KEYS = ("id", "question", "answer", "evidence", "source_file", "doc_title", "type", "answerable")
QA_TYPES = ("lookup", "paraphrase", "numeric", "responsibility", "procedure", "condition", "date", "unanswerable")
EVIDENCE_MIN_CHARS = 10
EVIDENCE_MAX_CHARS = 120

COVERAGE_THRESHOLD = 0.6  # documented in eval/README.md; _needed_length encodes it in integers
RANK_CUTOFFS = (1, 3, 5, 10)
MRR_CUTOFF = 10
CHAR_BUDGETS = (1000, 2000)
CHAR_CURVE = tuple(range(250, 2001, 250))  # plotted: hit within the first N characters
CURVE_DEPTH = 10  # hit@k plotted for k = 1..10
RETRIEVER_MODES = ("hybrid", "bm25", "dense")
ALL_MODES = RETRIEVER_MODES + ("baseline",)


# ---------------------------------------------------------------------------------------------
# Q&A file


@dataclass(frozen=True)
class QAItem:
    """One question of the eval set; ``line`` is its 1-based line in the Q&A file."""

    id: str
    question: str
    answer: str
    evidence: tuple[str, ...]
    source_file: str
    doc_title: str
    type: str
    answerable: bool
    line: int = 0


class _CorpusTexts:
    """Corpus file texts, read once each, for the evidence check."""

    def __init__(self, corpus_dir: Path):
        self.corpus_dir = corpus_dir
        self._texts: dict[str, str | None] = {}

    def get(self, name: str) -> str | None:
        if name not in self._texts:
            path = self.corpus_dir / name
            self._texts[name] = None
            if name and Path(name).name == name and path.is_file():
                from assistant.loaders import UnreadableFile, read_source_file

                try:
                    self._texts[name] = "\n".join(read_source_file(path).lines)
                except UnreadableFile:
                    pass
        return self._texts[name]


def _item_problems(record: Any, corpus: _CorpusTexts) -> list[str]:
    """What is wrong with one parsed JSON line (empty list when it is valid)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = []
    keys = set(record)
    if missing := [k for k in QA_KEYS if k not in keys]:
        problems.append(f"missing keys {missing}")
    if extra := sorted(keys - set(QA_KEYS)):
        problems.append(f"unknown keys {extra} (allowed: {list(QA_KEYS)})")
    if problems:
        return problems
    for key in ("id", "question", "answer", "source_file", "doc_title", "type"):
        if not isinstance(record[key], str):
            problems.append(f"{key!r} must be a string")
    if not isinstance(record["answerable"], bool):
        problems.append("'answerable' must be true or false")
    evidence = record["evidence"]
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        problems.append("'evidence' must be a list of strings")
    if problems:
        return problems
    if not record["id"].strip():
        problems.append("'id' is empty")
    if not record["question"].strip():
        problems.append("'question' is empty")
    if record["type"] not in QA_TYPES:
        problems.append(f"type {record['type']!r} is not one of {'|'.join(QA_TYPES)}")
    unanswerable = record["type"] == "unanswerable"
    if unanswerable == record["answerable"]:
        problems.append("type 'unanswerable' goes with answerable false, every other type with answerable true")
    if not record["answerable"]:
        if evidence:
            problems.append("an unanswerable question must have empty evidence")
        return problems
    if not evidence:
        problems.append("an answerable question needs at least one evidence string")
        return problems
    text = corpus.get(record["source_file"])
    if text is None:
        problems.append(f"source_file {record['source_file']!r} is not a file in {corpus.corpus_dir}")
    for number, string in enumerate(evidence, start=1):
        if not EVIDENCE_MIN_CHARS <= len(string) <= EVIDENCE_MAX_CHARS:
            problems.append(
                f"evidence {number} has {len(string)} characters (allowed {EVIDENCE_MIN_CHARS}–{EVIDENCE_MAX_CHARS})"
            )
        elif "\n" in string or "\r" in string:
            problems.append(f"evidence {number} spans lines; it must be a substring of ONE line")
        # a newline-free string found in the text lies within one line
        elif text is not None and string not in text:
            problems.append(
                f"evidence {number} {string[:30]!r}… is not an exact substring of a line of {record['source_file']}"
            )
    return problems


def check_qa_file(path: str | Path, corpus_dir: str | Path = DEFAULT_CORPUS_DIR) -> tuple[list[QAItem], list[str]]:
    """Parse and validate a Q&A JSON Lines file without raising.

    Returns the valid items and one message per problem, each starting with ``line N:``.

    >>> items, problems = check_qa_file("eval/qa.jsonl", "corpus")
    >>> problems
    []
    """
    path = Path(path)
    if not path.is_file():
        raise AssistantError(f"Q&A file {path} not found; pass --qa FILE (JSON Lines, see eval/README.md)")
    corpus = _CorpusTexts(Path(corpus_dir))
    items: list[QAItem] = []
    problems: list[str] = []
    first_line_of_id: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        item_problems = _item_problems(record, corpus)
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            if record["id"] in first_line_of_id:
                item_problems.append(f"id {record['id']!r} already used on line {first_line_of_id[record['id']]}")
            else:
                first_line_of_id[record["id"]] = number
        if item_problems:
            problems.extend(f"line {number}: {p}" for p in item_problems)
            continue
        items.append(
            QAItem(
                id=record["id"],
                question=record["question"],
                answer=record["answer"],
                evidence=tuple(record["evidence"]),
                source_file=record["source_file"],
                doc_title=record["doc_title"],
                type=record["type"],
                answerable=record["answerable"],
                line=number,
            )
        )
    if not items and not problems:
        problems.append("line 1: the file has no questions")
    return items, problems


def load_qa(path: str | Path, corpus_dir: str | Path = DEFAULT_CORPUS_DIR) -> list[QAItem]:
    """Read a Q&A file, raising one AssistantError that lists every problem (line number + what)."""
    items, problems = check_qa_file(path, corpus_dir)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssistantError(
            f"{path} has {len(problems)} problem(s); fix them (format in eval/README.md):\n  {shown}{more}"
        )
    return items


_WORD_CHARS = re.compile(r"[\w]", re.UNICODE)


def _bigrams(text: str) -> set[str]:
    chars = "".join(ch for ch in normalize_for_matching(text) if _WORD_CHARS.match(ch))
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def question_overlap(question: str, evidence: Iterable[str]) -> float:
    """Share of the question's character bigrams (letters/digits/CJK only) found in the evidence.

    1.0 means the question is copied from the evidence; paraphrased questions score low.

    >>> question_overlap("残保金要交吗", ["用人单位应当缴纳残疾人就业保障金"])
    0.0
    >>> question_overlap("残疾人就业保障金", ["用人单位应当缴纳残疾人就业保障金"])
    1.0
    """
    grams = _bigrams(question)
    if not grams:
        return 0.0
    evidence_grams: set[str] = set()
    for string in evidence:
        evidence_grams |= _bigrams(string)
    return len(grams & evidence_grams) / len(grams)


# ---------------------------------------------------------------------------------------------
# Coverage


def _needed_length(evidence_length: int) -> int:
    """Smallest common-substring length that is ≥ 60 % of the evidence (integer ceil(3n/5))."""
    return max(1, (3 * evidence_length + 4) // 5)


class EvidenceMatcher:
    """Decides coverage of one evidence string fast: a common substring of ≥ t characters exists
    exactly when one of the evidence's length-t windows occurs in the passage (C-speed ``in``).

    >>> EvidenceMatcher("由市住建局审批").covered_by("地源热泵系统由市住建局审批")
    True
    """

    def __init__(self, evidence: str):
        self.evidence = evidence
        self.compact = strip_spaces(evidence)
        self.needed = _needed_length(len(self.compact))
        self._windows = {self.compact[i : i + self.needed] for i in range(len(self.compact) - self.needed + 1)}

    def covered_by(self, passage: str, *, compact: bool = False) -> bool:
        """``compact=True`` when ``passage`` already has its whitespace removed."""
        text = passage if compact else strip_spaces(passage)
        if len(text) < self.needed:
            return False
        return any(window in text for window in self._windows)


def longest_common_substring(a: str, b: str) -> int:
    """Length of the longest common substring, whitespace ignored (for reports and tests)."""
    a, b = strip_spaces(a), strip_spaces(b)
    # autojunk off: with it, characters frequent in long strings would be ignored
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size


def covers(passage: str, evidence: str) -> bool:
    """True when the passage covers the evidence (longest common substring ≥ 60 % of evidence)."""
    return EvidenceMatcher(evidence).covered_by(passage)


@dataclass
class PassageScore:
    """Where the evidence of one question was found in one ranked passage list."""

    evidence_ranks: list[int | None]  # per evidence string: first 1-based rank covering it
    first_rank: int | None  # first rank covering ANY evidence string
    within_chars: dict[int, bool]  # budget -> covered within the first `budget` characters

    def hit_at(self, k: int) -> bool:
        return self.first_rank is not None and self.first_rank <= k


def visible_prefixes(passages: list[str], budget: int) -> list[str]:
    """Whitespace-free passages in rank order, cut so that their total length is ``budget``.

    >>> visible_prefixes(["ab cd", "efgh", "ij"], 6)
    ['abcd', 'ef']
    """
    shown, left = [], budget
    for passage in passages:
        if left <= 0:
            break
        compact = strip_spaces(passage)[:left]
        shown.append(compact)
        left -= len(compact)
    return shown


def score_passages(
    passages: list[str],
    evidence: Iterable[str | EvidenceMatcher],
    *,
    depth: int | None = None,
    budgets: Iterable[int] = CHAR_BUDGETS,
) -> PassageScore:
    """Score one ranked list of passage texts against a question's evidence strings.

    Ranks count the first ``depth`` passages (all when None); the character budgets may look
    deeper, because a list of short clauses fills 2000 characters only after many ranks.
    """
    matchers = [e if isinstance(e, EvidenceMatcher) else EvidenceMatcher(e) for e in evidence]
    compact = [strip_spaces(p) for p in passages]
    ranked = compact if depth is None else compact[:depth]
    evidence_ranks: list[int | None] = []
    for matcher in matchers:
        rank = next((r for r, text in enumerate(ranked, start=1) if matcher.covered_by(text, compact=True)), None)
        evidence_ranks.append(rank)
    found = [r for r in evidence_ranks if r is not None]
    within = {}
    for budget in budgets:
        shown = visible_prefixes(compact, budget)
        within[budget] = any(m.covered_by(text, compact=True) for m in matchers for text in shown)
    return PassageScore(evidence_ranks=evidence_ranks, first_rank=min(found) if found else None, within_chars=within)


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass
class QuestionResult:
    """One question answered by one mode."""

    item: QAItem
    mode: str
    hits: list[Hit]  # all hits fetched (may be deeper than k, for the character budgets)
    score: PassageScore | None  # None for unanswerable questions
    seconds: float
    answer: Answer | None = None
    answer_covers: bool | None = None  # quotes cover the evidence (answerable, composed only)
    answer_evidence: list[bool] = field(default_factory=list)

    def to_dict(self, k: int) -> dict[str, Any]:
        item = self.item
        record: dict[str, Any] = {
            "id": item.id,
            "question": item.question,
            "mode": self.mode,
            "type": item.type,
            "answerable": item.answerable,
            "source_file": item.source_file,
            "expected_answer": item.answer,
            "evidence": list(item.evidence),
            "question_overlap": round(question_overlap(item.question, item.evidence), 3),
            "hits": [hit.to_dict() for hit in self.hits[: max(k, 10)]],
            "first_rank": self.score.first_rank if self.score else None,
            "covered": [
                {"evidence": ev, "rank": rank}
                for ev, rank in zip(item.evidence, self.score.evidence_ranks if self.score else [])
            ],
            "within_chars": {str(b): self.score.within_chars[b] for b in CHAR_BUDGETS} if self.score else {},
            "answer": self.answer.text if self.answer else None,
            "abstained": self.answer.abstained if self.answer else None,
            "quotes": [q.to_dict() for q in self.answer.quotes] if self.answer else [],
            "answer_covers": self.answer_covers,
            "answer_covered_evidence": self.answer_evidence,
            "seconds": round(self.seconds, 4),
        }
        return record


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(results: list[QuestionResult], cutoffs: Iterable[int] = RANK_CUTOFFS) -> dict[str, Any]:
    """All numbers for one set of question results (one mode, optionally one type or file).

    Retrieval metrics are over answerable questions; ``None`` where a set has none.
    """
    answerable = [r for r in results if r.item.answerable and r.score is not None]
    unanswerable = [r for r in results if not r.item.answerable]
    metrics: dict[str, Any] = {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    for k in cutoffs:
        metrics[f"hit@{k}"] = _rate([r.score.hit_at(k) for r in answerable])
    reciprocal = [
        1.0 / r.score.first_rank if r.score.hit_at(MRR_CUTOFF) else 0.0 for r in answerable  # type: ignore[operator]
    ]
    metrics[f"mrr@{MRR_CUTOFF}"] = round(sum(reciprocal) / len(reciprocal), 4) if reciprocal else None
    for budget in CHAR_BUDGETS:
        metrics[f"hit@{budget}ch"] = _rate([r.score.within_chars[budget] for r in answerable])
    composed = [r for r in results if r.answer is not None]
    if composed:
        metrics["answer_covers_evidence"] = _rate([bool(r.answer_covers) for r in answerable if r.answer])
        metrics["abstention_unanswerable"] = _rate([r.answer.abstained for r in unanswerable if r.answer])
        metrics["false_abstention_answerable"] = _rate([r.answer.abstained for r in answerable if r.answer])
    return metrics


def hit_curve(results: list[QuestionResult], depth: int = CURVE_DEPTH) -> list[float | None]:
    """hit@k for k = 1..depth over the answerable questions."""
    answerable = [r for r in results if r.item.answerable and r.score is not None]
    return [_rate([r.score.hit_at(k) for r in answerable]) for k in range(1, depth + 1)]


def char_curve(results: list[QuestionResult], budgets: Iterable[int] = CHAR_CURVE) -> dict[str, float | None]:
    """Budget (characters of ranked passage text read) -> share of answerable questions covered."""
    answerable = [r for r in results if r.item.answerable and r.score is not None]
    return {str(b): _rate([r.score.within_chars.get(b, False) for r in answerable]) for b in budgets}


def breakdown(results: list[QuestionResult], key: Callable[[QuestionResult], str], cutoffs) -> dict[str, Any]:
    groups: dict[str, list[QuestionResult]] = defaultdict(list)
    for result in results:
        groups[key(result)].append(result)
    return {name: summarize(groups[name], cutoffs) for name in sorted(groups)}


# ---------------------------------------------------------------------------------------------
# Running


SearchFn = Callable[[str, int], list[Hit]]


def fetch_hits(search: SearchFn, question: str, k: int, budget: int = max(CHAR_BUDGETS), limit: int = 300) -> list[Hit]:
    """At least ``max(k, 10)`` hits, more when they hold fewer than ``budget`` characters of text
    (so hit@2000ch is measured fairly for modes with short passages)."""
    depth = max(k, 10)
    while True:
        hits = search(question, depth)
        enough_text = sum(len(strip_spaces(h.clause.text)) for h in hits) >= budget
        if enough_text or len(hits) < depth or depth >= limit:
            return hits
        depth = min(depth * 3, limit)


def _load_composer(retriever) -> Callable[[str, list[Hit]], Answer] | None:
    """Compose answers exactly as `ask` and the chat page do: the same abstention signals (the
    question's dense similarity to its nearest clause, the corpus rarity of its terms) and the same
    quote line lookup."""
    try:
        from assistant.compose import LineLocator, compose, retrieval_signals
    except ImportError as error:
        if error.name in ("assistant.compose",):
            return None
        raise
    locator = LineLocator(retriever.documents)

    def compose_like_ask(question: str, hits: list[Hit]) -> Answer:
        return compose(question, hits, locator=locator, **retrieval_signals(retriever, question))

    return compose_like_ask


def make_searchers(modes: list[str], retriever, corpus_dir: Path) -> dict[str, SearchFn]:
    """One ``search(question, k) -> list[Hit]`` per mode (the baseline is built here from the corpus)."""
    searchers: dict[str, SearchFn] = {}
    for mode in modes:
        if mode in RETRIEVER_MODES:
            searchers[mode] = lambda q, k, _mode=mode: retriever.search(q, k=k, mode=_mode)
    if "baseline" in modes:
        from assistant.baseline import BaselineRetriever

        baseline = BaselineRetriever.build(corpus_dir)
        searchers["baseline"] = baseline.search
    return searchers


def load_retriever(index_dir: Path, corpus_dir: Path):
    """The index used for retrieval modes and for composing answers (built on first use)."""
    try:
        from assistant.retriever import Retriever
    except ImportError as error:
        if error.name != "assistant.retriever":
            raise
        raise AssistantError("the retriever (assistant/retriever.py) is missing; run --mode baseline") from error
    return Retriever.load_or_build(index_dir, corpus_dir)


def evaluate(
    items: list[QAItem],
    searchers: dict[str, SearchFn],
    *,
    k: int = 10,
    compose: Callable[[str, list[Hit]], Answer] | None = None,
    progress: bool = True,
) -> dict[str, list[QuestionResult]]:
    """Run every question through every mode; returns mode -> results in question order."""
    from tqdm import tqdm

    matchers = {item.id: [EvidenceMatcher(e) for e in item.evidence] for item in items}
    results: dict[str, list[QuestionResult]] = {mode: [] for mode in searchers}
    bar = tqdm(total=len(items) * len(searchers), disable=not progress, unit="q", file=sys.stderr)
    for mode, search in searchers.items():
        bar.set_description(mode)
        for item in items:
            started = time.perf_counter()
            hits = fetch_hits(search, item.question, k)
            seconds = time.perf_counter() - started
            score = None
            if item.answerable:
                score = score_passages(
                    [h.clause.text for h in hits],
                    matchers[item.id],
                    depth=max(k, max(RANK_CUTOFFS)),
                    budgets=sorted(set(CHAR_BUDGETS) | set(CHAR_CURVE)),
                )
            result = QuestionResult(item=item, mode=mode, hits=hits, score=score, seconds=seconds)
            if compose is not None:
                answer = compose(item.question, hits[:k])
                result.answer = answer
                if item.answerable:
                    quotes = [] if answer.abstained else [q.text for q in answer.quotes]
                    result.answer_evidence = [any(m.covered_by(q) for q in quotes) for m in matchers[item.id]]
                    result.answer_covers = any(result.answer_evidence)
            results[mode].append(result)
            bar.update(1)
    bar.close()
    return results


def build_metrics(results: dict[str, list[QuestionResult]], cutoffs) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode, mode_results in results.items():
        seconds = sorted(r.seconds for r in mode_results)
        modes[mode] = {
            "overall": summarize(mode_results, cutoffs),
            "by_type": breakdown(mode_results, lambda r: r.item.type, cutoffs),
            "by_file": breakdown(mode_results, lambda r: r.item.source_file or "(no file: unanswerable)", cutoffs),
            "hit_at_k": hit_curve(mode_results),
            "hit_at_chars": char_curve(mode_results),
            "latency_ms": {
                "mean": round(1000 * sum(seconds) / len(seconds), 2) if seconds else None,
                "p50": round(1000 * seconds[len(seconds) // 2], 2) if seconds else None,
                "max": round(1000 * seconds[-1], 2) if seconds else None,
            },
        }
    return modes


# ---------------------------------------------------------------------------------------------
# Writing


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def summary_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Metric names down, modes across: the table printed and put on top of report.md."""
    modes = list(metrics["modes"])
    names: list[str] = []
    for mode in modes:
        for name in metrics["modes"][mode]["overall"]:
            if name not in names and name not in ("questions", "answerable", "unanswerable"):
                names.append(name)
    rows = [[name] + [_fmt(metrics["modes"][m]["overall"].get(name)) for m in modes] for name in names]
    rows.append(["latency ms (mean)"] + [_fmt(metrics["modes"][m]["latency_ms"]["mean"]) for m in modes])
    return ["metric"] + modes, rows


def format_summary(metrics: dict[str, Any]) -> str:
    header, rows = summary_rows(metrics)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    q = metrics["questions"]
    title = f"{q['total']} questions ({q['answerable']} answerable, {q['unanswerable']} unanswerable)"
    return "\n".join([title, line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _breakdown_table(metrics: dict[str, Any], section: str) -> list[str]:
    modes = list(metrics["modes"])
    names = sorted({name for m in modes for name in metrics["modes"][m][section]})
    header = [section.removeprefix("by_"), "n"] + [f"{m} hit@1 / hit@10 / MRR" for m in modes]
    rows = []
    for name in names:
        first = metrics["modes"][modes[0]][section].get(name, {})
        row = [_cell(name), f"{first.get('answerable', 0)}+{first.get('unanswerable', 0)}"]
        for mode in modes:
            m = metrics["modes"][mode][section].get(name, {})
            row.append(" / ".join(_fmt(m.get(key)) for key in ("hit@1", "hit@10", f"mrr@{MRR_CUTOFF}")))
        rows.append(row)
    return _table(header, rows)


def _answer_table(metrics: dict[str, Any], section: str) -> list[str]:
    modes = list(metrics["modes"])
    keys = ("answer_covers_evidence", "abstention_unanswerable", "false_abstention_answerable")
    names = sorted({name for m in modes for name in metrics["modes"][m][section]})
    rows = []
    for name in names:
        row = [_cell(name)]
        for mode in modes:
            m = metrics["modes"][mode][section].get(name, {})
            row.append(" / ".join(_fmt(m.get(key)) for key in keys))
        rows.append(row)
    return _table([section.removeprefix("by_")] + [f"{m} covers / abstain (unans.) / false abstain" for m in modes], rows)


def write_report(path: Path, metrics: dict[str, Any], results: dict[str, list[QuestionResult]], plot_name: str) -> None:
    q = metrics["questions"]
    lines = [
        "# Eval report",
        "",
        f"- created: {metrics['created']}",
        f"- command: `{metrics['command']}`",
        f"- Q&A file: `{metrics['qa_file']}`: {q['total']} questions, {q['answerable']} answerable, "
        f"{q['unanswerable']} unanswerable",
        f"- hits fetched per question: at least {max(metrics['k'], 10)} (more when needed to fill "
        f"{max(CHAR_BUDGETS)} characters); answers composed from the top {metrics['k']}",
        f"- coverage: longest common substring (whitespace removed) ≥ {COVERAGE_THRESHOLD:.0%} of the evidence; "
        "a question is a hit when ANY of its evidence strings is covered",
        "",
        "## Modes side by side",
        "",
    ]
    lines += _table(*summary_rows(metrics))
    lines += ["", f"![hit@k per mode]({plot_name})", ""]
    lines += ["## Per question type (answerable+unanswerable; hit@1 / hit@10 / MRR@10)", ""]
    lines += _breakdown_table(metrics, "by_type")
    lines += ["", "## Per corpus file (hit@1 / hit@10 / MRR@10)", ""]
    lines += _breakdown_table(metrics, "by_file")
    if any("answer_covers_evidence" in metrics["modes"][m]["overall"] for m in metrics["modes"]):
        lines += ["", "## Composed answers per question type", ""]
        lines += _answer_table(metrics, "by_type")
    else:
        lines += ["", "## Composed answers", "", "Not measured: assistant.compose was not available.", ""]
    depth = max(metrics["k"], 10)
    for mode, mode_results in results.items():
        misses = [r for r in mode_results if r.item.answerable and r.score and not r.score.hit_at(depth)]
        lines += ["", f"## Misses: {mode} ({len(misses)} answerable questions not covered in the top {depth})", ""]
        rows = []
        for r in misses:
            top = r.hits[0].clause if r.hits else None
            label = f"[{top.label}] " if top and top.label else ""
            top_text = f"{top.source}:{top.line_start} {label}{top.text}" if top else "(no hits)"
            rows.append(
                [
                    r.item.id,
                    r.item.type,
                    _cell(r.item.question, 40),
                    _cell(f"{r.item.source_file} {r.item.evidence[0]}", 70),
                    _cell(top_text, 90),
                ]
            )
        lines += _table(["id", "type", "question", "expected evidence", "top hit"], rows) if rows else ["None."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(path: Path, metrics: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to PNG
    import matplotlib.pyplot as plt

    figure, (by_rank, by_chars) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    ks = list(range(1, CURVE_DEPTH + 1))
    budgets = list(CHAR_CURVE)
    for mode, data in metrics["modes"].items():
        curve = [v if v is not None else float("nan") for v in data["hit_at_k"]]
        by_rank.plot(ks, curve, marker="o", label=mode)
        chars = [data["hit_at_chars"].get(str(b)) for b in budgets]
        by_chars.plot(budgets, [v if v is not None else float("nan") for v in chars], marker="o", label=mode)
    by_rank.set_xlabel("k (top-k passages)")
    by_rank.set_ylabel("share of answerable questions covered")
    by_rank.set_xticks(ks)
    by_rank.set_title("hit@k")
    by_chars.set_xlabel("characters of ranked passage text read")
    by_chars.set_xticks(budgets)
    by_chars.set_title("hit within the first N characters (fair across chunk sizes)", fontsize=9)
    for axes in (by_rank, by_chars):
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(f"{metrics['questions']['answerable']} answerable questions")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def default_out_dir() -> Path:
    return Path("eval/runs") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_eval(
    items: list[QAItem],
    searchers: dict[str, SearchFn],
    out_dir: Path,
    *,
    k: int = 10,
    compose: Callable[[str, list[Hit]], Answer] | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate and write metrics.json, results.jsonl, report.md, hit_at_k.png into ``out_dir``."""
    cutoffs = tuple(sorted(set(RANK_CUTOFFS) | {k}))
    results = evaluate(items, searchers, k=k, compose=compose, progress=progress)
    metrics: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "",
        "qa_file": "",
        **(info or {}),
        "k": k,
        "questions": {
            "total": len(items),
            "answerable": sum(i.answerable for i in items),
            "unanswerable": sum(not i.answerable for i in items),
        },
        "coverage_threshold": COVERAGE_THRESHOLD,
        "answers_composed": compose is not None,
        "modes": build_metrics(results, cutoffs),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as handle:
        for mode_results in results.values():
            for result in mode_results:
                handle.write(json.dumps(result.to_dict(k), ensure_ascii=False) + "\n")
    write_plot(out_dir / "hit_at_k.png", metrics)
    write_report(out_dir / "report.md", metrics, results, "hit_at_k.png")
    return metrics


def cli_eval(args) -> int:
    """``python -m assistant eval [--qa FILE] [--index DIR] [--corpus DIR] [--mode M|all] [-k 10] [--out DIR]``"""
    if args.k < 1:
        raise AssistantError("-k must be at least 1")
    corpus_dir, index_dir = Path(args.corpus), Path(args.index)
    items = load_qa(args.qa, corpus_dir)
    modes = list(ALL_MODES) if args.mode == "all" else [args.mode]
    out_dir = Path(args.out) if args.out else default_out_dir()
    retriever = load_retriever(index_dir, corpus_dir)
    compose = _load_composer(retriever)
    if compose is None:
        print("note: assistant.compose is not available; answer metrics are skipped", file=sys.stderr)
    searchers = make_searchers(modes, retriever, corpus_dir)
    command = (
        f"python -m assistant eval --qa {args.qa} --index {args.index} --corpus {args.corpus} "
        f"--mode {args.mode} -k {args.k}" + (f" --out {args.out}" if args.out else "")
    )
    info = {"command": command, "qa_file": str(args.qa), "index": str(index_dir), "corpus": str(corpus_dir)}
    metrics = run_eval(items, searchers, out_dir, k=args.k, compose=compose, info=info)
    print(format_summary(metrics))
    print(f"\nwrote {out_dir}/: metrics.json results.jsonl report.md hit_at_k.png")
    return 0


def _main(argv: list[str]) -> int:
    """Validate Q&A files: ``python -m assistant.evaluation FILE... [--corpus DIR]``."""
    corpus = DEFAULT_CORPUS_DIR
    if "--corpus" in argv:
        at = argv.index("--corpus")
        corpus = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    status = 0
    for name in argv:
        items, problems = check_qa_file(name, corpus)
        for problem in problems:
            print(f"{name}: {problem}")
        types = Counter(i.type for i in items)
        files = Counter(i.source_file for i in items if i.answerable)
        low = sum(i.type == "paraphrase" or question_overlap(i.question, i.evidence) < LOW_OVERLAP for i in items if i.answerable)
        print(
            f"{name}: {len(items)} valid, {len(problems)} problems; types {dict(types)}; files {dict(files)}; "
            f"paraphrased or low overlap: {low}/{sum(i.answerable for i in items)}"
        )
        status |= bool(problems)
    return status


LOW_OVERLAP = 0.5  # question shares under half its character bigrams with the evidence


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
