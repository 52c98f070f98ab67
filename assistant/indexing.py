"""Building an index: corpus -> clauses -> embeddings + BM25 + FAISS -> an index directory.

>>> from assistant.indexing import build_index
>>> report = build_index("corpus", "index/default")            # only what changed is re-encoded
>>> report.retriever.search("地源热泵项目谁来审批")[0].clause.label
>>> report.up_to_date, report.encoded, report.reused, report.seconds

An index whose manifest matches the corpus file hashes, model, chunker, BM25 parameters and search
config is just opened. Otherwise clauses whose text the embedding cache has not seen are encoded
(``force`` re-encodes everything), both BM25 indexes are rebuilt, and the directory is switched
atomically by :func:`assistant.store.write_index`. :func:`open_or_build` opens an index that is
current and builds it otherwise (what ``serve`` does on first run).

``backend="milvus"`` (with ``milvus_uri`` and optionally ``collection``) puts the clause vectors and
the clause BM25 into a Milvus collection instead of the directory (:mod:`assistant.milvus_backend`):
the collection is synced first (only new or changed clauses upserted, removed ones deleted), then
the directory gets the clause and document metadata and the document BM25. A rebuild without
``backend`` keeps the backend, URI and collection the index was built with.

>>> build_index("corpus", "index/milvus", backend="milvus", milvus_uri="index/milvus.db")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError
from assistant.retriever import Retriever, SearchConfig
from assistant.store import (FORMAT_VERSION, StoredIndex, chunker_version, embedding_cache_dir, load_index, read_manifest,
                             tidy_index_dir, write_index)
from assistant.types import Clause


@dataclass
class BuildReport:
    retriever: Retriever
    up_to_date: bool
    encoded: int = 0
    reused: int = 0
    encode_seconds: float = 0.0
    seconds: float = 0.0
    upserted: int = 0  # Milvus backend: clauses written to the collection (new or changed)
    deleted: int = 0  # Milvus backend: clauses removed from it


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def build_index(
    corpus_dir: str | Path,
    index_dir: str | Path,
    *,
    model: str | None = None,
    progress: bool = True,
    force: bool = False,
    corpus=None,
    embedder=None,
    config: SearchConfig | None = None,
    stages=None,
    backend: str | None = None,
    milvus_uri: str | None = None,
    collection: str | None = None,
    milvus_bm25: str | None = None,
) -> BuildReport:
    """Build (or update) the index of ``corpus_dir`` in ``index_dir``; see the module docstring.

    ``corpus`` may pass an already loaded Corpus and ``embedder`` an already loaded Embedder
    (anything with encode_passages/encode_queries/model_id/dimension). ``stages`` runs reading,
    encoding and tokenising elsewhere (:class:`assistant.distributed.RayBuild`: on Ray), same result.
    """
    from assistant.dense import DenseIndex
    from assistant.embedding import EmbeddingCache, load_embedder, text_sha
    from assistant.lexical import ChineseTokenizer, LexicalIndex, TokenCache, bm25_params, corpus_terms, token_ids

    started = time.perf_counter()
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    config = config or SearchConfig()
    if corpus is None:
        if not corpus_dir.is_dir():
            raise AssistantError(f"corpus directory {corpus_dir} does not exist; pass --corpus DIR")
        from assistant.corpus import load_corpus

        _say(progress, f"读取语料 / reading corpus {corpus_dir} ...")
        corpus = stages.load_corpus(corpus_dir) if stages is not None else load_corpus(corpus_dir)
        _report_skipped(corpus, progress)
    if not corpus.clauses:
        raise AssistantError(f"no clauses found in {corpus_dir}: it holds no readable corpus files")
    previous = None
    if (index_dir / "manifest.json").is_file() or index_dir.is_symlink() or index_dir.is_dir():
        try:
            previous = read_manifest(index_dir)
        except AssistantError:
            previous = None  # missing or unreadable: simply rebuilt
    backend, milvus = _backend_settings(index_dir, previous, backend, milvus_uri, collection, milvus_bm25)
    if milvus is not None:
        from assistant.milvus_backend import connect

        connect(milvus.uri, create=True)  # an unreachable server is said now, not after minutes of encoding
    _say(progress, f"加载模型 / loading encoder {model or 'default'} ...")
    embedder = embedder or load_embedder(model)
    files = {f.name: f.sha256 for f in corpus.files}
    chunker = chunker_version()

    if (
        not force
        and previous is not None
        and previous.get("backend", "local") == backend
        and (milvus is None or previous.get("milvus") == milvus.to_dict())
        and previous.get("model_id") == embedder.model_id
        and previous.get("chunker_version") == chunker
        and previous.get("format_version") == FORMAT_VERSION  # an older format is rewritten, from the caches
        and previous.get("files") == files
        and previous.get("bm25") == bm25_params()
        and SearchConfig.from_dict(previous.get("search")) == config
    ):
        try:
            retriever = Retriever(load_index(index_dir), embedder)
            tidy_index_dir(index_dir)
            return BuildReport(retriever, True, 0, len(retriever.clauses), 0.0, time.perf_counter() - started)
        except AssistantError:
            pass  # damaged: fall through and rebuild

    clauses = list(corpus.clauses)
    texts = [c.index_text for c in clauses]  # what the encoder sees: the same title + section + text BM25 sees
    shas = [text_sha(t) for t in texts]
    cache_dir = embedding_cache_dir(index_dir)
    cache = EmbeddingCache(cache_dir, embedder.model_id, embedder.dimension, fresh=force)
    if not force and previous is not None and previous.get("model_id") == embedder.model_id:
        _seed_cache_from_index(cache, index_dir)
    _say(progress, f"编码条款 / encoding {len(clauses)} clauses with {embedder.model_id} ...")
    vectors = cache.encode(stages.encoder(embedder, model) if stages is not None else embedder, texts, progress=progress)
    encoded, reused = cache.misses, cache.hits
    cache.save()
    del cache  # its matrix can be as large as the index's vectors: free it before BM25 is built
    encode_seconds = time.perf_counter() - started

    _say(progress, "建立检索索引 / building BM25 and FAISS indexes ..." if milvus is None
         else "建立检索索引 / building the document BM25 and the Milvus collection ...")
    tokenizer = ChineseTokenizer(corpus_terms([d.title for d in corpus.documents], (c.text for c in clauses)))
    token_cache = TokenCache(None if force else cache_dir, tokenizer)
    clause_ids, vocab = token_ids(stages.tokenize(token_cache, texts) if stages is not None else token_cache.tokenize(texts))
    token_cache.save()
    if milvus is not None:
        return _build_milvus(milvus, index_dir=index_dir, corpus_dir=corpus_dir, corpus=corpus, clauses=clauses,
                             shas=shas, vectors=vectors, clause_ids=clause_ids, vocab=vocab, tokenizer=tokenizer,
                             embedder=embedder, model=model, chunker=chunker, files=files, config=config, force=force,
                             progress=progress, started=started, encoded=encoded, reused=reused,
                             encode_seconds=encode_seconds)
    # the FAISS index first, and its storage is then the only copy of the vectors (before the BM25
    # builds, where a x100 build peaks)
    dense = DenseIndex.build(vectors)
    vectors = dense.vectors
    lexical = LexicalIndex.build([], tokenizer, ids=clause_ids, vocab=vocab)
    # whole documents' ids are joined one document at a time as the build reads them, not held
    # as a second copy of every token id (300 MB at x100)
    doc_lexical = LexicalIndex.build([], tokenizer, ids=_DocumentIds(clauses, clause_ids), vocab=vocab)
    del clause_ids
    manifest = _manifest(embedder, model, chunker, config, corpus_dir, files, "local")
    _say(progress, f"写入索引 / writing {index_dir} ...")
    manifest = write_index(index_dir, manifest=manifest, clauses=clauses, text_shas=shas,
                           documents=list(corpus.documents), vectors=vectors, lexical=lexical, dense=dense,
                           doc_lexical=doc_lexical)
    stored = StoredIndex(index_dir, manifest, clauses, list(corpus.documents), vectors, shas, lexical, dense, doc_lexical)
    return BuildReport(Retriever(stored, embedder, config), False, encoded, reused, round(encode_seconds, 3),
                       round(time.perf_counter() - started, 3))


def _manifest(embedder, model, chunker: str, config: SearchConfig, corpus_dir: Path, files, backend: str) -> dict:
    from assistant.lexical import bm25_params

    return {
        "model_id": embedder.model_id,
        "model_source": None if model is None else str(Path(model).resolve()) if Path(model).exists() else model,
        "dimension": embedder.dimension,
        "chunker_version": chunker,
        "bm25": bm25_params(),
        "search": config.to_dict(),
        "backend": backend,
        "corpus_dir": str(corpus_dir.resolve()),
        "files": files,
    }


def _backend_settings(index_dir: Path, previous: dict | None, backend: str | None, milvus_uri: str | None,
                      collection: str | None, milvus_bm25: str | None):
    """(backend name, MilvusSettings or None): what was asked, else what the index was built with."""
    from assistant.backends import BACKENDS

    before = previous or {}
    if backend is None:
        backend = "milvus" if milvus_uri else before.get("backend", "local")
    if backend not in BACKENDS:
        raise AssistantError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "local":
        if milvus_uri or collection:
            raise AssistantError("--milvus-uri and --collection are for --backend milvus")
        return backend, None
    from assistant.milvus_backend import DEFAULT_BM25, MilvusSettings, default_collection

    kept = before.get("milvus") if before.get("backend") == "milvus" and isinstance(before.get("milvus"), dict) else {}
    uri = milvus_uri or kept.get("uri")
    if not uri:
        raise AssistantError("--backend milvus needs --milvus-uri: a Milvus Lite file (PATH.db) or a server "
                             "(http://host:19530; its token from MILVUS_TOKEN)")
    if not (milvus_uri is None or "://" in milvus_uri):
        uri = str(Path(milvus_uri).expanduser().resolve())  # a Lite file: the same file whatever the cwd of later commands
    name = collection or (kept.get("collection") if kept.get("uri") == uri else None) or default_collection(index_dir)
    return backend, MilvusSettings(uri, name, milvus_bm25 or kept.get("bm25") or DEFAULT_BM25)


def _build_milvus(milvus, *, index_dir: Path, corpus_dir: Path, corpus, clauses, shas, vectors, clause_ids, vocab,
                  tokenizer, embedder, model, chunker, files, config, force, progress, started, encoded, reused,
                  encode_seconds) -> BuildReport:
    """The Milvus half of :func:`build_index`: sync the collection, then write the directory."""
    from assistant.lexical import LexicalIndex
    from assistant.milvus_backend import exact_weights, hashed_word, sync_collection
    from assistant.store import clause_order_digest

    words_of = [""] * len(vocab)
    for token, n in vocab.items():
        words_of[n] = hashed_word(token)
    words = [" ".join(words_of[int(i)] for i in ids) for ids in clause_ids]
    doc_city = {d.doc_id: d.city for d in corpus.documents}
    cities = [c.city or doc_city.get(c.doc_id) or "" for c in clauses]  # as the retriever's --city filter sees it
    digest = clause_order_digest((c.clause_id for c in clauses), shas)
    sparse = None
    if milvus.bm25 == "exact":  # the local backend's bm25s weights, per clause
        sparse = exact_weights(LexicalIndex.build([], tokenizer, ids=clause_ids, vocab=vocab), vocab)
    sync = sync_collection(milvus, clauses=clauses, text_shas=shas, vectors=vectors, words=words, cities=cities,
                           sparse=sparse,
                           model_id=embedder.model_id, clause_digest=digest, index_dir=index_dir, force=force,
                           progress=progress)
    del words
    doc_lexical = LexicalIndex.build([], tokenizer, ids=_DocumentIds(clauses, clause_ids), vocab=vocab)
    manifest = _manifest(embedder, model, chunker, config, corpus_dir, files, "milvus")
    manifest["milvus"] = milvus.to_dict()
    manifest["dense_index"] = "milvus"
    _say(progress, f"写入索引 / writing {index_dir} ...")
    manifest = write_index(index_dir, manifest=manifest, clauses=clauses, text_shas=shas, documents=list(corpus.documents),
                           vectors=None, lexical=None, dense=None, doc_lexical=doc_lexical)
    stored = StoredIndex(index_dir, manifest, clauses, list(corpus.documents), None, shas, None, None, doc_lexical)
    return BuildReport(Retriever(stored, embedder, config), False, encoded, reused, round(encode_seconds, 3),
                       round(time.perf_counter() - started, 3), upserted=sync.upserted, deleted=sync.deleted)


def _report_skipped(corpus, progress: bool) -> None:
    """Name every corpus file that could not be read, with the reason, and count them."""
    skipped = list(getattr(corpus, "skipped", None) or [])
    if not skipped:
        return
    for entry in skipped:
        name, reason = (entry if isinstance(entry, tuple) else (getattr(entry, "name", entry), getattr(entry, "reason", "")))
        print(f"跳过 / skipped {name}: {reason}", file=sys.stderr)
    print(f"跳过 {len(skipped)} 个无法读取的文件 / {len(skipped)} file(s) skipped", file=sys.stderr, flush=True)


class _DocumentIds(Sequence):
    """Token ids of whole documents (their clauses' ids joined), in order of first appearance;
    each document's joined when asked for, so that the document BM25 build holds one at a time."""

    def __init__(self, clauses: Sequence[Clause], clause_ids: Sequence[np.ndarray]):
        groups: dict[str, list[int]] = {}
        for n, clause in enumerate(clauses):
            groups.setdefault(clause.doc_id, []).append(n)
        self._groups = list(groups.values())
        self._ids = clause_ids

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, n):
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(len(self)))]
        return np.concatenate([self._ids[i] for i in self._groups[n]])


def _seed_cache_from_index(cache, index_dir: Path) -> None:
    """Put an existing index's vectors into the embedding cache (if the cache directory was lost)."""
    try:
        stored = load_index(index_dir)
    except AssistantError:
        return
    if stored.vectors is None:
        return  # the vectors are in another engine (Milvus); the cache itself keeps them here
    if stored.vectors.ndim != 2 or stored.vectors.shape != (len(stored.text_shas), cache.dimension):
        return
    keep = [n for n, s in enumerate(stored.text_shas) if s and s not in cache]
    if keep:
        cache.add([stored.text_shas[n] for n in keep], stored.vectors[keep])


def open_or_build(index_dir: str | Path, corpus_dir: str | Path, *, model: str | None = None, progress: bool = True) -> Retriever:
    """The index's Retriever, (re)built first when it is missing or stale for the corpus and model."""
    return build_index(corpus_dir, index_dir, model=model, progress=progress).retriever
