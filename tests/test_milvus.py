"""The Milvus backend, on Milvus Lite (a temp .db file) and, when MILVUS_URI is set, on that server.

Each test builds the tiny corpus (conftest.make_tiny_corpus) with a fake encoder (hashed character
bigrams: deterministic, no model) into a local index and into a Milvus index, and compares them:
the build round-trips every clause field, searches return the same Hit fields and the same top
clauses, filters work, an incremental build upserts only the changed clauses, and mismatched models,
collections and unreachable servers are refused with messages that say what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from assistant.errors import AssistantError  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
from conftest import TINY_FILES, make_tiny_corpus  # noqa: E402

QUERIES = ["地源热泵系统的主管部门是谁", "小微企业贷款延期还本付息", "残疾人就业保障金免征", "专精特新小巨人奖励多少"]


class BigramEmbedder:
    """Unit vectors of hashed character bigrams: similar texts get similar vectors, no model needed."""

    def __init__(self, dimension: int = 64, model_id: str = "test-bigrams-64"):
        self.dimension = dimension
        self.model_id = model_id

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for a, b in zip(text, text[1:]):
            digest = hashlib.blake2b((a + b).encode("utf-8"), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode_passages(self, texts, *, progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    encode = encode_passages

    def encode_queries(self, texts, *, progress: bool = False) -> np.ndarray:
        return self.encode_passages(texts)


def _targets():
    """Milvus Lite always; a real server too when MILVUS_URI is set (its token from MILVUS_TOKEN)."""
    targets = ["lite"]
    if os.environ.get("MILVUS_URI"):
        targets.append("server")
    return targets


@pytest.fixture(params=_targets())
def milvus_uri(request, tmp_path):
    from assistant.milvus_backend import disconnect

    uri = str(tmp_path / "milvus" / "milvus.db") if request.param == "lite" else os.environ["MILVUS_URI"]
    yield uri
    disconnect(uri)  # frees the Lite file (one process may open it)


def _collection() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"  # unique: a shared server keeps collections of other runs


def _build(tmp_path, name, corpus, uri=None, collection=None, embedder=None, **kwargs):
    from assistant.indexing import build_index

    backend = {} if uri is None else {"backend": "milvus", "milvus_uri": uri, "collection": collection}
    return build_index(tmp_path / "corpus", tmp_path / name, corpus=corpus, embedder=embedder or BigramEmbedder(),
                       progress=False, **backend, **kwargs)


@pytest.fixture
def pair(tmp_path, milvus_uri, monkeypatch):
    """(local retriever, milvus retriever, milvus build report, collection) of the tiny corpus."""
    if not os.environ.get("MILVUS_TOKEN"):
        monkeypatch.setenv("MILVUS_TOKEN", "not-a-real-token-5f2c")  # Lite ignores it; it must not be written
    corpus = make_tiny_corpus()
    local = _build(tmp_path, "local", corpus)
    collection = _collection()
    milvus = _build(tmp_path, "milvus", corpus, milvus_uri, collection, milvus_bm25="words")  # the default: test_exact_mode
    yield local.retriever, milvus.retriever, milvus, collection
    _drop(milvus_uri, collection)


def _drop(uri, collection):
    from assistant.milvus_backend import connect

    try:
        client = connect(uri)
        if client.has_collection(collection):
            client.drop_collection(collection)
    except Exception:
        pass


def test_build_round_trips_every_clause_and_records_the_backend(pair, milvus_uri):
    from assistant.retriever import Retriever

    local, milvus, report, collection = pair
    manifest = json.loads((milvus.index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "milvus"
    assert manifest["milvus"]["collection"] == collection
    assert manifest["milvus"]["uri"] in (milvus_uri, str(Path(milvus_uri).resolve()))
    assert manifest["milvus"]["bm25"] == "words"
    assert set(manifest["milvus"]) == {"uri", "collection", "bm25"}
    written = "".join(p.read_text(encoding="utf-8", errors="replace") for p in milvus.index_dir.rglob("*") if p.is_file())
    assert os.environ["MILVUS_TOKEN"] not in written
    # vectors and clause BM25 are in Milvus, not in the directory
    assert not (milvus.index_dir / "vectors.npy").exists() and not (milvus.index_dir / "bm25").exists()
    assert report.upserted == len(local.clauses) and report.deleted == 0
    ids = [c.clause_id for c in local.clauses]
    assert milvus.backend.count() == len(ids)
    assert milvus.backend.stored_clauses(ids) == local.clauses
    # a fresh open (as the CLI does) reads the same clauses and searches
    reopened = Retriever.load(milvus.index_dir)
    reopened._embedder = BigramEmbedder()
    assert [h.clause.clause_id for h in reopened.search(QUERIES[0], k=3)] == \
           [h.clause.clause_id for h in milvus.search(QUERIES[0], k=3)]
    if Path(milvus_uri).suffix == ".db":
        # the command line finds the backend from the manifest (another process: the Lite file is freed first)
        from assistant.milvus_backend import disconnect

        want = [h.clause.clause_id for h in milvus.search(QUERIES[1], k=3, mode="bm25")]
        disconnect(milvus_uri)
        result = subprocess.run([sys.executable, "-m", "assistant", "search", QUERIES[1], "--index", str(milvus.index_dir),
                                 "--mode", "bm25", "-k", "3", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert [h["clause_id"] for h in json.loads(result.stdout)["hits"]] == want


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_search_gives_the_local_backends_hits(pair, mode):
    local, milvus, _, _ = pair
    for query in QUERIES:
        want, got = local.search(query, k=5, mode=mode), milvus.search(query, k=5, mode=mode)
        assert got, (mode, query)
        assert [h.clause.clause_id for h in got][:3] == [h.clause.clause_id for h in want][:3], (mode, query)
        top_want, top_got = want[0], got[0]
        assert top_got.clause == top_want.clause
        assert set(top_got.ranks) == set(top_want.ranks)
        assert top_got.to_dict().keys() == top_want.to_dict().keys()
        if mode == "dense":
            assert top_got.score == pytest.approx(top_want.score, abs=1e-5)
        if mode == "hybrid":
            assert got.dense_similarity == pytest.approx(want.dense_similarity, abs=1e-5)


def test_bm25_scores_track_the_local_ones(pair):
    """Milvus's BM25 over our tokens is not bm25s's to the bit (Milvus has its own IDF and length
    normalisation, and counts a (k1 + 1) factor), but the same clauses score, the best one first."""
    local, milvus, _, _ = pair
    for query in QUERIES:
        want = local.search(query, k=7, mode="bm25")
        got = milvus.search(query, k=7, mode="bm25")
        assert {h.clause.clause_id for h in got} == {h.clause.clause_id for h in want}, query
        assert got[0].clause.clause_id == want[0].clause.clause_id, query
        ratios = [g.score / w.score for g, w in zip(sorted(got, key=lambda h: h.clause.clause_id),
                                                    sorted(want, key=lambda h: h.clause.clause_id))]
        assert min(ratios) > 0 and max(ratios) / min(ratios) < 2.0, (query, ratios)


def test_exact_mode_gives_the_local_bm25_scores(tmp_path, milvus_uri):
    """--milvus-bm25 exact: our bm25s weights as sparse vectors, so BM25 scores equal the local ones."""
    corpus = make_tiny_corpus()
    local = _build(tmp_path, "local", corpus).retriever
    collection = _collection()
    try:
        milvus = _build(tmp_path, "milvus", corpus, milvus_uri, collection).retriever  # exact is the default
        assert milvus.manifest["milvus"]["bm25"] == "exact"
        for query in QUERIES:
            want = local.search(query, k=7, mode="bm25")
            got = milvus.search(query, k=7, mode="bm25")
            assert [h.clause.clause_id for h in got] == [h.clause.clause_id for h in want], query
            assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-4), query
            hybrid_want, hybrid_got = local.search(query, k=5), milvus.search(query, k=5)
            assert [h.clause.clause_id for h in hybrid_got] == [h.clause.clause_id for h in hybrid_want], query
            assert [h.score for h in hybrid_got] == pytest.approx([h.score for h in hybrid_want], abs=1e-4), query
        # the same collection asked for in another BM25 mode is refused, not silently searched wrongly
        with pytest.raises(AssistantError, match="BM25 mode"):
            _build(tmp_path, "milvus", corpus, milvus_uri, collection, milvus_bm25="words")
    finally:
        _drop(milvus_uri, collection)


def test_filters_become_expressions(pair):
    local, milvus, _, _ = pair
    for filters in ({"city": ["鹤壁市"]}, {"source": "b_zz.txt"}, {"doc_id": ["a_hebi#1"], "city": "鹤壁市"},
                    {"city": ["郑州市"], "source": ["a_hebi.txt"]}):
        for mode in ("hybrid", "bm25", "dense"):
            want = local.search("企业 项目 优惠 奖励", k=10, mode=mode, filters=filters)
            got = milvus.search("企业 项目 优惠 奖励", k=10, mode=mode, filters=filters)
            assert {h.clause.clause_id for h in got} == {h.clause.clause_id for h in want}, (filters, mode)
    hits = milvus.search("企业", k=10, mode="dense", filters={"city": "鹤壁市"})
    assert hits and all(h.clause.city == "鹤壁市" for h in hits)
    # a value with quotes and a backslash is a literal, not expression syntax
    assert not milvus.search("企业", k=5, mode="dense", filters={"city": ['x" or city != "', "a\\b"]})


def test_incremental_build_upserts_only_changed_clauses(tmp_path, milvus_uri):
    collection = _collection()
    try:
        # "words": Milvus keeps the BM25 statistics, so only changed clauses are rewritten
        first = _build(tmp_path, "milvus", make_tiny_corpus(), milvus_uri, collection, milvus_bm25="words")
        assert first.upserted == 7
        again = _build(tmp_path, "milvus", make_tiny_corpus(), milvus_uri, collection)  # keeps "words"
        assert again.up_to_date
        files = {name: list(lines) for name, lines in TINY_FILES.items()}
        files["b_zz.txt"][4] = "四、对不裁员或少裁员的参保企业，按规定实施稳岗返还，返还比例提高到90%。"  # changed
        del files["a_hebi.txt"][3]  # 第八条 (the last line) removed
        files["b_zz.txt"].append("五、本措施自印发之日起施行。")  # added: a new clause id
        changed = _build(tmp_path, "milvus", make_tiny_corpus(files), milvus_uri, collection)
        assert not changed.up_to_date
        assert changed.upserted == 2, changed.upserted  # 四、 changed, 五、 new; the other 5 untouched
        assert changed.deleted == 1, changed.deleted
        retriever = changed.retriever
        assert retriever.backend.count() == len(retriever.clauses) == 7
        top = retriever.search("返还比例提高到多少", k=1, mode="bm25")[0]
        assert "90%" in top.clause.text
        assert not any("突出贡献" in h.clause.text for h in retriever.search("突出贡献表彰", k=7, mode="bm25"))
    finally:
        _drop(milvus_uri, collection)


def test_mismatched_model_or_collection_is_refused(tmp_path, milvus_uri):
    from assistant.retriever import Retriever

    collection = _collection()
    try:
        _build(tmp_path, "milvus", make_tiny_corpus(), milvus_uri, collection)
        # another model into the same collection: refused, naming both ways out
        with pytest.raises(AssistantError) as error:
            _build(tmp_path, "other", make_tiny_corpus(), milvus_uri, collection,
                   embedder=BigramEmbedder(32, "test-bigrams-32"))
        message = str(error.value)
        assert "test-bigrams-64" in message and "--collection" in message and "--force" in message
        # another index directory rewrites the collection: the first index is refused, with its rebuild command
        files = {name: list(lines) for name, lines in TINY_FILES.items()}
        files["b_zz.txt"].append("五、本措施自印发之日起施行。")
        _build(tmp_path, "second", make_tiny_corpus(files), milvus_uri, collection)
        with pytest.raises(AssistantError) as error:
            Retriever.load(tmp_path / "milvus")
        message = str(error.value)
        assert "does not hold the clauses" in message and collection in message
        assert "index build" in message and "--backend milvus" in message and f"--collection {collection}" in message
        # a collection whose vectors are of another model than the index says
        from assistant.milvus_backend import PROPERTY, connect

        client = connect(milvus_uri)
        client.alter_collection_properties(collection, properties={PROPERTY + "model_id": "another-model"})
        with pytest.raises(AssistantError) as error:
            Retriever.load(tmp_path / "second")
        assert "holds vectors of model another-model" in str(error.value) and "index build" in str(error.value)
        # a collection that is gone
        client.drop_collection(collection)
        with pytest.raises(AssistantError) as error:
            Retriever.load(tmp_path / "second")
        assert "does not exist" in str(error.value) and "--backend milvus" in str(error.value)
    finally:
        _drop(milvus_uri, collection)


def test_unreachable_server_and_bad_uri_name_the_uri(tmp_path):
    from assistant.milvus_backend import connect

    with pytest.raises(AssistantError, match=r"http://127\.0\.0\.1:9"):
        connect("http://127.0.0.1:9")
    with pytest.raises(AssistantError, match="neither a Milvus Lite file"):
        connect(str(tmp_path / "milvus.sqlite"))
    # the command line: one line naming the URI, exit 2, no traceback
    (tmp_path / "corpus").mkdir()
    for name, lines in TINY_FILES.items():
        (tmp_path / "corpus" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "index", "build", "--corpus", str(tmp_path / "corpus"),
         "--index", str(tmp_path / "index"), "--backend", "milvus", "--milvus-uri", "http://127.0.0.1:9"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "http://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
