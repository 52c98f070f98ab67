"""Whether the retrieved clauses answer a question at all: the signals and the decision.

Three signals are read:

- coverage: share (by characters) of the question's content terms found in the best sentence
  plus its clause's document title and section path (among the top clauses that can apply to the
  city asked about);
- dense similarity: cosine between the question and its nearest clause by the dense encoder
  (absolute, unlike the fused hybrid score, which is normalised per query);
- key-term coverage: the question's topic terms found together in one of the top clauses, each
  weighted by its corpus IDF (:class:`TermRarity`), so a rare topic word the corpus lacks
  (个人养老金, 网约车, 产假) outweighs the common words around it; read together with the dense
  rank of the first hit (when the dense encoder does not put the hybrid winner near its own top,
  the winner came from word overlap alone).

>>> rarity = TermRarity(retriever.clauses)
>>> signals = abstention_signals(profile, fitting_hits, scored, dense_similarity=0.52,
...                              term_rarity=rarity, all_hits=hits)
>>> AbstentionRule().should_abstain(signals)
False

How the thresholds were chosen, and how they score in and out of sample: eval/README.md.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from assistant.clause_table import column
from assistant.query import QueryProfile, cities_named, compact, leaves_value_open, states_number, term_forms
from assistant.sentences import ScoredSentence
from assistant.types import Clause, Hit

KEY_TERM_CLAUSES = 5  # the top clauses key-term coverage looks at, one at a time


class TermRarity:
    """Corpus IDF of question terms, counted by substring over every clause (title, section, text).

    Substring counting finds a term however jieba would cut the clause; a term the corpus never
    uses (in any of its :func:`~assistant.query.term_forms`) gets the highest IDF.

        >>> rarity = TermRarity(retriever.clauses)
        >>> rarity.idf("产假") > rarity.idf("企业")
        True
    """

    def __init__(self, clauses: Sequence[Clause]):
        # the clauses' matching texts are made on first use, not here: ~9 s at 100x the bundled
        # corpus (NFKC of every clause), which a process that never asks for an IDF (search, a
        # bm25 eval) should not wait for; serve's warm-up question makes them
        self._clauses = clauses
        self._matching: list[str] | None = None
        self._idf: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def _texts(self) -> list[str]:
        if self._matching is None:
            with self._lock:
                if self._matching is None:
                    clauses = self._clauses  # whole columns, not a Clause per row
                    parts = zip(column(clauses, "doc_title"), column(clauses, "section_path"), column(clauses, "text"))
                    self._matching = [compact(title + "".join(path) + text) for title, path, text in parts]
                    self._clauses = None
        return self._matching

    def document_frequency(self, term: str) -> int:
        texts = self._texts
        return max(sum(form in text for text in texts) for form in term_forms(term))

    def idf(self, term: str) -> float:
        value = self._idf.get(term)
        if value is None:
            value = math.log((len(self._texts) + 1) / (self.document_frequency(term) + 0.5))
            with self._lock:
                self._idf[term] = value
        return value


def key_term_coverage(profile: QueryProfile, hits: Sequence[Hit], rarity: TermRarity | None) -> float | None:
    """IDF-weighted share of the question's key terms found together in one clause (title, section
    path and text): the best of the top KEY_TERM_CLAUSES hits.

    One clause, not the top clauses pooled: an unanswerable question's topic words are often each
    somewhere in the corpus (积分 in one clause, 落户 in another) but never together.
    None when it cannot be told (no corpus rarity, or no key terms in the question).
    """
    terms = profile.key_terms
    if rarity is None or not terms:
        return None
    weights = {t: rarity.idf(t) for t in terms}
    total = sum(weights.values())
    if total <= 0:
        return None
    best = 0.0
    for hit in hits[:KEY_TERM_CLAUSES]:
        body = compact(hit.clause.doc_title + "".join(hit.clause.section_path) + hit.clause.text)
        best = max(best, sum(w for t, w in weights.items() if any(form in body for form in term_forms(t))) / total)
    return best


def top_hit_dense_rank(hits: Sequence[Hit]) -> float | None:
    """Dense-mode rank of the first hit: math.inf when the dense search did not return it at all,
    None when no dense search ran (bm25-only hits, hand-made hits without ranks)."""
    if not hits or "dense" not in (hits[0].ranks or {}):
        return None
    rank = hits[0].ranks["dense"]
    return math.inf if rank is None else float(rank)


@dataclass(frozen=True)
class AbstentionSignals:
    """What the abstain/answer decision looks at (also written out by calibration)."""

    coverage: float  # best content-term coverage among sentences of the top clauses
    relevance: float  # best sentence relevance
    top_score: float  # retriever score of the first hit
    modes_agree: bool  # the first hit is ranked by every retrieval mode that ran
    dense_similarity: float | None = None  # question vs nearest clause, dense encoder cosine
    key_term_coverage: float | None = None  # IDF-weighted key terms found in one top clause
    top_dense_rank: float | None = None  # dense rank of the first hit (inf: not among dense candidates)
    asks_fact: bool = False  # the question asks for an amount, a date, a unit or a condition
    fact_carried: bool = True  # some sentence of the top FACT_CLAUSES fitting clauses carries that kind of fact
    best_sentence: float | None = None  # the learned sentence model's best probability among the candidates
    best_similarity: float | None = None  # the highest dense cosine of a candidate sentence to the question
    chosen_coverage: float = 0.0  # term coverage of the sentence that would be quoted first
    chosen_fact: bool = False  # that sentence carries the asked-for kind of fact
    asks_detail: bool = False  # the question asks for a precise detail (detail_kinds.tsv)
    detail_missing_chosen: bool = False  # ... which none of the CHOSEN_SENTENCES best sentences states
    detail_missing_clauses: bool = False  # ... which no sentence of the top FACT_CLAUSES clauses states
    specifics_missing: float = 0.0  # share of the question's numbers/ordinals absent from the best sentence's clause
    specifics_missing_top: float = 0.0  # the same, for the top FACT_CLAUSES clauses' best
    city_unconfirmed: bool = False  # the question names a city that the best sentence's clause neither comes from nor names
    number_missing_first: bool = False  # the question asks how much / how many; the sentence quoted first states no number
    detail_left_open: bool = False  # ... or a precise detail; one of the CHOSEN_SENTENCES leaves that value open without stating it
    question_prior: float | None = None  # log-odds that a question like this one is answered here (learned.QuestionPrior)

    def to_dict(self) -> dict:
        return asdict(self)

    def features(self) -> dict[str, float]:
        """What the learned abstention model reads (names are its features)."""
        rank = self.top_dense_rank
        return {
            "coverage": self.coverage,
            "relevance": self.relevance,
            "dense_similarity": self.dense_similarity if self.dense_similarity is not None else 0.0,
            "key_term_coverage": self.key_term_coverage if self.key_term_coverage is not None else 1.0,
            "log_dense_rank": math.log(101.0 if rank is None or math.isinf(rank) else min(rank, 100.0)),
            "modes_agree": float(self.modes_agree),
            "fact_missing": float(self.asks_fact and not self.fact_carried),
            "best_sentence": self.best_sentence if self.best_sentence is not None else 0.0,
            "best_similarity": self.best_similarity if self.best_similarity is not None else 0.0,
            "chosen_coverage": self.chosen_coverage,
            "chosen_fact_missing": float(self.asks_fact and not self.chosen_fact),
            "detail_missing_chosen": float(self.detail_missing_chosen),
            "detail_missing_clauses": float(self.detail_missing_clauses),
            "specifics_missing": self.specifics_missing,
            "specifics_missing_top": self.specifics_missing_top,
            "city_unconfirmed": float(self.city_unconfirmed),
            "number_missing_first": float(self.number_missing_first),
            "detail_left_open": float(self.detail_left_open),
            # only the prior abstention model reads it, and only when the prior applies (else None)
            "question_prior": self.question_prior if self.question_prior is not None else 0.0,
        }


ABSTENTION_FEATURES = ("coverage", "relevance", "dense_similarity", "key_term_coverage", "log_dense_rank",
                       "modes_agree", "fact_missing", "best_sentence", "best_similarity", "chosen_coverage",
                       "chosen_fact_missing", "detail_missing_chosen", "detail_missing_clauses", "specifics_missing",
                       "specifics_missing_top", "city_unconfirmed", "number_missing_first", "detail_left_open")
# The same and the question prior: read where the prior applies (the corpus and encoder it was fitted on).
ABSTENTION_PRIOR_FEATURES = (*ABSTENTION_FEATURES, "question_prior")
FACT_CLAUSES = 3  # the top clauses searched for a sentence carrying the asked-for kind of fact
CHOSEN_SENTENCES = 3  # the best sentences (those an answer quotes) checked for the asked-for details


def detail_missing(profile: QueryProfile, sentences: Iterable[ScoredSentence]) -> bool:
    """Some precise detail the question asks for (an amount in 元, a date …) is stated by none of
    ``sentences``: 「奖励多少钱」 answered by 「给予一次性奖励。」 has its topic but not its answer."""
    texts = [s.sentence.text for s in sentences]
    return any(not any(kind.sentence.search(t) for t in texts) for kind in profile.details)


def detail_left_open(profile: QueryProfile, sentences: Iterable[ScoredSentence]) -> bool:
    """The question asks for a precise detail or a number, and one of ``sentences`` leaves such a
    value open without stating it (open_value_phrases.txt): 「能奖多少钱」 answered by 「由所属区给予
    一定奖励」 or 「具体补助标准由市财政局研究确定」, the notice's way of saying it does not give it."""
    if not (profile.details or profile.asks_number):
        return False

    def states_asked(text: str) -> bool:
        if profile.details:
            return all(kind.sentence.search(text) for kind in profile.details)
        return states_number(text)

    return any(leaves_value_open(s.sentence.text) and not states_asked(s.sentence.text) for s in sentences)


