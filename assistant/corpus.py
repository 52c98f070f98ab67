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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assistant.chunking import CHUNKER_VERSION, DEFAULT_MAX_CHARS, DEFAULT_MIN_CHARS, analyse_document
from assistant.documents import file_key, split_documents
from assistant.errors import AssistantError
from assistant.loaders import UnreadableFile, read_source_file
from assistant.types import Clause, Document, SourceFile


@dataclass
class Corpus:
    files: list[SourceFile] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    clauses: list[Clause] = field(default_factory=list)
    noise: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> category -> line count
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
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


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Candidate files in path order, subfolders included; hidden files/folders and README.md
    (the corpus's own description) are not corpus documents."""
    paths = []
    for path in sorted(corpus_dir.rglob("*"), key=lambda p: p.relative_to(corpus_dir).as_posix()):
        relative = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in relative.parts) or path.name.lower() == "readme.md" or not path.is_file():
            continue
        paths.append(path)
    return paths


def load_corpus(
    corpus_dir: str | os.PathLike,
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Corpus:
    """Read every supported file in ``corpus_dir``; unreadable ones land in ``Corpus.skipped``."""
    directory = Path(corpus_dir)
    if not directory.is_dir():
        raise AssistantError(f"corpus directory {directory} does not exist; pass --corpus DIR pointing at your notices")
    corpus = Corpus(min_chars=min_chars, max_chars=max_chars)
    for path in corpus_files(directory):
        name = path.relative_to(directory).as_posix()  # "sub/notice.docx" for files in subfolders
        try:
            source = read_source_file(path, name=name)
        except UnreadableFile as error:
            corpus.skipped.append((name, str(error)))
            continue
        add_source(corpus, source)
    if not corpus.files and not corpus.skipped:
        raise AssistantError(f"corpus directory {directory} holds no files; put .txt/.md/.docx/.pdf/.html notices in it")
    return corpus


def add_source(corpus: Corpus, source: SourceFile) -> None:
    """Split one decoded file into documents and clauses and add them to ``corpus``."""
    key = file_key(source.name)
    if any(file_key(other.name) == key for other in corpus.files):
        key = source.name  # notice.md next to notice.docx: keep their doc ids apart
    split = split_documents(source, key=key)
    roles: dict[int, str] = dict(split.noise)
    repairs: Counter = Counter()
    for document in split.documents:
        chunks = analyse_document(document, min_chars=corpus.min_chars, max_chars=corpus.max_chars)
        corpus.clauses.extend(chunks.clauses)
        roles.update(chunks.line_roles)
        repairs.update(chunks.repairs)
    if not split.documents:
        # A file without a recognisable title (a user's plain note): one document named after the file.
        from assistant.documents import whole_file_document

        document = whole_file_document(source, key=key)
        split.documents.append(document)
        roles = {}
        chunks = analyse_document(document, min_chars=corpus.min_chars, max_chars=corpus.max_chars)
        corpus.clauses.extend(chunks.clauses)
        roles.update(chunks.line_roles)
        repairs.update(chunks.repairs)
    corpus.files.append(source)
    corpus.documents.extend(split.documents)
    corpus.line_roles[source.name] = roles
    noise = Counter(role for role in roles.values() if not role.startswith("clause:"))
    corpus.noise[source.name] = dict(sorted(noise.items()))
    corpus.repairs[source.name] = dict(sorted(repairs.items()))
