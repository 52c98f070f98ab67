"""Cut one document into clauses: the units retrieved and quoted (条 / 款 / 项).

>>> from assistant.corpus import load_corpus
>>> corpus = load_corpus("corpus")                                             # doctest: +SKIP
>>> document = corpus.documents[2]                                             # doctest: +SKIP
>>> for clause in chunk_document(document, max_chars=500)[:3]:                 # doctest: +SKIP
...     print(clause.label, clause.section_path, clause.line_start, clause.text[:20])
>>> split = split_documents(source)                   # assistant.documents   # doctest: +SKIP
>>> chunks = analyse_document(split.documents[0], layout=split.layouts[0])    # doctest: +SKIP
>>> item_label_at(chunks.clauses[3], chunks.clauses[3].text.index("（三）"))  # doctest: +SKIP
'第十一条（三）'

Pass the :class:`~assistant.documents.DocumentLayout` that ``split_documents`` made with the
document (cleaned lines, where the header ends); without one, ``document_layout`` derives it.
This module does lines -> clauses; :mod:`assistant.outline` holds the structure it cuts along
(heading parser, paragraphs, tree), :mod:`assistant.lines` the line cleaning and patterns.

Steps
-----
1. Line roles. Every line of the document gets a noise category or stays body: ``blank``,
   ``page_marker``, ``running_header`` (a gazette name + issue number alone on a line),
   ``doc_header`` (title, 文号, date, speaker lines - kept in :class:`Document` fields), ``toc``
   (a regulation's own 目录), ``signature`` (落款 issuer and date), ``colophon`` (抄送/印发/共印).
2. Paragraphs. Body lines are re-joined where the PDF wrapped a sentence (the line ends without
   sentence punctuation and the next one is not a heading); several articles or items on one line
   (``…管理协议。第十二条 地源热泵系统…``, ``…投放总额。（六）支持外贸融资。``, ``1、…;2、…``) are
   cut apart. A cross-reference (``依照本办法第十二条规定``, ``第五条、第六条所列``) is never a
   heading: a label only starts an article or item at the start of a paragraph or right after
   。；！？, is followed by text that is not 规定/所列/款/、…, and its number must follow the previous
   one's. Emphasis markup around a marker (``**第九条**``) is skipped when reading it.
3. Tree. Headings nest as official documents write them: 第X章/第X节 > 第X条 > （一） > 1. > （1）,
   and in notices 一、 > （一） > 1. > （1）. Below the article the nesting is read from the
   document itself (the order in which marker kinds first appear), so an unusual order still nests.
   ``附件`` starts a new top-level part.
4. Clauses. An article (or an item of a notice) whose whole text fits in ``max_chars`` is one clause,
   items included - short items stay with their parent. A longer one becomes its own lead text plus
   one clause per item; items shorter than ``min_chars`` merge into their neighbour. Text still
   longer than ``max_chars`` is split into parts of about equal size, at paragraph breaks or
   sentence ends (。；！？), each part keeping label and path with ``part`` = 1, 2, ... (a tail
   shorter than ``min_chars`` joins the last part, so a part may exceed ``max_chars`` by less
   than ``min_chars``). Articles never merge with each other, nor do a notice's 一、 sections.
   A heading never forms a clause alone: a heading with body text is in that clause; a bare item
   heading (``三、工作重点``, ``（一）第一阶段：…（2022年2月底前）``) opens the text of the first
   clause below it; a bare chapter/section/attachment title (``第二章 建设管理``) is carried in
   the ``section_path`` of every clause below it and its line is counted as ``heading``.

Clause text is the source text: paragraphs from separate lines are joined by a newline, pieces cut
from one line by the characters that stood between them, so every quote is a verbatim substring.

Citations name the exact item
-----------------------------
``Clause.label`` names the clause's item (``一、（三）–（四）`` for merged items). A quote names the
innermost item holding it: :func:`item_labels` lists where each item starts in ``clause.text``
with its full label (``[(0, '一、（三）'), (118, '一、（三）1.'), …]``), read from the text with the
same heading parser and nesting rule as the tree; :func:`item_label_at` picks the one for an
offset. ``DocumentChunks.item_starts`` holds the same lists as the tree knew them when cutting
(``tests/test_citations.py`` checks that both agree on the whole corpus).

Line ownership (the coverage rule)
----------------------------------
Every source line is accounted for exactly once: either it is noise (a category above, or
``heading``) or it is *owned* by exactly one clause - the clause holding the line's first
character. A line carrying several articles (``…协议。第十二条 …``) is owned by the clause it starts
in; the later clauses on it still have it as their ``line_start`` (their span starts on that line)
but do not own it. So clause spans of one file never overlap except at such a shared boundary line,
and concatenating all clause texts in order gives back every body character of the file (modulo
the repaired page markers and doubled labels), which ``tests/test_corpus_coverage.py`` checks.

Cost is linear in the document's length: joined texts are built once per clause (parts of a long
clause share one), cut points are found by bisection, and line numbers are kept as runs.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field

from assistant.citing import item_label_at, item_labels  # noqa: F401  (public here: cite the item)
from assistant.documents import DocumentLayout, document_layout
from assistant.lines import ANNEX_LINE, DATE_ONLY_LINE, ORG_LINE, TOC_ENTRY, TOC_HEADING
from assistant.outline import (  # noqa: F401  (Heading, parse_heading: public here too)
    Heading,
    Node,
    Paragraph,
    build_paragraphs,
    build_tree,
    is_heading_only,
    parse_heading,
)
from assistant.text import strip_spaces
from assistant.types import Clause, Document, index_text_of

# Bump when chunking changes what clauses come out, so indexes built by an older chunker are rebuilt.
CHUNKER_VERSION = "5"
# Size bounds (chosen on the eval sets: see eval/README.md).
DEFAULT_MIN_CHARS = 40
DEFAULT_MAX_CHARS = 500

# Nodes that are never quoted whole: their children are the citation units.
_CONTAINER_KINDS = {"root", "annex", "chapter", "section"}

# --- line roles -----------------------------------------------------------------------------------

_COLOPHON_START = re.compile(r"^(?:抄\s*送|抄\s*报|主\s*送|（此件|\(此件|（共印|\(共印)|印\s*发\s*$|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日\s*印\s*发")
# The name of a gazette or compilation standing alone on a line inside a document, with its issue
# number: a page header the PDF text layer kept. ("…政策汇编" inside a sentence has punctuation.)
_RUNNING_HEADER = re.compile(
    r"^[\u4e00-\u9fff“”《》]{2,24}(?:公报|汇编|简报|通讯|政报)》?"
    r"(?:\d{4}年?)?(?:第\d{1,3}[期号])?(?:[（(]总第\d{1,4}[期号][）)])?$"
)


def document_line_roles(layout: DocumentLayout) -> list[str | None]:
    """Noise category per document line (index 0 = ``document.line_start``), None for body lines."""
    cleaned = layout.cleaned
    roles: list[str | None] = [line.noise for line in cleaned]
    for index in range(layout.header_end + 1):
        if roles[index] is None:
            roles[index] = "doc_header"
    colophon = False
    in_toc = False
    for index in range(layout.header_end + 1, len(cleaned)):
        if roles[index] is not None:
            continue
        text = strip_spaces(cleaned[index].text)
        if TOC_HEADING.match(text):
            in_toc = True  # a regulation's own table of contents: "目 录" + "- 第一章 总 则" ...
            roles[index] = "toc"
            continue
        if in_toc:
            if len(text) <= 40 and (text.startswith(("-", "•", "·")) or TOC_ENTRY.search(cleaned[index].text)):
                roles[index] = "toc"
                continue
            in_toc = False
        if _RUNNING_HEADER.match(text):
            roles[index] = "running_header"  # "三门峡市人民政府公报 2022年第6号" repeated on every page
            continue
        if ANNEX_LINE.match(text):
            colophon = False
        if _COLOPHON_START.match(text):
            colophon = True
        if colophon:
            roles[index] = "colophon"
        elif DATE_ONLY_LINE.match(text):
            roles[index] = "signature"
            previous = _previous_body(roles, index)
            if previous is not None:
                previous_text = strip_spaces(cleaned[previous].text)
                if (
                    len(previous_text) <= 25
                    and (ORG_LINE.search(previous_text) or not re.search(r"[，。；：:]", previous_text))
                    and parse_heading(previous_text) is None
                    and not previous_text.startswith("附件")
                ):
                    roles[previous] = "signature"
    return roles


def _previous_body(roles: list[str | None], index: int) -> int | None:
    for probe in range(index - 1, -1, -1):
        if roles[probe] is None:
            return probe
        if roles[probe] not in ("blank", "page_marker"):
            return None
    return None


# --- clauses --------------------------------------------------------------------------------------


class _Joined:
    """Paragraphs joined into one text (by their joiners), built on first use and then kept: the
    parts of a long clause share one."""

    def __init__(self, paragraphs: list[Paragraph]):
        self.paragraphs = paragraphs
        self.length = sum(len(p.text) for p in paragraphs) + sum(len(p.joiner) for p in paragraphs[1:])
        self._text: str | None = None
        self.runs: list[tuple[int, int]] = []  # (offset, source line) where each line's characters start
        self.starts: list[int] = []  # offset where each paragraph starts

    @property
    def text(self) -> str:
        if self._text is None:
            parts: list[str] = []
            offset = 0
            for index, paragraph in enumerate(self.paragraphs):
                if index and paragraph.joiner:
                    parts.append(paragraph.joiner)
                    self.runs.append((offset, paragraph.first_line))
                    offset += len(paragraph.joiner)
                self.starts.append(offset)
                parts.append(paragraph.text)
                self.runs.extend((offset + start, line) for start, line in paragraph.runs)
                offset += len(paragraph.text)
            self._text = "".join(parts)
        return self._text

    def line_at(self, offset: int) -> int:
        _ = self.text
        return self.runs[max(bisect_right(self.runs, (offset, float("inf"))) - 1, 0)][1]

    def lines_with_text(self, start: int, end: int) -> list[int]:
        """Source lines that have a non-space character in ``text[start:end]``, in order."""
        text = self.text
        found: list[int] = []
        first = max(bisect_right(self.runs, (start, float("inf"))) - 1, 0)
        for index in range(first, len(self.runs)):
            offset, line = self.runs[index]
            if offset >= end:
                break
            stop = self.runs[index + 1][0] if index + 1 < len(self.runs) else len(text)
            segment = text[max(offset, start) : min(stop, end)]
            if segment and not segment.isspace() and line not in found[-1:]:
                found.append(line)
        return found


@dataclass
class _Chunk:
    joined: _Joined
    path: tuple[str, ...]
    label: str
    kind: str = ""  # kind of the node the chunk comes from (article, cn_item, root ...)
    part: int = 0
    start: int = 0  # character offsets into the joined text when a part of a long clause
    end: int | None = None

    @property
    def paragraphs(self) -> list[Paragraph]:
        return self.joined.paragraphs

    def size(self) -> int:
        return (self.joined.length if self.end is None else self.end) - self.start

    def bounds(self) -> tuple[int, int]:
        return self.start, self.joined.length if self.end is None else self.end


@dataclass
class DocumentChunks:
    """Everything chunking learned about one document."""

    clauses: list[Clause]
    line_roles: dict[int, str]  # source line -> noise category or "clause:<clause_id>"
    repairs: Counter
    # clause_id -> [(offset in clause.text, full item label)], as the tree knew it (see item_labels)
    item_starts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def chunk_document(
    document: Document, *, layout: DocumentLayout | None = None, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS
) -> list[Clause]:
    """The clauses of ``document`` in reading order (see the module docstring for the rules)."""
    return analyse_document(document, layout=layout, min_chars=min_chars, max_chars=max_chars).clauses


def analyse_document(
    document: Document, *, layout: DocumentLayout | None = None, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS
) -> DocumentChunks:
    """Clauses, line roles, repair counts and item starts of ``document``.

    ``layout`` is what ``split_documents`` handed on with the document (``FileSplit.layouts``);
    without it :func:`assistant.documents.document_layout` derives it from the document's lines.
    """
    if max_chars < 50 or min_chars < 0 or min_chars >= max_chars:
        raise ValueError(f"need 0 <= min_chars < max_chars and max_chars >= 50, got {min_chars}, {max_chars}")
    if layout is None:
        layout = document_layout(document)
    if len(layout.cleaned) != len(document.lines):
        raise ValueError(f"layout has {len(layout.cleaned)} lines, document {document.doc_id} has {len(document.lines)}")
    roles = document_line_roles(layout)
    repairs: Counter = Counter()
    for line in layout.cleaned:
        repairs.update(line.repairs)
    body: list[tuple[int, str | None]] = []
    for offset, (line, role) in enumerate(zip(layout.cleaned, roles)):
        if role in ("blank", "page_marker", "running_header"):
            continue  # page furniture: a sentence runs on across it
        body.append((document.line_start + offset, None if role is not None else line.text))
    paragraphs = build_paragraphs(body, repairs)
    tree = build_tree(paragraphs)
    _label_items(tree, "")
    chunks = _chunks_for(tree, (), "", min_chars, max_chars)
    clauses: list[Clause] = []
    item_starts: dict[str, list[tuple[int, str]]] = {}
    line_roles: dict[int, str] = {}
    for offset, role in enumerate(roles):
        if role is not None:
            line_roles[document.line_start + offset] = role
    owners: dict[int, str] = {}
    for sequence, chunk in enumerate(chunks, 1):
        start, end = chunk.bounds()
        raw = chunk.joined.text[start:end]
        text = raw.strip()
        if not text:
            continue
        first = start + len(raw) - len(raw.lstrip())
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        clause_id = f"{document.doc_id}:{sequence:03d}-{digest}"
        path = tuple(element for element in chunk.path if element)
        clause = Clause(
            clause_id=clause_id,
            doc_id=document.doc_id,
            source=document.source,
            doc_title=document.title,
            section_path=path,
            label=chunk.label or "正文",
            text=text,
            index_text=index_text_of(document.title, path, text),
            line_start=chunk.joined.line_at(first),
            line_end=chunk.joined.line_at(first + len(text) - 1),
            doc_number=document.doc_number,
            city=document.city,
            part=chunk.part,
        )
        clauses.append(clause)
        item_starts[clause_id] = _item_starts(chunk.joined, first, first + len(text))
        # Ownership: the clause holding a line's first character owns the line.
        for line in chunk.joined.lines_with_text(start, end):
            owners.setdefault(line, f"clause:{clause_id}")
    for line, owner in owners.items():
        line_roles.setdefault(line, owner)
    for offset in range(len(roles)):
        line_roles.setdefault(document.line_start + offset, "heading")
    return DocumentChunks(clauses, line_roles, repairs, item_starts)


def _label_items(node: Node, label: str) -> None:
    """Give every paragraph the full label of the item holding it (the label a quote cites)."""
    if node.kind != "root":
        label = label + node.label
    for paragraph in node.paragraphs:
        paragraph.item_label = label or "正文"
    if node.kind in ("root", "chapter", "section"):
        child_prefix = ""
    elif node.kind == "annex":
        child_prefix = f"{node.label} "
    else:
        child_prefix = label
    for child in node.children:
        _label_items(child, child_prefix)


def _item_starts(joined: _Joined, start: int, end: int) -> list[tuple[int, str]]:
    """Where the item changes inside ``joined.text[start:end]``, offsets relative to ``start``."""
    _ = joined.text
    first = max(bisect_right(joined.starts, start) - 1, 0)
    starts = [(0, joined.paragraphs[first].item_label)]
    for index in range(first + 1, len(joined.paragraphs)):
        offset = joined.starts[index]
        if offset >= end:
            break
        label = joined.paragraphs[index].item_label
        if label != starts[-1][1]:
            starts.append((offset - start, label))
    return starts


def _chunks_for(node: Node, path: tuple[str, ...], label: str, min_chars: int, max_chars: int) -> list[_Chunk]:
    """Chunks of ``node``'s subtree; ``label`` is the citation prefix inherited from its parents."""
    if node.kind != "root":
        path = (*path, node.path_element)
        label = label + node.label
    if node.kind not in _CONTAINER_KINDS and node.size() <= max_chars:
        return [_Chunk(_Joined(node.all_paragraphs()), path, label, kind=node.kind)]
    own_body = node.paragraphs
    bare_heading: list[Paragraph] = []
    if node.kind != "root" and len(own_body) == node.heading_count and is_heading_only(own_body[0].heading) and node.children:
        # A bare heading never forms a clause alone. A chapter/section/attachment title lives on in
        # its children's section_path (its line counts as `heading`); an item's heading
        # ("（一）第一阶段：…（2022年2月底前）") opens the text of its first clause.
        if node.kind not in _CONTAINER_KINDS:
            bare_heading = own_body
        own_body = []
    chunks: list[_Chunk] = []
    if own_body:
        chunks.extend(_split_long(own_body, path, label or "正文", min_chars, max_chars, kind=node.kind))
    if node.kind in ("root", "chapter", "section"):
        child_prefix = ""
    elif node.kind == "annex":
        child_prefix = f"{node.label} "
    else:
        child_prefix = label
    for child in node.children:
        chunks.extend(_chunks_for(child, path, child_prefix, min_chars, max_chars))
    if bare_heading and chunks:
        _prepend(bare_heading, chunks)
    return _merge_small(chunks, min_chars, max_chars)


