"""How an answer is shown: citations, the quote layout, and its plain-text and Markdown forms.

One layout (:func:`quote_groups`: quotes grouped by document, in answer order) feeds both the
plain text of ``ask`` and the Markdown of the chat page, so the two never drift apart. Every
corpus-derived string in Markdown goes through :func:`escape_markdown`.

>>> citation(clause, 54, 55)
'鹤壁市地源热泵系统建设应用管理暂行办法（鹤政办〔2025〕9号） › 第四条 — 000_ed0d53ce87970edb.txt:54-55'
>>> print(render_quotes(answer.quotes, answer.hits))
《鹤壁市地源热泵系统建设应用管理暂行办法（鹤政办〔2025〕9号）》：
「第四条 鹤壁市住房和城乡建设局是…」（第四条，000_ed0d53ce87970edb.txt:54）
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.types import Answer, Clause, Hit, Quote

NOT_FOUND = "未在现有文件中找到相关规定"
POSSIBLY_RELATED_SHOWN = 3


def document_name(clause: Clause) -> str:
    """Title with 文号 where known: '鹤壁市…暂行办法（鹤政办〔2025〕9号）'."""
    if clause.doc_number and clause.doc_number not in clause.doc_title:
        return f"{clause.doc_title}（{clause.doc_number}）"
    return clause.doc_title


def location(source: str, line_start: int, line_end: int) -> str:
    return f"{source}:{line_start}" if line_end <= line_start else f"{source}:{line_start}-{line_end}"


def citation(clause: Clause, line_start: int | None = None, line_end: int | None = None, label: str | None = None) -> str:
    """'<title（文号）> › <label> — <file>:<line>'."""
    start = clause.line_start if line_start is None else line_start
    end = start if line_end is None else line_end
    label = clause.label if label is None else label
    parts = [document_name(clause)]
    if label:
        parts.append(label)
    return f"{' › '.join(parts)} — {location(clause.source, start, end)}"


@dataclass(frozen=True)
class QuoteGroup:
    """The quotes of one document, in answer order."""

    document: str  # document_name of their clause
    quotes: tuple[Quote, ...]


def quote_groups(quotes: Sequence[Quote], hits: Sequence[Hit]) -> list[QuoteGroup]:
    """Consecutive quotes of one document form a group, headed by that document's name."""
    clauses = {h.clause.clause_id: h.clause for h in hits}
    groups: list[tuple[str, str, list[Quote]]] = []
    for quote in quotes:
        clause = clauses[quote.clause_id]
        if not groups or groups[-1][0] != clause.doc_id:
            groups.append((clause.doc_id, document_name(clause), []))
        groups[-1][2].append(quote)
    return [QuoteGroup(name, tuple(items)) for _, name, items in groups]


def _where(quote: Quote) -> str:
    return location(quote.source, quote.line_start, quote.line_end)


def render_quotes(quotes: Sequence[Quote], hits: Sequence[Hit]) -> str:
    """Plain-text answer body: quotes grouped by document, each with section and file:line."""
    lines: list[str] = []
    for group in quote_groups(quotes, hits):
        if lines:
            lines.append("")
        lines.append(f"《{group.document}》：")
        for quote in group.quotes:
            label = f"{quote.label.rstrip('，,、 ')}，" if quote.label else ""
            lines.append(f"「{quote.text}」（{label}{_where(quote)}）")
    return "\n".join(lines)


def render_related(hits: Sequence[Hit], shown: int = POSSIBLY_RELATED_SHOWN) -> list[str]:
    """Citations (not quotes) of the closest clauses, one line each."""
    return [f"- {citation(hit.clause)}" for hit in hits[:shown]]


def render_abstention(headline: str, hits: Sequence[Hit], shown: int = POSSIBLY_RELATED_SHOWN) -> str:
    """The abstention text: say why plainly, then name (not quote) the closest clauses."""
    lines = [headline]
    related = render_related(hits, shown)
    if related:
        lines += ["", "可能相关：", *related]
    return "\n".join(lines)


def full_clauses_text(answer: Answer) -> str:
    """The quoted clauses in full, below the short answer, so a quote can be read in context."""
    quoted = list(dict.fromkeys(q.clause_id for q in answer.quotes))
    clauses = {h.clause.clause_id: h.clause for h in answer.hits}
    if not quoted:
        return ""
    parts = ["", "—— 引用条款全文 ——"]
    for clause_id in quoted:
        clause = clauses[clause_id]
        parts += ["", f"【{citation(clause, clause.line_start, clause.line_end)}】", clause.text]
    return "\n".join(parts)


# --- Markdown (the chat page) -----------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~$!])")
_LIST_START = re.compile(r"^(\s*)(\d+)([.)])", re.MULTILINE)
# What GFM turns into a link by itself, anywhere in running text (a bare http://…, ftp://…, www.…,
# name@host): a backslash before the ':', '.' or '@' that makes it one leaves the text as it reads,
# with no link to another host.
_AUTOLINK_START = re.compile(r"(?i)(?:https?|ftp)(?=://)|www(?=\.)|(?=@)")


def escape_markdown(text: str) -> str:
    """Show corpus or user text literally in Markdown: no emphasis, lists, code spans or HTML
    (``<``, ``>`` and ``&`` become entities, which Markdown shows as the characters)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = _AUTOLINK_START.sub(lambda match: match.group() + "\\", text)
    text = _LIST_START.sub(r"\1\2\\\3", text)
    return re.sub(r"^(\s*)([-+=])", r"\1\\\2", text, flags=re.MULTILINE)


def answer_markdown(answer: Answer) -> str:
    """The chat reply: quotes in block quotes under their document, each with its citation."""
    parts: list[str] = []
    if answer.resolved_question and answer.resolved_question != answer.question:
        parts.append(f"*按「{escape_markdown(answer.resolved_question)}」理解*")
    if answer.notice:
        parts.append(f"*注意：{escape_markdown(answer.notice)}*")
    if answer.abstained:
        headline = answer.text.split("\n", 1)[0] if answer.text else f"{NOT_FOUND}。"
        parts.append(f"**{escape_markdown(headline)}**")
        if answer.hits:
            lines = ["可能相关（未必回答您的问题）："]
            for hit in answer.hits[:POSSIBLY_RELATED_SHOWN]:
                c = hit.clause
                lines.append(
                    f"- {escape_markdown(document_name(c))} › {escape_markdown(c.label)} — "
                    f"{escape_markdown(location(c.source, c.line_start, c.line_end))}"
                )
            parts.append("\n".join(lines))
        return "\n\n".join(parts)
    if answer.summary:
        parts.append(escape_markdown(answer.summary))
    for group in quote_groups(answer.quotes, answer.hits):
        parts.append(f"**{escape_markdown(group.document)}**")
        for quote in group.quotes:
            body = "\n".join(f"> {line}" if line else ">" for line in f"「{escape_markdown(quote.text)}」".split("\n"))
            label = f"{escape_markdown(quote.label)} · " if quote.label else ""
            parts.append(f"{body}\n>\n> —— {label}{escape_markdown(_where(quote))}")
    if answer.composer and answer.composer != "extractive":
        parts.append(f"<sub>回答方式：{escape_markdown(answer.composer)}</sub>")
    parts.append("<sub>完整条款见右侧「检索到的条款」。</sub>")
    return "\n\n".join(parts)
