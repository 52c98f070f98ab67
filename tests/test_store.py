"""The index directory: manifest, atomic replacement, refusing damaged or mismatched indexes, incremental rebuilds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.errors import AssistantError
from assistant.retriever import Retriever
from assistant.store import FORMAT_VERSION, embedding_cache_dir, load_index, read_manifest
from conftest import TINY_FILES, make_tiny_corpus


def build(corpus_dir, index_dir, **options):
    """build_index, plus what the build did as ``retriever.build_stats`` (the BuildReport's fields).

    With the USE encoder by default: what is stored is the point here, and USE's numpy forward pass
    gives the same vectors however texts are batched (e5 under bf16 differs by ~5e-4)."""
    from assistant.indexing import build_index

    options.setdefault("model", "use")
    report = build_index(corpus_dir, index_dir, **options)
    retriever = report.retriever
    retriever.build_stats = {"up_to_date": report.up_to_date, "encoded": report.encoded, "reused": report.reused}
    return retriever


@pytest.fixture
def built(tmp_path):
    build(tmp_path / "corpus", tmp_path / "index" / "tiny", corpus=make_tiny_corpus(), progress=False)
    return tmp_path / "index" / "tiny"


def test_manifest_records_what_the_index_was_built_from(built):
    manifest = read_manifest(built)
    corpus = make_tiny_corpus()
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model_id"].startswith("usem3:") and manifest["dimension"] == 512
    assert manifest["chunker_version"]
    assert manifest["files"] == {f.name: f.sha256 for f in corpus.files}
    assert manifest["clause_count"] == len(corpus.clauses) and manifest["built_at"].endswith("Z")
    assert {"clauses/table.json", "clauses/text.bin", "documents.jsonl", "vectors.npy"} <= set(manifest["contents"])
    # nothing half-written left beside it; the embedding cache lives next to (not inside) the index
    assert sorted(p.name for p in built.parent.iterdir()) == [".embedding-cache", "tiny"]
    assert embedding_cache_dir(built).is_dir()


def test_loaded_index_round_trips_clauses_and_vectors(built):
    stored = load_index(built)
    corpus = make_tiny_corpus()
    assert stored.clauses == corpus.clauses
    assert stored.vectors.shape == (len(corpus.clauses), 512)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "manifest.json").write_text("{not json", encoding="utf-8"), "corrupt"),
        (lambda d: (d / "manifest.json").unlink(), "no index"),
        (lambda d: (d / "vectors.npy").unlink(), "missing"),
        (lambda d: (d / "clauses" / "table.json").write_text("truncated", encoding="utf-8"), "corrupt"),
        (lambda d: (d / "vectors.npy").write_bytes((d / "vectors.npy").read_bytes()[:-8] + b"\0" * 8), "checksum"),
    ],
)
def test_damaged_index_is_refused_with_a_rebuild_hint(built, damage, message):
    damage(built)
    with pytest.raises(AssistantError, match=message) as error:
        Retriever.load(built)
    assert "python -m assistant index build --index" in str(error.value)


def _edit_manifest(index_dir, **changes):
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_index_from_another_chunker_or_format_or_model_is_refused(built):
    _edit_manifest(built, chunker_version="0-old")
    with pytest.raises(AssistantError, match="chunker version.*rebuild"):
        Retriever.load(built)
    _edit_manifest(built, format_version=0)
    with pytest.raises(AssistantError, match="format version.*rebuild"):
        Retriever.load(built)


def test_index_built_with_other_bm25_parameters_is_refused_and_rebuilt(built, tmp_path):
    # bm25s bakes k1 and b into the stored scores: an index from before a change would rank by the old ones
    _edit_manifest(built, bm25={"k1": 1.2, "b": 0.75})
    with pytest.raises(AssistantError, match="BM25 parameters.*rebuild"):
        Retriever.load(built)
    rebuilt = build(tmp_path / "corpus", built, corpus=make_tiny_corpus(), progress=False)
    assert not rebuilt.build_stats["up_to_date"] and rebuilt.build_stats["encoded"] == 0  # vectors reused
    assert Retriever.load(built).manifest["bm25"] == rebuilt.manifest["bm25"]



def test_an_index_of_an_older_format_is_rewritten_by_the_next_build(built, tmp_path, monkeypatch):
    # a readable older format would otherwise count as up to date and keep its slower load for good:
    # seen by a program whose format is one newer than the index's
    import assistant.indexing

    monkeypatch.setattr(assistant.indexing, "FORMAT_VERSION", FORMAT_VERSION + 1)
    rebuilt = build(tmp_path / "corpus", built, corpus=make_tiny_corpus(), progress=False)
    assert not rebuilt.build_stats["up_to_date"] and rebuilt.build_stats["encoded"] == 0  # vectors reused
    monkeypatch.undo()
    again = build(tmp_path / "corpus", built, corpus=make_tiny_corpus(), progress=False)
    assert again.build_stats["up_to_date"] and read_manifest(built)["format_version"] == FORMAT_VERSION

def test_model_mismatch_is_refused(built, tmp_path):
    from test_embedding import tiny_static_model

    model_dir = tiny_static_model(tmp_path / "other-model")
    with pytest.raises(AssistantError, match="built with model usem3.*rebuild"):
        Retriever.load(built, model=str(model_dir))


def test_missing_index_says_how_to_build_it(tmp_path):
    with pytest.raises(AssistantError, match="python -m assistant index build --index"):
        Retriever.load(tmp_path / "nothing-here")


def test_rebuild_reuses_everything_unchanged_and_encodes_only_changed_clauses(tmp_path):
    corpus_dir, index_dir = tmp_path / "corpus", tmp_path / "index" / "tiny"
    first = build(corpus_dir, index_dir, corpus=make_tiny_corpus(), progress=False)
    assert first.build_stats["encoded"] == len(first.clauses)

    same = build(corpus_dir, index_dir, corpus=make_tiny_corpus(), progress=False)
    assert same.build_stats["up_to_date"] and same.build_stats["encoded"] == 0

    changed = dict(TINY_FILES)
    changed["b_zz.txt"] = TINY_FILES["b_zz.txt"][:-1] + ["四、对不裁员的参保企业，按规定返还失业保险费的50%。"]
    second = build(corpus_dir, index_dir, corpus=make_tiny_corpus(changed), progress=False)
    assert second.build_stats["encoded"] == 1 and second.build_stats["reused"] == len(second.clauses) - 1
    assert read_manifest(index_dir)["files"]["b_zz.txt"] != read_manifest(index_dir)["files"]["a_hebi.txt"]
    assert "失业保险费" in second.search("不裁员返还多少失业保险费", k=1)[0].clause.text

    forced = build(corpus_dir, index_dir, corpus=make_tiny_corpus(changed), progress=False, force=True)
    assert forced.build_stats["encoded"] == len(forced.clauses)
    np.testing.assert_allclose(forced.dense.vectors, second.dense.vectors, atol=1e-5)


def test_an_up_to_date_build_removes_the_version_a_build_killed_after_its_switch_left(tmp_path, monkeypatch):
    import assistant.store as store

    index_dir = tmp_path / "index" / "tiny"
    build(tmp_path / "corpus", index_dir, corpus=make_tiny_corpus(), progress=False)
    changed = {name: lines + ["第九条 新增的条款。"] for name, lines in TINY_FILES.items()}

    class Killed(Exception):
        pass

    def kill_after_switch(name):
        if name == "switched":
            raise Killed  # stands in for kill -9: nothing after the switch runs
    monkeypatch.setattr(store, "_crash_point", kill_after_switch)
    with pytest.raises(Killed):
        build(tmp_path / "corpus", index_dir, corpus=make_tiny_corpus(changed), progress=False)
    monkeypatch.undo()
    versions = lambda: sorted(p.name for p in index_dir.iterdir() if p.name.startswith("v-"))  # noqa: E731
    assert len(versions()) == 2  # the superseded version is still there

    again = build(tmp_path / "corpus", index_dir, corpus=make_tiny_corpus(changed), progress=False)
    assert again.build_stats["up_to_date"]
    assert versions() == [store.index_version_dir(index_dir).name]
    assert any(c.text == "第九条 新增的条款。" for c in again.clauses)


def test_clause_table_leaves_out_an_index_text_it_can_recompute_and_keeps_any_other(tmp_path):
    from dataclasses import replace

    from assistant.types import index_text_of

    corpus = make_tiny_corpus()
    usual = replace(corpus.clauses[0], index_text=index_text_of(corpus.clauses[0].doc_title,
                                                                corpus.clauses[0].section_path, corpus.clauses[0].text))
    corpus.clauses[0] = usual  # the others keep the tiny corpus's own "title label text"
    index_dir = tmp_path / "index" / "tiny"
    build(tmp_path / "corpus", index_dir, corpus=corpus, progress=False)
    kept = json.loads((index_dir / "clauses" / "table.json").read_text(encoding="utf-8"))["index_text"]
    assert "0" not in kept
    assert sorted(kept, key=int) == [str(n) for n in range(1, len(corpus.clauses))]
    assert load_index(index_dir).clauses == corpus.clauses