def specifics_missing(profile: QueryProfile, clause: Clause) -> float:
    """Share of the question's specifics (2016, 第九次) written in none of their forms in the
    clause, its document's title and 文号, or its section path."""
    if not profile.specifics:
        return 0.0
    body = unicodedata.normalize("NFKC", "".join((clause.doc_title, clause.doc_number or "", *clause.section_path,
                                                  clause.text))).replace(" ", "")
    return sum(not any(form in body for form in forms) for forms in profile.specifics) / len(profile.specifics)


def with_chosen(signals: AbstentionSignals, profile: QueryProfile, ranked: Sequence[ScoredSentence]) -> AbstentionSignals:
    """``signals`` completed with what the sentences ranked for quoting (best first) show."""
    if not ranked:
        return replace(signals, asks_detail=bool(profile.details), detail_missing_chosen=bool(profile.details),
                       detail_missing_clauses=bool(profile.details), specifics_missing=float(bool(profile.specifics)),
                       specifics_missing_top=float(bool(profile.specifics)), number_missing_first=profile.asks_number)
    similarities = [s.similarity for s in ranked if s.similarity is not None]
    top_clauses = list({s.sentence.clause.clause_id: s.sentence.clause for s in ranked if s.hit_rank <= FACT_CLAUSES}.values())
    return replace(
        signals,
        best_similarity=max(similarities) if similarities else None,
        chosen_coverage=ranked[0].coverage,
        chosen_fact=ranked[0].carries_fact,
        asks_detail=bool(profile.details),
        detail_missing_chosen=detail_missing(profile, ranked[:CHOSEN_SENTENCES]),
        detail_missing_clauses=detail_missing(profile, [s for s in ranked if s.hit_rank <= FACT_CLAUSES]),
        specifics_missing=specifics_missing(profile, ranked[0].sentence.clause),
        specifics_missing_top=min((specifics_missing(profile, c) for c in top_clauses), default=0.0),
        city_unconfirmed=city_unconfirmed(profile, ranked[0].sentence.clause),
        number_missing_first=profile.asks_number and not states_number(ranked[0].sentence.text),
        detail_left_open=detail_left_open(profile, ranked[:CHOSEN_SENTENCES]),
    )


