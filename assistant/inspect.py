"""``python -m assistant corpus inspect``: the corpus as the assistant reads it, for checking by eye.

    python -m assistant corpus inspect                       # every document + summary
    python -m assistant corpus inspect --file 000            # one file (name or unique prefix)
    python -m assistant corpus inspect --file 000 --doc 5    # one document with its clause tree

Per document: ordinal, title, 文号, issuer, date, city, line range, then one line per clause,
indented by depth, with its line span, label and a text preview. The summary gives documents per
file, clause count, clause length percentiles and noise lines per category.
"""

from __future__ import annotations

import sys
from typing import TextIO

from assistant.corpus import Corpus, load_corpus
from assistant.errors import AssistantError
from assistant.types import Clause, Document

PREVIEW_CHARS = 48


def cli_inspect(args) -> int:
    try:
        return _inspect(args)
    except BrokenPipeError:  # `... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


def _inspect(args) -> int:
    corpus = load_corpus(args.corpus)
    for name, reason in corpus.skipped:
        print(f"warning: skipped {name}: {reason}", file=sys.stderr)
    source = _resolve_file(corpus, args.file) if args.file else None
    documents = corpus.documents if source is None else corpus.documents_of(source)
    if args.doc is not None:
        if not 1 <= args.doc <= len(documents):
            where = f"in {source}" if source else "in the corpus"
            raise AssistantError(f"--doc {args.doc} is out of range: there are {len(documents)} documents {where} (1..{len(documents)})")
        documents = [documents[args.doc - 1]]
    out = sys.stdout
    by_doc: dict[str, list[Clause]] = {}
    for clause in corpus.clauses:
        by_doc.setdefault(clause.doc_id, []).append(clause)
    ordinals = {document.doc_id: index for index, document in enumerate(corpus.documents if source is None else corpus.documents_of(source), 1)}
    for document in documents:
        print_document(document, by_doc.get(document.doc_id, []), ordinals[document.doc_id], out)
    print_summary(corpus, out, only=source)
    return 0


def _resolve_file(corpus: Corpus, name: str) -> str:
    names = [source.name for source in corpus.files]
    if name in names:
        return name
    matches = [candidate for candidate in names if candidate.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AssistantError(f"no corpus file matches --file {name!r}; files: {', '.join(names)}")
    raise AssistantError(f"--file {name!r} matches several files ({', '.join(matches)}); give more of the name")


def print_document(document: Document, clauses: list[Clause], ordinal: int, out: TextIO) -> None:
    print(f"[{ordinal}] {document.title}", file=out)
    print(
        f"    文号: {document.doc_number or '-'}  发文: {document.issuer or '-'}  日期: {document.date or '-'}  "
        f"城市: {document.city or '-'}  {document.source}:{document.line_start}-{document.line_end}  id: {document.doc_id}",
        file=out,
    )
    shown: tuple[str, ...] = ()
    for clause in clauses:
        path = clause.section_path
        # Headings this clause opens: path prefixes it does not share with the previous clause.
        for depth in range(len(path) - 1):
            if path[: depth + 1] != shown[: depth + 1]:
                print(f"    {'  ' * depth}§ {path[depth]}", file=out)
        shown = path
        depth = max(len(path) - 1, 0)
        part = f" (part {clause.part})" if clause.part else ""
        span = f"{clause.line_start}" if clause.line_start == clause.line_end else f"{clause.line_start}-{clause.line_end}"
        preview = clause.text.replace("\n", " ⏎ ")
        if len(preview) > PREVIEW_CHARS:
            preview = preview[:PREVIEW_CHARS] + "…"
        print(f"    {'  ' * depth}{span:>9}  {clause.label}{part} [{len(clause.text)}] {preview}", file=out)
    print(file=out)


def percentile(values: list[int], fraction: float) -> int:
    """Nearest-rank percentile (no numpy needed for a summary line)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def print_summary(corpus: Corpus, out: TextIO, only: str | None = None) -> None:
    files = [source for source in corpus.files if only is None or source.name == only]
    names = {source.name for source in files}
    clauses = [clause for clause in corpus.clauses if clause.source in names]
    lengths = [len(clause.text) for clause in clauses]
    print("== summary ==", file=out)
    print(f"chunker {corpus.chunker_version}, min_chars={corpus.min_chars}, max_chars={corpus.max_chars}", file=out)
    for source in files:
        documents = corpus.documents_of(source.name)
        count = sum(1 for clause in clauses if clause.source == source.name)
        print(f"{source.name}: {len(documents)} documents, {count} clauses, {len(source.lines)} lines ({source.encoding})", file=out)
        noise = corpus.noise.get(source.name, {})
        print("    noise lines: " + (", ".join(f"{category} {count}" for category, count in noise.items()) or "none"), file=out)
        repairs = corpus.repairs.get(source.name, {})
        if repairs:
            print("    repairs: " + ", ".join(f"{kind} {count}" for kind, count in repairs.items()), file=out)
    print(f"documents: {sum(len(corpus.documents_of(s.name)) for s in files)}, clauses: {len(clauses)}", file=out)
    if lengths:
        print(
            "clause length (chars): "
            f"p10 {percentile(lengths, 0.1)}, p50 {percentile(lengths, 0.5)}, p90 {percentile(lengths, 0.9)}, max {max(lengths)}",
            file=out,
        )
    for name, reason in corpus.skipped:
        print(f"skipped {name}: {reason}", file=out)
