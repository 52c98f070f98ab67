"""Answers that quote their sources: pick the sentences of the retrieved clauses that answer the question.

Every sentence shown as policy text is a verbatim span of a clause, followed by its citation
(document title with 文号 › section label, file:line); :func:`~assistant.verify.verify_answer`
checks this on every answer, whatever composer produced it.

    >>> from assistant.compose import compose
    >>> answer = compose("地源热泵系统由哪个部门负责管理", retriever.search("地源热泵系统由哪个部门负责管理"))
    >>> answer.quotes[0].citation
    '鹤壁市地源热泵系统建设应用管理暂行办法（鹤政办〔2025〕9号） › 第四条 — 000_ed0d53ce87970edb.txt:54'

Inside the product, :class:`assistant.pipeline.Assistant` calls the composer with an
:class:`AnswerRequest` holding everything it needs (the analysed question, the search result with
the dense similarity the search measured, corpus term rarity, the quote maker); ``compose()`` is
the convenience for callers holding bare hits. The default :class:`ExtractiveComposer` needs no
language model; :mod:`assistant.generative` holds an OpenAI-compatible one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from assistant.abstention import AbstentionRule, AbstentionSignals, TermRarity, abstention_signals, with_chosen
from assistant.learned import LogisticModel, load_model
from assistant.query import QueryProfile, bigrams, clause_fits_cities, compact
from assistant.render import NOT_FOUND, citation, render_abstention, render_quotes
from assistant.sentences import (
    CLAUSES_TO_READ,
    ScoredSentence,
    Sentence,
    SimilarityFn,
    score_sentences,
    sentence_features,
)
from assistant.types import Answer, Clause, Hit, Quote, SearchResult
from assistant.verify import LineLocator, verify_answer

MAX_QUOTES = 4
MAX_QUOTES_PER_CLAUSE = 2
MAX_QUOTES_PER_CLAUSE_LEARNED = 3  # the learned scores separate a clause's sentences well enough to quote 3
# All quotes of one answer together stay within this many characters; the full clauses are in the
# sources panel and in --json.
MAX_ANSWER_CHARS = 400
# A sentence joins the answer only if it scores at least this share of the best sentence's score
# and its question overlap (relevance) is at least this share of the best relevance.
RELATIVE_SENTENCE_CUTOFF = 0.8
RELATIVE_RELEVANCE_CUTOFF = 0.9
# With the learned sentence model: a sentence joins when its probability is at least this share
# of the best one's. Lower quotes more of the 400-character budget; eval/README.md has the
# coverage and length each value gave on eval/qa.jsonl.
RELATIVE_PROBABILITY_CUTOFF = 0.05
SENTENCE_MODEL_FILE = "sentence_model.json"
ABSTENTION_MODEL_FILE = "abstention_model.json"
# The abstention model that also reads the question prior, used where the prior applies.
PRIOR_ABSTENTION_MODEL_FILE = "abstention_prior_model.json"
QUESTION_PRIOR_FILE = "question_prior.json"
DEFAULT = "default"  # load the shipped model file (None: use the hand-set rule / scores)
# Compilations repeat notices (national measure, then the province's copy): a sentence whose
# character bigrams overlap a chosen one this much is the same quote again.
NEAR_DUPLICATE = 0.7
# When no chosen sentence carries the asked-for fact, nor any sentence of the top clause, it is
# fetched from the clauses ranked up to CARRIER_RANK if that sentence is at least CARRIER_RELEVANCE
# as relevant as the first chosen one (「奖金多少」: the top clause is about revoking the award, the
# third says 各奖100万元).
CARRIER_RANK = 3
CARRIER_RELEVANCE = 0.6
# A sentence ending in a colon introduces a list ("必须具备以下条件："); the items are the answer.
_LIST_INTRO_RE = re.compile(r"[：:]$")
MAX_LIST_CHARS = 400


class QuoteMaker:
    """Turns a sentence into a :class:`Quote` citing its exact source lines and innermost item.

    ``locator`` finds the lines in the document's original text (else they are counted from the
    clause); ``item_label(clause, offset)`` names the item holding that offset (else the clause's
    own label).
    """

    def __init__(self, locator: LineLocator | None = None, item_label: Callable[[Clause, int], str] | None = None):
        self.locator = locator
        self.item_label = item_label

    def quote(self, sentence: Sentence) -> Quote:
        clause = sentence.clause
        found = self.locator.lines(clause, sentence.text) if self.locator is not None else None
        first, last = found or (sentence.line, sentence.last_line)
        label = self.item_label(clause, sentence.start) if self.item_label is not None else clause.label
        return Quote(
            text=sentence.text,
            clause_id=clause.clause_id,
            citation=citation(clause, first, last, label),
            doc_title=clause.doc_title,
            label=label,
            source=clause.source,
            line_start=first,
            line_end=last,
        )


@dataclass(frozen=True)
class AnswerRequest:
    """Everything a composer may read for one answer (typed, in place of loose keyword signals)."""

    profile: QueryProfile
    result: SearchResult  # the hits, best first, and what the search measured (dense similarity)
    term_rarity: TermRarity | None = None
    quotes: QuoteMaker = field(default_factory=QuoteMaker)
    similarity: SimilarityFn | None = None  # dense cosine of texts to the question, when an encoder is at hand
    question_prior: float | None = None  # learned.QuestionPrior's log-odds, where it applies to this index

    @property
    def question(self) -> str:
        return self.profile.question

    @property
    def hits(self) -> list[Hit]:
        return list(self.result)


class Composer(Protocol):
    """Anything that turns an :class:`AnswerRequest` into an :class:`Answer` (``name`` is shown)."""

    name: str

    def compose(self, request: AnswerRequest) -> Answer: ...


class ExtractiveComposer:
    """Quotes the best-matching sentences of the top clauses verbatim; no language model.

        >>> answer = ExtractiveComposer().compose(AnswerRequest(QueryProfile.of(q), result))
        >>> answer.abstained, answer.quotes[0].label
        (False, '第四条')
    """

    name = "extractive"

    def __init__(self, *, max_quotes: int = MAX_QUOTES, clauses_to_read: int = CLAUSES_TO_READ,
                 max_chars: int = MAX_ANSWER_CHARS, rule: AbstentionRule | None = None,
                 sentence_model: LogisticModel | str | None = DEFAULT,
                 abstention_model: LogisticModel | str | None = DEFAULT,
                 prior_abstention_model: LogisticModel | str | None = DEFAULT):
        if max_quotes < 1 or clauses_to_read < 1 or max_chars < 20:
            raise ValueError("max_quotes and clauses_to_read must be >= 1 and max_chars >= 20")
        self.max_quotes = max_quotes
        self.clauses_to_read = clauses_to_read
        self.max_chars = max_chars
        self.rule = rule or AbstentionRule()
        self.sentence_model = load_model(SENTENCE_MODEL_FILE) if sentence_model == DEFAULT else sentence_model
        self.abstention_model = load_model(ABSTENTION_MODEL_FILE) if abstention_model == DEFAULT else abstention_model
        self.prior_abstention_model = (load_model(PRIOR_ABSTENTION_MODEL_FILE) if prior_abstention_model == DEFAULT
                                       else prior_abstention_model)

    def assess(self, request: AnswerRequest) -> tuple[list[ScoredSentence], AbstentionSignals]:
        """The scored sentences of the clauses that fit the city asked about (best first: by the
        learned sentence model when there is one), and the abstention signals."""
        profile, hits = request.profile, request.hits
        # Read the best clauses that can apply to the city asked about, further down if need be.
        fitting = [h for h in hits if clause_fits_cities(h.clause, set(profile.cities))]
        scored = score_sentences(profile, fitting, self.clauses_to_read, request.similarity)
        signals = abstention_signals(profile, fitting, scored, request.result.dense_similarity,
                                     term_rarity=request.term_rarity, all_hits=hits)
        signals = replace(signals, question_prior=request.question_prior)
        # The learned models read the dense encoder's view too: callers with bare hits (no encoder,
        # no corpus rarity) get the hand-set scores and rule.
        if self.sentence_model is not None and scored and request.similarity is not None:
            similarities = [s.similarity for s in scored if s.similarity is not None]
            best = max(similarities) if similarities else None
            rows = [self.sentence_model.vector(sentence_features(s, best, bool(profile.kinds))) for s in scored]
            for item, probability in zip(scored, self.sentence_model.probabilities(rows)):
                item.probability = float(probability)
            scored.sort(key=lambda s: (-s.probability, s.hit_rank, s.sentence.start))
            signals = replace(signals, best_sentence=scored[0].probability)
        return scored, with_chosen(signals, profile, scored)

    def abstention_reason(self, signals: AbstentionSignals) -> str | None:
        """None to answer, else why not: the learned model when shipped (the one that reads the
        question prior where the prior applies), the hand-set rule otherwise."""
        model = self.abstention_model
        if signals.question_prior is not None and self.prior_abstention_model is not None:
            model = self.prior_abstention_model
        if model is not None and signals.best_sentence is not None and signals.dense_similarity is not None:
            refuse = model.probability(signals.features()) < model.threshold
        else:
            refuse = self.rule.should_abstain(signals)
        if not refuse:
            return None
        if signals.coverage >= FACT_MISSING_COVERAGE and (
                (signals.asks_fact and not signals.fact_carried) or signals.detail_missing_chosen
                or signals.detail_left_open):
            return "fact_missing"
        return "no_relevant_clause"

    def compose(self, request: AnswerRequest) -> Answer:
        hits = request.hits
        scored, signals = self.assess(request)
        reason = self.abstention_reason(signals)
        if reason == "fact_missing":
            # Say what is missing first, then quote the closest sentences as related (not as the answer).
            headline = fact_missing_headline(request.profile)
            related = fit_budget([request.quotes.quote(s.sentence) for s in scored[:2]], self.max_chars)
            return Answer(question=request.question, text=f"{headline}\n\n相关条款：\n{render_quotes(related, hits)}",
                          abstained=True, quotes=related, hits=hits, reason=reason, composer=self.name)
        if reason is not None:
            return abstain(request, reason)
        chosen = self._choose(request.profile, scored)
        quotes = fit_budget([request.quotes.quote(s.sentence) for s in chosen], self.max_chars)
        return Answer(question=request.question, text=render_quotes(quotes, hits), abstained=False,
                      quotes=quotes, hits=hits, composer=self.name)

    def _choose(self, profile: QueryProfile, scored: list[ScoredSentence]) -> list[ScoredSentence]:
        best = scored[0]
        learned = best.probability is not None
        chosen: list[ScoredSentence] = []
        per_clause: dict[str, int] = {}
        seen: list[set[str]] = []
        for s in scored:
            if len(chosen) >= self.max_quotes:
                break
            if learned:
                if s.probability < best.probability * RELATIVE_PROBABILITY_CUTOFF:
                    break
            elif s.score < best.score * RELATIVE_SENTENCE_CUTOFF:
                break
            elif s.relevance < best.relevance * RELATIVE_RELEVANCE_CUTOFF:
                continue
            clause_id = s.sentence.clause.clause_id
            grams = bigrams(compact(s.sentence.text))
            limit = MAX_QUOTES_PER_CLAUSE_LEARNED if learned else MAX_QUOTES_PER_CLAUSE
            if per_clause.get(clause_id, 0) >= limit or any(_similar(grams, g) for g in seen):
                continue
            chosen.append(s)
            per_clause[clause_id] = per_clause.get(clause_id, 0) + 1
            seen.append(grams)
        chosen = _reading_order(chosen, keep_first=learned)
        if profile.kinds and not learned:
            chosen = self._fact_first(chosen, scored)
        return _drop_contained([_with_list(s) for s in chosen])

    def _fact_first(self, chosen: list[ScoredSentence], scored: list[ScoredSentence]) -> list[ScoredSentence]:
        """Put the sentence carrying the asked-for fact first, fetching it from the best clauses if needed."""
        if chosen[0].carries_fact:
            return chosen
        carrier = next((s for s in chosen if s.carries_fact), None)
        if carrier is None:
            # The fact often sits in a sentence of the best clause that shares few words with the
            # question, e.g. "（责任单位：省财政厅…）" after the measure it belongs to.
            top_clause = chosen[0].sentence.clause.clause_id
            carrier = next((s for s in scored if s.carries_fact and s.sentence.clause.clause_id == top_clause), None)
            if carrier is None:
                carrier = next(
                    (s for s in scored if s.carries_fact and s.hit_rank <= CARRIER_RANK
                     and s.relevance >= CARRIER_RELEVANCE * chosen[0].relevance),
                    None,
                )
            if carrier is None:
                return chosen
            chosen = chosen[: self.max_quotes - 1]
        else:
            chosen = [s for s in chosen if s is not carrier]
        return _reading_order([carrier, *chosen], keep_first=True)


# A fact-missing answer needs the top clauses to be on the question's topic: at least this share of
# its content terms found in one sentence plus its clause heading.
FACT_MISSING_COVERAGE = 0.5
FACT_NAMES = {"amount": "具体金额或标准", "date": "具体日期或期限", "unit": "负责的部门或单位", "condition": "具体条件"}


def fact_missing_headline(profile: QueryProfile) -> str:
    """「现有文件未写明具体金额或标准。」 naming the kinds of fact the question asks for."""
    shown = [k.shown for k in profile.details] or [FACT_NAMES[k.name] for k in profile.kinds if k.name in FACT_NAMES]
    names = "、".join(dict.fromkeys(shown)) or "所问的具体内容"
    return f"现有文件未写明{names}。以下条款与问题相关，但没有给出这一点。"


ABSTENTION_HEADLINES = {
    "no_relevant_clause": f"{NOT_FOUND}。",
    "needs_context": "这像是接着上一个问题的追问，但本次对话还没有上一个问题。请把问题说完整，例如“郑州市地源热泵系统由哪个部门负责管理”。",
}


def abstain(request: AnswerRequest, reason: str, headline: str | None = None) -> Answer:
    """An abstention with its reason; the closest clauses are named (not quoted) as possibly related."""
    hits = request.hits if reason != "needs_context" else []
    headline = headline or ABSTENTION_HEADLINES.get(reason, f"{NOT_FOUND}。")
    cities = set(request.profile.cities)
    if reason == "no_relevant_clause" and cities and hits and not any(clause_fits_cities(h.clause, cities) for h in hits[:3]):
        headline += f"检索到的是其他城市的文件，不一定适用于{'、'.join(sorted(cities))}。"
    return Answer(question=request.question, text=render_abstention(headline, hits), abstained=True,
                  hits=hits, reason=reason)


def fit_budget(quotes: list[Quote], max_chars: int) -> list[Quote]:
    """Keep quotes in order while their texts fit ``max_chars`` together; a first quote longer than
    the budget is cut at its last clause break (，；、) inside it, still a verbatim prefix."""
    kept: list[Quote] = []
    used = 0
    for quote in quotes:
        if used + len(quote.text) <= max_chars:
            kept.append(quote)
            used += len(quote.text)
        elif not kept:
            head = quote.text[:max_chars]
            cut = max(head.rfind(mark) for mark in "，；、,;")
            text = head[: cut + 1] if cut >= max_chars // 3 else head
            kept.append(replace(quote, text=text))
            break
    return kept


def _reading_order(chosen: list[ScoredSentence], keep_first: bool = False) -> list[ScoredSentence]:
    """Group quotes by document, then clause, in order of first appearance; sentences of one
    clause in source order. With ``keep_first`` the first quote stays first (the asked-for fact)."""
    head, rest = (chosen[:1], chosen[1:]) if keep_first else ([], chosen)
    doc_order: dict[str, int] = {}
    clause_order: dict[str, int] = {}
    for s in chosen:
        doc_order.setdefault(s.sentence.clause.doc_id, len(doc_order))
        clause_order.setdefault(s.sentence.clause.clause_id, len(clause_order))
    rest = sorted(
        rest,
        key=lambda s: (doc_order[s.sentence.clause.doc_id], clause_order[s.sentence.clause.clause_id], s.sentence.start),
    )
    return head + rest


def _similar(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) / min(len(a), len(b)) >= NEAR_DUPLICATE


def _drop_contained(chosen: list[ScoredSentence]) -> list[ScoredSentence]:
    """Drop a quote already shown inside another (a list item inside its extended list)."""
    def inside(a: Sentence, b: Sentence) -> bool:
        return a is not b and a.clause.clause_id == b.clause.clause_id and b.start <= a.start and a.end <= b.end

    return [s for s in chosen if not any(inside(s.sentence, o.sentence) for o in chosen)]


def _with_list(s: ScoredSentence) -> ScoredSentence:
    """Extend a list-introducing sentence over the following lines of its clause (whole lines, capped)."""
    sentence = s.sentence
    if not _LIST_INTRO_RE.search(sentence.text):
        return s
    text = sentence.clause.text
    end = sentence.end
    while end < len(text):
        next_break = text.find("\n", end + 1)
        next_end = len(text) if next_break < 0 else next_break
        if next_end - sentence.start > MAX_LIST_CHARS:
            break
        end = next_end
    if end == sentence.end:
        return s
    body = text[sentence.start : end].rstrip()
    return replace(s, sentence=Sentence(sentence.clause, body, sentence.start, sentence.start + len(body)))


def compose(
    question: str,
    hits: Sequence[Hit],
    composer: Composer | None = None,
    *,
    notice: str | None = None,
    dense_similarity: float | None = None,
    term_rarity: TermRarity | None = None,
    locator: LineLocator | None = None,
    tokenizer=None,
) -> Answer:
    """Compose from bare hits with ``composer`` (default: extractive) and verify every quote.

    ``dense_similarity`` (the question's cosine to its nearest clause) and ``term_rarity`` sharpen
    the abstain/answer decision; :class:`assistant.pipeline.Assistant` supplies both, and the
    index's own tokenizer, for every answer it gives.
    """
    result = hits if isinstance(hits, SearchResult) else SearchResult(hits, dense_similarity=dense_similarity)
    if dense_similarity is not None:
        result = result.with_dense_similarity(dense_similarity)
    request = AnswerRequest(QueryProfile.of(question, tokenizer), result, term_rarity, QuoteMaker(locator))
    answer = (composer or ExtractiveComposer()).compose(request)
    verify_answer(answer, request.hits)
    if notice and not answer.notice:
        answer.notice = notice
    return answer
