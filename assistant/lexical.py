"""Lexical retrieval: BM25 (bm25s) over jieba tokens with a corpus-built user dictionary.

Documents and queries go through the same :class:`ChineseTokenizer`: normalised for matching
(full-width -> half-width, lower case; queries also traditional -> simplified), cut by jieba in
search mode (a long term yields itself and its in-dictionary sub-words, so 残疾人就业保障金 also
matches 保障金), then question words, function words and punctuation are dropped. Character
bigrams of every CJK run are added as extra tokens (prefixed "_"): they match paraphrases that
jieba cuts differently (每2年评选1届 / 几年评一次). Measured on the eval set, BM25 with jieba +
bigrams beats jieba alone (hit@5 0.873 vs 0.856, MRR@10 0.753 vs 0.709) and bigrams alone (0.863 / 0.737).

>>> tokenizer = ChineseTokenizer(user_terms=corpus_terms(titles, texts))
>>> tokenizer.tokenize_query("公司没招残疾人，残保金要交吗？")
['公司', '残疾', '残疾人', '残保金', '残疾人就业保障金', ...]
>>> index = LexicalIndex.build([c.index_text for c in clauses], tokenizer)
>>> scores = index.scores("残疾人就业保障金")          # one BM25 score per indexed text
>>> index.save(Path("index/default/bm25")); LexicalIndex.load(Path("index/default/bm25"), tokenizer)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from assistant.lexicon import LEXICON
from assistant.text import normalize_for_matching, normalize_query

# The word lists live in assistant/data/ (see assistant/lexicon.py); these names are their views.
QUESTION_WORDS = LEXICON.question_words
STOPWORDS = LEXICON.stopwords
DOMAIN_TERMS = LEXICON.domain_terms
ABBREVIATIONS = LEXICON.abbreviations
COLLOQUIAL_TERMS = LEXICON.colloquial_terms

TOKENIZER_VERSION = "2"  # bump when tokenisation rules change: invalidates token caches
_QUOTED = re.compile(r"[“\"「『]([^”\"」』，。、；：\s]{2,12})[”\"」』]")
_BOOK = re.compile(r"《([^《》\n]{2,30})》")
_ABBREVIATED_AS = re.compile(r"简称[“\"「]([^”\"」]{2,12})[”\"」]")
_TITLE_CORE = re.compile(r"关于(?:印发|转发|做好|进一步|加快|加强|开展|支持|推进|促进|实施)?(.+?)(?:的)?(?:通知|意见|实施意见|办法|暂行办法|细则|实施细则|方案|实施方案|规定|若干措施|措施|决定|报告)$")
_WORDLIKE = re.compile(r"^[\u4e00-\u9fff0-9a-z]+$")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
BIGRAM_PREFIX = "_"


def cjk_bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of each CJK run (a one-character run is kept as it is).

    >>> cjk_bigrams("每2年评选")
    ['每', '年评', '评选']
    """
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        grams.extend(run[i : i + 2] for i in range(len(run) - 1)) if len(run) > 1 else grams.append(run)
    return grams


def corpus_terms(titles: Iterable[str] = (), texts: Iterable[str] = ()) -> list[str]:
    """User-dictionary terms found in the corpus: quoted terms, 《names》, '简称' abbreviations, title cores.

    Title cores are the topic of a notice, e.g. 关于开展资源产出率统计工作的通知 -> 资源产出率统计工作; with
    jieba's search mode a long term still yields its sub-words, so adding it only adds a title-level token.
    """
    terms: set[str] = set(DOMAIN_TERMS)
    for title in titles:
        title = normalize_for_matching(title).replace(" ", "")
        for match in _BOOK.finditer(title):
            terms.add(match.group(1))
        core = _TITLE_CORE.search(title)
        if core and 4 <= len(core.group(1)) <= 16:
            terms.add(core.group(1))
    for text in texts:
        text = normalize_for_matching(text)
        for pattern in (_QUOTED, _ABBREVIATED_AS, _BOOK):
            for match in pattern.finditer(text):
                terms.add(match.group(1).replace(" ", ""))
    return sorted(t for t in terms if _WORDLIKE.match(t) and 2 <= len(t) <= 20)


def _join_cjk(text: str) -> str:
    """Remove spaces between CJK characters: PDF-extraction noise inside Chinese text."""
    return re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", text)


