"""Sentences of clauses, as exact spans, scored against a question.

>>> from assistant.sentences import split_sentences, score_sentences
>>> [s.text for s in split_sentences(clause)]             # clause.text[s.start:s.end] == s.text
>>> best = score_sentences(QueryProfile.of(question, tokenizer), hits)[0]
>>> best.sentence.text, best.hit_rank, best.carries_fact
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.query import QueryProfile, compact
from assistant.types import Clause, Hit

# How many of the top hits sentences are read from.
CLAUSES_TO_READ = 5
# Sentence relevance = weighted sum of: share of question terms in the sentence, share of the
# terms distinctive among the candidates, character-bigram overlap, and term share counting the
# clause's title/section too. Plus a prior for the clause's retrieval rank and a bonus for
# carrying the asked-for fact.
RELEVANCE_WEIGHTS = (0.3, 0.4, 0.1, 0.2)
RANK_PRIOR = 0.5
FACT_BONUS = 0.1

# Sentence ends: Chinese/ASCII full stops of a clause sentence, and line ends. The end mark stays
# with its sentence, so quotes read like the source.
_SENTENCE_RE = re.compile(r"[^。；;！!？?\n]+(?:[。；;！!？?]+[”’」』）)]*)?")
# A sentence needs some substance to be worth quoting (not just "（三）" or a page number).
MIN_SENTENCE_CHARS = 6


@dataclass(frozen=True)
class Sentence:
    """One sentence of a clause: ``text == clause.text[start:end]`` exactly."""

    clause: Clause
    text: str
    start: int
    end: int

    @property
    def line(self) -> int:
        """Source line the sentence starts on (clause text keeps the source's line breaks)."""
        return _line_of(self.clause, self.start)

    @property
    def last_line(self) -> int:
        return _line_of(self.clause, max(self.start, self.end - 1))


def _line_of(clause: Clause, offset: int) -> int:
    line = clause.line_start + clause.text.count("\n", 0, offset)
    return min(max(line, clause.line_start), clause.line_end)


def split_sentences(clause: Clause) -> list[Sentence]:
    """Split a clause at 。；！？ and line ends, keeping the exact original characters.

    Leading/trailing whitespace (and a table row's outer pipes) is trimmed off each sentence
    (offsets follow), so every sentence is still an exact substring of ``clause.text``.
    """
    sentences = []
    for match in _SENTENCE_RE.finditer(clause.text):
        raw = match.group()
        # A Markdown table row is quoted as its cells' text, without the outer pipes.
        stripped = _TABLE_EDGE.sub("", raw)
        if len(compact(stripped)) < MIN_SENTENCE_CHARS:
            continue
        start = match.start() + raw.index(stripped)
        sentences.append(Sentence(clause, stripped, start, start + len(stripped)))
    return sentences


_TABLE_EDGE = re.compile(r"^[\s|]+|[\s|]+$")


@dataclass
class ScoredSentence:
    sentence: Sentence
    hit_rank: int  # 1-based rank of its clause among the hits
    relevance: float  # 0..~1.3 question/sentence overlap
    coverage: float  # share of question content terms found in sentence + clause heading
    carries_fact: bool
    score: float
    sentence_terms: float = 0.0  # share of question content terms in the sentence alone
    distinctive: float = 0.0  # share of the candidate-distinctive term weight in the sentence
    bigram_overlap: float = 0.0
    similarity: float | None = None  # dense cosine to the question, when the composer computed it
    probability: float | None = None  # the learned sentence model's P(this sentence answers), when applied


SimilarityFn = Callable[[Sequence[str]], np.ndarray]


def score_sentences(profile: QueryProfile, hits: Sequence[Hit], clauses_to_read: int = CLAUSES_TO_READ,
                    similarity: SimilarityFn | None = None) -> list[ScoredSentence]:
    """Every sentence of the top hits, scored against the question, best first.

    Besides plain overlap, a sentence scores for the question terms that are *distinctive among
    the candidates*: when every sentence of 市长质量奖管理办法 names 市长质量奖, what picks the
    answer is 亏损 or 公示 (term weight = length x log(N / sentences containing it)).
    ``similarity(texts)`` (the dense encoder's cosine of each text to the question), when given,
    is recorded on each sentence for the learned sentence model.
    """
    candidates = []
    for rank, hit in enumerate(hits[:clauses_to_read], start=1):
        heading = compact(hit.clause.doc_title + "".join(hit.clause.section_path))
        for sentence in split_sentences(hit.clause):
            candidates.append((rank, sentence, compact(sentence.text), heading))
    n = len(candidates)
    weights = {
        term: len(term) * math.log((n + 1) / (sum(term in body for _, _, body, _ in candidates) + 0.5))
        for term in profile.terms
    }
    total_weight = sum(weights.values())
    w_terms, w_distinctive, w_bigrams, w_coverage = RELEVANCE_WEIGHTS
    scored: list[ScoredSentence] = []
    for rank, sentence, body, heading in candidates:
        sentence_terms = profile.coverage(body)
        coverage = profile.coverage(body + heading)
        distinctive = sum(w for t, w in weights.items() if t in body) / total_weight if total_weight > 0 else 0.0
        overlap = profile.bigram_overlap(body)
        relevance = w_terms * sentence_terms + w_distinctive * distinctive + w_bigrams * overlap + w_coverage * coverage
        carries_fact = any(kind.sentence.search(sentence.text) for kind in profile.kinds)
        # Retrieval order is evidence too: the clause the retriever ranks first wins a tie.
        score = relevance + RANK_PRIOR / math.sqrt(rank) + (FACT_BONUS if carries_fact else 0.0)
        scored.append(ScoredSentence(sentence, rank, relevance, coverage, carries_fact, score,
                                     sentence_terms, distinctive, overlap))
    if similarity is not None and scored:
        for item, value in zip(scored, similarity([item.sentence.text for item in scored])):
            item.similarity = float(value)
    scored.sort(key=lambda s: (-s.score, s.hit_rank, s.sentence.start))
    return scored


def sentence_features(item: ScoredSentence, best_similarity: float | None, asks_fact: bool) -> dict[str, float]:
    """What the learned sentence model reads about one candidate sentence (names are its features)."""
    sentence = item.sentence
    body = compact(sentence.text)
    similarity = item.similarity if item.similarity is not None else 0.0
    return {
        "sentence_terms": item.sentence_terms,
        "distinctive": item.distinctive,
        "bigram_overlap": item.bigram_overlap,
        "coverage": item.coverage,
        "rank_prior": 1.0 / math.sqrt(item.hit_rank),
        "top_clause": float(item.hit_rank == 1),
        "fact_match": float(asks_fact and item.carries_fact),
        "fact_absent": float(asks_fact and not item.carries_fact),
        "first_sentence": float(sentence.start == _first_start(sentence.clause)),
        "log_chars": math.log(1 + len(body)),
        "list_intro": float(bool(_LIST_INTRO.search(sentence.text))),
        "has_number": float(bool(_NUMBER.search(sentence.text))),
        "similarity": similarity,
        "similarity_gap": similarity - best_similarity if best_similarity is not None else 0.0,
    }


SENTENCE_FEATURES = (
    "sentence_terms", "distinctive", "bigram_overlap", "coverage", "rank_prior", "top_clause", "fact_match",
    "fact_absent", "first_sentence", "log_chars", "list_intro", "has_number", "similarity", "similarity_gap",
)
_LIST_INTRO = re.compile(r"[：:]$")
_NUMBER = re.compile(r"[0-9０-９]|[一二三四五六七八九十百千万]+(?:元|万|亿|个|家|人|年|月|日|天|%)")


def _first_start(clause: Clause) -> int:
    match = _SENTENCE_RE.search(clause.text)
    if match is None:
        return 0
    raw = match.group()
    return match.start() + (len(raw) - len(raw.lstrip()))