def _prepend(heading: list[Paragraph], chunks: list[_Chunk]) -> None:
    """Put heading paragraphs in front of the first chunk (and shift the offsets of its other parts)."""
    shared = chunks[0].joined
    joined = _Joined(heading + shared.paragraphs)
    shift = joined.length - shared.length
    for chunk in chunks:
        if chunk.joined is not shared:
            continue
        chunk.joined = joined
        if chunk.part == 0 or chunk.part == 1:
            chunk.end = None if chunk.end is None else chunk.end + shift
        else:
            chunk.start += shift
            chunk.end = None if chunk.end is None else chunk.end + shift


def _merge_small(chunks: list[_Chunk], min_chars: int, max_chars: int) -> list[_Chunk]:
    """Merge clauses shorter than ``min_chars`` into their predecessor (or successor) under one parent."""
    merged: list[_Chunk] = []
    for chunk in chunks:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and _mergeable(previous, chunk)
            and (chunk.size() < min_chars or previous.size() < min_chars)
            and previous.size() + chunk.size() <= max_chars
        ):
            merged[-1] = _Chunk(
                _Joined(previous.paragraphs + chunk.paragraphs),
                _common_path(previous.path, chunk.path),
                _merged_label(previous, chunk),
                kind=previous.kind,
            )
        else:
            merged.append(chunk)
    return merged


