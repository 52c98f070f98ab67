"""Split one corpus file into documents (notices, measures, reports ...) and read their metadata.

>>> from assistant.loaders import read_source_file
>>> source = read_source_file(Path("corpus/000_ed0d53ce87970edb.txt"))      # doctest: +SKIP
>>> split = split_documents(source)                                          # doctest: +SKIP
>>> [(d.title, d.line_start, d.line_end) for d in split.documents][:2]       # doctest: +SKIP
[('鹤壁市人民政府办公室关于开展资源产出率统计工作的通知', 2, 26), ...]
>>> split.noise[1]                                                           # doctest: +SKIP
'front_matter'
>>> for document, layout in zip(split.documents, split.layouts):            # doctest: +SKIP
...     chunks = analyse_document(document, layout=layout)                   # assistant.chunking

What this module hands on: :class:`FileSplit` holds, beside each :class:`Document`, its
:class:`DocumentLayout`: the document's cleaned lines and where its title and header end (0-based
indexes into ``Document.lines``). Chunking takes the layout as it is - it neither cleans lines
again nor looks for the title. A Document made elsewhere (a test, :func:`whole_file_document`)
gets its layout from :func:`document_layout`, which applies the same title detection to the
document's own lines.

How it works, in three passes over the file:

1. :func:`assistant.lines.clean_line` repairs each line on its own: page markers (``— 1 —``,
   ``- 2 -``) are cut out wherever they sit, a doubled article label (``第一条第一条``) is written
   once; whole-line noise (blank lines, lone page markers, lone page numbers) is classified.
2. :func:`find_title_blocks` finds the title of each document: one to three short lines without
   sentence punctuation whose last line ends in a document kind (通知, 意见, 办法, 条例, 报告 ...),
   confirmed by what follows (a salutation ``各县区人民政府：``, a 文号, a date, ``第一条``/``一、``).
   A document runs from its header (``第二篇：`` banners, ``XX文件`` lines, 文号, issuer) to the line
   before the next document's header; :func:`header_end_index` finds where the header under the
   title (文号, date, subtitle, speaker) ends.
3. Everything before the first document is front matter (cover, table of contents, editorial
   board); table-of-contents lines there are counted as ``toc``.

A measure attached to a forwarding/issuing notice (关于转发/印发…的通知) is its own document: it has
its own title and articles and users ask about it by name. So is a titled attachment (``附件 2`` +
its title). Neither has a 文号 of its own, so they take the notice's 文号, issuer, date and city:
鹤壁市地源热泵系统建设应用管理暂行办法 is cited with 鹤政办〔2025〕9号, the number of the notice
that forwards it (the notice is the document just before it in the same file).

Why one module of ~600 lines: title detection, the header walks (:func:`_header_start`,
:func:`header_end_index`) and metadata reading test the same header lines with the same patterns
(文号, banner, issuer, subtitle), and each uses the others' helpers; cut apart they would import
each other's private names. Line-level patterns both stages need are in :mod:`assistant.lines`.

``clean_line``, ``clean_lines``, ``CleanLine``, ``DOUBLED_LABEL`` and ``chinese_date_to_iso`` live in
:mod:`assistant.lines`; they are imported here so ``from assistant.documents import clean_lines``
keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from assistant.lines import (  # noqa: F401  (CleanLine, clean_line, DOUBLED_LABEL: re-exported)
    ANNEX_LINE,
    CN,
    DATE_ARABIC,
    DATE_CHINESE,
    DATE_ONLY_LINE,
    DOUBLED_LABEL,
    ORG_LINE,
    TOC_ENTRY,
    TOC_HEADING,
    CleanLine,
    chinese_date_to_iso,
    clean_line,
    clean_lines,
)
from assistant.text import strip_spaces
from assistant.types import Document, SourceFile

# --- metadata patterns ----------------------------------------------------------------------------

# 文号: 郑政〔2016〕24号, 鹤政办〔2025〕9号, 工信部企业〔2022〕63号, 鹤政„2025‟55号 (damaged brackets),
# 豫政办明电〔2022〕5号, 国发〔2022〕12号, 安财金〔2021〕15号.
DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{1,12}\s*[〔\[［【(（„‟“”〖][12]\d{3}[〕\]］】)）‟”〗]\s*\d{1,4}\s*号")
CITY = re.compile(r"(郑州|鹤壁|三门峡|安阳|洛阳|开封|新乡|焦作|濮阳|许昌|漯河|南阳|商丘|信阳|周口|驻马店|平顶山|济源)市?")
# 文号 prefixes that name the issuing city or province.
_DOC_NUMBER_CITY = (("郑", "郑州市"), ("鹤", "鹤壁市"), ("三", "三门峡市"), ("安", "安阳市"), ("豫", "河南省"))


def normalize_doc_number(text: str) -> str:
    """Write a 文号 with the standard 〔〕 brackets and no spaces: 鹤政„2025‟55号 -> 鹤政〔2025〕55号."""
    text = strip_spaces(text)
    return re.sub(r"[〔\[［【(（„‟“”〖]([12]\d{3})[〕\]］】)）‟”〗]", r"〔\1〕", text)


# --- title detection ------------------------------------------------------------------------------

DOC_KINDS = (
    "通知", "意见", "办法", "方案", "报告", "条例", "措施", "细则", "规定", "决定", "通报", "公告",
    "决议", "讲话", "精神", "规划", "纲要", "制度", "规则", "指引", "指南", "清单", "计划", "批复",
    "函", "要点", "章程", "政策", "若干政策", "说明", "工作报告", "会议", "公报", "命令", "令", "名单", "通告", "工作重点",
)
_KIND_END = re.compile(
    r"(?:" + "|".join(sorted(DOC_KINDS, key=len, reverse=True)) + r")"
    r"(?:\s*[（(][^（）()]{1,20}[）)])?\s*$"
)
# A structural marker at line start means a heading inside a document, not a title.
STRUCTURE_START = re.compile(
    rf"^\s*(?:第{CN}+[章节条编部分]|{CN}+\s*[、.．]|[（(]\s*{CN}+\s*[）)]|\d+\s*[.．、]|[（(]\s*\d+\s*[）)]|[①-⑳]|[一二三四五六七八九十]是)"
)
_SALUTATION = re.compile(r"[：:]\s*$")
_BANNER = re.compile(r"^第[一二三四五六七八九十百]+篇[：:]")


@dataclass
class TitleBlock:
    start: int  # index (0-based) of the first title line
    end: int  # index of the last title line
    title: str
    issuer_lines: list[int] = field(default_factory=list)  # issuer lines joined into the title ("XX人民政府" + "关于…")


def _is_title_piece(text: str, *, max_chars: int = 60) -> bool:
    """Could this line be (part of) a title? Short, no sentence punctuation, not a heading."""
    compact = re.sub(r"^#{1,6}", "", strip_spaces(text))  # a Markdown heading mark is not part of a title
    if not compact or len(compact) > max_chars:
        return False
    if re.match(r"^[（(][^（）()]*[）)]$", compact):
        return False  # "（本文有删减）", "(六个方面 33 项措施)"
    if re.search(r"[。；！？：:]", compact) or compact.endswith(("，", "、")):
        return False
    if STRUCTURE_START.match(compact) or compact.startswith(("-", "•", "·", "*")) or "\t" in text or "|" in text or compact.startswith("附件"):
        return False  # headings, table rows, attachment lists
    if "，" in compact and len(compact) > 30:
        return False  # a sentence of running text, not a title

    if DOC_NUMBER.search(compact) and len(strip_spaces(DOC_NUMBER.sub("", compact))) < 4:
        return False
    if DATE_ONLY_LINE.match(compact):
        return False
    return True


def _confirms_title(cleaned: list[CleanLine], after: int) -> bool:
    """Does what follows a title candidate look like the opening of a document?"""
    seen = 0
    for line in cleaned[after + 1 :]:
        if line.noise:
            continue
        text = re.sub(r"^(?:[-•·*]|#+)", "", strip_spaces(line.text))
        if TOC_HEADING.match(text):
            continue  # a regulation's own table of contents follows its title
        seen += 1
        if seen > 6:
            return False
        if DOC_NUMBER.search(text) and len(text) < 40:
            return True
        if DATE_ONLY_LINE.match(text):
            return True
        if text.startswith(("——", "—", "--", "【", "(", "（")) and len(text) < 60 and not STRUCTURE_START.match(text):
            continue  # subtitle, "（2023年10月27日）", "(六个方面 33 项措施)": keep looking
        if _SALUTATION.search(text) and len(text) < 90:
            return True
        if re.match(rf"^(?:第[一1]章|第[一1]条|第一节|一\s*[、.．]|[（(]一[）)]|1\s*[.．、])", text):
            return True
        if ORG_LINE.search(text) and len(text) <= 25:
            continue  # reporting body under a report title ("市发展改革委"), speaker line
        if re.search(r"\s(?:[\u4e00-\u9fff]\s?){2,4}$", line.text) and len(text) < 30:
            continue  # "市人大常委会主任 史全新"
        if _title_line(line, max_chars=34) and line.text.count("《") <= line.text.count("》"):
            continue  # the title's own second half, or a subtitle
        # Plain body text straight after a title: reports and speeches open this way.
        return seen <= 2 and len(text) >= 30
    return False


def _title_line(line: CleanLine, *, max_chars: int = 60) -> bool:
    return not line.noise and not line.table and _is_title_piece(line.text, max_chars=max_chars)


_TITLE_OPENING = ("关于", "印发", "转发")


def find_title_blocks(cleaned: list[CleanLine]) -> list[TitleBlock]:
    """Title blocks in file order (0-based indexes into ``cleaned``).

    A title ends on a line ending in a document kind. Earlier lines join it while the title read so
    far is a fragment without 关于 ("暂行办法的通知" <- "关于转发…管理"), and issuer lines join it in
    front of a title opening with 关于/印发/转发 ("鹤壁市人民政府办公室" + "关于…"): so a form or
    table line above a complete title is never glued to it.
    """
    blocks: list[TitleBlock] = []
    for index, line in enumerate(cleaned):
        compact = strip_spaces(line.text)
        limit = 100 if "关于" in compact else 60
        if not _title_line(line, max_chars=limit) or not _KIND_END.search(compact):
            continue
        if line.text.count("《") > line.text.count("》"):
            continue  # "…根据《…三年行动计划" ends inside a quoted title: running text
        if blocks and index <= blocks[-1].end:
            continue
        start = index
        pieces = [line.text]
        issuer_lines: list[int] = []
        probe = index - 1
        while probe >= 0 and len(pieces) < 6:
            previous = cleaned[probe]
            if previous.noise in ("blank", "page_marker"):
                probe -= 1
                continue
            if (blocks and probe <= blocks[-1].end) or not _title_line(previous, max_chars=100) or _BANNER.match(previous.text):
                break
            previous_compact = re.sub(r"^#+", "", strip_spaces(previous.text))
            if previous_compact.endswith("文件") or DOC_NUMBER.search(previous_compact):
                break
            so_far = re.sub(r"^#+", "", strip_spaces("".join(pieces)))
            if so_far.startswith(_TITLE_OPENING) or issuer_lines:
                if ORG_LINE.search(previous_compact) and len(previous_compact) <= 40 and len(issuer_lines) < 4:
                    issuer_lines.insert(0, probe)  # issuing bodies, one per line
                else:
                    break
            elif "关于" not in so_far and len(so_far) <= 25 and not _KIND_END.search(previous_compact):
                pass  # the title's earlier line: "关于转发鹤壁市地源热泵系统建设应用管理" + "暂行办法的通知"
            else:
                break
            pieces.insert(0, previous.text)
            start = probe
            probe -= 1
        if not _confirms_title(cleaned, index):
            continue
        end = index
        suffix = _title_suffix_line(cleaned, index)
        if suffix is not None:
            # "安阳市加快培育创新型企业行动计划" + "(2021—2022年)": the bracket is part of the title.
            pieces.append(cleaned[suffix].text)
            end = suffix
        title = join_title(pieces)
        blocks.append(TitleBlock(start, end, title, issuer_lines))
    return blocks


# (试行), (修订), (2021—2022年) belong to the title. A draft marker (（草案修改稿）) does not: the
# regulation is cited by its name, 鹤壁市卫河保护条例; the marker stays in the header.
_TITLE_SUFFIX = re.compile(r"^[（(][^（）()]{0,16}(?:\d{4}\s*[—–-]+\s*\d{4}\s*年|试行|暂行|修订)[^（）()]{0,8}[）)]$")


def _title_suffix_line(cleaned: list[CleanLine], index: int) -> int | None:
    """Index of a bracketed title suffix on the next line: (试行), （草案修改稿）, (2021—2022年)."""
    for probe in range(index + 1, min(index + 4, len(cleaned))):
        line = cleaned[probe]
        if line.noise in ("blank", "page_marker"):
            continue
        return probe if not line.noise and _TITLE_SUFFIX.match(strip_spaces(line.text)) else None
    return None


def join_title(pieces: list[str]) -> str:
    """Join title lines; spaces the PDF put between Chinese characters are dropped.

    >>> join_title(["鹤壁市人民政府办公室", "关于转发鹤壁市地源热泵系统建设应用管理", "暂行办法的通知"])
    '鹤壁市人民政府办公室关于转发鹤壁市地源热泵系统建设应用管理暂行办法的通知'
    """
    text = "".join(re.sub(r"^#{1,6}\s+", "", piece.strip()) for piece in pieces)  # "# 关于…" in Markdown
    return drop_cjk_spaces(text)


def drop_cjk_spaces(text: str) -> str:
    """Remove whitespace next to a Chinese character or full-width punctuation; keep it between Latin words."""
    return re.sub(r"\s+(?=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef《》“”])|(?<=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef《》“”])\s+", "", text).strip()


# --- splitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentLayout:
    """What splitting learned about one document's lines, for chunking.

    Indexes are 0-based into ``Document.lines`` (line ``Document.line_start + i`` of the file).
    Lines ``0..header_end`` are the document's header (banner, 文号, issuer, title, date, subtitle,
    speaker): kept in the Document's fields, never clause text.
    """

    cleaned: tuple[CleanLine, ...]  # clean_line of every document line
    title_start: int  # first title line; -1 when the title is not in the text (named after its file)
    title_end: int  # last title line (a bracketed suffix like （试行） included); -1 as above
    header_end: int  # last header line; -1 when the document has no header lines


@dataclass
class FileSplit:
    """The documents of one file and the category of every line that belongs to no document."""

    documents: list[Document]
    noise: dict[int, str] = field(default_factory=dict)  # 1-based line -> category, outside documents
    cleaned: list[CleanLine] = field(default_factory=list)
    layouts: list[DocumentLayout] = field(default_factory=list)  # layouts[i] belongs to documents[i]




def file_key(name: str) -> str:
    """The file part of a doc_id: the corpus-relative name without its extension.

    >>> file_key("000_ed0d53ce87970edb.txt"), file_key("2024/notice.docx")
    ('000_ed0d53ce87970edb', '2024/notice')
    """
    path = Path(name)
    return (path.parent / path.stem).as_posix() if path.parent != Path(".") else path.stem


def split_documents(source: SourceFile, *, default_city: str | None = None, key: str | None = None) -> FileSplit:
    """Cut ``source`` into documents; lines before the first one are classified as front matter.

    Document ids are ``f"{key}#{ordinal}"``; ``key`` defaults to :func:`file_key` of the file name.
    """
    cleaned = clean_lines(source.lines)
    blocks = find_title_blocks(cleaned)
    starts = [_header_start(cleaned, block, blocks[i - 1].end if i else -1) for i, block in enumerate(blocks)]
    noise: dict[int, str] = {}
    first = starts[0] if starts else len(cleaned)
    noise.update(front_matter_categories(cleaned[:first]))
    stem = key or file_key(source.name)
    file_city = default_city or _file_city(source, blocks)
    documents: list[Document] = []
    layouts: list[DocumentLayout] = []
    previous: Document | None = None
    parent: Document | None = None  # the last document that is not an attachment
    for ordinal, (block, start) in enumerate(zip(blocks, starts), 1):
        end = (starts[ordinal] - 1) if ordinal < len(starts) else len(cleaned) - 1
        meta = read_metadata(cleaned, start, block, end)
        annex = _has_annex_line(cleaned, start, block.start)
        if annex and parent is not None:
            issuer = parent  # 附件2 of a notice: attached to the notice, not to 附件1
        elif previous is not None and _is_issued_by(previous, block.title):
            issuer = previous
        else:
            issuer = None
            parent = None
        if issuer is not None and meta.doc_number is None:
            # An attached or issued measure carries the notice's 文号, issuer and date.
            meta.doc_number = issuer.doc_number
            meta.issuer = meta.issuer or issuer.issuer
            meta.date = meta.date or issuer.date
            meta.city = issuer.city
        document = Document(
            doc_id=f"{stem}#{ordinal}",
            source=source.name,
            title=block.title,
            line_start=start + 1,
            line_end=end + 1,
            lines=tuple(source.lines[start : end + 1]),
            doc_number=meta.doc_number,
            issuer=meta.issuer,
            date=meta.date,
            city=_document_city(block.title, meta, file_city),
        )
        documents.append(document)
        layouts.append(
            DocumentLayout(tuple(cleaned[start : end + 1]), block.start - start, block.end - start, meta.header_end - start)
        )
        previous = document
        if issuer is None:
            parent = document
    return FileSplit(documents, noise, cleaned, layouts)


def document_layout(document: Document) -> DocumentLayout:
    """The layout of a document that did not come with one (made by hand, by a test, or by
    :func:`whole_file_document`): the same title detection and header rule as
    :func:`split_documents`, applied to the document's own lines.

    The title is the first title block whose joined title is ``document.title``; failing that (a
    whole-file document is titled by its first line), the first non-noise line if it reads as the
    title; otherwise the title is not in the text and only the lines right at the top that look
    like a header (文号, date) are header.
    """
    cleaned = clean_lines(document.lines)
    last = len(cleaned) - 1
    block = next((b for b in find_title_blocks(cleaned) if b.title == document.title), None)
    if block is not None:
        start, end = block.start, block.end
    else:
        first = next((index for index, line in enumerate(cleaned) if not line.noise), None)
        if first is not None and drop_cjk_spaces(cleaned[first].text) == drop_cjk_spaces(document.title):
            start = end = first
        else:
            start = end = -1
    return DocumentLayout(tuple(cleaned), start, end, header_end_index(cleaned, end, last))


def _has_annex_line(cleaned: list[CleanLine], start: int, title_start: int) -> bool:
    return any(ANNEX_LINE.match(cleaned[i].text) for i in range(start, title_start))


def _is_issued_by(notice: Document, title: str) -> bool:
    """Is ``title`` the measure that ``notice`` (关于印发/转发《…》的通知) issues or forwards?"""
    if not re.search(r"(印发|转发|发布)", notice.title):
        return False
    core = re.sub(r"[《》“”\s的]", "", title)
    core = re.sub(r"[（(][^（）()]*[）)]$", "", core)
    return len(core) >= 4 and core[-min(len(core), 10) :] in re.sub(r"[《》“”\s的]", "", notice.title)


def _header_start(cleaned: list[CleanLine], block: TitleBlock, previous_end: int) -> int:
    """First line of a document's header: the title, or the banner/文号/issuer lines just above it."""
    start = block.start
    probe = block.start - 1
    while probe > previous_end:
        line = cleaned[probe]
        if line.noise in ("blank", "page_marker"):
            probe -= 1
            continue
        if line.noise:
            break
        text = strip_spaces(line.text)
        if line.table or STRUCTURE_START.match(text):
            break  # a table-of-contents entry or a numbered item, not a 文号/issuer line
        header_like = (
            (_BANNER.match(text) and len(text) <= 80)  # "第五篇：鹤壁市人民政府办公室关于印发《…工"
            or (text.endswith("文件") and len(text) <= 30)
            or (DOC_NUMBER.search(text) and len(text) <= 40)
            or (ORG_LINE.search(text) and len(text) <= 30 and not _SALUTATION.search(text))
            or (text.startswith("【") and "】" in text and len(text) <= 100)  # 【发布文号】…【发布日期】…
            or ANNEX_LINE.match(text)
        )
        if not header_like:
            break
        start = probe
        probe -= 1
    return start


