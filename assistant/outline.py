"""The structure of one document's body: headings, paragraphs and the heading tree.

>>> heading = parse_heading("**第九条** 工业和信息化部发布并适时更新创新型中小企业评价标准")
>>> heading.kind, heading.number, heading.label
('article', 9, '第九条')
>>> text = "（五）助力科技创新。加倍计算投放总额。（六）支持外贸融资。"
>>> [text[offset:offset + 3] for offset in inline_heading_offsets(text, parse_heading(text))]
['（六）']

:mod:`assistant.chunking` drives it: :func:`build_paragraphs` re-joins wrapped lines and cuts a
line holding several articles or items apart, :func:`build_tree` nests the paragraphs under their
headings (see the chunking module docstring for the rules). :func:`parse_heading` and
:func:`inline_heading_offsets` are also what ``chunking.item_labels`` reads a clause's text with,
so a citation names the same items the tree has.

Everything here is linear in the text: a paragraph is assembled from a list of line pieces, its
source lines are kept as runs (offset where each source line starts) rather than one entry per
character, and a line holding many items is cut in one pass.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise

from assistant.lines import ANNEX_LINE, CN, MARKUP, parse_number
from assistant.text import strip_spaces

# --- headings -------------------------------------------------------------------------------------

_NUM = rf"(?:{CN}+|\d+)"
_CLOSE = rf"{MARKUP}?\s*"  # "**第九条** …": closing emphasis after a marker is skipped, never labelled
_HEADING_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("chapter", re.compile(rf"^第\s*({_NUM})\s*章(?![程节]){_CLOSE}")),
    ("section", re.compile(rf"^第\s*({_NUM})\s*节{_CLOSE}")),
    # An article label followed by words that make it a reference, not a heading, is excluded.
    ("article", re.compile(rf"^第\s*({_NUM})\s*条(?![之规所的款项、，,和或及至中第]){_CLOSE}")),
    ("annex", ANNEX_LINE),
    ("cn_item", re.compile(rf"^({CN}+)\s*(?:、|[.．](?!\d)){_CLOSE}")),
    ("paren_cn", re.compile(rf"^[（(]\s*({CN}+)\s*[）)]{_CLOSE}")),
    ("arabic", re.compile(rf"^(\d{{1,2}})\s*(?:、|[.．](?!\d)){_CLOSE}")),
    ("paren_arabic", re.compile(rf"^[（(]\s*(\d{{1,2}})\s*[）)]{_CLOSE}")),
    ("circled", re.compile(rf"^([①-⑳]){_CLOSE}")),
)
# List bullets and Markdown heading marks, then opening emphasis ("- (1) 县…", "**第九条**").
_LEAD = re.compile(rf"^(?:(?:[-•·*]|#{{1,6}})\s+)?{MARKUP}?")
ITEM_KINDS = ("cn_item", "paren_cn", "arabic", "paren_arabic", "circled")


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
    stripped = text.lstrip()
    stripped = stripped[_LEAD.match(stripped).end() :]
    for kind, pattern in _HEADING_PATTERNS:
        match = pattern.match(stripped)
        if not match:
            continue
        raw_number = match.group(1)
        if kind == "annex":
            label, number = f"附件{raw_number}", parse_number(raw_number) or 1
        else:
            number = parse_number(raw_number)
            if number is None:
                continue
            label = _label(kind, raw_number, number)
        return Heading(kind, number, label, stripped[match.end() :])
    return None


def _label(kind: str, raw_number: str, number: int) -> str:
    if kind == "chapter":
        return f"第{raw_number}章"
    if kind == "section":
        return f"第{raw_number}节"
    if kind == "article":
        return f"第{strip_spaces(raw_number)}条"
    if kind == "cn_item":
        return f"{raw_number}、"
    if kind == "paren_cn":
        return f"（{raw_number}）"
    if kind == "arabic":
        return f"{number}."
    if kind == "paren_arabic":
        return f"（{number}）"
    return raw_number


def is_heading_only(heading: Heading | None) -> bool:
    """Is the paragraph a bare heading (``三、工作重点``), with no body text of its own?"""
    if heading is None:
        return False
    rest = heading.rest
    if not _AT_MOST_40_VISIBLE.fullmatch(rest):
        return False  # checked first, so a megabyte-long paragraph costs 40 characters here
    rest = rest.strip()
    if rest.endswith(("：", ":")):
        return False  # "第六条 申报省重点龙头企业应符合以下条件：" introduces its items: body text
    return not re.search(r"[。；！？]", rest)


_AT_MOST_40_VISIBLE = re.compile(r"\s*(?:\S\s*){0,40}")

# Where a new article or item may start inside a paragraph: after a sentence end, possibly behind
# emphasis markup ("…有序推进。**第九条** 工业…", "…投放总额。（六）支持外贸融资。").
_INLINE_START = re.compile(rf"(?<=[。；;！？!?])\s*(?={MARKUP}?(?:第|[（(]|\d|{CN}|[①-⑳]))")
_HEAD_WINDOW = 64  # a heading marker (bullet, emphasis, 第一百二十三条) fits well inside this


def inline_heading_offsets(text: str, first: Heading | None) -> list[int]:
    """Offsets in ``text`` where a further article or item starts, in one pass.

    ``first`` is the heading ``text`` opens with. A later marker starts a new paragraph only right
    after 。；！？ and only if it continues a sequence: an article label whose number follows the
    previous article's (any number when the paragraph is not an article), an item marker of the
    same kind as the previous piece's whose number is one higher (``（五）…。（六）…``,
    ``1、…;2、…``). A cross-reference (``依照第十二条规定``) or a list opened mid-sentence is not cut.
    """
    offsets: list[int] = []
    current = first
    for match in _INLINE_START.finditer(text):
        offset = match.end()
        heading = parse_heading(text[offset : offset + _HEAD_WINDOW])
        if heading is None:
            continue
        if heading.kind == "article":
            if current is not None and current.kind == "article" and heading.number != current.number + 1:
                continue
        elif heading.kind in ITEM_KINDS:
            if current is None or heading.kind != current.kind or heading.number != current.number + 1:
                continue
        else:
            continue
        offsets.append(offset)
        current = heading
    return offsets


# --- paragraphs -----------------------------------------------------------------------------------


@dataclass
class Paragraph:
    """Text re-joined from one or more lines (or cut from one line holding several items)."""

    text: str
    runs: list[tuple[int, int]]  # (offset in text, source line) where each source line's text starts
    heading: Heading | None = None
    joiner: str = "\n"  # what stands between this and the previous paragraph in a clause's text
    item_label: str = ""  # full citation label of the item holding this paragraph (set by chunking)

    @property
    def first_line(self) -> int:
        return self.runs[0][1]


_SENTENCE_END = re.compile(r"[。！？；：:;!?…][”’」』\"']*\s*$")
_CONTINUATION_END = re.compile(r"[，、（《“‘(—的和与及或之在对于把将被从向以为等]$")
_CONTINUATION_START = re.compile(r"^[，。、；：）》”’)的地得了着过和与及或等之]")
_STOP = re.compile(r"[。；！？]")
_PREFIX = 600  # characters of a growing paragraph its heading is read from (see _Growing)


class _Growing:
    """A paragraph being assembled line by line, with what :func:`_continues` asks kept current.

    Adding a line costs the length of that line: the heading is read from the paragraph's first
    600 characters (a marker is a few characters long, so a longer paragraph's heading is settled)
    and "is it a bare heading" from counts kept as lines arrive.
    """

    def __init__(self, text: str, line: int):
        self.pieces = [text]
        self.runs = [(0, line)]
        self.length = len(text)
        self.last = text
        self.has_stop = bool(_STOP.search(text))
        self.visible = len(strip_spaces(text))
        self.heading = parse_heading(text[:_PREFIX])

    def add(self, text: str, line: int) -> None:
        before = self.length
        self.runs.append((before, line))
        if self.last[-1].isascii() and self.last[-1].isalnum() and text[0].isascii() and text[0].isalnum():
            # Wrapped Latin words/numbers keep a space ("Hello" + "world"); Chinese joins directly.
            self.pieces.append(" ")
            self.length += 1
        self.pieces.append(text)
        self.length += len(text)
        self.last = text
        self.has_stop = self.has_stop or bool(_STOP.search(text))
        self.visible += len(strip_spaces(text))
        if before < _PREFIX:
            self.heading = parse_heading("".join(self.pieces)[:_PREFIX])

    def heading_only(self) -> bool:
        if self.heading is None or self.has_stop or self.visible > 400:
            return False  # 400 visible characters are never a bare heading: its rest has <= 40
        return is_heading_only(parse_heading("".join(self.pieces)))

    def finish(self) -> Paragraph:
        return Paragraph("".join(self.pieces), self.runs)


def _continues(paragraph: _Growing, line_text: str, previous_line_text: str) -> bool:
    """Should ``line_text`` be appended to ``paragraph`` (a line the PDF wrapped)?"""
    if _is_table_row(line_text) or _is_table_row(previous_line_text):
        return False  # table rows stay rows
    if parse_heading(line_text) is not None:
        return False
    if _SENTENCE_END.search(previous_line_text):
        return False
    if _CONTINUATION_START.match(line_text) or _CONTINUATION_END.search(previous_line_text):
        return True
    heading = paragraph.heading
    if heading is not None and heading.kind == "annex":
        return False  # "附件 1" stands alone; the attachment's title is its first paragraph
    if heading is not None and heading.kind == "article":
        return True  # an article's text runs on until a sentence ends: "…经费列" + "入市财政预算"
    if paragraph.heading_only():
        # "（二）抓好各项优惠政策落实，支持企业发展" is complete without a full stop; only a short
        # unpunctuated tail is its second line ("（五）拓宽直接融资渠道，加快推进科技型" + "企业上市融资").
        tail = strip_spaces(line_text)
        return (
            len(tail) <= 12
            and re.search(r"[\u4e00-\u9fff]", tail) is not None
            and not re.search(r"[，。；：、,.;:|]", tail)
            and paragraph.length + len(tail) <= 50
        )
    return len(strip_spaces(previous_line_text)) >= 20


def _is_table_row(text: str) -> bool:
    """A row of a tab-separated or Markdown table ("| a | b |", "- | | |", "|---|")."""
    return "\t" in text or re.match(r"^(?:-\s*)?\|", text.strip()) is not None


def build_paragraphs(lines: list[tuple[int, str | None]], repairs) -> list[Paragraph]:
    """Paragraphs from ``(source line, cleaned text)`` pairs in document order.

    ``text`` None marks a line that ends the paragraph before it (header, signature, colophon);
    page furniture (blank lines, page markers, running headers) is simply left out of ``lines`` so a
    sentence runs on across it. ``repairs`` (a Counter) counts ``wrapped_line_joined`` and
    ``inline_article_split`` / ``inline_item_split``.
    """
    grown: list[_Growing] = []
    current: _Growing | None = None
    previous_text = ""
    for number, text in lines:
        if text is None:
            current = None
            continue
        if current is not None and _continues(current, text, previous_text):
            current.add(text, number)
            repairs["wrapped_line_joined"] += 1
        else:
            current = _Growing(text, number)
            grown.append(current)
        previous_text = text
    paragraphs: list[Paragraph] = []
    for growing in grown:
        paragraph = growing.finish()
        heading = parse_heading(paragraph.text)
        offsets = inline_heading_offsets(paragraph.text, heading)
        for index, piece in enumerate(_cut(paragraph, offsets)):
            piece.heading = heading if piece is paragraph else parse_heading(piece.text)
            if index:
                kind = piece.heading.kind if piece.heading else ""
                repairs["inline_article_split" if kind == "article" else "inline_item_split"] += 1
            paragraphs.append(piece)
    return paragraphs


def _cut(paragraph: Paragraph, offsets: list[int]) -> list[Paragraph]:
    """``paragraph`` cut before each offset; each piece after the first keeps the whitespace
    between it and its predecessor as its ``joiner``, so joined pieces give back the source text."""
    if not offsets:
        return [paragraph]
    text, runs = paragraph.text, paragraph.runs
    pieces: list[Paragraph] = []
    previous_end = 0
    bounds = [0, *offsets, len(text)]
    for start, end in pairwise(bounds):
        segment = text[start:end]
        begin = start + len(segment) - len(segment.lstrip())
        piece_text = segment.strip()
        finish = begin + len(piece_text)
        first = bisect_right(runs, (begin, float("inf"))) - 1
        last = bisect_right(runs, (finish - 1, float("inf")))
        piece_runs = [(0, runs[first][1])] + [(offset - begin, line) for offset, line in runs[first + 1 : last]]
        joiner = text[previous_end:begin] if pieces else paragraph.joiner
        pieces.append(Paragraph(piece_text, piece_runs, joiner=joiner))
        previous_end = finish
    return pieces


# --- tree -----------------------------------------------------------------------------------------

# Ranks of the fixed levels; all other marker kinds nest dynamically below the article.
FIXED_RANK = {"annex": 0, "chapter": 1, "section": 2, "article": 3}


@dataclass
class Node:
    kind: str
    label: str  # own label (第十一条, （三）...)
    path_element: str  # what appears in section_path (第二章 建设管理, 一、总体要求, 第十一条)
    number: int = 0
    paragraphs: list[Paragraph] = field(default_factory=list)  # heading paragraph + own body
    children: list[Node] = field(default_factory=list)
    heading_count: int = 1  # leading paragraphs that are heading: 2 for "附件 1" + its title line
    _size: int | None = None

    def size(self) -> int:
        """Length of the subtree's text as a clause would hold it (paragraphs and their joiners)."""
        if self._size is None:
            paragraphs = self.all_paragraphs()
            self._size = sum(len(p.text) for p in paragraphs) + sum(len(p.joiner) for p in paragraphs[1:])
        return self._size

    def all_paragraphs(self) -> list[Paragraph]:
        out: list[Paragraph] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.extend(node.paragraphs)
            stack.extend(reversed(node.children))
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
    """Nest ``paragraphs`` under their headings; a heading that is not believable where it stands
    (a reference, a number out of sequence) has its ``heading`` cleared and stays body text."""
    root = Node("root", "正文", "")
    stack: list[Node] = [root]
    last_article = 0
    last_number: dict[str, int] = {}  # kind -> last accepted number anywhere in the document
    rejected_kind = ""  # kind of the previous paragraph's heading when the tree did not believe it
    for paragraph in paragraphs:
        heading = paragraph.heading
        accepted = False
        if heading is not None:
            accepted = place_heading(stack, heading, last_article, last_number, runs_on=heading.kind != rejected_kind)
        rejected_kind = heading.kind if heading is not None and not accepted else ""
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
            if target.children:
                # Body text after a child belongs to the last (deepest) child until a new heading
                # appears: a continuation paragraph of an item.
                target = _deepest_last(target)
            target.paragraphs.append(paragraph)
    return root


def _is_title_text(text: str) -> bool:
    return len(strip_spaces(text)) <= 40 and not re.search(r"[。；！？：:，]", text) and "\t" not in text


def _deepest_last(node: Node) -> Node:
    while node.children:
        node = node.children[-1]
    return node


def place_heading(stack: list, heading: Heading, last_article: int, last_number: dict[str, int], *, runs_on: bool = True) -> bool:
    """Pop ``stack`` to where ``heading`` belongs; False if it is not a believable heading.

    ``runs_on=False`` when the paragraph before was a heading of the same kind that was not
    believed ("附件：1. …" + "2. …" + "3. …"): the list it continues is body text, so its numbers
    cannot continue the numbering of an earlier section either.

    ``stack`` holds the open nodes from the root down; anything with ``kind`` and ``number``
    will do (chunking's ``item_labels`` replays a clause's headings on a stack of its own).
    """
    kind = heading.kind
    if kind in FIXED_RANK:
        rank = FIXED_RANK[kind]
        if kind == "article" and last_article and heading.number <= last_article:
            return False  # an earlier article number again: a reference, not a new article
        if kind == "annex":
            del stack[1:]
            return True
        while len(stack) > 1 and FIXED_RANK.get(stack[-1].kind, 99) >= rank:
            stack.pop()
        # A chapter/article always sits above the dynamically nested kinds.
        while len(stack) > 1 and stack[-1].kind not in FIXED_RANK:
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
    if runs_on and heading.number == last_number.get(kind, -1) + 1 and may_run_on(stack, kind):
        # Numbering that runs on across sections: 一、 (一)…(六) 二、 (七)…(十一) 三、 (十二)…
        return True
    return False


def may_run_on(stack: list, kind: str) -> bool:
    """Could a list of ``kind`` under ``stack[-1]`` continue an earlier section's numbering? Only
    where no list of that kind is open and it nests the usual way (一、 > （一） > 1. > （1） > ①,
    or right under an article): "（二）" under "7、" is a misread sibling, not a run-on list."""
    if any(node.kind == kind for node in stack):
        return False
    top = stack[-1].kind
    return top not in ITEM_KINDS or ITEM_KINDS.index(top) < ITEM_KINDS.index(kind)
