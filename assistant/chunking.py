"""Cut one document into clauses: the units retrieved and quoted (条 / 款 / 项).

>>> from assistant.corpus import load_corpus
>>> corpus = load_corpus("corpus")                                             # doctest: +SKIP
>>> document = corpus.documents[2]                                             # doctest: +SKIP
>>> for clause in chunk_document(document, max_chars=500)[:3]:                 # doctest: +SKIP
...     print(clause.label, clause.section_path, clause.line_start, clause.text[:20])

Steps
-----
1. Line roles. Every line of the document gets a noise category or stays body: ``blank``,
   ``page_marker``, ``running_header`` (a gazette name + issue number alone on a line),
   ``doc_header`` (title, 文号, date, speaker lines - kept in :class:`Document` fields), ``toc``
   (a regulation's own 目录), ``signature`` (落款 issuer and date), ``colophon`` (抄送/印发/共印).
2. Paragraphs. Body lines are re-joined where the PDF wrapped a sentence (the line ends without
   sentence punctuation and the next one is not a heading); several articles on one line
   (``…管理协议。第十二条 地源热泵系统…``) are split apart. A cross-reference (``依照本办法第十二条规定``,
   ``第五条、第六条所列``) is never a heading: an article label only starts an article at the start
   of a paragraph or right after 。；, is followed by text that is not 规定/所列/款/、…, and its
   number must come after the previous article's.
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

Line ownership (the coverage rule)
----------------------------------
Every source line is accounted for exactly once: either it is noise (a category above, or
``heading``) or it is *owned* by exactly one clause - the clause holding the line's first
character. A line carrying several articles (``…协议。第十二条 …``) is owned by the clause it starts
in; the later clauses on it still have it as their ``line_start`` (their span starts on that line)
but do not own it. So clause spans of one file never overlap except at such a shared boundary line,
and concatenating all clause texts in order gives back every body character of the file (modulo
the repaired page markers and doubled labels), which ``tests/test_corpus_coverage.py`` checks.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from assistant.documents import (
    _CN,
    _TOC_ENTRY,
    _TOC_HEADING,
    _DATE_ONLY_LINE,
    _ORG_LINE,
    CleanLine,
    clean_lines,
    header_end_index,
    strip_spaces,
)
from assistant.types import Clause, Document

# Bump when chunking changes what clauses come out, so indexes built by an older chunker are rebuilt.
CHUNKER_VERSION = "4"
# Size bounds, measured with the hybrid retriever on eval/qa.jsonl (284 answerable) and
# eval/qa_holdout.jsonl (35), 2026-12-01 (script: load_corpus(min_chars, max_chars) ->
# Retriever.build -> assistant.evaluation.evaluate):
#   min/max   clauses  MRR@10 main  hit@1000ch main  MRR@10 held-out
#   40/300     3,280     0.857          0.975            0.837
#   40/400     2,769     0.857          0.972            0.884
#   40/500     2,504     0.871          0.972            0.865   <- chosen
#   40/650     2,179     0.874          0.947            0.865
#   40/800     1,986     0.870          0.930            0.870
#   20/500     2,585     0.872          0.975            0.865
#   80/500     2,370     0.869          0.961            0.865
# Shorter clauses rank worse (a split article loses words to its other part); longer ones rank as
# well but make the reader wade through more text per hit (hit@1000ch falls). 500 is where both
# hold; min_chars barely matters between 20 and 40 (one question), 80 merges too much.
DEFAULT_MIN_CHARS = 40
DEFAULT_MAX_CHARS = 500

# Ranks of the fixed levels; all other marker kinds nest dynamically below the article.
_FIXED_RANK = {"annex": 0, "chapter": 1, "section": 2, "article": 3}
# Nodes that are never quoted whole: their children are the citation units.
_CONTAINER_KINDS = {"root", "annex", "chapter", "section"}

_NUM = rf"(?:{_CN}+|\d+)"
_HEADING_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("chapter", re.compile(rf"^第\s*({_NUM})\s*章(?![程节])\s*")),
    ("section", re.compile(rf"^第\s*({_NUM})\s*节\s*")),
    # An article label followed by words that make it a reference, not a heading, is excluded.
    ("article", re.compile(rf"^第\s*({_NUM})\s*条(?![之规所的款项、，,和或及至中第])\s*")),
    ("annex", re.compile(r"^附\s*件\s*(\d*)\s*[:：]?\s*$")),
    ("cn_item", re.compile(rf"^({_CN}+)\s*(?:、|[.．](?!\d))\s*")),
    ("paren_cn", re.compile(rf"^[（(]\s*({_CN}+)\s*[）)]\s*")),
    ("arabic", re.compile(r"^(\d{1,2})\s*(?:、|[.．](?!\d))\s*")),
    ("paren_arabic", re.compile(r"^[（(]\s*(\d{1,2})\s*[）)]\s*")),
    ("circled", re.compile(r"^([①-⑳])\s*")),
)
_BULLET = re.compile(r"^(?:[-•·*]|#{1,6})\s+")  # list bullets and Markdown heading marks
_SENTENCE_END = re.compile(r"[。！？；：:;!?…][”’」』\"']*\s*$")
_CONTINUATION_END = re.compile(r"[，、（《“‘(—的和与及或之在对于把将被从向以为等]$")
_CONTINUATION_START = re.compile(r"^[，。、；：）》”’)的地得了着过和与及或等之]")
_INLINE_ARTICLE = re.compile(rf"(?<=[。；;！？])\s*(?=第\s*{_NUM}\s*条)")


@dataclass(frozen=True)
class Heading:
    kind: str
    number: int
    label: str  # normalised citation label: 第十一条, 二、, （三）, 1., （1）, ①, 附件1
    rest: str  # the paragraph text after the marker


def parse_heading(text: str) -> Heading | None:
    """The structural marker opening a paragraph, if any (no sequence check here).

    >>> parse_heading("第十二条 地源热泵系统勘察、设计…").label
    '第十二条'
    >>> parse_heading("第十二条规定的情形") is None
    True
    >>> parse_heading("（三）委托具有相应资质的单位").label
    '（三）'
    """
    stripped = _BULLET.sub("", text.lstrip())  # "- (1) 县（市）人民政府…": a markdown bullet before the marker
    for kind, pattern in _HEADING_PATTERNS:
        match = pattern.match(stripped)
        if not match:
            continue
        raw_number = match.group(1)
        number = _to_int(raw_number)
        if number is None:
            continue
        if kind == "chapter":
            label = f"第{raw_number}章"
        elif kind == "section":
            label = f"第{raw_number}节"
        elif kind == "article":
            label = f"第{strip_spaces(raw_number)}条"
        elif kind == "annex":
            label = f"附件{raw_number}"
            number = number or 1
        elif kind == "cn_item":
            label = f"{raw_number}、"
        elif kind == "paren_cn":
            label = f"（{raw_number}）"
        elif kind == "arabic":
            label = f"{number}."
        elif kind == "paren_arabic":
            label = f"（{number}）"
        else:
            label = raw_number
        return Heading(kind, number, label, stripped[match.end() :])
    return None


def _to_int(raw: str) -> int | None:
    if raw == "":
        return 0
    if raw.isdigit():
        return int(raw)
    if raw in "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳":
        return "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳".index(raw) + 1
    digits = {"〇": 0, "○": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
    total, current = 0, 0
    for ch in raw:
        if ch in digits:
            current = digits[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "千":
            total += (current or 1) * 1000
            current = 0
        else:
            return None
    return total + current


# --- paragraphs -----------------------------------------------------------------------------------


@dataclass
class Paragraph:
    """Text re-joined from one or more lines; ``char_lines[i]`` is the source line of ``text[i]``."""

    text: str = ""
    char_lines: list[int] = field(default_factory=list)
    heading: Heading | None = None

    def add(self, text: str, line: int) -> None:
        if self.text and text and self.text[-1].isascii() and self.text[-1].isalnum() and text[0].isascii() and text[0].isalnum():
            # Wrapped Latin words/numbers keep a space ("Hello" + "world"); Chinese joins directly.
            self.text += " "
            self.char_lines.append(line)
        self.text += text
        self.char_lines.extend([line] * len(text))

    def split_at(self, offset: int) -> tuple["Paragraph", "Paragraph"]:
        head_text = self.text[:offset].rstrip()
        tail_start = offset + (len(self.text[offset:]) - len(self.text[offset:].lstrip()))
        head = Paragraph(head_text, self.char_lines[: len(head_text)])
        tail = Paragraph(self.text[tail_start:], self.char_lines[tail_start:])
        return head, tail

    @property
    def first_line(self) -> int:
        return self.char_lines[0]

    @property
    def last_line(self) -> int:
        return self.char_lines[-1]


def _is_heading_only(paragraph: Paragraph) -> bool:
    heading = paragraph.heading or parse_heading(paragraph.text)
    if heading is None:
        return False
    rest = heading.rest.strip()
    if rest.endswith(("：", ":")):
        return False  # "第六条 申报省重点龙头企业应符合以下条件：" introduces its items: body text
    return not re.search(r"[。；！？]", rest) and len(strip_spaces(rest)) <= 40


def _continues(paragraph: Paragraph, line_text: str, previous_line_text: str) -> bool:
    """Should ``line_text`` be appended to ``paragraph`` (a line the PDF wrapped)?"""
    if _is_table_row(line_text) or _is_table_row(previous_line_text):
        return False  # table rows stay rows
    if _starts_heading(line_text):
        return False
    if _SENTENCE_END.search(previous_line_text):
        return False
    if _CONTINUATION_START.match(line_text) or _CONTINUATION_END.search(previous_line_text):
        return True
    heading = parse_heading(paragraph.text)
    if heading is not None and heading.kind == "annex":
        return False  # "附件 1" stands alone; the attachment's title is its first paragraph
    if heading is not None and heading.kind == "article":
        return True  # an article's text runs on until a sentence ends: "…经费列" + "入市财政预算"
    if _is_heading_only(paragraph):
        # "（二）抓好各项优惠政策落实，支持企业发展" is complete without a full stop; only a short
        # unpunctuated tail is its second line ("（五）拓宽直接融资渠道，加快推进科技型" + "企业上市融资").
        tail = strip_spaces(line_text)
        return (
            len(tail) <= 12
            and re.search(r"[\u4e00-\u9fff]", tail) is not None
            and not re.search(r"[，。；：、,.;:|]", tail)
            and len(paragraph.text) + len(tail) <= 50
        )
    return len(strip_spaces(previous_line_text)) >= 20


def _is_table_row(text: str) -> bool:
    """A row of a tab-separated or Markdown table ("| a | b |", "- | | |", "|---|")."""
    return "\t" in text or re.match(r"^(?:-\s*)?\|", text.strip()) is not None


def _starts_heading(text: str) -> bool:
    return parse_heading(text) is not None


# --- line roles -----------------------------------------------------------------------------------

_COLOPHON_START = re.compile(r"^(?:抄\s*送|抄\s*报|主\s*送|（此件|\(此件|（共印|\(共印)|印\s*发\s*$|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日\s*印\s*发")


# The name of a gazette or compilation standing alone on a line inside a document, with its issue
# number: a page header the PDF text layer kept. ("…政策汇编" inside a sentence has punctuation.)
_RUNNING_HEADER = re.compile(
    r"^[\u4e00-\u9fff“”《》]{2,24}(?:公报|汇编|简报|通讯|政报)》?"
    r"(?:\d{4}年?)?(?:第\d{1,3}[期号])?(?:[（(]总第\d{1,4}[期号][）)])?$"
)


def document_line_roles(document: Document, cleaned: list[CleanLine]) -> list[str | None]:
    """Noise category per document line (index 0 = ``document.line_start``), None for body lines."""
    roles: list[str | None] = [line.noise for line in cleaned]
    title_end = _title_end_index(document, cleaned)
    header_end = header_end_index(cleaned, title_end, len(cleaned) - 1)
    for index in range(header_end + 1):
        if roles[index] is None:
            roles[index] = "doc_header"
    colophon = False
    in_toc = False
    for index in range(header_end + 1, len(cleaned)):
        if roles[index] is not None:
            continue
        text = strip_spaces(cleaned[index].text)
        if _TOC_HEADING.match(text):
            in_toc = True  # a regulation's own table of contents: "目 录" + "- 第一章 总 则" ...
            roles[index] = "toc"
            continue
        if in_toc:
            if len(text) <= 40 and (text.startswith(("-", "•", "·")) or _TOC_ENTRY.search(cleaned[index].text)):
                roles[index] = "toc"
                continue
            in_toc = False
        if _RUNNING_HEADER.match(text):
            roles[index] = "running_header"  # "三门峡市人民政府公报 2022年第6号" repeated on every page
            continue
        if re.match(r"^附\s*件\s*\d*\s*[:：]?\s*$", text):
            colophon = False
        if _COLOPHON_START.match(text):
            colophon = True
        if colophon:
            roles[index] = "colophon"
        elif _DATE_ONLY_LINE.match(text):
            roles[index] = "signature"
            previous = _previous_body(roles, index)
            if previous is not None:
                previous_text = strip_spaces(cleaned[previous].text)
                if (
                    len(previous_text) <= 25
                    and (_ORG_LINE.search(previous_text) or not re.search(r"[，。；：:]", previous_text))
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


def _title_end_index(document: Document, cleaned: list[CleanLine]) -> int:
    """Index of the line on which the document's (joined) title ends, -1 if it is not in the text.

    The title is the concatenation of one to four consecutive non-noise lines (spaces dropped);
    a line that merely contains the title (a preview line quoting the whole notice) does not count.
    """
    target = re.sub(r"\s+", "", document.title)
    texts = [(index, strip_spaces(line.text)) for index, line in enumerate(cleaned) if not line.noise]
    for position, (index, text) in enumerate(texts):
        if not text or not target.endswith(text):
            continue
        joined = ""
        for back in range(position, max(position - 4, -1), -1):
            joined = texts[back][1] + joined
            if joined == target:
                return index
            if not target.endswith(joined):
                break
    return -1


# --- tree -----------------------------------------------------------------------------------------


@dataclass
class Node:
    kind: str
    label: str  # own label (第十一条, （三）...)
    path_element: str  # what appears in section_path (第二章 建设管理, 一、总体要求, 第十一条)
    number: int = 0
    paragraphs: list[Paragraph] = field(default_factory=list)  # heading paragraph + own body
    children: list["Node"] = field(default_factory=list)
    heading_count: int = 1  # leading paragraphs that are heading: 2 for "附件 1" + its title line

    def size(self) -> int:
        """Length of the subtree's text as a clause would hold it (paragraphs joined by newlines)."""
        paragraphs = self.all_paragraphs()
        return sum(len(p.text) for p in paragraphs) + max(len(paragraphs) - 1, 0)

    def all_paragraphs(self) -> list[Paragraph]:
        out = list(self.paragraphs)
        for child in self.children:
            out.extend(child.all_paragraphs())
        return out


