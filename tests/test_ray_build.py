"""The Ray build (``index build --ray``) makes the index the in-process build makes.

One local Ray (2 CPUs) for the whole module. Builds use a small picklable fake encoder (hashing
character bigrams into 16 dimensions); one check runs the real default e5 encoder on Ray actors
over 48 bundled clauses. Each pair of builds writes under its own parent folder, so that neither reuses the
other's embedding cache (the Ray encoder must really encode).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason='needs the [ray] extra: pip install "ray[data]"')

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
from conftest import TINY_FILES  # noqa: E402

from assistant import distributed  # noqa: E402
from assistant.corpus import load_corpus  # noqa: E402
from assistant.distributed import RayBuild, check_reachable, index_differences, import_ray  # noqa: E402
from assistant.errors import AssistantError  # noqa: E402
from assistant.indexing import build_index  # noqa: E402
from assistant.retriever import Retriever  # noqa: E402


class BigramEmbedder:
    """Deterministic unit vectors from hashed character bigrams; picklable (shipped to the actors)."""

    model_id = "test:bigram-hash-16"
    dimension = 16

    def __init__(self):
        self.calls = 0  # texts encoded in this process (the driver's copy stays at 0 on Ray)

    def encode(self, texts, *, progress=False):
        self.calls += len(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for i in range(len(text) - 1):
                digest = hashlib.md5(text[i:i + 2].encode("utf-8")).digest()
                vectors[row, digest[0] % self.dimension] += 1.0 if digest[1] % 2 else -1.0
            vectors[row] /= max(float(np.linalg.norm(vectors[row])), 1e-6)
        return vectors

    encode_passages = encode

    def encode_queries(self, texts):
        return self.encode(texts)


ARTICLES = "\n".join(
    ["鹤壁市人民政府办公室关于印发鹤壁市促进就业若干措施的通知", "鹤政办〔2024〕3号", "各县区人民政府：", ""]
    + [f"第{n}条 对吸纳“高校毕业生”就业的企业，按每人{i}000元给予一次性补贴，补贴期限不超过{i}年。"
       for i, n in enumerate("一二三四五六七八", start=1)]
) + "\n"

# name order matters: notice.md and notice.txt share the doc-id key "notice"; empty.txt and
# table.xlsx are skipped with their reasons; sub/ is a subfolder.
FILES = {
    **{name: "\n".join(lines) + "\n" for name, lines in TINY_FILES.items()},
    "c_jobs.txt": ARTICLES,
    "notice.md": "# 关于做好残疾人就业保障金征收工作的通知\n\n一、用人单位安排残疾人就业达不到比例的，应缴纳保障金。\n",
    "notice.txt": "关于做好残疾人就业保障金征收工作的通知\n一、在职职工总数30人（含）以下的，暂免征收。\n",
    "empty.txt": "",
    "table.xlsx": "not a spreadsheet",
    "sub/d_heat.txt": "鹤壁市地源热泵项目补贴办法\n第一条 地源热泵项目按面积给予补贴。\n第二条 补贴资金由市财政承担。\n",
}
QUERIES = ["地源热泵项目谁来审批", "小微企业贷款能延期吗", "残疾人就业保障金免征", "高校毕业生就业补贴多少钱"]


def write_files(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def ray_stages():
    """One local Ray with 2 CPUs for the module, shut down at its end."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors get BigramEmbedder itself
    stages = RayBuild("local", num_cpus=2, progress=False)
    stages.connect()
    yield stages
    ray = stages._ray
    stages.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return write_files(tmp_path_factory.mktemp("ray-corpus"), FILES)


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus_dir, ray_stages):
    """(in-process index, Ray index, Ray embedder) of the same corpus, fake encoder."""
    root = tmp_path_factory.mktemp("ray-build")
    local = build_index(corpus_dir, root / "local" / "index", embedder=BigramEmbedder(), progress=False)
    embedder = BigramEmbedder()
    remote = build_index(corpus_dir, root / "ray" / "index", embedder=embedder, progress=False, stages=ray_stages)
    return local, remote, embedder


