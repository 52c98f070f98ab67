"""The Q&A file: one question per JSON line, checked against the corpus before anything is scored.

>>> items = load_qa("eval/qa.jsonl")          # AssistantError listing every problem with its line
>>> items, problems = check_qa_file("my.jsonl")

Validate a file on its own: ``python -m assistant.evaluation FILE``. The format: eval/README.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from assistant.errors import AssistantError
from assistant.paths import DEFAULT_CORPUS_DIR
from assistant.text import normalize_for_matching

QA_KEYS = ("id", "question", "answer", "evidence", "source_file", "doc_title", "type", "answerable")
QA_TYPES = ("lookup", "paraphrase", "numeric", "responsibility", "procedure", "condition", "date", "unanswerable")
EVIDENCE_MIN_CHARS = 10
EVIDENCE_MAX_CHARS = 120
LOW_OVERLAP = 0.5  # question shares under half its character bigrams with the evidence



def writing_batch(question_id: str) -> str:
    """The batch a question was written in: its id's prefix (e3-042 -> e3), one per writer and day.
    Held-out scores hold out whole batches: questions from people a model has not read."""
    return str(question_id).split("-")[0]


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
