"""What a question is about, read off its wording, once per question.

:func:`prepare_query` is the one place a user's text becomes a query (cleaned of undecodable
characters, refused when empty, cut when huge). :class:`QueryProfile` holds what the rest of
the pipeline reads from it: the content terms (cut by the index's own tokenizer, so the composer
matches the terms that were searched), the city it names and the kinds of fact it asks for.

>>> prepare_query("  残保金要交吗 ").text
'残保金要交吗'
>>> [kind.name for kind in fact_kinds("地源热泵项目谁来审批")]
['unit']
>>> [kind.name for kind in question_kinds("往淇河里排畜禽粪便罚多少")]
['amount', 'penalty', 'count']
>>> cities_named(normalize_query("郑州小微企业担保有支持吗"))
{'郑州'}
>>> profile = QueryProfile.of("地源热泵系统由哪个部门负责管理？", tokenizer)   # the index's ChineseTokenizer
>>> profile.terms[:3], profile.coverage(compact("鹤壁市住房和城乡建设局是本市地源热泵系统…主管部门"))
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from assistant.errors import AssistantError
from assistant.lexicon import LEXICON, DetailKind, FactKind
from assistant.text import normalize_for_matching, normalize_query
from assistant.types import Clause

MAX_QUERY_CHARS = 2000

# --- Preparing a query ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedQuery:
    """A query ready for retrieval: ``text`` (cleaned, maybe truncated) and a ``notice`` for the user."""

    text: str
    notice: str | None = None


def clean_text(text: str) -> str:
    """Drop what no notice can match and no encoder can take: lone surrogates (undecodable bytes
    passed through by the shell or JSON), control characters and unassigned code points."""
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if _has_surrogates(text) else text
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cs", "Cn", "Co"))


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def prepare_query(text: str | None) -> PreparedQuery:
    """Refuse empty queries; clean undecodable characters; cut huge ones to MAX_QUERY_CHARS with a notice.

    >>> prepare_query("问" * 100_000).notice
    '问题过长，只检索了前 2000 个字（原有 100000 个字）'
    >>> prepare_query("\\udcff残疾人").text
    '残疾人'
    """
    raw = "" if text is None else str(text)
    cleaned = clean_text(raw).replace("\ufffd", "").strip()
    if not cleaned:
        if raw.strip():
            raise AssistantError("问题里没有可识别的文字（可能是编码错误）/ the question has no readable characters")
        raise AssistantError("问题是空的，请输入问题，例如「小微企业贷款能延期还本付息吗」/ the question is empty")
    if len(cleaned) > MAX_QUERY_CHARS:
        notice = f"问题过长，只检索了前 {MAX_QUERY_CHARS} 个字（原有 {len(cleaned)} 个字）"
        return PreparedQuery(cleaned[:MAX_QUERY_CHARS].strip(), notice)
    return PreparedQuery(cleaned, None)


# --- Cities ---------------------------------------------------------------------------------------

HENAN_CITIES = LEXICON.cities


def cities_named(text: str) -> set[str]:
    """Henan cities named in a text (short names): cities_named("郑州市粮食…") == {"郑州"}."""
    return {city for city in HENAN_CITIES if city in text}


def clause_fits_cities(clause: Clause, cities: set[str]) -> bool:
    """False when the clause is from a local notice of another city than the ones asked about.

    Provincial and national notices (city 河南省 or unknown) fit every city, even when their title
    names an issuer in some city (中国人民银行郑州中心支行); so does a notice in another city's
    compilation whose title names no city (a national measure reprinted there).
    """
    if not cities or not clause.city or not cities_named(clause.city):
        return True
    if cities_named(clause.city) & cities:
        return True
    in_title = cities_named(clause.doc_title)
    return not in_title or bool(in_title & cities)


# --- What kind of fact a question asks for ---------------------------------------------------

FACT_KINDS = LEXICON.fact_kinds
INTENT_KINDS = LEXICON.intent_kinds


def fact_kinds(question: str) -> list[FactKind]:
    """The kinds of fact a question asks for, in the order they are checked (amount, date, unit, condition)."""
    normalized = normalize_query(question)
    return [kind for kind in FACT_KINDS if kind.question.search(normalized)]


def question_kinds(question: str) -> list[FactKind]:
    """Every kind of request a question makes, FACT_KINDS first, then INTENT_KINDS (for retrieval)."""
    normalized = normalize_query(question)
    return [kind for kind in (*FACT_KINDS, *INTENT_KINDS) if kind.question.search(normalized)]


def detail_kinds(question: str) -> list[DetailKind]:
    """The precise details a question asks for (detail_kinds.tsv): detail_kinds("奖励多少钱") -> [money]."""
    normalized = normalize_query(question)
    return [kind for kind in LEXICON.detail_kinds if kind.question.search(normalized)]


def asks_number(question: str) -> bool:
    """Whether the question asks how much / how many: asks_number("每升便宜多少") is True."""
    kind = LEXICON.number_kind
    return bool(kind and kind.question.search(normalize_query(question)))


def states_number(text: str) -> bool:
    """Whether a text states some number (5000元, 百分之十, 三个月; not 一定比例)."""
    kind = LEXICON.number_kind
    return bool(kind and kind.sentence.search(text))


def leaves_value_open(text: str) -> bool:
    """Whether a text leaves a value open instead of stating it (open_value_phrases.txt):
    leaves_value_open("由所属区给予一定奖励") is True, leaves_value_open("奖励10万元") False."""
    pattern = LEXICON.open_value
    return bool(pattern and pattern.search(text))


# A 文号 (鹤政办〔2025〕9号) names a document, not a fact to find in its text.
_DOC_NUMBER_RE = re.compile(r"[\u4e00-\u9fff]{1,12}?\s*[〔\[［【(（]\s*[12][0-9]{3}\s*[〕\]］】)）]\s*[0-9]{1,4}\s*号")
_ORDINAL_RE = re.compile(r"第\s*([0-9一二三四五六七八九十百零〇两]{1,6})\s*([次条届批期])")
_DIGITS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def question_specifics(question: str) -> tuple[tuple[str, ...], ...]:
    """The specifics a question pins down, each as the forms it may be written in: its numbers
    (years, amounts: 2016, 1.5) and ordinals from the second on (第九次, 第41条 -> 第四十一条).
    A clause that answers names them; one about 第八次会议 does not answer 「第九次会议」.

    >>> question_specifics("鹤政办〔2025〕9号 第41条")
    (('第41条', '第四十一条'),)
    >>> question_specifics("2016年营收3000万的企业")   # 3000万 is the asker's situation
    (('2016',),)
    """
    from assistant.lookup import chinese_numeral  # lookup reads query's helpers; imported late

    text = _DOC_NUMBER_RE.sub("", unicodedata.normalize("NFKC", question))
    found: list[tuple[str, ...]] = []
    for match in _ORDINAL_RE.finditer(text):
        number, unit = match.groups()
        written = f"第{number}{unit}"
        spoken = f"第{chinese_numeral(int(number))}{unit}" if number.isdigit() else written
        if spoken not in ("第一次", "第一条", "第一届", "第一批", "第一期"):
            found.append(tuple(dict.fromkeys((written, spoken))))
    rest = _ORDINAL_RE.sub("", text)
    for match in _DIGITS_RE.finditer(rest):
        # 「营收3000万」「18个人」: the asker's own situation, answered by a threshold, not named
        if rest[match.end():].lstrip().startswith(LEXICON.quantity_units):
            continue
        found.append((match.group(),))
    return tuple(dict.fromkeys(found))


# --- Terms ------------------------------------------------------------------------------------------

_PUNCT_RE = re.compile(r"[\s\W_]+", re.UNICODE)
_NUMBER_RE = re.compile(r"[0-9.%]+")


def compact(text: str) -> str:
    """Matching form of corpus or query text: normalised, spaces and punctuation removed."""
    return _PUNCT_RE.sub("", normalize_for_matching(text))


def bigrams(compact_text: str) -> set[str]:
    return {compact_text[i : i + 2] for i in range(len(compact_text) - 1)}


def term_forms(term: str) -> tuple[str, ...]:
    """The spellings that count as finding a question term: itself, its full form (残保金 ->
    残疾人就业保障金), the official terms retrieval also searches for (工资 -> 薪酬) and the looser
    everyday forms (钱 -> 元), which count as found but are never searched."""
    return (
        term,
        LEXICON.abbreviations.get(term, term),
        *LEXICON.everyday_words.get(term, ()),
        *LEXICON.colloquial_terms.get(term, ()),
    )


@lru_cache(maxsize=1)
def default_tokenizer():
    """A tokenizer with only the built-in dictionary, for callers without an index (tests, tools).
    With an index, pass its own ``retriever.tokenizer`` so the terms are the ones searched."""
    from assistant.lexical import ChineseTokenizer

    return ChineseTokenizer(bigrams=False)


def query_terms(question: str, tokenizer=None) -> list[str]:
    """Content terms of a question as the tokenizer cuts them (deduplicated, compact).

    >>> query_terms("地源热泵系统由哪个部门负责管理？")
    ['热泵', '源热泵', '地源热泵', '系统', '部门', '负责', '管理', '负责管理']
    """
    terms: list[str] = []
    for token in (tokenizer or default_tokenizer()).words(question):
        token = compact(token)
        if token and token not in terms:
            terms.append(token)
    return terms


@dataclass(frozen=True)
class QueryProfile:
    """A question analysed once for scoring many sentences and deciding whether to answer.

    ``coverage(text)`` is the share of the question's content characters (those inside some
    content term) whose term occurs in ``text``; overlapping terms (热泵/地源热泵) are not double
    counted, and an abbreviation counts as found when its full form is (残保金 -> 残疾人就业保障金).
    """

    question: str
    compact: str
    terms: tuple[str, ...]
    bigrams: frozenset[str]
    kinds: tuple[FactKind, ...]  # FACT_KINDS asked for (the composer's fact-first rule)
    cities: frozenset[str]
    details: tuple[DetailKind, ...] = ()  # precise details asked for (detail_kinds.tsv)
    specifics: tuple[tuple[str, ...], ...] = ()  # numbers and ordinals the question pins down
    asks_number: bool = False  # how much / how many (fact_kinds.tsv's number row): answered by some number

    @classmethod
    def of(cls, question: str, tokenizer=None) -> "QueryProfile":
        # The user's own numbers (「15个人」) are compared with thresholds (「30人（含）以下」), not
        # matched, so they do not count toward coverage.
        terms = tuple(t for t in query_terms(question, tokenizer) if not _NUMBER_RE.fullmatch(t))
        grams = frozenset().union(*(bigrams(t) for t in terms)) if terms else frozenset()
        normalized = normalize_query(question)
        return cls(question, compact(normalized), terms, grams, tuple(fact_kinds(question)),
                   frozenset(cities_named(normalized)), tuple(detail_kinds(question)), question_specifics(question),
                   asks_number(question))

    @property
    def key_terms(self) -> list[str]:
        """The question's topic terms: content terms of 2+ characters that are not colloquial fragments.

        >>> QueryProfile.of("郑州积分落户要攒够多少分").key_terms  # 要攒够 is phrasing, not a topic
        ['郑州', '积分', '落户']
        """
        return [t for t in self.terms if len(t) >= 2 and not LEXICON.function_chars.intersection(t)]

    def coverage(self, compact_text: str) -> float:
        content = [False] * len(self.compact)
        found = [False] * len(self.compact)
        for term in self.terms:
            start = self.compact.find(term)
            if start < 0:
                continue  # an expansion the user did not type
            present = any(form in compact_text for form in term_forms(term))
            while start >= 0:
                for i in range(start, start + len(term)):
                    content[i] = True
                    found[i] = found[i] or present
                start = self.compact.find(term, start + 1)
        total = sum(content)
        return sum(found) / total if total else 0.0

    def bigram_overlap(self, compact_text: str) -> float:
        if not self.bigrams:
            return 0.0
        return len(self.bigrams & bigrams(compact_text)) / len(self.bigrams)