def _path_element(heading: Heading) -> str:
    rest = heading.rest.strip()
    if heading.kind == "article":
        # "第三条 督促检查工作范围和工作重点" is an article title; an article's own text is not.
        if rest and not re.search(r"[。；！？：:，,]", rest) and len(rest) <= 30:
            return f"{heading.label} {rest}"
        return heading.label
    title = None
    if rest and not re.search(r"[。；！？]", rest) and len(rest) <= 40 and not rest.endswith(("：", ":")):
        title = rest
    else:
        lead = re.match(r"^([^。；！？，：]{2,20})[。：]", rest)
        if lead:
            title = lead.group(1)
    if heading.kind in ("chapter", "section", "annex"):
        return f"{heading.label} {title}" if title else heading.label
    return f"{heading.label}{title}" if title else heading.label


def build_tree(paragraphs: list[Paragraph]) -> Node:
    root = Node("root", "正文", "")
    stack: list[Node] = [root]
    last_article = 0
    last_number: dict[str, int] = {}  # kind -> last accepted number anywhere in the document
    for paragraph in paragraphs:
        heading = paragraph.heading
        accepted = False
        if heading is not None:
            accepted = _place_heading(stack, heading, last_article, last_number)
        if accepted:
            assert heading is not None
            last_number[heading.kind] = heading.number
            if heading.kind == "article":
                last_article = heading.number
            node = Node(heading.kind, heading.label, _path_element(heading), heading.number, [paragraph])
            stack[-1].children.append(node)
            stack.append(node)
        else:
            paragraph.heading = None
            target = stack[-1]
            if target.kind == "annex" and len(target.paragraphs) == 1 and not target.children and _is_title_text(paragraph.text):
                # "附件 1" + "创新型中小企业评价标准": the title belongs to the heading.
                target.heading_count = 2
                target.path_element = f"{target.label} {strip_spaces(paragraph.text)}"
                target.paragraphs.append(paragraph)
                continue
            if target.children and target.kind != "root":
                # Body text after a child ends that child's scope only when a new heading appears;
                # until then it belongs to the last child (a continuation paragraph of an item).
                target = _deepest_last(target)
            elif target.children:
                target = _deepest_last(target)
            target.paragraphs.append(paragraph)
    return root


