"""Nothing in the bundled corpus is lost silently (the ownership rule is in assistant/chunking.py).

Every line of every file is either noise of a named category or owned by exactly one clause (the
clause holding its first character); clause spans only overlap on a line that several articles
share; and the clause texts, in order, hold every body character of the file exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from assistant.corpus import load_corpus
from assistant.documents import clean_lines
from assistant.text import strip_spaces

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"
NOISE_CATEGORIES = {
    "blank", "page_marker", "toc", "front_matter", "running_header",
    "doc_header", "signature", "colophon", "heading",
}


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CORPUS_DIR)


def test_every_line_is_noise_or_owned_by_one_clause(corpus):
    clauses = {clause.clause_id: clause for clause in corpus.clauses}
    for source in corpus.files:
        roles = corpus.line_roles[source.name]
        assert sorted(roles) == list(range(1, len(source.lines) + 1)), source.name
        for line, role in roles.items():
            if role.startswith("clause:"):
                clause = clauses[role.removeprefix("clause:")]
                assert clause.source == source.name
                assert clause.line_start <= line <= clause.line_end, (source.name, line, clause.clause_id)
            else:
                assert role in NOISE_CATEGORIES, (source.name, line, role)
                if role == "blank":
                    assert not source.lines[line - 1].strip()
        counted = Counter(role for role in roles.values() if not role.startswith("clause:"))
        assert corpus.noise[source.name] == dict(counted)


def test_clause_spans_overlap_only_on_a_shared_line(corpus):
    by_source: dict[str, list] = {}
    for clause in corpus.clauses:
        by_source.setdefault(clause.source, []).append(clause)
    for source, clauses in by_source.items():
        roles = corpus.line_roles[source]
        for previous, current in zip(clauses, clauses[1:]):
            assert current.line_start >= previous.line_end, (previous.clause_id, current.clause_id)
            if current.line_start == previous.line_end:
                # The shared line belongs to the clause that starts first on it.
                assert roles[current.line_start] != f"clause:{current.clause_id}"
        for clause in clauses:
            assert clause.line_start <= clause.line_end
            assert clause.text == clause.text.strip() and clause.text


def test_clause_texts_hold_every_body_character_once(corpus):
    for source in corpus.files:
        roles = corpus.line_roles[source.name]
        cleaned = clean_lines(source.lines)
        expected = "".join(
            strip_spaces(cleaned[line - 1].text) for line in range(1, len(source.lines) + 1) if roles[line].startswith("clause:")
        )
        got = "".join(strip_spaces(clause.text) for clause in corpus.clauses if clause.source == source.name)
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            pytest.fail(f"{source.name}: clause text differs from body lines at char {at}: {got[at - 20:at + 20]!r} vs {expected[at - 20:at + 20]!r}")


def test_noise_is_never_body_text(corpus):
    """Lines counted as noise really are noise: no article or numbered item hides in them."""
    from assistant.chunking import parse_heading

    for source in corpus.files:
        cleaned = clean_lines(source.lines)
        for line, role in corpus.line_roles[source.name].items():
            if role in ("doc_header", "signature", "colophon"):
                heading = parse_heading(cleaned[line - 1].text)
                assert heading is None or heading.kind not in ("article", "cn_item"), (source.name, line, role)


def test_load_is_fast_and_ids_are_stable(corpus):
    started = time.perf_counter()
    again = load_corpus(CORPUS_DIR)
    assert time.perf_counter() - started < 5
    assert [clause.clause_id for clause in again.clauses] == [clause.clause_id for clause in corpus.clauses]
    assert len({clause.clause_id for clause in corpus.clauses}) == len(corpus.clauses)


def test_bare_heading_lines_live_on_in_section_paths(corpus):
    """A line counted as `heading` is not lost: its words are in the section_path of its clauses."""
    import re

    def compact(text: str) -> str:
        return re.sub(r"[\s（）()、.．:：，,]", "", text)

    for source in corpus.files:
        cleaned = clean_lines(source.lines)
        paths = {compact(element) for clause in corpus.clauses if clause.source == source.name for element in clause.section_path}
        for line, role in corpus.line_roles[source.name].items():
            if role == "heading":
                words = compact(cleaned[line - 1].text)
                assert any(words in path or path in words and len(path) >= len(words) - 2 for path in paths), (source.name, line, words)


def test_clauses_respect_the_size_bounds(corpus):
    over = [c for c in corpus.clauses if len(c.text) > corpus.max_chars + corpus.min_chars]
    assert not over, [(c.clause_id, len(c.text)) for c in over[:5]]


def test_line_repairs_only_remove_page_markers_and_doubled_labels(corpus):
    """What cleaning takes out of a line is dashes, digits and spaces of page markers, or a doubled
    article label - never words."""
    from assistant.documents import DOUBLED_LABEL

    for source in corpus.files:
        for number, (raw, line) in enumerate(zip(source.lines, clean_lines(source.lines)), 1):
            if line.noise:
                assert line.noise in ("blank", "page_marker")
                assert not raw.strip() or set(raw.strip()) <= set("—–-－― 0123456789\t")
                continue
            removed = Counter(raw) - Counter(line.text)
            if "doubled_label" in line.repairs:
                label = DOUBLED_LABEL.match(raw).group(2)
                removed -= Counter(label)
            assert set(removed) <= set("—–-－― 0123456789\t\u3000"), (source.name, number, removed)
