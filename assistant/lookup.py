"""Questions that name a document and an article: answered by looking them up, not by searching.

「郑政〔2016〕24号第三条讲的是什么」, 「鹤壁市卫河保护条例第三十九条」, 「鹤政办〔2025〕9号 第四条」: the
document is found by its 文号 (any bracket style, full- or half-width digits) or its title, the
clause by its label. When the document or the article does not exist, :func:`find` says which.
Words run on before a 文号 (「按郑政办文〔2016〕62号…」) are not part of it, and a title may be asked
shortened (「卫河条例」) or with its drafting stage (「…条例（草案修改稿）」).

>>> reference = parse_reference("郑政[2016]24号 第3条讲的是什么")
>>> reference.doc_number, reference.article
('郑政〔2016〕24号', '第三条')
>>> found = find(reference, retriever.documents, retriever.clauses_of)
>>> found.clauses[0].label, found.missing
('第三条', None)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from assistant.query import compact
from assistant.types import Clause, Document

_DIGITS = "0-9０-９"
_DOC_NUMBER = re.compile(  # „‟ and 〖〗: brackets as the PDF extraction damaged them in some notices
    rf"([\u4e00-\u9fff]{{1,12}}?)\s*[〔\[［【(（„“〖]\s*([12][{_DIGITS}]{{3}})\s*[〕\]］】)）‟”〗]\s*([{_DIGITS}]{{1,4}})\s*号"
)
# Words a question may put right before a 文号 without a break (「按郑政办文〔2016〕62号…」, 「根据安财购〔2022〕5号」):
# the prefix match takes them in, and no issuer's abbreviation starts with them.
_LEAD_IN = re.compile(r"^(?:按照|按|根据|依据|依照|参照|对照|关于|执行|落实|贯彻|请问|问一下|查询|查|看|在|从|和|与|及|对|把|将|是)+")
_NUMERAL = "一二三四五六七八九十百零〇两"
_ARTICLE = re.compile(rf"第\s*([{_NUMERAL}{_DIGITS}]{{1,6}})\s*条(?:\s*[（(]\s*([{_NUMERAL}{_DIGITS}]{{1,4}})\s*[）)])?")
_DOC_KINDS = ("条例", "办法", "细则", "规定", "方案", "意见", "通知", "措施", "决定", "规则", "制度", "指引", "指南")


def chinese_numeral(number: int) -> str:
    """1 -> 一, 10 -> 十, 14 -> 十四, 39 -> 三十九, 105 -> 一百零五 (how the notices number articles)."""
    digits = "零一二三四五六七八九"
    if number <= 0 or number >= 1000:
        return str(number)
    hundreds, rest = divmod(number, 100)
    tens, ones = divmod(rest, 10)
    out = f"{digits[hundreds]}百" if hundreds else ""
    if tens:
        out += ("" if tens == 1 and not hundreds else digits[tens]) + "十"
    elif hundreds and ones:
        out += "零"
    if ones:
        out += digits[ones]
    return out


def _numeral(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return chinese_numeral(int(text)) if text.isdigit() else text


@dataclass(frozen=True)
class Reference:
    """What a question names: a 文号 and/or a title, and an article (with an item) or none."""

    doc_number: str | None
    title: str | None
    article: str | None  # 第三条
    item: str | None  # （二）

    @property
    def label(self) -> str | None:
        if self.article is None:
            return None
        return self.article + (f"（{self.item}）" if self.item else "")


def normalize_doc_number(text: str) -> str:
    """鹤政办[2025]9号, 鹤政办（２０２５）９号 -> 鹤政办〔2025〕9号."""
    match = _DOC_NUMBER.search(unicodedata.normalize("NFKC", text).replace(" ", ""))
    if not match:
        return compact(text)
    prefix, year, number = match.groups()
    prefix = _LEAD_IN.sub("", prefix) or prefix
    return f"{prefix}〔{year}〕{int(number)}号"


def parse_reference(question: str) -> Reference | None:
    """The document and article a question names, or None when it names no 文号 and no titled article."""
    text = unicodedata.normalize("NFKC", question)
    number = _DOC_NUMBER.search(text)
    article = _ARTICLE.search(text)
    doc_number = normalize_doc_number(number.group(0)) if number else None
    title = None
    if article and not number:
        before = re.sub(r"[《》“”\"「」\s]", "", text[: article.start()]).rstrip("的中里")
        if len(before) >= 4 and any(kind in before for kind in _DOC_KINDS):
            title = before
    if doc_number is None and title is None:
        return None
    return Reference(
        doc_number=doc_number,
        title=title,
        article=f"第{_numeral(article.group(1))}条" if article else None,
        item=_numeral(article.group(2)) if article and article.group(2) else None,
    )


@dataclass(frozen=True)
class Found:
    documents: tuple[Document, ...]  # the documents named (a notice and the measure it issues share a 文号)
    clauses: tuple[Clause, ...]  # the article's clauses, in document order (empty when no article was asked)
    missing: str | None  # "document" or "article" when that part was not found


_TRAILING_NOTE = re.compile(r"[（(][^（）()]{1,12}[）)]$")  # （试行）, （草案修改稿）


def _without_note(title: str) -> str:
    """A title compacted without its trailing （…）: 鹤壁市卫河保护条例（草案修改稿） -> 鹤壁市卫河保护条例."""
    return compact(_TRAILING_NOTE.sub("", title.strip()))


# A title asked for with words dropped or shortened (鹤壁地源热泵…办法 for 鹤壁市地源热泵…办法) still
# names the document when this share of its character bigrams is in the title.
TITLE_BIGRAM_SHARE = 0.85


def title_match(asked: str, title: str) -> float:
    """How well ``asked`` names ``title``: 1.0 when one contains the other, else the share of the
    asked text's character bigrams found in the title (0.0 below TITLE_BIGRAM_SHARE)."""
    # 「…条例（草案修改稿）第十六条」 names the 条例 whatever stage of drafting it is asked by
    asked, title = _without_note(asked), compact(title)
    if not asked or not title:
        return 0.0
    if asked in title or (len(title) >= 6 and title in asked):
        return 1.0
    grams = {asked[i : i + 2] for i in range(len(asked) - 1)}
    if len(grams) < 5:
        return 0.0
    share = sum(g in title for g in grams) / len(grams)
    return share if share >= TITLE_BIGRAM_SHARE else 0.0