@dataclass
class Metadata:
    city: str | None = None  # set when inherited from the notice that issues the document
    doc_number: str | None = None
    issuer: str | None = None
    date: str | None = None
    header_end: int = 0  # 0-based index of the last header line (title, 文号, date, speaker ...)


def header_end_index(cleaned: list[CleanLine], title_end: int, limit: int) -> int:
    """Last line of the header that follows a title: 文号, date, subtitle, speaker, reporting body.

    The salutation (各县区人民政府：) is *not* header: it opens the body and is quoted with it.
    """
    end = title_end
    probe = title_end + 1
    after_dash_subtitle = False
    while probe <= limit:
        line = cleaned[probe]
        if line.noise:
            probe += 1
            continue
        text = strip_spaces(line.text)
        is_header = (
            # "——2023年10月27日在鹤壁市第十二届人民代表大会" + "常务委员会第八次会议上"
            (after_dash_subtitle and len(text) <= 30 and not re.search(r"[，。；：:]", text) and not STRUCTURE_START.match(text))
            or (DOC_NUMBER.search(text) and len(text) <= 45)
            or DATE_ONLY_LINE.match(text)
            or (text.startswith(("——", "--")) and len(text) <= 60)
            or (text.startswith("【") and "】" in text and len(text) <= 80)
            or (re.match(r"^[（(].{0,30}[）)]$", text) and not STRUCTURE_START.match(text))
            # "(2023年10月27日鹤壁市第十二届人民代表大会常务委员会第八次会议通过)"
            or (re.match(r"^[（(].{0,60}[）)]$", text) is not None and (DATE_ARABIC.search(text) or DATE_CHINESE.search(text)) is not None)
            or (ORG_LINE.search(text) and len(text) <= 25 and not _SALUTATION.search(text) and not STRUCTURE_START.match(text))
            or (re.search(r"\s(?:[\u4e00-\u9fff]\s?){2,4}$", line.text) and len(text) < 30 and not _SALUTATION.search(text) and not STRUCTURE_START.match(text))
            or (_is_title_piece(line.text) and len(text) <= 30 and probe == end + 1 and not _SALUTATION.search(text) and _looks_like_subtitle(cleaned, probe, limit))
        )
        if not is_header:
            break
        after_dash_subtitle = text.startswith(("——", "--"))
        end = probe
        probe += 1
    return end