def _is_content_token(token: str) -> bool:
    if not token.strip():
        return False
    if all(unicodedata.category(ch)[0] in "PSZC" for ch in token):
        return False
    return token not in QUESTION_WORDS and token not in STOPWORDS


_JIEBA_BY_TERMS: dict[tuple[str, ...], object] = {}
_STORED_JIEBA_BY_TERMS: dict[tuple[str, ...], object] = {}
_JIEBA_LOCK = threading.Lock()


def _add_user_terms(tokenizer, user_terms: tuple[str, ...]):
    for term in user_terms:
        # a high frequency makes jieba keep the term whole instead of its usual split
        tokenizer.add_word(term, freq=max(2000, 200 * len(term)))
    return tokenizer


def _jieba_with_terms(user_terms: tuple[str, ...]):
    """One loaded ``jieba.Tokenizer`` per user dictionary per process: the clause and document
    indexes share theirs (each costs ~0.8 s to load), and cutting never changes it. The first one
    loaded on a machine also writes jieba's word store (:mod:`assistant.word_store`) for queries."""
    with _JIEBA_LOCK:
        tokenizer = _JIEBA_BY_TERMS.get(user_terms)
        if tokenizer is None:
            import jieba

            from assistant.word_store import store_path, write_store

            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            path = store_path()
            if not path.is_file():
                import sqlite3

                try:
                    write_store(tokenizer, path)
                except (OSError, sqlite3.Error) as error:  # a read-only or full disk: queries load the dictionary
                    logging.getLogger(__name__).info("jieba word store not written: %s", error)
            _JIEBA_BY_TERMS[user_terms] = _add_user_terms(tokenizer, user_terms)
        return tokenizer


def _jieba_for_queries(user_terms: tuple[str, ...]):
    """A tokenizer that cuts exactly as :func:`_jieba_with_terms`'s: that one when this process
    has loaded it, else one answering from jieba's word store (a question looks up ~100 words
    instead of loading 500k), else a loaded one."""
    from assistant.word_store import stored_tokenizer

    with _JIEBA_LOCK:
        tokenizer = _JIEBA_BY_TERMS.get(user_terms) or _STORED_JIEBA_BY_TERMS.get(user_terms)
    if tokenizer is not None:
        return tokenizer
    stored = stored_tokenizer()
    if stored is None:
        return _jieba_with_terms(user_terms)
    with _JIEBA_LOCK:
        return _STORED_JIEBA_BY_TERMS.setdefault(user_terms, _add_user_terms(stored, user_terms))


class ChineseTokenizer:
    """jieba (search mode) with a user dictionary; drops question words, stopwords and punctuation.

    Uses its own ``jieba.Tokenizer`` so the user dictionary never leaks into other code using jieba.
    """

    def __init__(self, user_terms: Iterable[str] = (), *, bigrams: bool = True):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self.bigrams = bigrams
        self.user_terms = sorted(set(user_terms) | set(DOMAIN_TERMS) | set(ABBREVIATIONS) | set(ABBREVIATIONS.values()))
        self._jieba_tokenizer = None  # loaded on first use (~0.8 s): a rebuild from the token cache never needs it
        self._query_jieba_tokenizer = None  # the same cuts for questions, without loading (assistant.word_store)

    @property
    def _jieba(self):
        if self._jieba_tokenizer is None:
            self._jieba_tokenizer = _jieba_with_terms(tuple(self.user_terms))
        return self._jieba_tokenizer

    @property
    def _query_jieba(self):
        if self._query_jieba_tokenizer is None:
            self._query_jieba_tokenizer = _jieba_for_queries(tuple(self.user_terms))
        return self._query_jieba_tokenizer

    def signature(self) -> str:
        """Changes whenever the same text could tokenize differently (user dictionary, options, versions)."""
        import jieba

        key = json.dumps([TOKENIZER_VERSION, jieba.__version__, self.bigrams, self.user_terms], ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]

    def tokenize(self, text: str) -> list[str]:
        """Tokens of corpus text (already simplified: only width/case/space normalisation)."""
        return self._tokens(normalize_for_matching(text))

    def words(self, text: str) -> list[str]:
        """The jieba words of a query (no bigrams), question words removed, abbreviations expanded."""
        query = _join_cjk(normalize_query(text))
        jieba = self._query_jieba
        words = self._cut(query, jieba)
        for word in list(words):
            full = ABBREVIATIONS.get(word)
            if full and full != word:
                words.extend(self._cut(full, jieba))
        for everyday, official in COLLOQUIAL_TERMS.items():
            if everyday in query:
                words.extend(self._cut(" ".join(official), jieba))
        return words

    def tokenize_query(self, text: str) -> list[str]:
        """Tokens of a user query: traditional->simplified too, plus full forms of known abbreviations."""
        words = self.words(text)
        if not self.bigrams:
            return words
        return words + [BIGRAM_PREFIX + g for g in cjk_bigrams(_join_cjk(normalize_query(text)))]

    def _tokens(self, text: str) -> list[str]:
        text = _join_cjk(text)
        words = self._cut(text)
        if self.bigrams:
            words.extend(BIGRAM_PREFIX + g for g in cjk_bigrams(text))
        return words

    def _cut(self, text: str, jieba=None) -> list[str]:
        return [t for t in (jieba or self._jieba).cut_for_search(text, HMM=True) if _is_content_token(t)]

    def to_dict(self) -> dict:
        return {"user_terms": self.user_terms, "bigrams": self.bigrams}

    @classmethod
    def from_dict(cls, data: dict) -> ChineseTokenizer:
        return cls(user_terms=data.get("user_terms", ()), bigrams=data.get("bigrams", True))