def city_unconfirmed(profile: QueryProfile, clause: Clause) -> bool:
    """The question names a city, and the clause is neither from that city's notices nor names it."""
    if not profile.cities:
        return False
    named = cities_named(compact((clause.city or "") + clause.doc_title + clause.text))
    return not (named & profile.cities)


def abstention_signals(
    profile: QueryProfile,
    hits: Sequence[Hit],
    scored: Sequence[ScoredSentence],
    dense_similarity: float | None = None,
    *,
    term_rarity: TermRarity | None = None,
    all_hits: Sequence[Hit] | None = None,
) -> AbstentionSignals:
    """Signals for ``hits`` (the clauses that fit the city asked about) and their ``scored``
    sentences; ``all_hits`` (default ``hits``) is the unfiltered retrieval, whose first hit's dense
    rank is read."""
    dense_rank = top_hit_dense_rank(list(all_hits if all_hits is not None else hits))
    asks_fact = bool(profile.kinds)
    if not hits or not scored:
        return AbstentionSignals(0.0, 0.0, float(hits[0].score) if hits else 0.0, False, dense_similarity, None, dense_rank,
                                 asks_fact, not asks_fact)
    ranks = hits[0].ranks or {}
    carried = any(s.carries_fact for s in scored if s.hit_rank <= FACT_CLAUSES) if asks_fact else True
    return AbstentionSignals(
        coverage=max(s.coverage for s in scored),
        relevance=max(s.relevance for s in scored),
        top_score=float(hits[0].score),
        modes_agree=bool(ranks) and all(r is not None for r in ranks.values()),
        dense_similarity=dense_similarity,
        key_term_coverage=key_term_coverage(profile, hits, term_rarity),
        top_dense_rank=dense_rank,
        asks_fact=asks_fact,
        fact_carried=carried,
    )