def _looks_like_subtitle(cleaned: list[CleanLine], index: int, limit: int) -> bool:
    """A short unpunctuated line right after a title is a subtitle only if a header line follows."""
    for line in cleaned[index + 1 : limit + 1]:
        if line.noise:
            continue
        text = strip_spaces(line.text)
        return bool(DOC_NUMBER.search(text) and len(text) <= 45) or bool(DATE_ONLY_LINE.match(text)) or text.startswith(("——", "("))
    return False


def read_metadata(cleaned: list[CleanLine], start: int, block: TitleBlock, end: int) -> Metadata:
    """文号, issuer and date from the header lines (and the signature date at the end of the body)."""
    meta = Metadata()
    meta.header_end = header_end_index(cleaned, block.end, end)
    header_texts = [strip_spaces(line.text) for line in cleaned[start : meta.header_end + 1] if not line.noise]
    for text in header_texts:
        match = DOC_NUMBER.search(text)
        if match and meta.doc_number is None:
            meta.doc_number = _trim_doc_number(match.group(0))
        if meta.date is None and (date := chinese_date_to_iso(text)):
            meta.date = date
    reporter = next(
        (
            strip_spaces(line.text)
            for line in cleaned[block.end + 1 : meta.header_end + 1]
            if not line.noise and ORG_LINE.search(strip_spaces(line.text)) and len(strip_spaces(line.text)) <= 25 and not DOC_NUMBER.search(line.text)
        ),
        None,
    )
    if block.issuer_lines:
        meta.issuer = "、".join(re.sub(r"^#+", "", strip_spaces(cleaned[line].text)) for line in block.issuer_lines)
    elif reporter:
        meta.issuer = reporter  # the reporting body under a report's title: "市发展改革委"
    elif "关于" in block.title and ORG_LINE.search(block.title.split("关于")[0] or "-"):
        meta.issuer = block.title.split("关于")[0]
    else:
        for text in header_texts:
            if _BANNER.match(text):
                continue
            org = re.sub(r"文件$", "", text)
            if org != block.title and ORG_LINE.search(org) and len(org) <= 25 and not DOC_NUMBER.search(org):
                meta.issuer = org
                break
    # The signature closes the body: issuer line(s), then 二〇一二年七月十三日 on its own line.
    body = [index for index in range(meta.header_end + 1, end + 1) if not cleaned[index].noise]
    for position, index in enumerate(body):
        if DATE_ONLY_LINE.match(strip_spaces(cleaned[index].text)):
            meta.date = meta.date or chinese_date_to_iso(cleaned[index].text)
            if meta.issuer is None and position:
                signer = strip_spaces(cleaned[body[position - 1]].text)
                if ORG_LINE.search(signer) and len(signer) <= 40:
                    meta.issuer = signer
            break
    return meta


