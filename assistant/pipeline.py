"""The one path from a question to an answer: :class:`Assistant`.

The chat page, the CLI, the HTTP API, MCP and the eval are thin shells over it.

>>> from assistant.pipeline import Assistant
>>> assistant = Assistant.load("index/default")
>>> answer = assistant.ask("地源热泵项目谁来审批")
>>> answer.abstained, answer.quotes[0].citation
>>> assistant.ask("那郑州呢？", history=["鹤壁地源热泵项目谁来审批"]).resolved_question
'郑州地源热泵项目谁来审批'
>>> assistant.ask("那郑州呢？").reason           # a follow-up with nothing to follow
'needs_context'

One answer is one search: :meth:`Assistant.ask` prepares the question, completes a follow-up from
the conversation, looks a named document and article up directly (「郑政〔2016〕24号第三条」),
otherwise searches once and hands the :class:`~assistant.types.SearchResult` (hits plus the dense
similarity the search measured) to the composer, and verifies every quote. What answers need
beyond the hits (corpus term rarity, the source-line locator) is built once per Assistant.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from assistant.abstention import TermRarity
from assistant.clause_table import column
from assistant.compose import (
    QUESTION_PRIOR_FILE,
    AnswerRequest,
    Composer,
    ExtractiveComposer,
    QuoteMaker,
    abstain,
    fit_budget,
)
from assistant.dialogue import is_elliptical, previous_question, resolve_followup
from assistant.errors import AssistantError
from assistant.learned import QuestionPrior, applicable_model
from assistant.lookup import cited_doc_numbers, find, parse_reference
from assistant.query import QueryProfile, prepare_query
from assistant.render import render_quotes
from assistant.sentences import Sentence
from assistant.types import Answer, Hit, SearchResult
from assistant.verify import LineLocator, verify_answer

HITS_PER_QUESTION = 10
SENTENCE_CACHE_SIZE = 50_000  # sentence vectors kept (384 floats each: ~75 MB at most)


def _item_label_function():
    """chunking's innermost-item labeller, when this chunker offers one."""
    try:
        from assistant.chunking import item_label_at
    except ImportError:
        return None
    return item_label_at


