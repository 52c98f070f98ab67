"""Conversations: completing an elliptical follow-up from the previous question, or asking for more.

>>> resolve_followup("那郑州呢？", "鹤壁市地源热泵系统由哪个部门负责管理")
'郑州市地源热泵系统由哪个部门负责管理'
>>> is_elliptical("那郑州呢？"), is_elliptical("郑州市粮食安全的责任单位有哪些")
(True, False)

A follow-up with nothing to follow (「那罚多少？」 as a conversation's first question) cannot be
answered: :class:`assistant.pipeline.Assistant` asks for the full question instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.lexicon import LEXICON
from assistant.query import HENAN_CITIES, query_terms
from assistant.text import normalize_query

ASPECT_WORDS = LEXICON.aspect_words

# Cities and provinces a follow-up like 「那郑州呢？」 may name; the corpus adds its own at run time.
HENAN_PLACES = (*HENAN_CITIES, "河南")
PLACE_SUFFIXES = ("市", "省", "县", "区")

_FOLLOWUP_LEAD = re.compile(r"^(?:那么|那|还有|另外|再问一下|再问|然后|和|跟)\s*")
_FOLLOWUP_TAIL = re.compile(r"(?:的情况|的呢|呢|吗|怎么样|如何)?\s*[?？。!！]*$")
# Where the subject of a question ends: the first predicate or question word after it.
_PREDICATE = re.compile(
    r"由|是|有没有|有|能|可以|可|要|需要|应当|应|怎么|如何|什么|哪|多少|谁|吗|享受|给予|申请|办理|实行|执行|负责|对|在"
)
MAX_ELLIPTICAL_CHARS = 10


# --- Follow-up questions --------------------------------------------------------------------

def place_names(extra: Sequence[str] = ()) -> list[str]:
    """Short place names (without 市/省), longest first so 三门峡 wins over a shorter match."""
    names = set(HENAN_PLACES)
    for name in extra:
        if name:
            names.add(name[:-1] if name.endswith(PLACE_SUFFIXES) and len(name) > 2 else name)
    return sorted(names, key=len, reverse=True)


def _find_place(text: str, places: Sequence[str]) -> re.Match[str] | None:
    for place in places:
        match = re.search(re.escape(place) + "(?:市|省)?", text)
        if match:
            return match
    return None


def _subject_end(question: str, start: int = 0) -> int:
    """Index where the subject of a question ends (its first predicate word after 2 characters)."""
    match = _PREDICATE.search(question, start + 2)
    return match.start() if match else len(question)


def resolve_followup(question: str, previous: str | None, places: Sequence[str] = HENAN_PLACES) -> str:
    """The question to search for: ``question`` itself, or for an elliptical follow-up, the
    previous question with its subject carried over.

    >>> resolve_followup("那郑州呢？", "鹤壁市地源热泵系统由哪个部门负责管理")
    '郑州市地源热泵系统由哪个部门负责管理'
    >>> resolve_followup("安阳呢", "小微企业贷款能延期还本付息吗")
    '安阳小微企业贷款能延期还本付息吗'
    >>> resolve_followup("申请条件呢？", "鹤壁地源热泵供热特许经营权由谁审批")
    '鹤壁地源热泵供热特许经营权申请条件'
    >>> resolve_followup("小微企业贷款能延期还本付息吗", "鹤壁地源热泵由谁管")
    '小微企业贷款能延期还本付息吗'
    """
    question = question.strip()
    if not previous:
        return question
    places = place_names(places)
    core = _FOLLOWUP_TAIL.sub("", _FOLLOWUP_LEAD.sub("", question)).strip()
    if not core or len(core) > MAX_ELLIPTICAL_CHARS:
        return question
    asks_about = bool(re.search(r"呢\s*[?？]*$", question)) or question.startswith(("那", "还有", "另外"))
    new_place = _find_place(core, places)
    old_place = _find_place(previous, places)
    if new_place and len(new_place.group()) >= len(core) - 1:
        # 「那郑州呢？」: same question, another city.
        if old_place:
            suffix = "市" if old_place.group().endswith("市") and not new_place.group().endswith(("市", "省")) else ""
            return previous[: old_place.start()] + new_place.group() + suffix + previous[old_place.end() :]
        return new_place.group() + previous
    if not _names_a_subject(core):
        # 「申请条件呢？」, 「什么时候截止」: an aspect of the previous question's subject.
        subject = previous[: _subject_end(previous, old_place.end() if old_place else 0)]
        if subject and subject not in question:
            return subject + core if asks_about else subject + question
        return question
    if asks_about:
        # 「那个体工商户呢？」: the previous question about another subject (keeping its city).
        start = old_place.end() if old_place else 0
        end = _subject_end(previous, start)
        place = old_place.group() if old_place and not new_place else ""
        return place + core + previous[end:]
    return question


def _names_a_subject(core: str) -> bool:
    """Whether a short question names something of its own beyond aspect and question words."""
    rest = normalize_query(core)
    for word in sorted(ASPECT_WORDS, key=len, reverse=True):
        rest = rest.replace(word, "")
    return bool(query_terms(rest)) if rest.strip() else False


def is_elliptical(question: str, places: Sequence[str] = HENAN_PLACES) -> bool:
    """Whether a question leans on an earlier one: a short 「那…呢」/「还有…」 naming only a place
    or an aspect (「那郑州呢？」, 「那罚多少？」, 「申请条件呢」), not a subject of its own."""
    question = question.strip()
    core = _FOLLOWUP_TAIL.sub("", _FOLLOWUP_LEAD.sub("", question)).strip()
    leans = question.startswith(("那", "还有", "另外", "那么")) or bool(re.search(r"呢\s*[?？]*$", question))
    if not leans or len(core) > MAX_ELLIPTICAL_CHARS:
        return False
    if not core:
        return True
    place = _find_place(core, place_names(places))
    if place and len(place.group()) >= len(core) - 1:
        return True
    # a subject of its own is a content term of 2+ characters besides aspect words (「罚多少」 has none)
    rest = normalize_query(core)
    for word in sorted(ASPECT_WORDS, key=len, reverse=True):
        rest = rest.replace(word, "")
    return not any(len(term) >= 2 for term in query_terms(rest))


def previous_question(history) -> str | None:
    """The last question of a conversation: ``history`` is a list of earlier questions (strings)
    or of chat messages ``{"role": "user", "content": ...}``; None when there is none."""
    for item in reversed(list(history or [])):
        if isinstance(item, str) and item.strip():
            return item.strip()
        if isinstance(item, dict) and item.get("role") == "user" and isinstance(item.get("content"), str):
            if item["content"].strip():
                return item["content"].strip()
    return None
