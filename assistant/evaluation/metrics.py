"""Scoring: does a passage cover an evidence string, at which rank, within how many characters.

A passage *covers* an evidence string when, with all whitespace removed from both, their longest
common substring is at least 60 % of the evidence's length. A question is a *hit* when ANY of its
evidence strings is covered.

>>> covers("第四条 项目由 市住建局 负责审批。", "地源热泵项目由市住建局负责审批")  # 11 of 15 characters
True
>>> covers("第四条 由市住建局审批。", "地源热泵项目由市住建局负责审批")  # 5 of 15
False
>>> score_passages(["无关", "地源热泵系统由市住建局审批"], ["由市住建局审批"]).first_rank
2
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Callable, Iterable

from assistant.evaluation.qa import QAItem, question_overlap
from assistant.text import strip_spaces
from assistant.types import Answer, Hit

COVERAGE_THRESHOLD = 0.6  # documented in eval/README.md; _needed_length encodes it in integers
RANK_CUTOFFS = (1, 3, 5, 10)
MRR_CUTOFF = 10
CHAR_BUDGETS = (1000, 2000)
CHAR_CURVE = tuple(range(250, 2001, 250))  # plotted: hit within the first N characters
CURVE_DEPTH = 10  # hit@k plotted for k = 1..10



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