def token_ids(token_lists: Iterable[list[str]], vocab: dict[str, int] | None = None) -> tuple[list[np.ndarray], dict[str, int]]:
    """Token lists -> int32 id arrays + vocabulary, one text at a time.

    Holding ids instead of Python strings keeps a x100 corpus (250k clauses, 75M tokens) in a few
    hundred MB instead of several GB; bm25s indexes the ids directly.
    """
    vocab = {} if vocab is None else vocab
    ids = [np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32, count=len(tokens))
           for tokens in token_lists]
    return ids, vocab


class TokenCache:
    """Corpus-text token lists keyed by (tokenizer signature, text hash), so that rebuilding an index
    whose texts did not change skips jieba (the largest part of a rebuild once embeddings are cached).

    >>> cache = TokenCache(Path("index/.embedding-cache"), tokenizer)
    >>> ids, vocab = token_ids(cache.tokenize(texts)); cache.save()

    Used only up to MAX_TEXTS texts: a cache of Python token lists for a x100 corpus would cost
    gigabytes, and such corpora are built once rather than rebuilt in a loop.
    """

    MAX_TEXTS = 50_000
    SEPARATOR = "\x1f"

    def __init__(self, cache_dir: Path | None, tokenizer: ChineseTokenizer):
        self.tokenizer = tokenizer
        self.path = Path(cache_dir) / f"tokens-{tokenizer.signature()}.json" if cache_dir else None
        self.entries: dict[str, str] = {}
        self.used: dict[str, str] = {}
        self.hits = self.misses = 0
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}  # a damaged cache only costs time

    def tokenize(self, texts: Sequence[str]):
        """Token list of each text, in order (a generator: the caller converts each to ids at once)."""
        use_cache = self.path is not None and len(texts) <= self.MAX_TEXTS
        for text in texts:
            if not use_cache:
                yield self.tokenizer.tokenize(text)
                continue
            key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
            joined = self.entries.get(key)
            if joined is None:
                self.misses += 1
                tokens = self.tokenizer.tokenize(text)
                joined = self.SEPARATOR.join(tokens)
            else:
                self.hits += 1
                tokens = joined.split(self.SEPARATOR) if joined else []
            self.used[key] = joined
            yield tokens

    def save(self) -> None:
        """Keep exactly the texts of the last build (old entries would only grow the file)."""
        if self.path is None or not self.used or (self.misses == 0 and len(self.used) == len(self.entries)):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.used, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


# BM25 parameters, chosen on eval/qa.jsonl (the sweep is in eval/README.md). A low k1 saturates
# term frequency early: a clause that mentions a question's terms once is nearly as good as one
# that repeats them, so covering *more* of the question's terms wins.
BM25_K1 = 0.3
BM25_B = 0.5


def bm25_params() -> dict[str, float]:
    """The BM25 parameters an index is built with (kept in its manifest: bm25s bakes them into the scores)."""
    return {"k1": BM25_K1, "b": BM25_B}


def bm25s_model():
    import bm25s

    return bm25s.BM25(k1=BM25_K1, b=BM25_B)


