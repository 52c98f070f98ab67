"""The bar to beat: what a user would build in an hour with off-the-shelf parts.

LangChain's ``RecursiveCharacterTextSplitter`` (500 characters, 50 overlap) over the raw corpus
files, then BM25 (bm25s) over jieba tokens. No document structure, no titles, no dense vectors.
The eval command runs it as mode ``baseline`` next to the real retriever.

>>> baseline = BaselineRetriever.build("corpus")
>>> hits = baseline.search("小微企业贷款能延期还本付息吗", k=10)
>>> hits[0].clause.source, hits[0].clause.line_start, hits[0].clause.line_end
('004_260f99d2aa0f9dae.txt', 1410, 1410)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError
from assistant.types import Clause, Hit

CHUNK_SIZE = 500
CHUNK_OVERLAP = 50
SEPARATORS = ["\n\n", "\n", "。", "；", "，", ""]


def corpus_texts(corpus_dir: str | Path) -> list[tuple[str, str]]:
    """(file name, text) for each readable corpus file; lines as :mod:`assistant.loaders` decodes
    them, joined with "\\n", so line numbers agree with the rest of the assistant."""
    from assistant.loaders import UnreadableFile, is_supported, read_source_file

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise AssistantError(f"corpus directory {corpus_dir} not found; pass --corpus DIR")
    texts = []
    for path in sorted(p for p in corpus_dir.iterdir() if p.is_file() and is_supported(p)):
        try:
            texts.append((path.name, "\n".join(read_source_file(path).lines)))
        except UnreadableFile:
            continue  # the real index skips it too (and `corpus inspect` says why)
    if not texts:
        raise AssistantError(f"no readable corpus files in {corpus_dir}; pass --corpus DIR with the corpus files")
    return texts


def split_file(name: str, text: str) -> list[Clause]:
    """Split one file's text into 500-character chunks, each a Clause with its 1-based line span.

    The line span is computed from the chunk's character offset in ``text``; ``section_path`` is
    empty and ``label`` is "" because the splitter knows nothing about articles or items.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, separators=SEPARATORS
    )
    # offsets where each line starts, to turn a character offset into a line number
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    clauses: list[Clause] = []
    search_from = 0
    for ordinal, chunk in enumerate(splitter.split_text(text), start=1):
        start = text.find(chunk, search_from)
        if start < 0:  # should not happen (chunks are stripped substrings); stay correct anyway
            start = text.find(chunk)
        # the next chunk starts after this one's start (it overlaps at most 50 characters)
        search_from = start + 1
        end = start + len(chunk) - 1  # offset of the chunk's last character
        clauses.append(
            Clause(
                clause_id=f"baseline:{name}:{ordinal}",
                doc_id=f"{Path(name).stem}#0",
                source=name,
                doc_title=name,
                section_path=(),
                label="",
                text=chunk,
                index_text=chunk,
                line_start=bisect.bisect_right(line_starts, start),
                line_end=bisect.bisect_right(line_starts, end),
            )
        )
    return clauses


def tokenize(text: str) -> list[str]:
    """jieba words, whitespace dropped: the tokenizer a first attempt would use."""
    import jieba

    return [token for token in jieba.lcut(text) if token.strip()]


@dataclass
class BaselineRetriever:
    """Fixed-size chunks + BM25; ``search`` returns Hits like :class:`assistant.retriever.Retriever`."""

    clauses: list[Clause]
    bm25: object

    @classmethod
    def build(cls, corpus_dir: str | Path) -> "BaselineRetriever":
        import bm25s
        import jieba

        jieba.setLogLevel(60)  # jieba prints its dictionary-loading banner to stderr otherwise
        clauses: list[Clause] = []
        for name, text in corpus_texts(corpus_dir):
            clauses.extend(split_file(name, text))
        bm25 = bm25s.BM25()
        bm25.index([tokenize(c.text) for c in clauses], show_progress=False)
        return cls(clauses=clauses, bm25=bm25)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        tokens = tokenize(query)
        if not tokens:
            return []
        k = min(k, len(self.clauses))
        documents, scores = self.bm25.retrieve([tokens], k=k, show_progress=False)
        hits = []
        for rank, (index, score) in enumerate(zip(documents[0], scores[0]), start=1):
            if score <= 0:  # no query word in the chunk: bm25s pads with zero-score rows
                break
            hits.append(Hit(clause=self.clauses[int(index)], score=float(score), ranks={"baseline": rank}))
        return hits
