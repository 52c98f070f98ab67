"""What a run writes: metrics per mode, the summary table, report.md and the hit@k plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.evaluation.metrics import (
    CHAR_BUDGETS,
    CHAR_CURVE,
    COVERAGE_THRESHOLD,
    CURVE_DEPTH,
    MRR_CUTOFF,
    QuestionResult,
    breakdown,
    char_curve,
    hit_curve,
    summarize,
)


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