def test_ray_reading_gives_the_same_corpus(corpus_dir, ray_stages):
    local, remote = load_corpus(corpus_dir), ray_stages.load_corpus(corpus_dir)
    assert [c.clause_id for c in remote.clauses] == [c.clause_id for c in local.clauses]
    assert remote.clauses == local.clauses and remote.documents == local.documents
    assert remote.files == local.files
    assert (remote.noise, remote.line_roles, remote.repairs) == (local.noise, local.line_roles, local.repairs)
    assert (remote.skipped, remote.notes, remote.ignored) == (local.skipped, local.notes, local.ignored)
    # the corpus exercises what per-file reading could get wrong
    doc_ids = {d.doc_id for d in local.documents}
    assert "notice#1" in doc_ids and "notice.txt#1" in doc_ids  # the shared key: second file keyed by name
    assert {name for name, _ in local.skipped} == {"empty.txt", "table.xlsx"}
    assert any(c.source == "sub/d_heat.txt" for c in local.clauses)
    assert len(local.clauses) >= 20


def test_ray_build_equals_in_process_build(built):
    local, remote, embedder = built
    assert not remote.up_to_date and remote.encoded == local.encoded == len({c.index_text for c in local.retriever.clauses})
    assert embedder.calls == 0  # the driver's encoder encoded nothing: the actors did
    a, b = local.retriever, remote.retriever
    assert [c.clause_id for c in b.clauses] == [c.clause_id for c in a.clauses]
    assert [c.text for c in b.clauses] == [c.text for c in a.clauses]
    assert np.allclose(b.stored.vectors, a.stored.vectors, atol=1e-6)
    for name in ("lexical", "doc_lexical"):
        x, y = getattr(a.stored, name).bm25, getattr(b.stored, name).bm25
        assert y.vocab_dict == x.vocab_dict
        for part in ("data", "indices", "indptr"):
            assert np.array_equal(y.scores[part], x.scores[part])
    assert index_differences(a.stored.index_dir, b.stored.index_dir, atol=1e-6) == []
    for query in QUERIES:
        for mode in ("hybrid", "bm25", "dense"):
            hits_a, hits_b = a.search(query, k=5, mode=mode), b.search(query, k=5, mode=mode)
            assert [h.clause.clause_id for h in hits_b] == [h.clause.clause_id for h in hits_a], (query, mode)
            assert np.allclose([h.score for h in hits_b], [h.score for h in hits_a], atol=1e-5)


def test_index_differences_notices_a_different_index(built, tmp_path, corpus_dir):
    """The comparison can fail: one changed clause text, or one perturbed vector, is reported."""
    local, _, _ = built
    changed = write_files(tmp_path / "corpus", {**FILES, "c_jobs.txt": ARTICLES.replace("8000元", "9000元")})
    other = build_index(changed, tmp_path / "other" / "index", embedder=BigramEmbedder(), progress=False)
    problems = index_differences(local.retriever.stored.index_dir, other.retriever.stored.index_dir)
    assert any("clauses" in p for p in problems) and any(p.startswith("lexical: vocabularies") for p in problems)

    class Nudged(BigramEmbedder):
        def encode(self, texts, *, progress=False):
            vectors = super().encode(texts)
            vectors[:, 0] += 0.01
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    nudged = build_index(corpus_dir, tmp_path / "nudged" / "index", embedder=Nudged(), progress=False)
    problems = index_differences(local.retriever.stored.index_dir, nudged.retriever.stored.index_dir)
    assert problems and all(p.startswith("vectors") for p in problems)


def test_ray_rebuild_encodes_only_cache_misses(built, corpus_dir, tmp_path, ray_stages):
    """A second Ray build after one file changed sends only the new texts to the actors."""
    _, remote, _ = built
    index_dir = remote.retriever.stored.index_dir
    again = build_index(corpus_dir, index_dir, embedder=BigramEmbedder(), progress=False, stages=ray_stages)
    assert again.up_to_date
    changed = write_files(tmp_path / "corpus", {**FILES, "sub/d_heat.txt": FILES["sub/d_heat.txt"] + "第三条 本办法自发布之日起施行。\n"})
    rebuilt = build_index(changed, index_dir, embedder=BigramEmbedder(), progress=False, stages=ray_stages)
    assert not rebuilt.up_to_date and rebuilt.encoded == 1 and rebuilt.reused == remote.encoded
    reference = build_index(changed, tmp_path / "ref" / "index", embedder=BigramEmbedder(), progress=False)
    assert index_differences(reference.retriever.stored.index_dir, index_dir, atol=1e-6) == []


