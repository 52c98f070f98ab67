"""Load a corpus directory: files -> documents -> clauses, with every line accounted for.

>>> from assistant.corpus import load_corpus
>>> corpus = load_corpus("corpus")                                  # doctest: +SKIP
>>> len(corpus.files), len(corpus.documents), len(corpus.clauses)   # doctest: +SKIP
>>> corpus.noise["000_ed0d53ce87970edb.txt"]                         # doctest: +SKIP
{'blank': 0, 'doc_header': 31, 'page_marker': 1, ...}
>>> corpus.skipped                                                   # doctest: +SKIP
[('notes.xlsx', 'unsupported file type .xlsx; supported: ...')]

Files are read in name order and everything is deterministic, so the same corpus gives the same
documents, clauses and clause ids run after run.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from assistant.chunking import CHUNKER_VERSION, DEFAULT_MAX_CHARS, DEFAULT_MIN_CHARS, analyse_document
from assistant.documents import file_key, split_documents
from assistant.errors import AssistantError
from assistant.loaders import UnreadableFile
from assistant.types import Clause, Document, SourceFile


@dataclass
class Corpus:
    files: list[SourceFile] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    clauses: list[Clause] = field(default_factory=list)
    noise: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> category -> line count
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason): not loaded
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file name, note): loaded, but changed on the way
    ignored: list[str] = field(default_factory=list)  # hidden entries and README.md: not corpus documents by design
    # file -> {line: noise category or "clause:<clause_id>"}; every line of every file is a key.
    line_roles: dict[str, dict[int, str]] = field(default_factory=dict)
    repairs: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> repair kind -> count
    chunker_version: str = CHUNKER_VERSION
    min_chars: int = DEFAULT_MIN_CHARS
    max_chars: int = DEFAULT_MAX_CHARS

    def documents_of(self, source: str) -> list[Document]:
        return [document for document in self.documents if document.source == source]

    def clauses_of(self, doc_id: str) -> list[Clause]:
        return [clause for clause in self.clauses if clause.doc_id == doc_id]


@dataclass
class CorpusScan:
    """What :func:`scan_corpus` found: candidate files in name order, entries refused on the way
    (symlinks leading outside the folder, broken symlinks, pipes, duplicates), and entries ignored
    by design (hidden ones, README.md)."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (name inside the corpus, path)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() == "readme.md"