class Assistant:
    """Owns a retriever and a composer; ``ask`` is the only way from a question to an answer."""

    def __init__(self, retriever, composer: Composer | None = None, *, k: int = HITS_PER_QUESTION):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.retriever = retriever
        self.composer = composer or ExtractiveComposer()
        self.k = k
        self.term_rarity = TermRarity(retriever.clauses)
        self.quotes = QuoteMaker(LineLocator(retriever.documents), _item_label_function())
        self.question_prior = applicable_question_prior(retriever)
        self._sentence_vectors: dict[str, np.ndarray] = {}
        self._cache_lock = threading.Lock()

    @classmethod
    def load(cls, index_dir: str | Path, *, composer: Composer | None = None, light_query_encoder: bool = False) -> Assistant:
        """``light_query_encoder``: encode with numpy instead of torch (for one-shot commands)."""
        from assistant.retriever import Retriever

        return cls(Retriever.load(index_dir, light_query_encoder=light_query_encoder), composer)

    @property
    def tokenizer(self):
        return self.retriever.tokenizer

    def warm_up(self) -> None:
        """Load what the first question would otherwise wait for (the encoder, seconds with torch,
        and jieba's dictionary) by answering one question. serve runs it in the background."""
        self.ask("小微企业贷款能延期还本付息吗")

    def profile(self, question: str) -> QueryProfile:
        """The question as the index's tokenizer and the lexicon read it."""
        return QueryProfile.of(question, self.tokenizer)

    def ask(self, question: str, filters: dict | None = None, history: Sequence | None = None, *,
            k: int | None = None, mode: str = "hybrid") -> Answer:
        """Answer one question: prepared, completed from ``history`` (earlier questions, or chat
        messages), looked up or searched once, composed and verified."""
        prepared = prepare_query(question)
        previous = previous_question(history)
        resolved = resolve_followup(prepared.text, previous) if previous else prepared.text
        profile = self.profile(resolved)
        if previous is None and is_elliptical(prepared.text):
            answer = abstain(AnswerRequest(profile, SearchResult()), "needs_context")
        else:
            answer = self._lookup(profile, filters)
            if answer is None:
                result = self.retriever.search(resolved, k=k or self.k, mode=mode, filters=filters)
                answer = self.answer(profile, result)
        answer.question = prepared.text
        answer.resolved_question = resolved if resolved != prepared.text else None
        # the question's own notice (cut, cleaned) first, then the composer's (a fallback's reason)
        answer.notice = "；".join(n for n in (prepared.notice, answer.notice) if n) or None
        return answer

    def answer(self, question: str | QueryProfile, result: SearchResult) -> Answer:
        """Compose and verify an answer from a search already made (eval's other modes use this)."""
        profile = question if isinstance(question, QueryProfile) else self.profile(question)
        if not isinstance(result, SearchResult):
            result = SearchResult(result)
        request = AnswerRequest(profile, result, self.term_rarity, self.quotes, self._similarity(result),
                                self._question_prior(result))
        answer = self.composer.compose(request)
        return verify_answer(answer, request.hits)

    def _question_prior(self, result: SearchResult) -> float | None:
        """The question prior's log-odds for the encoded question (None where it does not apply,
        or no dense search ran)."""
        if self.question_prior is None or result.query_vector is None:
            return None
        return self.question_prior.logit(result.query_vector)

    def _similarity(self, result: SearchResult):
        """Cosine of candidate sentences to the encoded question (None without a query vector).
        Sentence vectors are cached: the same clauses come back for many questions."""
        vector = result.query_vector
        if vector is None:
            return None

        def similarity(texts):
            known = {t: self._sentence_vectors.get(t) for t in dict.fromkeys(texts)}
            missing = [t for t, row in known.items() if row is None]
            if missing:
                known.update(zip(missing, self.retriever.embedder.encode_passages(missing)))
                with self._cache_lock:  # concurrent page requests share the cache
                    if len(self._sentence_vectors) > SENTENCE_CACHE_SIZE:
                        self._sentence_vectors.clear()
                    self._sentence_vectors.update((t, known[t]) for t in missing)
            return np.array([float(known[t] @ vector) for t in texts])

        return similarity

    # --- a named document and article ---------------------------------------------------------------

    def _lookup(self, profile: QueryProfile, filters: dict | None) -> Answer | None:
        reference = parse_reference(profile.question)
        if reference is None:
            return None
        found = find(reference, self.retriever.documents, self.retriever.clauses_of)
        request = AnswerRequest(profile, SearchResult(), self.term_rarity, self.quotes)
        asked = reference.doc_number or f"《{reference.title}》"
        if found.missing == "document":
            if reference.doc_number is None:
                return None  # a title we cannot place: let search try
            if reference.article is None and reference.doc_number in self._cited_doc_numbers:
                return None  # a document the notices cite but do not hold: what they say of it is searched
            return abstain(request, "not_found", f"现有文件中没有{asked}。")
        if found.missing == "article" and not self._mentioned(reference.article, found.documents):
            name = document_name_of(found.documents[0])
            return abstain(request, "not_found", f"找到了{name}，但其中没有{reference.label}。")
        if not found.clauses:
            # The document but no article, or an article it only talks about (a report on a draft's
            # 第十六条): search within it.
            doc_filter = {"doc_id": [d.doc_id for d in found.documents]}
            result = self.retriever.search(profile.question, k=self.k, filters=doc_filter)
            if reference.article:  # the clauses that talk about the article first, in search order
                result.sort(key=lambda hit: reference.article not in hit.clause.text)  # stable, in place
            return self.answer(profile, result)
        hits = SearchResult([Hit(c, 1.0, {"lookup": n}) for n, c in enumerate(found.clauses, 1)], mode="lookup")
        quotes = fit_budget([self.quotes.quote(Sentence(c, c.text.strip(), c.text.index(c.text.strip()),
                                                        c.text.index(c.text.strip()) + len(c.text.strip())))
                             for c in found.clauses if c.text.strip()], self.composer_budget)
        if not quotes:
            raise AssistantError(f"{reference.label} of {asked} has no text to quote")
        answer = Answer(question=profile.question, text=render_quotes(quotes, hits), abstained=False,
                        quotes=quotes, hits=list(hits), composer="lookup")
        return verify_answer(answer, hits)

    def _mentioned(self, article: str | None, documents) -> bool:
        """Whether any of the documents' text speaks of ``article`` (第十六条) without being it."""
        return article is not None and any(article in clause.text for document in documents
                                           for clause in self.retriever.clauses_of(document.doc_id))

    @cached_property
    def _cited_doc_numbers(self) -> frozenset[str]:
        return cited_doc_numbers(column(self.retriever.clauses, "text"))

    @property
    def composer_budget(self) -> int:
        return getattr(self.composer, "max_chars", 400)


def applicable_question_prior(retriever) -> QuestionPrior | None:
    """The shipped question prior, if it was fitted on this index's corpus files with its encoder:
    what kinds of question the bundled notices answer says nothing about anybody else's."""
    return applicable_model(QUESTION_PRIOR_FILE, QuestionPrior, getattr(retriever, "manifest", None))


def document_name_of(document) -> str:
    """《title（文号）》 of a Document (render.document_name works on clauses)."""
    number = document.doc_number
    title = document.title
    return f"《{title}（{number}）》" if number and number not in title else f"《{title}》"


__all__ = ["Assistant", "HITS_PER_QUESTION"]