def test_ray_encoder_with_the_real_e5_encoder(ray_stages, monkeypatch):
    """The default encoder on Ray actors (loaded there, 1 thread each) gives the in-process vectors
    of 48 bundled clauses (3 forward batches). The actors run the in-process forward batches
    (assistant.distributed.forward_batches), so on one machine they agree to the last bits; other
    groupings of these texts differ by ~5e-4 under bf16 (measured here)."""
    from assistant.distributed import forward_batches
    from assistant.embedding import load_embedder

    texts = [c.index_text for c in load_corpus(ROOT / "corpus").clauses][::50][:48]
    embedder = load_embedder(None)
    assert len(forward_batches(embedder, texts)) == 3
    monkeypatch.setattr(distributed, "ENCODE_BATCH", 16)  # one forward batch per Ray call: grouping matters
    local = embedder.encode(texts)
    remote = ray_stages.encoder(embedder).encode(texts)
    assert remote.shape == local.shape == (48, embedder.dimension)
    assert float(np.abs(remote - local).max()) <= 1e-6


def test_messages_name_the_fix(monkeypatch):
    with pytest.raises(AssistantError, match="127.0.0.1:1") as error:
        check_reachable("127.0.0.1:1")
    assert "ray start --head" in str(error.value)
    with pytest.raises(AssistantError, match="ray://127.0.0.1:1"):
        check_reachable("ray://127.0.0.1:1")
    check_reachable("auto")  # Ray finds that one itself
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(AssistantError, match=r'pip install "ray\[data\]"'):
        import_ray()


@pytest.mark.parametrize("own", [None, "45"])
def test_a_local_ray_gets_time_to_start_its_gcs_server_unless_the_user_set_it(monkeypatch, own):
    """Ray's default 30 s wait for the GCS port has run out on a busy 2-core machine."""
    seen = []

    class FakeRay:
        @staticmethod
        def init(**kwargs):
            seen.append(os.environ.get(distributed.GCS_PORT_WAIT_VARIABLE))

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if own is None:
        monkeypatch.delenv(distributed.GCS_PORT_WAIT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(distributed.GCS_PORT_WAIT_VARIABLE, own)
    RayBuild("local", num_cpus=1, progress=False)._init(FakeRay)
    assert seen == [own or "120"]


@pytest.mark.parametrize("failures, message, starts", [
    (1, "The current node timed out during startup. This could happen because ...", 2),  # retried once
    (2, "The current node timed out during startup. This could happen because ...", 2),  # then it fails
    (1, "some other start-up failure", 1),  # not retried
])
def test_a_local_ray_that_times_out_starting_is_started_once_more(monkeypatch, failures, message, starts):
    calls = []

    class FakeRay:
        @staticmethod
        def init(**kwargs):
            calls.append("init")
            if calls.count("init") <= failures:
                raise Exception(message)

        @staticmethod
        def shutdown():
            calls.append("shutdown")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    build = RayBuild("local", num_cpus=1, progress=False)
    if failures >= starts:
        with pytest.raises(Exception, match=message.split(".")[0]):
            build._init(FakeRay)
    else:
        build._init(FakeRay)
    assert calls.count("init") == starts
    assert calls == ["init", "shutdown", "init"][:len(calls)]


def test_cli_takes_ray_with_or_without_an_address():
    from assistant.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["index", "build", "--ray", "--index", "x"]).ray == "local"
    assert parse(["index", "build", "--ray", "ray://head:10001"]).ray == "ray://head:10001"
    assert parse(["index", "build"]).ray is None


def test_build_index_on_ray_leaves_a_running_ray_alone(tmp_path, ray_stages, built):
    """The CLI's entry point joins the Ray already running (the module's) and does not shut it down."""
    from assistant.distributed import build_index_on_ray

    local, _, _ = built
    corpus = write_files(tmp_path / "corpus", FILES)
    report = build_index_on_ray(corpus, tmp_path / "cli" / "index", embedder=BigramEmbedder(), progress=False)
    assert ray_stages._ray.is_initialized()
    assert index_differences(local.retriever.stored.index_dir, report.retriever.stored.index_dir, atol=1e-6) == []