def _trim_doc_number(text: str) -> str:
    """A 文号 match may start inside a preceding word ("鹤壁市人民政府办公室文件鹤政办〔2025〕9号")."""
    number = normalize_doc_number(text)
    number = re.sub(r"^.*(?:文件|发布文号】|文号|】)", "", number)
    return number


def _file_city(source: SourceFile, blocks: list[TitleBlock]) -> str | None:
    counts: dict[str, int] = {}
    for block in blocks:
        for match in CITY.finditer(block.title):
            name = match.group(1) + "市"
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return None
    return max(sorted(counts), key=lambda name: counts[name])


def _document_city(title: str, meta: Metadata, file_city: str | None) -> str | None:
    """The city (or province) whose government issued the document, for filtering.

    Named in the issuer or title, else read from the 文号 prefix (郑政 -> 郑州市, 豫政 -> 河南省),
    else inherited from the issuing notice. A document with a 文号 of a national body (国发, 银发,
    工信部…) has no city; one without any clue takes the city of the compilation it sits in.
    """
    if meta.city:
        return meta.city
    for text in (meta.issuer or "", title):
        if "河南省" in text or text.startswith("河南"):
            return "河南省"
        match = CITY.search(text)
        if match and not text.startswith(("中国人民银行", "国务院")):
            return match.group(1) + "市"
    if meta.doc_number:
        for prefix, city in _DOC_NUMBER_CITY:
            if meta.doc_number.startswith(prefix):
                return city
        return None
    if re.match(r"^(国务院|国家|中共中央|财政部|商务部|科技部|工业和信息化部|自然资源部|中国人民银行)", meta.issuer or title):
        return None
    return file_city