def scan_corpus(corpus_dir: str | os.PathLike) -> CorpusScan:
    """Walk ``corpus_dir`` (subfolders included) without trusting symlinks.

    A symlink (to a file or a folder) is followed only when it resolves to somewhere inside the
    corpus folder; one leading outside, or nowhere, is skipped with the reason. A file reached
    twice (a symlink inside the folder to another corpus file, a folder linked into itself) is
    loaded once, under its own name rather than a link's. Hidden entries (``.git``, ``.DS_Store``)
    and README.md files (the corpus's own description) are not corpus documents: they are listed
    in ``ignored``, not loaded.
    """
    from assistant.loaders import symlink_outside

    root = Path(corpus_dir)
    real_root = Path(os.path.realpath(root))
    scan = CorpusScan()
    found: list[tuple[str, Path, bool]] = []  # (name, path, reached through a symlink)
    visited = {real_root}

    def walk(directory: Path, prefix: str, linked: bool) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as error:
            scan.skipped.append((prefix or ".", f"cannot list folder: {error.strerror or error}"))
            return
        for entry in entries:
            name = prefix + entry.name
            if _is_ignored(entry.name):
                scan.ignored.append(name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
                continue
            path = Path(entry.path)
            is_link = entry.is_symlink()
            if is_link:
                reason = symlink_outside(path, root)
                if reason is not None:
                    scan.skipped.append((name, reason))
                    continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as error:
                scan.skipped.append((name, f"cannot read: {error.strerror or error}"))
                continue
            if is_dir and (is_link or linked):
                pending.append((path, name))  # after every real folder, so that files keep their own names
            elif is_dir:
                visited.add(Path(os.path.realpath(path)))
                walk(path, name + "/", False)
            elif is_file:
                found.append((name, path, linked or is_link))
            else:
                scan.skipped.append((name, "not a regular file (a pipe, socket or device)"))

    pending: list[tuple[Path, str]] = []  # folders reached through a symlink
    if real_root.is_dir():
        walk(root, "", False)
    while pending:
        path, name = pending.pop(0)
        real = Path(os.path.realpath(path))
        if real in visited:
            scan.skipped.append((name + "/", f"symlink to a folder already included ({real}): not read twice"))
            continue
        visited.add(real)
        walk(path, name + "/", True)
    # the same file reached twice: keep its own name (not a link's), else the first in name order
    owner: dict[str, str] = {}
    for name, path, _ in sorted(found, key=lambda item: (item[2], item[0])):
        real = os.path.realpath(path)
        if real in owner:
            scan.skipped.append((name, f"same file as {owner[real]} (a symlink): loaded once"))
        else:
            owner[real] = name
    scan.files = sorted(((name, path) for name, path, _ in found if owner.get(os.path.realpath(path)) == name),
                        key=lambda item: item[0])
    scan.skipped.sort(key=lambda item: item[0])
    return scan


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Candidate files in path order, subfolders included; hidden files/folders and README.md
    (the corpus's own description) are not corpus documents; symlinks leading outside the corpus
    folder are not followed (see :func:`scan_corpus`, which also says why each entry was left out)."""
    return [path for _, path in scan_corpus(corpus_dir).files]


def load_corpus(
    corpus_dir: str | os.PathLike,
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
    report: TextIO | None = None,
) -> Corpus:
    """Read every supported file in ``corpus_dir``; unreadable ones land in ``Corpus.skipped``
    as (name, reason), files loaded with changes (removed NUL characters, PDF repairs) in
    ``Corpus.notes``. Nothing is left out silently: with ``report`` (a stream, e.g. sys.stderr)
    :func:`report_skipped` prints them at once."""
    from assistant.loaders import read_source_file

    directory = Path(corpus_dir)
    if not directory.is_dir():
        raise AssistantError(f"corpus directory {directory} does not exist; pass --corpus DIR pointing at your notices")
    corpus = Corpus(min_chars=min_chars, max_chars=max_chars)
    scan = scan_corpus(directory)
    corpus.skipped.extend(scan.skipped)
    corpus.ignored.extend(scan.ignored)
    for name, path in scan.files:  # "sub/notice.docx" for files in subfolders
        notes: list[str] = []
        try:
            source = read_source_file(path, name=name, root=directory, notes=notes)
            add_source(corpus, source)
        except UnreadableFile as error:
            corpus.skipped.append((name, str(error)))
            continue
        except Exception as error:  # a parser or chunker failing on one file must not stop the others
            corpus.skipped.append((name, f"could not be read ({type(error).__name__}: {error})"))
            continue
        corpus.notes.extend((name, note) for note in notes)
    if not corpus.files and not corpus.skipped:
        raise AssistantError(f"corpus directory {directory} holds no files; put .txt/.md/.docx/.pdf/.html notices in it")
    if report is not None:
        report_skipped(corpus, report)
    return corpus


def report_skipped(corpus: Corpus, stream: TextIO | None = None) -> int:
    """Print every skipped corpus file with its reason, every note, and the count; return the
    number of skipped files. Prints nothing when every file loaded unchanged.

        跳过 / skipped broken.pdf: not a readable PDF (PdfStreamError: Stream has ended unexpectedly)
        注意 / note notice.txt: removed 2 NUL characters
        跳过 1 个文件（共 3 个）/ skipped 1 of 3 corpus files; the other 2 were loaded
    """
    stream = sys.stderr if stream is None else stream
    skipped = list(getattr(corpus, "skipped", None) or [])
    for name, reason in skipped:
        print(f"跳过 / skipped {name}: {reason}", file=stream)
    for name, note in getattr(corpus, "notes", None) or []:
        print(f"注意 / note {name}: {note}", file=stream)
    if skipped:
        total = len(skipped) + len(corpus.files)
        print(f"跳过 {len(skipped)} 个文件（共 {total} 个）/ skipped {len(skipped)} of {total} corpus files; "
              f"the other {len(corpus.files)} were loaded", file=stream)
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass
    return len(skipped)


def add_source(corpus: Corpus, source: SourceFile) -> None:
    """Split one decoded file into documents and clauses and add them to ``corpus``.

    All or nothing: when splitting or chunking raises, ``corpus`` is left as it was."""
    key = file_key(source.name)
    if any(file_key(other.name) == key for other in corpus.files):
        key = source.name  # notice.md next to notice.docx: keep their doc ids apart
    split = split_documents(source, key=key)
    documents = list(split.documents)
    layouts = list(split.layouts)  # what the split found (title, header end) hands chunking
    clauses: list[Clause] = []
    roles: dict[int, str] = dict(split.noise)
    repairs: Counter = Counter()
    if not documents:
        # A file without a recognisable title (a user's plain note): one document named after the file.
        from assistant.documents import whole_file_document

        documents = [whole_file_document(source, key=key)]
        layouts = [None]  # chunking works out the layout of a whole-file document itself
        roles = {}
    for document, layout in zip(documents, layouts):
        chunks = analyse_document(document, layout=layout, min_chars=corpus.min_chars, max_chars=corpus.max_chars)
        clauses.extend(chunks.clauses)
        roles.update(chunks.line_roles)
        repairs.update(chunks.repairs)
    corpus.files.append(source)
    corpus.documents.extend(documents)
    corpus.clauses.extend(clauses)
    corpus.line_roles[source.name] = roles
    noise = Counter(role for role in roles.values() if not role.startswith("clause:"))
    corpus.noise[source.name] = dict(sorted(noise.items()))
    corpus.repairs[source.name] = dict(sorted(repairs.items()))