def shortened_title_match(asked: str, title: str) -> int:
    """How many characters of ``asked`` name ``title`` as people shorten it (0 when they do not): the
    longest tail of ``asked`` whose characters come in order within the title (鹤壁地源热泵暂行办法,
    梯度培育办法, 卫河条例; words before it such as 请问 are left out), ending in the title's kind of
    document, with at least two characters besides the kind."""
    kind = next((k for k in _DOC_KINDS if _without_note(title).endswith(k)), None)
    asked, title = compact(asked), compact(title)
    if kind is None or not asked.endswith(kind):
        return 0
    for start in range(len(asked) - len(kind) - 1):
        chars = iter(title)
        if all(ch in chars for ch in asked[start:]):
            return len(asked) - start
    return 0


def find(reference: Reference, documents: Sequence[Document], clauses_of: Callable[[str], list[Clause]]) -> Found:
    """Look the reference up among ``documents``; ``clauses_of(doc_id)`` gives a document's clauses."""
    if reference.doc_number:
        named = _numbered(reference.doc_number, documents)
    else:
        scores = [title_match(reference.title or "", d.title) for d in documents]
        best = max(scores, default=0.0)
        named = [d for d, score in zip(documents, scores) if best > 0 and score == best]
        if not named:
            lengths = [shortened_title_match(reference.title or "", d.title) for d in documents]
            longest = max(lengths, default=0)
            shortened = [d for d, length in zip(documents, lengths) if longest and length == longest]
            if len({d.title for d in shortened}) == 1:  # 「管理办法」 alone fits many titles and names none
                named = shortened
    if not named:
        return Found((), (), "document")
    if reference.article is None:
        return Found(tuple(named), (), None)
    for label in _label_forms(reference):
        for document in named:
            clauses = clauses_of(document.doc_id)
            exact = [c for c in clauses if c.label == label]
            chosen = exact or [c for c in clauses if c.label.startswith(label) or label in c.section_path]
            if chosen:
                return Found(tuple(named), tuple(chosen), None)
    return Found(tuple(named), (), "article")


def cited_doc_numbers(texts: Iterable[str]) -> frozenset[str]:
    """Every 文号 the texts mention, normalised: the documents a notice cites (「按照《…》（国发〔2014〕69号）」)
    but which are not in the corpus themselves."""
    return frozenset(normalize_doc_number(m.group(0)) for text in texts for m in _DOC_NUMBER.finditer(text))


def _numbered(wanted: str, documents: Sequence[Document]) -> list[Document]:
    """The documents bearing the longest 文号 that the asked one ends with: words run on before it
    (「煤炭方案郑政办文〔2016〕62号」) are not part of it, but 郑政〔2016〕62号 is not 郑政办文〔2016〕62号."""
    numbers = {d.doc_id: normalize_doc_number(d.doc_number) for d in documents if d.doc_number}
    matching = {n for n in numbers.values() if wanted.endswith(n)}
    if not matching:
        return []
    longest = max(matching, key=len)
    return [d for d in documents if numbers.get(d.doc_id) == longest]


def _label_forms(reference: Reference) -> list[str]:
    """The labels that can be meant by 第N条: the article itself, then (for notices numbered
    一、二、…, where people still say 第三条) the section N、 and the item （N）."""
    number = reference.article[1:-1]
    forms = [reference.label]
    if reference.item:
        forms += [reference.article, f"{number}、（{reference.item}）"]
    forms += [f"{number}、", f"（{number}）"]
    return list(dict.fromkeys(forms))
