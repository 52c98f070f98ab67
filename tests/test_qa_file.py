"""The bundled eval set eval/qa.jsonl: schema, evidence in the corpus, size, mix and spread."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from assistant.evaluation import LOW_OVERLAP, QAItem, check_qa_file, question_overlap
from assistant.loaders import read_source_file

REPO = Path(__file__).resolve().parents[1]
QA_FILE = REPO / "eval" / "qa.jsonl"
CORPUS = REPO / "corpus"


@pytest.fixture(scope="module")
def qa_items() -> list[QAItem]:
    if not QA_FILE.is_file():
        pytest.fail(f"{QA_FILE} is missing: it is the bundled eval set, restore it from git")
    items, problems = check_qa_file(QA_FILE, CORPUS)
    assert not problems, "\n".join(problems[:30])
    return items


def answerable(items: list[QAItem]) -> list[QAItem]:
    return [i for i in items if i.answerable]


def test_schema_ids_and_evidence_are_valid(qa_items):
    # check_qa_file already refused bad keys/types, duplicate ids and evidence not in one line of
    # its source file; here only what it returned
    assert len({i.id for i in qa_items}) == len(qa_items)
    for item in answerable(qa_items):
        assert item.evidence and all(10 <= len(e) <= 120 for e in item.evidence)


def test_size_and_unanswerable_share(qa_items):
    total = len(qa_items)
    unanswerable = [i for i in qa_items if not i.answerable]
    count = len(unanswerable)
    assert total >= 150, f"only {total} questions"
    assert count >= 0.10 * total, f"only {count} of {total} questions are unanswerable (need 10 %)"
    assert all(i.type == "unanswerable" and not i.evidence for i in unanswerable)


def test_every_corpus_file_has_many_documents_spread_over_the_file(qa_items):
    by_file: dict[str, list[QAItem]] = defaultdict(list)
    for item in answerable(qa_items):
        by_file[item.source_file].append(item)
    corpus_files = sorted(p.name for p in CORPUS.glob("*.txt"))
    assert sorted(by_file) == corpus_files
    for name, items in by_file.items():
        titles = {i.doc_title for i in items}
        assert len(titles) >= 3, f"{name}: questions from only {len(titles)} documents"
        # where the evidence sits: questions must reach from the first third to the last third
        lines = read_source_file(CORPUS / name).lines
        found = []
        for item in items:
            evidence = item.evidence[0]
            found.append(next(n for n, line in enumerate(lines, start=1) if evidence in line) / len(lines))
        assert min(found) < 1 / 3 and max(found) > 2 / 3, f"{name}: evidence only between {min(found):.0%} and {max(found):.0%} of the file"


def test_questions_mix_types(qa_items):
    types = Counter(i.type for i in qa_items)
    assert set(types) == {"lookup", "paraphrase", "numeric", "responsibility", "procedure", "condition", "date", "unanswerable"}, types


def test_at_least_half_are_paraphrased(qa_items):
    items = answerable(qa_items)
    overlaps = {i.id: question_overlap(i.question, i.evidence) for i in items}
    low = [i for i in items if overlaps[i.id] < LOW_OVERLAP]
    paraphrased = [i for i in items if i.type == "paraphrase" or overlaps[i.id] < LOW_OVERLAP]
    assert len(paraphrased) >= 0.5 * len(items), f"only {len(paraphrased)}/{len(items)} paraphrased"
    # and not just by label: most questions share under half their character bigrams with the evidence
    assert len(low) >= 0.5 * len(items), f"only {len(low)}/{len(items)} questions have low overlap"
    copied = [i.id for i in items if overlaps[i.id] >= 0.9]
    assert len(copied) <= 0.1 * len(items), f"questions copied from the evidence: {copied}"


def test_held_out_set_is_valid_and_shares_no_question_with_the_tuning_set(qa_items):
    # eval/qa_holdout.jsonl was written after the retriever and abstention were tuned on qa.jsonl,
    # by someone who did not read qa.jsonl: it checks that the tuning generalises
    holdout, problems = check_qa_file(REPO / "eval" / "qa_holdout.jsonl", CORPUS)
    assert not problems, "\n".join(problems[:30])
    assert len(holdout) >= 40 and sum(not i.answerable for i in holdout) >= 4
    assert {i.source_file for i in holdout if i.answerable} == {p.name for p in CORPUS.glob("*.txt")}
    assert not {i.question for i in holdout} & {i.question for i in qa_items}
    assert not {i.id for i in holdout} & {i.id for i in qa_items}