@dataclass(frozen=True)
class AbstentionRule:
    """The hand-set rule. Abstain when

    - coverage < min_coverage, or
    - coverage < weak_coverage and dense similarity < min_dense_similarity, or
    - key-term coverage < min_key_term_coverage and the first hit's dense rank >=
      dense_rank_disagreement (or absent) and dense similarity < key_term_dense_similarity.

    Without a dense similarity (bare hits), coverage < coverage_only alone decides; without corpus
    term rarity the third test is skipped.
    """

    min_coverage: float = 0.35
    weak_coverage: float = 0.5
    min_dense_similarity: float = 0.41
    min_key_term_coverage: float = 0.6
    dense_rank_disagreement: float = 10
    key_term_dense_similarity: float = 0.48
    coverage_only: float = 0.4

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"AbstentionRule.{name} must be a non-negative number, not {value!r}")

    def should_abstain(self, signals: AbstentionSignals) -> bool:
        if signals.dense_similarity is None:
            return signals.coverage < self.coverage_only
        if signals.coverage < self.min_coverage:
            return True
        if signals.coverage < self.weak_coverage and signals.dense_similarity < self.min_dense_similarity:
            return True
        return self.key_topic_missing(signals)

    def key_topic_missing(self, signals: AbstentionSignals) -> bool:
        """The question's rare topic words are missing from the top clauses, and the dense encoder
        neither ranks the first hit near its top nor finds any clause close to the question."""
        if signals.key_term_coverage is None or signals.top_dense_rank is None or signals.dense_similarity is None:
            return False
        return (
            signals.key_term_coverage < self.min_key_term_coverage
            and signals.top_dense_rank >= self.dense_rank_disagreement
            and signals.dense_similarity < self.key_term_dense_similarity
        )