def _is_title_text(text: str) -> bool:
    return len(strip_spaces(text)) <= 40 and not re.search(r"[。；！？：:，]", text) and "\t" not in text


def _deepest_last(node: Node) -> Node:
    while node.children:
        node = node.children[-1]
    return node


def _place_heading(stack: list[Node], heading: Heading, last_article: int, last_number: dict[str, int]) -> bool:
    """Pop ``stack`` to where ``heading`` belongs; False if it is not a believable heading."""
    kind = heading.kind
    if kind in _FIXED_RANK:
        rank = _FIXED_RANK[kind]
        if kind == "article" and last_article and heading.number <= last_article:
            return False  # an earlier article number again: a reference, not a new article
        if kind == "annex":
            del stack[1:]
            return True
        while len(stack) > 1 and _FIXED_RANK.get(stack[-1].kind, 99) >= rank:
            stack.pop()
        # A chapter/article always sits above the dynamically nested kinds.
        while len(stack) > 1 and stack[-1].kind not in _FIXED_RANK:
            stack.pop()
        return True
    for depth in range(len(stack) - 1, 0, -1):
        if stack[depth].kind == kind:
            if heading.number == stack[depth].number + 1:
                del stack[depth:]
                return True
            if heading.number == 1 and depth == len(stack) - 1:
                return False  # "1." right after "1." at the same level: not a new list
            break
    if heading.number == 1:
        return True  # a new list opens under the current node
    if heading.number == last_number.get(kind, -1) + 1 and not any(node.kind == kind for node in stack):
        # Numbering that runs on across sections: 一、 (一)…(六) 二、 (七)…(十一) 三、 (十二)…
        return True
    return False