def _mergeable(first: _Chunk, second: _Chunk) -> bool:
    """Articles are citation units and never merge with each other; nor does a document's opening
    text (正文) or anything across chapters/attachments; parts of a split clause stay as cut."""
    if first.part or second.part:
        return False
    if "root" in (first.kind, second.kind) or {first.kind, second.kind} & {"chapter", "section", "annex"}:
        return False
    if first.kind == "article" and second.kind == "article":
        return False
    if first.kind == second.kind == "cn_item" and len(first.path) == len(second.path) == 1:
        return False  # a notice's top-level sections (一、 二、) are cited on their own
    shared = len(_common_path(first.path, second.path))
    if shared == min(len(first.path), len(second.path)):
        return True  # a parent's lead text and its item
    return len(first.path) == len(second.path) and shared == len(first.path) - 1  # siblings


def _common_path(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    common = []
    for x, y in zip(a, b):
        if x != y:
            break
        common.append(x)
    return tuple(common)


def _merged_label(first: _Chunk, second: _Chunk) -> str:
    if second.label.startswith(first.label):
        return first.label  # parent lead text + its first item: cite the parent
    tail = second.label
    prefix = 0
    while prefix < min(len(first.label), len(tail)) and first.label[prefix] == tail[prefix]:
        prefix += 1
    while prefix > 0 and tail[prefix - 1] not in "、）.条 ":
        prefix -= 1  # cut only between label units: "（一）" and "（二）" share "（", not a unit
    head = first.label.split("–")[0]
    return f"{head}–{tail[prefix:] or tail}"


_SENTENCE_BREAK = re.compile(r"(?<=[。！？；;!?])[”’」』]?|\n")


def _split_long(paragraphs: list[Paragraph], path: tuple[str, ...], label: str, min_chars: int, max_chars: int, *, kind: str = "") -> list[_Chunk]:
    joined = _Joined(paragraphs)
    whole = _Chunk(joined, path, label, kind=kind)
    if joined.length <= max_chars:
        return [whole]
    text = joined.text
    # Cut into parts of about equal size (a 520-char clause becomes 2 x 260, not 500 + 20), at a
    # paragraph break if one lies near the target, else after a sentence end (。！？；), else after
    # a comma; a hard cut only inside one enormous sentence. Candidate cuts are looked up by
    # bisection, so each part costs O(max_chars) however long the text is.
    paragraph_breaks = {m.end() for m in re.finditer(r"\n", text)}
    cuts = sorted({m.end() for m in _SENTENCE_BREAK.finditer(text) if 0 < m.end() < len(text)})
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > max_chars:
        remaining = len(text) - start
        target = start + remaining / -(-remaining // max_chars)
        window = cuts[bisect_left(cuts, start + min_chars) : bisect_right(cuts, start + max_chars)]
        near_breaks = [c for c in window if c in paragraph_breaks and abs(c - target) <= max_chars / 4]
        if near_breaks:
            end = min(near_breaks, key=lambda c: abs(c - target))
        elif window:
            end = min(window, key=lambda c: abs(c - target))
        else:
            commas = [start + min_chars + m.end() for m in re.finditer(r"[，,、]", text[start + min_chars : start + max_chars])]
            end = min(commas, key=lambda c: abs(c - target)) if commas else start + max_chars
        pieces.append((start, end))
        start = end
    pieces.append((start, len(text)))
    if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < min_chars:
        last = pieces.pop()
        pieces[-1] = (pieces[-1][0], last[1])
    if len(pieces) == 1:
        return [whole]
    return [_Chunk(joined, path, label, kind=kind, part=index, start=s, end=e) for index, (s, e) in enumerate(pieces, 1)]
