"""Running an eval: every question through every mode, answers composed by the Assistant.

    python -m assistant eval                       # eval/qa.jsonl, all four modes, eval/runs/<UTC time>/
    python -m assistant eval --mode hybrid -k 10 --qa my_questions.jsonl --out /tmp/run
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from assistant.errors import AssistantError
from assistant.evaluation.metrics import (
    CHAR_BUDGETS,
    CHAR_CURVE,
    COVERAGE_THRESHOLD,
    RANK_CUTOFFS,
    EvidenceMatcher,
    QuestionResult,
    score_passages,
)
from assistant.evaluation.qa import QAItem, load_qa
from assistant.evaluation.report import build_metrics, format_summary, write_plot, write_report
from assistant.text import strip_spaces
from assistant.types import Answer, Hit

RETRIEVER_MODES = ("hybrid", "bm25", "dense")
ALL_MODES = RETRIEVER_MODES + ("baseline",)



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


ComposeFn = Callable[[str, list[Hit]], Answer]


class AskingSearcher:
    """The hybrid mode as users get it: :meth:`Assistant.ask` (lookup, search, compose) for each
    question; the hits it answered from are what retrieval is scored on, and its answer is the
    composed answer (``compose`` hands it back), so each answer comes from one search."""

    def __init__(self, assistant):
        self.assistant = assistant
        self._answers: dict[str, Answer] = {}

    def __call__(self, question: str, k: int) -> list[Hit]:
        answer = self.assistant.ask(question, k=k)
        self._answers[question] = answer
        return list(answer.hits)

    def compose(self, question: str, hits: list[Hit]) -> Answer:
        return self._answers.pop(question)


def make_runners(modes: list[str], assistant, corpus_dir: Path) -> tuple[dict[str, SearchFn], dict[str, ComposeFn]]:
    """Per mode, ``search(question, k) -> hits`` and ``compose(question, hits) -> Answer``: hybrid is
    the Assistant's own ``ask``; bm25, dense and the baseline compose their hits with the same
    Assistant (same signals, same quote lookup)."""
    searchers: dict[str, SearchFn] = {}
    composers: dict[str, ComposeFn] = {}
    retriever = assistant.retriever if assistant is not None else None
    for mode in modes:
        if mode == "hybrid":
            asking = AskingSearcher(assistant)
            searchers[mode], composers[mode] = asking, asking.compose
        elif mode in RETRIEVER_MODES:
            searchers[mode] = lambda q, k, _mode=mode: retriever.search(q, k=k, mode=_mode)
            composers[mode] = assistant.answer
    if "baseline" in modes:
        from assistant.baseline import BaselineRetriever

        baseline = BaselineRetriever.build(corpus_dir)
        searchers["baseline"] = baseline.search
        if assistant is not None:
            composers["baseline"] = assistant.answer
    return searchers, composers


def evaluate(
    items: list[QAItem],
    searchers: dict[str, SearchFn],
    *,
    k: int = 10,
    compose: ComposeFn | dict[str, ComposeFn] | None = None,
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
            composer = compose.get(mode) if isinstance(compose, dict) else compose
            if composer is not None:
                answer = composer(item.question, hits[:k])
                result.answer = answer
                if item.answerable:
                    quotes = [] if answer.abstained else [q.text for q in answer.quotes]
                    result.answer_evidence = [any(m.covered_by(q) for q in quotes) for m in matchers[item.id]]
                    result.answer_covers = any(result.answer_evidence)
            results[mode].append(result)
            bar.update(1)
    bar.close()
    return results


def default_out_dir() -> Path:
    return Path("eval/runs") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_eval(
    items: list[QAItem],
    searchers: dict[str, SearchFn],
    out_dir: Path,
    *,
    k: int = 10,
    compose: ComposeFn | dict[str, ComposeFn] | None = None,
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


def _corpus_of(corpus_dir: Path, index_dir: Path) -> Path:
    """The corpus the evidence is checked against: ``--corpus`` when it exists, else the one the
    index was built from (so that eval runs from any directory, as search and serve do)."""
    if corpus_dir.is_dir():
        return corpus_dir
    from assistant.store import read_manifest

    try:
        built_from = read_manifest(index_dir).get("corpus_dir")
    except AssistantError:
        return corpus_dir
    return Path(built_from) if isinstance(built_from, str) and Path(built_from).is_dir() else corpus_dir


def cli_eval(args) -> int:
    """``python -m assistant eval [--qa FILE] [--index DIR] [--corpus DIR] [--mode M|all] [-k 10] [--out DIR]``"""
    if args.k < 1:
        raise AssistantError("-k must be at least 1")
    corpus_dir, index_dir = _corpus_of(Path(args.corpus), Path(args.index)), Path(args.index)
    items = load_qa(args.qa, corpus_dir)
    modes = list(ALL_MODES) if args.mode == "all" else [args.mode]
    out_dir = Path(args.out) if args.out else default_out_dir()
    from assistant.pipeline import Assistant

    try:
        assistant = Assistant.load(index_dir)  # refuses a missing index with the command that builds it
    except AssistantError:
        if set(modes) & set(RETRIEVER_MODES):
            raise
        assistant = None  # the baseline alone needs no index; its answers are then not composed
        print("note: no index, so baseline answers are not composed", file=sys.stderr)
    searchers, compose = make_runners(modes, assistant, corpus_dir)
    command = (
        f"python -m assistant eval --qa {args.qa} --index {args.index} --corpus {corpus_dir} "
        f"--mode {args.mode} -k {args.k}" + (f" --out {args.out}" if args.out else "")
    )
    info = {"command": command, "qa_file": str(args.qa), "index": str(index_dir), "corpus": str(corpus_dir)}
    metrics = run_eval(items, searchers, out_dir, k=args.k, compose=compose, info=info)
    print(format_summary(metrics))
    print(f"\nwrote {out_dir}/: metrics.json results.jsonl report.md hit_at_k.png")
    return 0