def front_matter_categories(cleaned: list[CleanLine]) -> dict[int, str]:
    """Categories of the lines before a file's first document (1-based line -> category).

    A table of contents runs from its heading (目 录, CONTENTS) over section lines (一、国家、部委
    政策, 【市政府文件】) and entries (titles, dot leaders, page numbers) until editorial matter
    (《…公报》, 编委会, "主 任：…"); its lines are ``toc``, the rest (cover, preface, editorial
    board, imprint) ``front_matter``.
    """
    categories: dict[int, str] = {}
    in_toc = False
    for index, line in enumerate(cleaned):
        compact = strip_spaces(line.text)
        if line.noise:
            category = line.noise
        elif TOC_HEADING.match(line.text):
            in_toc, category = True, "toc"
        elif in_toc and (re.match(r"^《.*》$", compact) or "编委会" in compact or re.search(r"[：:]", compact)):
            in_toc, category = False, "front_matter"
        elif in_toc or TOC_ENTRY.search(line.text):
            category = "toc"
        else:
            category = "front_matter"
        categories[index + 1] = category
    return categories


def whole_file_document(source: SourceFile, *, key: str | None = None) -> Document:
    """A file with no recognisable title is one document, titled by its first short line or its name."""
    cleaned = clean_lines(source.lines)
    title = Path(source.name).stem
    for line in cleaned:
        if line.noise:
            continue
        if _is_title_piece(line.text):
            title = drop_cjk_spaces(line.text)
        break
    doc_number = None
    for line in cleaned[:10]:
        match = DOC_NUMBER.search(strip_spaces(line.text))
        if match:
            doc_number = _trim_doc_number(match.group(0))
            break
    date = next((chinese_date_to_iso(line.text) for line in cleaned if not line.noise and DATE_ONLY_LINE.match(strip_spaces(line.text))), None)
    city_match = CITY.search(title)
    return Document(
        doc_id=f"{key or file_key(source.name)}#1",
        source=source.name,
        title=title,
        line_start=1,
        line_end=len(source.lines),
        lines=tuple(source.lines),
        doc_number=doc_number,
        date=date,
        city=city_match.group(1) + "市" if city_match else None,
    )