# --- clauses --------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    paragraphs: list[Paragraph]
    path: tuple[str, ...]
    label: str
    part: int = 0
    start: int = 0  # character offsets into the joined text when a part of a long clause
    end: int | None = None
    kind: str = ""  # kind of the node the chunk comes from (article, cn_item, root ...)

    def text_and_lines(self) -> tuple[str, list[int]]:
        text_parts: list[str] = []
        lines: list[int] = []
        for index, paragraph in enumerate(self.paragraphs):
            if index:
                text_parts.append("\n")
                lines.append(paragraph.first_line)
            text_parts.append(paragraph.text)
            lines.extend(paragraph.char_lines)
        text = "".join(text_parts)
        end = len(text) if self.end is None else self.end
        return text[self.start : end], lines[self.start : end]

    def size(self) -> int:
        text, _ = self.text_and_lines()
        return len(text)


@dataclass
class DocumentChunks:
    """Everything chunking learned about one document."""

    clauses: list[Clause]
    line_roles: dict[int, str]  # source line -> noise category or "clause:<clause_id>"
    repairs: Counter


def chunk_document(document: Document, *, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS) -> list[Clause]:
    """The clauses of ``document`` in reading order (see the module docstring for the rules)."""
    return analyse_document(document, min_chars=min_chars, max_chars=max_chars).clauses


