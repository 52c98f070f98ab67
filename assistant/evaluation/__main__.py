"""Validate Q&A files: ``python -m assistant.evaluation FILE... [--corpus DIR]``."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from assistant.evaluation.qa import LOW_OVERLAP, check_qa_file, question_overlap
from assistant.paths import DEFAULT_CORPUS_DIR


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




if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
