"""Line-level text shared by document splitting and chunking: line cleaning, Chinese numbers,
dates and the line patterns both stages test.

>>> line = clean_line("— 1 — 鹤壁市地源热泵系统建设应用管理暂行办法")
>>> line.text, line.repairs
('鹤壁市地源热泵系统建设应用管理暂行办法', ('page_marker_inline',))
>>> parse_number("十二"), parse_number("一百零五"), parse_number("二○"), parse_number("12"), parse_number("③")
(12, 105, 20, 12, 3)
>>> chinese_date_to_iso("二○一○年三月十六日")
'2010-03-16'
>>> bool(ANNEX_LINE.match("附件 2：")), bool(ANNEX_LINE.match("附件2．创新型中小企业评价标准"))
(True, False)

Who uses what: :mod:`assistant.documents` cleans a file's lines once (:func:`clean_lines`), finds
titles and headers on the cleaned lines and hands each document's cleaned lines to
:mod:`assistant.chunking` inside a ``DocumentLayout``; chunking never cleans again. Both read the
patterns below (:data:`ANNEX_LINE`, :data:`DATE_ONLY_LINE`, :data:`ORG_LINE`, :data:`TOC_HEADING`,
:data:`TOC_ENTRY`) and the one numeral parser :func:`parse_number` (article numbers, item numbers,
months and days). Nothing here knows about documents or clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters of a Chinese numeral as headings write them (第一百零五条, （十二）, 二○一○年).
CN_DIGITS = "一二三四五六七八九十百千零〇○两"
CN = f"[{CN_DIGITS}]"  # one numeral character, for building patterns
_DIGIT_VALUE = {"〇": 0, "○": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNIT_VALUE = {"十": 10, "百": 100, "千": 1000}
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"


def parse_number(raw: str) -> int | None:
    """The value of an item/article number or a date part; None if ``raw`` is not a number.

    Arabic digits, circled numbers (①..⑳), Chinese numerals with units (十二, 一百零五, 两千) and
    Chinese digits written one by one (二○ = 20, 二〇一〇 = 2010, as dates write years).
    """
    if not raw:
        return None
    if raw.isdecimal():
        return int(raw)
    if len(raw) == 1 and raw in CIRCLED:
        return CIRCLED.index(raw) + 1
    if not any(ch in _UNIT_VALUE for ch in raw):
        if not all(ch in _DIGIT_VALUE for ch in raw):
            return None
        value = 0
        for ch in raw:  # positional: 二○ -> 20
            value = value * 10 + _DIGIT_VALUE[ch]
        return value
    total, current = 0, 0
    for ch in raw:
        if ch in _DIGIT_VALUE:
            current = _DIGIT_VALUE[ch]
        elif ch in _UNIT_VALUE:
            total += (current or 1) * _UNIT_VALUE[ch]
            current = 0
        else:
            return None
    return total + current


# --- dates ----------------------------------------------------------------------------------------

_CN_YEAR_DIGITS = "〇○零一二三四五六七八九"
DATE_ARABIC = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
DATE_CHINESE = re.compile(rf"([{_CN_YEAR_DIGITS}]{{4}})\s*年\s*([{_CN_YEAR_DIGITS}十]{{1,3}})\s*月\s*([{_CN_YEAR_DIGITS}十]{{1,3}})\s*日")
# A date alone on a line (a signature date, the date under a title), optionally in brackets.
DATE_ONLY_LINE = re.compile(
    rf"^[（(]?\s*(?:(?:19|20)\d{{2}}\s*年\s*\d{{1,2}}\s*月\s*\d{{1,2}}\s*日|[{_CN_YEAR_DIGITS}]{{4}}\s*年\s*[{_CN_YEAR_DIGITS}十]{{1,3}}\s*月\s*[{_CN_YEAR_DIGITS}十]{{1,3}}\s*日)\s*[)）]?$"
)


def chinese_date_to_iso(text: str) -> str | None:
    """First date in ``text`` as ISO yyyy-mm-dd; both 2016年8月1日 and 二○一○年三月十六日 forms.

    >>> chinese_date_to_iso("二○一○年三月十六日"), chinese_date_to_iso("2016年8月1日")
    ('2010-03-16', '2016-08-01')
    """
    arabic = DATE_ARABIC.search(text)
    chinese = DATE_CHINESE.search(text)
    if arabic and (not chinese or arabic.start() < chinese.start()):
        year, month, day = (int(group) for group in arabic.groups())
    elif chinese:
        year, month, day = (parse_number(group) for group in chinese.groups())
        if year is None or month is None or day is None:
            return None
    else:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


# --- line patterns both stages test ---------------------------------------------------------------

# "附件", "附件 2", "附件2：" alone on a line: an attachment starts (its title is the next line).
ANNEX_LINE = re.compile(r"^附\s*件\s*(\d*)\s*[:：]?\s*$")
# An issuing or reporting body: 郑州市人民政府, 市发展改革委, 鹤壁市人民政府办公室文件.
ORG_LINE = re.compile(r"(?:人民政府|办公室|办公厅|委员会|常委会|管委会|[局厅部院署委行会处]|小组)(?:文件)?$")
TOC_HEADING = re.compile(r"^\s*(?:目\s*录|CONTENTS)\s*$", re.IGNORECASE)
# A table-of-contents entry ends in a page number after dot leaders, tabs or spaces.
TOC_ENTRY = re.compile(r"(?:\.{2,}|…{1,}|·{2,}|\t+|\s+)\s*\d{1,4}\s*$|^\.{2,}\s*\d+\s*$")
# Emphasis markup a converter left around words ("**第九条** 工业和信息化部…"): noise around a
# heading marker, never part of a label; the clause text keeps it as written.
MARKUP = r"(?:\*\*|__)"

# --- line cleaning --------------------------------------------------------------------------------

_DASH = "—–\\-－―"
PAGE_MARKER_LINE = re.compile(rf"^\s*[{_DASH}]{{1,2}}\s*\d{{1,3}}\s*[{_DASH}]{{1,2}}\s*$")
LONE_PAGE_NUMBER = re.compile(r"^\s*\d{1,3}\s*$")
# Inside a line a page marker needs spaces around its number, so "20－30%" or "2021—2022年" stay.
INLINE_PAGE_MARKER = re.compile(rf"\s*[{_DASH}]{{1,2}}\s+\d{{1,3}}\s+[{_DASH}]{{1,2}}\s*")
# "第一条第一条 为进一步…": the PDF text layer doubled the label.
DOUBLED_LABEL = re.compile(rf"^(\s*)(第{CN}+条)\2")


@dataclass(frozen=True)
class CleanLine:
    text: str  # the line with page markers cut out and outer whitespace stripped
    noise: str | None  # category when the whole line is noise, else None
    repairs: tuple[str, ...] = ()  # kinds of repair applied: "page_marker_inline", "doubled_label"
    table: bool = False  # the raw line holds a tab: a table row (cells), never a title or heading


def clean_line(raw: str) -> CleanLine:
    """Repair one source line.

    >>> clean_line("— 1 — 鹤壁市地源热泵系统建设应用管理暂行办法")
    CleanLine(text='鹤壁市地源热泵系统建设应用管理暂行办法', noise=None, repairs=('page_marker_inline',), table=False)
    >>> clean_line(" - 2 - ").noise
    'page_marker'
    """
    if not raw.strip():
        return CleanLine("", "blank")
    # A lone number is a page number; "1\t\t\t" is the first cell of an empty table row.
    if PAGE_MARKER_LINE.match(raw) or (LONE_PAGE_NUMBER.match(raw) and "\t" not in raw):
        return CleanLine("", "page_marker")
    repairs: list[str] = []
    text = raw
    if INLINE_PAGE_MARKER.search(text):
        # "统一组织、— 8 —  上下联动": the marker sat inside a sentence; drop it with its spaces.
        text = INLINE_PAGE_MARKER.sub("", text)
        repairs.append("page_marker_inline")
    if (shortened := _strip_trailing_page_number(text.rstrip())) is not None:
        text = shortened
        repairs.append("page_number_inline")
    if DOUBLED_LABEL.match(text):
        text = DOUBLED_LABEL.sub(r"\1\2", text)
        repairs.append("doubled_label")
    text = text.strip()
    if not text:
        return CleanLine("", "page_marker")
    return CleanLine(text, None, tuple(repairs), "\t" in raw)


# A page number left at the end of a line the PDF broke mid-word: "…统计核算方 1" + "法，为…".
# Only in running text (no tabs: table cells end in numbers), never after 附件/号/年/第…, and not
# after a finished sentence.
_TRAILING_PAGE_NUMBER = re.compile(r"(?<=[\u4e00-\u9fff])\s+\d{1,3}$")
_NOT_BEFORE_PAGE_NUMBER = set("件号期第年月日页章条款项")
_SENTENCE_END = re.compile(r"[。！？；：:]\s*$")


def _strip_trailing_page_number(text: str) -> str | None:
    match = _TRAILING_PAGE_NUMBER.search(text)
    if not match or "\t" in text or ";" in text or len(text) < 20 or text[:1].isdigit():
        return None
    before = text[: match.start()]
    if before[-1] in _NOT_BEFORE_PAGE_NUMBER or _SENTENCE_END.search(before):
        return None
    return before


def clean_lines(lines: tuple[str, ...] | list[str]) -> list[CleanLine]:
    """:func:`clean_line` over many lines (each line is repaired on its own, so a document's lines
    clean the same way inside their file or on their own)."""
    return [clean_line(line) for line in lines]