def analyse_document(document: Document, *, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS) -> DocumentChunks:
    if max_chars < 50 or min_chars < 0 or min_chars >= max_chars:
        raise ValueError(f"need 0 <= min_chars < max_chars and max_chars >= 50, got {min_chars}, {max_chars}")
    cleaned = clean_lines(document.lines)
    roles = document_line_roles(document, cleaned)
    repairs: Counter = Counter()
    for line in cleaned:
        repairs.update(line.repairs)
    paragraphs = _paragraphs(document, cleaned, roles, repairs)
    tree = build_tree(paragraphs)
    chunks = _chunks_for(tree, (), "", min_chars, max_chars)
    clauses: list[Clause] = []
    line_roles: dict[int, str] = {}
    for offset, role in enumerate(roles):
        if role is not None:
            line_roles[document.line_start + offset] = role
    for sequence, chunk in enumerate(chunks, 1):
        text, lines = chunk.text_and_lines()
        stripped_start = len(text) - len(text.lstrip())
        text, lines = text.strip(), lines[stripped_start : stripped_start + len(text.strip())]
        if not text:
            continue
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
            index_text="\n".join(part for part in (document.title, " › ".join(path), text) if part),
            line_start=lines[0],
            line_end=lines[-1],
            doc_number=document.doc_number,
            city=document.city,
            part=chunk.part,
        )
        clauses.append(clause)
    # Ownership: the clause holding a line's first character owns the line.
    owners = _line_owners(paragraphs, chunks, clauses)
    for line, owner in owners.items():
        line_roles.setdefault(line, owner)
    for offset, role in enumerate(roles):
        line = document.line_start + offset
        if line not in line_roles:
            line_roles[line] = "heading"
    return DocumentChunks(clauses, line_roles, repairs)