def index_ids(bm25, ids: Sequence[np.ndarray], vocab: dict[str, int]) -> None:
    """``bm25.index(Tokenized(ids, vocab))``, computed by bm25s's own scoring functions to the same
    arrays, but written straight into the compressed columns: bm25s first holds every (score,
    document, token) triple and then sorts them with three int64 temporaries, ~2 GB at x100 for
    59M postings, where the columns themselves are 0.5 GB. Two passes over ``ids`` (any sequence,
    e.g. documents joined on access): document frequencies, then each document's scores placed
    in its tokens' columns (documents in order, as bm25s's sort leaves them)."""
    from bm25s.scoring import _build_idf_array, _select_idf_scorer, _select_tfc_scorer

    if not len(ids) or bm25.method in bm25.methods_requiring_nonoccurrence or sorted(vocab.values()) != list(range(len(vocab))):
        from bm25s.tokenization import Tokenized

        bm25.index(Tokenized(ids=list(ids), vocab=vocab), show_progress=False)
        return
    n_docs, n_vocab = len(ids), len(vocab)
    frequencies = np.zeros(n_vocab, dtype=np.int64)
    lengths = np.empty(n_docs, dtype=np.int64)
    for n, doc in enumerate(ids):
        lengths[n] = len(doc)
        frequencies[np.unique(doc)] += 1
    avg_doc_len = lengths.mean()  # bm25s: np.array([len(d) for d in ids]).mean()
    idf = _build_idf_array(doc_frequencies=dict(enumerate(frequencies.tolist())), n_docs=n_docs,
                           compute_idf_fn=_select_idf_scorer(bm25.idf_method), dtype=bm25.dtype)
    tfc = _select_tfc_scorer(bm25.method)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(frequencies, out=indptr[1:])
    del frequencies
    data = np.empty(int(indptr[-1]), dtype=bm25.dtype)
    indices = np.empty(int(indptr[-1]), dtype=bm25.int_dtype)
    fill = indptr[:-1].copy()  # the next free slot of each token's column
    for n, doc in enumerate(ids):
        tokens, counts = np.unique(doc, return_counts=True)
        tf = counts.astype(bm25.dtype)
        at = fill[tokens]
        data[at] = idf[tokens] * tfc(tf_array=tf, l_d=len(doc), l_avg=avg_doc_len, k1=bm25.k1, b=bm25.b, delta=bm25.delta)
        indices[at] = n
        fill[tokens] += 1
    bm25.nonoccurrence_array = None
    bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
    if "" not in vocab:
        vocab[""] = max(vocab.values()) + 1  # bm25s's empty token, one past the last column
    bm25.vocab_dict = vocab
    bm25.unique_token_ids_set = set(vocab.values())


class LexicalIndex:
    """BM25 over token lists, persisted with bm25s' own format plus the tokenizer's user dictionary."""

    def __init__(self, bm25, tokenizer: ChineseTokenizer, size: int):
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.size = size
        self._vocab = bm25.vocab_dict

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        tokenizer: ChineseTokenizer,
        *,
        ids: Sequence[np.ndarray] | None = None,
        vocab: dict[str, int] | None = None,
    ) -> LexicalIndex:
        """Index texts, or token ids already made by :func:`token_ids` (shared with another index)."""
        if ids is None:
            ids, vocab = token_ids(tokenizer.tokenize(t) for t in texts)
        bm25 = bm25s_model()
        index_ids(bm25, ids, dict(vocab or {}))
        return cls(bm25, tokenizer, len(ids))

    def query_tokens(self, query: str) -> list[str]:
        return [t for t in self.tokenizer.tokenize_query(query) if t in self._vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed text for the query (zeros when no query token is in the vocabulary)."""
        tokens = self.query_tokens(query)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(directory), show_progress=False)
        (directory / "tokenizer.json").write_text(json.dumps(self.tokenizer.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, size: int) -> LexicalIndex:
        import bm25s

        directory = Path(directory)
        tokenizer = ChineseTokenizer.from_dict(json.loads((directory / "tokenizer.json").read_text(encoding="utf-8")))
        # memory-mapped: the score arrays are read from the page cache as searches touch them,
        # not copied into memory at load (hundreds of MB at x100)
        bm25 = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0, mmap=True)
        return cls(bm25, tokenizer, size)