def _line_owners(paragraphs: list[Paragraph], chunks: list[_Chunk], clauses: list[Clause]) -> dict[int, str]:
    owners: dict[int, str] = {}
    index = 0
    for chunk in chunks:
        text, lines = chunk.text_and_lines()
        if not text.strip():
            continue
        clause = clauses[index]
        index += 1
        seen_lines: set[int] = set()
        for ch, line in zip(text, lines):
            if ch.isspace() or line in seen_lines:
                continue
            seen_lines.add(line)
        for line in seen_lines:
            owners.setdefault(line, f"clause:{clause.clause_id}")
    return owners


def _paragraphs(document: Document, cleaned: list[CleanLine], roles: list[str | None], repairs: Counter) -> list[Paragraph]:
    paragraphs: list[Paragraph] = []
    current: Paragraph | None = None
    previous_text = ""
    for offset, line in enumerate(cleaned):
        role = roles[offset]
        if role in ("blank", "page_marker", "running_header"):
            continue  # page furniture: a sentence runs on across it
        if role is not None:
            current = None  # header/signature/colophon lines end a paragraph
            continue
        number = document.line_start + offset
        if current is not None and _continues(current, line.text, previous_text):
            current.add(line.text, number)
            repairs["wrapped_line_joined"] += 1
        else:
            current = Paragraph()
            current.add(line.text, number)
            paragraphs.append(current)
        previous_text = line.text
    # Split paragraphs holding several articles ("…管理协议。第十二条 地源热泵系统…").
    split: list[Paragraph] = []
    for paragraph in paragraphs:
        pieces = [paragraph]
        while True:
            last = pieces[-1]
            cut = _inline_article_offset(last.text)
            if cut is None:
                break
            head, tail = last.split_at(cut)
            pieces[-1:] = [head, tail]
            repairs["inline_article_split"] += 1
        split.extend(pieces)
    for paragraph in split:
        paragraph.heading = parse_heading(paragraph.text)
    return split


def _inline_article_offset(text: str) -> int | None:
    """Offset of a second article label inside ``text`` (after 。；), if it starts a new article."""
    first = parse_heading(text)
    for match in _INLINE_ARTICLE.finditer(text):
        offset = match.end()
        if offset == 0:
            continue
        heading = parse_heading(text[offset:])
        if heading is None or heading.kind != "article":
            continue
        if first is not None and first.kind == "article" and heading.number != first.number + 1:
            continue
        return offset
    return None


def _chunks_for(node: Node, path: tuple[str, ...], label: str, min_chars: int, max_chars: int) -> list[_Chunk]:
    """Chunks of ``node``'s subtree; ``label`` is the citation prefix inherited from its parents."""
    if node.kind != "root":
        path = (*path, node.path_element)
        label = label + node.label
    if node.kind not in _CONTAINER_KINDS and node.size() <= max_chars:
        return [_Chunk(node.all_paragraphs(), path, label, kind=node.kind)]
    own_body = node.paragraphs
    bare_heading: list[Paragraph] = []
    if node.kind != "root" and len(own_body) == node.heading_count and _is_heading_only(own_body[0]) and node.children:
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
    first = chunks[0]
    shift = len("\n".join(p.text for p in heading)) + 1
    shared = first.paragraphs
    for chunk in chunks:
        if chunk.paragraphs is not shared:
            continue
        chunk.paragraphs = heading + shared
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
                previous.paragraphs + chunk.paragraphs,
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
    whole = _Chunk(paragraphs, path, label, kind=kind)
    text, _ = whole.text_and_lines()
    if len(text) <= max_chars:
        return [whole]
    # Cut into parts of about equal size (a 520-char clause becomes 2 x 260, not 500 + 20), at a
    # paragraph break if one lies near the target, else after a sentence end (。！？；), else after
    # a comma; a hard cut only inside one enormous sentence.
    paragraph_breaks = {m.end() for m in re.finditer(r"\n", text)}
    cuts = sorted({m.end() for m in _SENTENCE_BREAK.finditer(text) if 0 < m.end() < len(text)})
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > max_chars:
        remaining = len(text) - start
        target = start + remaining / -(-remaining // max_chars)
        window = [c for c in cuts if start + min_chars <= c <= start + max_chars]
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
    return [_Chunk(paragraphs, path, label, part=index, start=s, end=e, kind=kind) for index, (s, e) in enumerate(pieces, 1)]
