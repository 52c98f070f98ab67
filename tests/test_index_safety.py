"""The index directory survives damage, tampering and a build killed at the worst moment.

Indexes here are written with :func:`assistant.store.write_index` directly (real BM25 and FAISS
objects, random unit vectors, no encoder model), so each test builds one in well under a second.
"Re-signed" tampering updates every checksum in manifest.json to the tampered files, as someone
who edits an index by hand (or another tool) would: only the structural checks can catch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AssistantError
from assistant.store import (
    CRASH_ENV,
    CRASH_EXIT_CODE,
    CURRENT,
    FORMAT_VERSION,
    MANIFEST,
    embedding_cache_dir,
    file_sha256,
    index_version_dir,
    load_index,
    quick_sha256,
    read_manifest,
    verify_index,
    write_index,
)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
from conftest import TINY_FILES, make_tiny_corpus  # noqa: E402

HINT = "python -m assistant index build --index"
ENTRY_LINKS = {"manifest.json", "clauses", "documents.jsonl", "vectors.npy", "bm25", "bm25_docs"}


def synthetic_files(clauses_per_file: int, tag: str = "") -> dict[str, list[str]]:
    """Two notices of ``clauses_per_file`` articles each (line 1 is the title)."""
    return {
        "a_hebi.txt": ["鹤壁市地源热泵系统建设应用管理暂行办法"]
        + [f"第{n}条 地源热泵系统{tag}项目第{n}项规定，用电和水资源费享受优惠政策{n}。" for n in range(1, clauses_per_file + 1)],
        "b_zz.txt": ["郑州市关于支持小微企业健康发展的若干措施"]
        + [f"第{n}条 小微企业{tag}贷款第{n}项措施，最长可延期{n}个月。" for n in range(1, clauses_per_file + 1)],
    }


_PARTS: dict[str, dict] = {}
_TOKENIZER = []


def index_parts(files: dict[str, list[str]] | None = None, *, dimension: int = 8, seed: int = 0) -> dict:
    """Everything write_index takes, for a corpus made by conftest.make_tiny_corpus (made once per
    arguments: write_index only reads them)."""
    key = json.dumps([files, dimension, seed], ensure_ascii=False)
    if key not in _PARTS:
        _PARTS[key] = _index_parts(files, dimension=dimension, seed=seed)
    return _PARTS[key]


def _index_parts(files, *, dimension: int, seed: int) -> dict:
    from assistant.dense import DenseIndex
    from assistant.lexical import ChineseTokenizer, LexicalIndex, bm25_params

    corpus = make_tiny_corpus(files or TINY_FILES)
    if not _TOKENIZER:
        _TOKENIZER.append(ChineseTokenizer([]))  # jieba loads once (0.6 s), not once per index
    tokenizer = _TOKENIZER[0]
    lexical = LexicalIndex.build([c.index_text for c in corpus.clauses], tokenizer)
    by_doc: dict[str, list[str]] = {}
    for clause in corpus.clauses:
        by_doc.setdefault(clause.doc_id, []).append(clause.index_text)
    doc_lexical = LexicalIndex.build([" ".join(texts) for texts in by_doc.values()], tokenizer)
    vectors = np.random.default_rng(seed).normal(size=(len(corpus.clauses), dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = {"model_id": "test:random", "dimension": dimension, "chunker_version": "test", "bm25": bm25_params(),
                "files": {f.name: f.sha256 for f in corpus.files}}
    return {
        "manifest": manifest,
        "clauses": list(corpus.clauses),
        "text_shas": [hashlib.sha256(c.index_text.encode("utf-8")).hexdigest() for c in corpus.clauses],
        "documents": list(corpus.documents),
        "vectors": vectors,
        "lexical": lexical,
        "dense": DenseIndex.build(vectors),
        "doc_lexical": doc_lexical,
    }


def build(index_dir: Path, files=None, **options) -> dict:
    parts = index_parts(files, **options)
    write_index(index_dir, **parts)
    return parts


def resign(index_dir: Path) -> None:
    """Update size, sha256 and quick_sha256 of every listed file to what is on disk now."""
    directory = index_version_dir(index_dir)
    path = directory / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name in manifest["contents"]:
        file = directory / name
        manifest["contents"][name] = {"size": file.stat().st_size, "sha256": file_sha256(file),
                                      "quick_sha256": quick_sha256(file)}
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def refused(index_dir: Path, match: str = "") -> str:
    with pytest.raises(AssistantError, match=match) as error:
        load_index(index_dir)
    assert HINT in str(error.value)
    return str(error.value)


@pytest.fixture
def index_dir(tmp_path) -> Path:
    path = tmp_path / "index" / "tiny"
    build(path)
    return path


# --- 5. tampered files, checksums re-signed --------------------------------------------------------

def _set_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def _other_index_bm25(index_dir: Path, files) -> None:
    other = index_dir.parent / "other"
    build(other, files)
    shutil.rmtree(index_version_dir(index_dir) / "bm25")
    shutil.copytree(index_version_dir(other) / "bm25", index_version_dir(index_dir) / "bm25")


def test_resigning_alone_changes_nothing(index_dir):
    resign(index_dir)
    assert len(load_index(index_dir).clauses) == len(make_tiny_corpus().clauses)


def test_bm25_files_from_an_index_of_another_size_are_refused(index_dir):
    _other_index_bm25(index_dir, synthetic_files(9))
    resign(index_dir)
    refused(index_dir, "corrupt")


def test_bm25_files_from_another_index_of_the_same_size_are_refused(index_dir):
    # same number of clauses (3 + 4 = 7) but other texts: caught by the shapes recorded at build
    files = {"a_hebi.txt": ["鹤壁市卫河保护条例", "第一条 为了保护卫河。", "第二条 本条例适用于卫河。", "第三条 禁止排污。"],
             "b_zz.txt": ["郑州市稳岗返还办法", "一、不裁员企业返还。", "二、返还比例为百分之五十。", "三、申请材料。", "四、办理时限。"]}
    assert len(make_tiny_corpus(files).clauses) == len(make_tiny_corpus().clauses)
    _other_index_bm25(index_dir, files)
    resign(index_dir)
    refused(index_dir, "not the one this index was built with")


def test_clause_bm25_in_place_of_the_document_bm25_is_refused(index_dir):
    directory = index_version_dir(index_dir)
    shutil.rmtree(directory / "bm25_docs")
    shutil.copytree(directory / "bm25", directory / "bm25_docs")
    resign(index_dir)
    refused(index_dir, "bm25_docs")


def test_out_of_range_text_ids_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "indices.csc.index.npy"
    ids = np.load(path)
    ids[0] = 999
    np.save(path, ids)
    resign(index_dir)
    refused(index_dir, "outside 0..6")


def test_negative_text_ids_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "indices.csc.index.npy"
    ids = np.load(path)
    ids[-1] = -3
    np.save(path, ids)
    resign(index_dir)
    refused(index_dir, "outside")


def test_out_of_range_token_ids_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "vocab.index.json"
    vocab = json.loads(path.read_text(encoding="utf-8"))
    vocab[next(token for token in vocab if token)] = 10**6
    _set_json(path, vocab)
    resign(index_dir)
    refused(index_dir, "outside")


@pytest.mark.parametrize("bad", ["7", 7.0, None, True, [1]])
def test_vocabulary_values_of_the_wrong_type_are_refused(index_dir, bad):
    path = index_version_dir(index_dir) / "bm25" / "vocab.index.json"
    vocab = json.loads(path.read_text(encoding="utf-8"))
    vocab[next(iter(vocab))] = bad
    _set_json(path, vocab)
    resign(index_dir)
    refused(index_dir, "vocabulary")


def test_all_vocabulary_values_as_strings_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "vocab.index.json"
    _set_json(path, {token: str(value) for token, value in json.loads(path.read_text(encoding="utf-8")).items()})
    resign(index_dir)
    refused(index_dir, "vocabulary")


@pytest.mark.parametrize("params", [{}, {"k1": "0.3", "b": 0.5}, [], {"num_docs": "7"}])
def test_bad_bm25_params_are_refused(index_dir, params):
    _set_json(index_version_dir(index_dir) / "bm25" / "params.index.json", params)
    resign(index_dir)
    refused(index_dir, "corrupt")


def test_bm25_params_without_the_text_count_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "params.index.json"
    params = json.loads(path.read_text(encoding="utf-8"))
    del params["num_docs"]
    _set_json(path, params)
    resign(index_dir)
    refused(index_dir, "indexes None texts")


def test_unsorted_bm25_pointers_are_refused(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "indptr.csc.index.npy"
    pointers = np.load(path)
    pointers[1], pointers[2] = pointers[2] + 5, pointers[1]
    np.save(path, pointers)
    resign(index_dir)
    refused(index_dir, "pointers")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_vectors_are_refused(index_dir, value):
    path = index_version_dir(index_dir) / "vectors.npy"
    vectors = np.load(path)
    vectors[2, 1] = value
    np.save(path, vectors)
    resign(index_dir)
    refused(index_dir, "vector 2 .*not finite")


def test_vectors_of_another_dtype_or_not_unit_are_refused(index_dir):
    path = index_version_dir(index_dir) / "vectors.npy"
    vectors = np.load(path)
    np.save(path, vectors.astype(np.float64))
    resign(index_dir)
    refused(index_dir, "float32")
    np.save(path, vectors * 3)
    resign(index_dir)
    refused(index_dir, "norm")


def _rewrite_clauses(index_dir: Path, change) -> None:
    """The clause table rewritten as ``change(clauses, text_shas)`` returns it (then re-signed)."""
    from assistant.clause_table import read_clause_table, write_clause_table

    directory = index_version_dir(index_dir) / "clauses"
    table, shas = read_clause_table(directory)
    clauses, shas = change(list(table), list(shas))
    shutil.rmtree(directory)
    write_clause_table(directory, clauses, shas)
    resign(index_dir)


def test_shuffled_clauses_are_refused(index_dir):
    def shuffle(clauses, shas):
        order = list(range(len(clauses)))
        random.Random(3).shuffle(order)
        assert order != sorted(order)
        return [clauses[n] for n in order], [shas[n] for n in order]

    _rewrite_clauses(index_dir, shuffle)
    refused(index_dir, "order")


def _table_json(index_dir: Path, change) -> None:
    path = index_version_dir(index_dir) / "clauses" / "table.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    change(table)
    _set_json(path, table)
    resign(index_dir)


def _clause_array(name: str, change):
    def damage(index_dir: Path) -> None:
        path = index_version_dir(index_dir) / "clauses" / name
        np.save(path, change(np.load(path)))
        resign(index_dir)
    return damage


def _set_text_bytes(index_dir: Path) -> None:
    path = index_version_dir(index_dir) / "clauses" / "text.bin"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] = 0xFF  # never a byte of UTF-8
    path.write_bytes(bytes(raw))
    resign(index_dir)


@pytest.mark.parametrize("damage, message", [
    (_clause_array("numbers.npy", lambda a: a.astype(np.float64)), "numbers.npy is float64"),
    (_clause_array("codes.npy", lambda a: a[:-1]), "codes.npy is int32"),
    (_clause_array("codes.npy", lambda a: a + 1000), "codes.npy refers to a doc_id outside"),
    (_clause_array("offsets.npy", lambda a: a[::-1].copy()), "offsets.npy does not fit text.bin"),
    (_clause_array("offsets.npy", lambda a: np.concatenate([a[:1], a[1:-1] + 1, a[-1:]])), "UTF-8"),
    (_set_text_bytes, "text.bin is not valid UTF-8"),
    (lambda d: _table_json(d, lambda t: t["values"].update(section_path=[[1]])), "section_path"),
    (lambda d: _table_json(d, lambda t: t["values"].update(city=[["郑州市"]])), "city"),
    (lambda d: _table_json(d, lambda t: t["values"].update(label=t["values"]["label"] * 2)), "label value twice"),
    (lambda d: _table_json(d, lambda t: t["text_sha"].__setitem__(1, None)), "text_sha"),
    (lambda d: _table_json(d, lambda t: t["clause_id"].pop()), "clause_id"),
    (lambda d: _table_json(d, lambda t: t.update(rows="2")), "row count"),
    (lambda d: _table_json(d, lambda t: t["index_text"].update({"999": "x"})), "index_text"),
])
def test_a_damaged_clause_table_is_refused_naming_its_file(index_dir, damage, message):
    """Damage the quick checksums miss (re-signed): each is refused with the rebuild command."""
    damage(index_dir)
    text = refused(index_dir, message)
    assert "clauses/" in text


def test_clause_of_an_unknown_document_is_refused(index_dir):
    path = index_version_dir(index_dir) / "documents.jsonl"
    rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text(rows[0] + "\n", encoding="utf-8")
    manifest_path = index_version_dir(index_dir) / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["document_count"] = 1
    _set_json(manifest_path, manifest)
    resign(index_dir)
    refused(index_dir, "does not hold")


@pytest.mark.parametrize("changes", [{"dimension": "8"}, {"clause_count": None}, {"contents": []}, {"model_id": 3},
                                     {"shapes": None}, {"clause_order": None}])
def test_malformed_manifest_values_are_refused(index_dir, changes):
    path = index_version_dir(index_dir) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    _set_json(path, {k: v for k, v in manifest.items() if v is not None})
    with pytest.raises(AssistantError, match="corrupt") as error:
        load_index(index_dir)
    assert HINT in str(error.value)


def test_manifest_naming_a_file_outside_the_index_is_refused(index_dir):
    path = index_version_dir(index_dir) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["contents"]["../../../etc/passwd"] = {"size": 1, "sha256": "0" * 64, "quick_sha256": "0" * 64}
    _set_json(path, manifest)
    refused(index_dir, "outside the index")


# --- 7. cheap checks on every load, full checksums on demand --------------------------------------

def test_load_does_not_hash_whole_files_but_verify_does(index_dir, monkeypatch):
    import assistant.store as store

    def no_full_hash(path):
        raise AssertionError(f"load_index hashed all of {path}")

    monkeypatch.setattr(store, "file_sha256", no_full_hash)
    load_index(index_dir)
    with pytest.raises(AssertionError, match="hashed all of"):
        verify_index(index_dir)


def test_verify_index_summarises_a_sound_index(index_dir):
    summary = verify_index(index_dir)
    manifest = read_manifest(index_dir)
    assert summary["format_version"] == FORMAT_VERSION and summary["version"] == manifest["version"]
    assert summary["files"] == len(manifest["contents"]) and summary["clauses"] == manifest["clause_count"]
    assert summary["bytes"] == sum(entry["size"] for entry in manifest["contents"].values())


def test_damage_inside_a_large_file_is_left_to_verify_index(tmp_path):
    # 2 x 40 clauses x 512-d float32 = 160 KiB: the quick checksum covers its first and last 64 KiB only
    index_dir = tmp_path / "index"
    build(index_dir, synthetic_files(40), dimension=512)
    path = index_version_dir(index_dir) / "vectors.npy"
    assert path.stat().st_size > 2 * 64 * 1024
    vectors = np.load(path)
    vectors[[39, 40]] = vectors[[40, 39]]  # two unit rows in the middle swapped: still a well-formed index
    np.save(path, vectors)
    assert len(load_index(index_dir).clauses) == 80  # cheap checks pass
    with pytest.raises(AssistantError, match="vectors.npy does not match its checksum") as error:
        verify_index(index_dir)
    assert HINT in str(error.value)


@pytest.mark.parametrize("name", ["vectors.npy", "clauses/table.json", "clauses/text.bin", "clauses/offsets.npy",
                                  "bm25/data.csc.index.npy", "bm25_docs/vocab.index.json"])
def test_truncated_file_is_refused_without_verification(index_dir, name, monkeypatch):
    import assistant.store as store

    monkeypatch.setattr(store, "file_sha256", lambda path: pytest.fail("no full hash on load"))
    path = index_version_dir(index_dir) / name
    path.write_bytes(path.read_bytes()[:-5])
    message = refused(index_dir, "wrong size")
    assert name in message


def test_truncated_large_file_is_refused_without_verification(tmp_path):
    index_dir = tmp_path / "index"
    build(index_dir, synthetic_files(40), dimension=512)
    path = index_version_dir(index_dir) / "vectors.npy"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 4096)
    refused(index_dir, "vectors.npy has the wrong size")


def test_same_size_damage_at_the_end_of_a_file_is_caught_on_load(index_dir):
    path = index_version_dir(index_dir) / "bm25" / "data.csc.index.npy"
    raw = path.read_bytes()
    path.write_bytes(raw[:-4] + bytes(4))
    refused(index_dir, "data.csc.index.npy does not match its checksum")


def test_verify_index_refuses_a_file_the_manifest_does_not_list(index_dir):
    (index_version_dir(index_dir) / "bm25" / "stray.npy").write_bytes(b"x")
    with pytest.raises(AssistantError, match="stray.npy is not in its manifest"):
        verify_index(index_dir)


def test_verify_index_of_a_missing_index_says_how_to_build_it(tmp_path):
    with pytest.raises(AssistantError, match=HINT):
        verify_index(tmp_path / "nothing")


# --- 6. the switch is one atomic step; a killed build leaves a complete index ---------------------

WRITER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_index_safety import build, synthetic_files
build(Path(sys.argv[1]), synthetic_files(int(sys.argv[2]), tag=sys.argv[3]), seed=int(sys.argv[2]))
print("finished")
"""


def run_writer(index_dir: Path, clauses_per_file: int, tag: str, crash_at: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, "-c", WRITER.format(tests=str(TESTS)), str(index_dir), str(clauses_per_file), tag],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _clause_texts(index_dir: Path) -> list[str]:
    return [c.text for c in load_index(index_dir).clauses]


def _expected_texts(clauses_per_file: int, tag: str) -> list[str]:
    return [c.text for c in make_tiny_corpus(synthetic_files(clauses_per_file, tag)).clauses]


def _assert_clean(index_dir: Path) -> None:
    names = sorted(p.name for p in index_dir.iterdir())
    versions = [n for n in names if n.startswith("v-")]
    assert len(versions) == 1 and os.readlink(index_dir / CURRENT) == versions[0], names
    assert set(names) == {".lock", CURRENT, *versions, *ENTRY_LINKS}, names
    assert sorted(p.name for p in index_dir.parent.iterdir()) == [index_dir.name], "nothing left beside the index"


@pytest.mark.parametrize("crash_at, survivor", [("writing", "old"), ("written", "old"), ("switched", "new")])
def test_build_killed_at_any_step_leaves_a_complete_index_and_the_next_build_cleans_up(tmp_path, crash_at, survivor):
    index_dir = tmp_path / "index" / "tiny"
    build(index_dir, synthetic_files(3, "旧"), seed=3)
    old = _expected_texts(3, "旧")
    assert _clause_texts(index_dir) == old

    result = run_writer(index_dir, 5, "新", crash_at)
    assert result.returncode == CRASH_EXIT_CODE, result.stderr
    assert "finished" not in result.stdout
    new = _expected_texts(5, "新")
    assert _clause_texts(index_dir) == (old if survivor == "old" else new)
    verify_index(index_dir)  # complete, every checksum right
    leftovers = sorted(p.name for p in index_dir.iterdir() if p.name.startswith((".tmp-", "v-")))
    assert len(leftovers) == 2, leftovers  # the half-written or superseded version is still there

    build(index_dir, synthetic_files(4, "再"), seed=4)
    assert _clause_texts(index_dir) == _expected_texts(4, "再")
    _assert_clean(index_dir)


def test_an_unkilled_build_in_a_subprocess_finishes(tmp_path):
    index_dir = tmp_path / "index" / "tiny"
    result = run_writer(index_dir, 2, "甲", None)
    assert result.returncode == 0 and "finished" in result.stdout, result.stderr
    assert _clause_texts(index_dir) == _expected_texts(2, "甲")
    _assert_clean(index_dir)


def test_first_build_killed_before_the_switch_leaves_no_index_and_no_traceback(tmp_path):
    index_dir = tmp_path / "index" / "tiny"
    result = run_writer(index_dir, 2, "甲", "written")
    assert result.returncode == CRASH_EXIT_CODE
    with pytest.raises(AssistantError, match="no index at .*python -m assistant index build --index"):
        load_index(index_dir)
    build(index_dir)
    assert len(load_index(index_dir).clauses) == len(make_tiny_corpus().clauses)
    _assert_clean(index_dir)


def test_rebuilding_keeps_one_version_and_stable_entry_points(index_dir):
    first = index_version_dir(index_dir)
    build(index_dir, synthetic_files(2))
    second = index_version_dir(index_dir)
    assert second != first and not first.exists()
    for name in ENTRY_LINKS:
        assert os.readlink(index_dir / name) == f"current/{name}"
    assert json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))["version"] == second.name
    _assert_clean(index_dir)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftovers_of_the_old_two_rename_swap_are_removed(tmp_path):
    index_dir = tmp_path / "index" / "tiny"
    pid = _dead_pid()
    for leftover in (tmp_path / "index" / f".tiny.tmp-{pid}", tmp_path / "index" / f".tiny.old-{pid}", index_dir / f".tmp-{pid}-x"):
        leftover.mkdir(parents=True)
        (leftover / "clauses.jsonl").write_text("{}\n", encoding="utf-8")
    build(index_dir)
    _assert_clean(index_dir)


def _clauses_as_jsonl(directory: Path, manifest: dict) -> None:
    """Turn a version's clause table into the clauses.jsonl of formats 1-3 (as their writer made it)."""
    from assistant.clause_table import read_clause_table
    from assistant.store import clause_to_json

    table, shas = read_clause_table(directory / "clauses")
    path = directory / "clauses.jsonl"
    path.write_text("".join(json.dumps({**clause_to_json(c), "text_sha": s}, ensure_ascii=False) + "\n"
                            for c, s in zip(table, shas)), encoding="utf-8")
    shutil.rmtree(directory / "clauses")
    manifest["contents"] = {k: v for k, v in manifest["contents"].items() if not k.startswith("clauses/")}
    manifest["contents"]["clauses.jsonl"] = {"size": path.stat().st_size, "sha256": file_sha256(path),
                                             "quick_sha256": quick_sha256(path)}


def test_format_3_index_is_read_and_the_next_build_writes_format_4(tmp_path):
    index_dir = tmp_path / "index" / "tiny"
    parts = build(index_dir)
    directory = index_version_dir(index_dir)
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = 3
    _clauses_as_jsonl(directory, manifest)
    _set_json(directory / MANIFEST, manifest)
    os.symlink(f"{CURRENT}/clauses.jsonl", index_dir / "clauses.jsonl")
    (index_dir / "clauses").unlink()
    stored = load_index(index_dir)
    assert isinstance(stored.clauses, list) and stored.clauses == parts["clauses"]
    assert stored.text_shas == parts["text_shas"]
    verify_index(index_dir)
    (directory / "clauses.jsonl").write_bytes((directory / "clauses.jsonl").read_bytes()[:-5])
    refused(index_dir, "clauses.jsonl has the wrong size")

    build(index_dir, synthetic_files(2))
    assert read_manifest(index_dir)["format_version"] == FORMAT_VERSION == 4
    assert _clause_texts(index_dir) == _expected_texts(2, "")
    _assert_clean(index_dir)  # the clauses.jsonl entry point is gone, clauses/ is one


def test_format_1_index_is_read_and_migrated_by_the_next_build(tmp_path):
    index_dir = tmp_path / "index" / "tiny"
    build(tmp_path / "scratch")
    shutil.copytree(index_version_dir(tmp_path / "scratch"), index_dir)  # files directly in the index dir
    shutil.rmtree(tmp_path / "scratch")
    manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = 1
    _clauses_as_jsonl(index_dir, manifest)
    for key in ("version", "shapes", "clause_order"):
        del manifest[key]
    for entry in manifest["contents"].values():
        del entry["quick_sha256"]
    _set_json(index_dir / MANIFEST, manifest)
    assert index_version_dir(index_dir) == index_dir
    assert len(load_index(index_dir).clauses) == len(make_tiny_corpus().clauses)
    (index_dir / "vectors.npy").write_bytes((index_dir / "vectors.npy").read_bytes()[:-1])
    refused(index_dir, "wrong size")  # format 1 still gets the size checks

    build(index_dir, synthetic_files(2))
    assert _clause_texts(index_dir) == _expected_texts(2, "")
    _assert_clean(index_dir)
    assert all((index_dir / name).is_symlink() for name in ENTRY_LINKS)


def test_readers_follow_a_version_switch_during_their_read(index_dir, monkeypatch):
    import assistant.store as store

    real_check = store.check_contents
    calls = []

    def switch_during_first_read(index, manifest, **options):
        if not calls:
            calls.append(1)
            build(index_dir, synthetic_files(2, "新"))  # removes the version being read
        return real_check(index, manifest, **options)

    monkeypatch.setattr(store, "check_contents", switch_during_first_read)
    assert _clause_texts(index_dir) == _expected_texts(2, "新")


def test_current_pointing_outside_the_index_is_refused(index_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(index_version_dir(index_dir), elsewhere)
    (index_dir / CURRENT).unlink()
    os.symlink(str(elsewhere), index_dir / CURRENT)
    refused(index_dir, "not to a version inside it")


# --- 8. caches beside the index, never at the filesystem root -------------------------------------

@pytest.mark.parametrize("index_dir, cache", [
    ("/nonexistent", "/nonexistent/.embedding-cache"),
    ("/nonexistent/default", "/nonexistent/.embedding-cache"),
    ("/srv/policy/index/default", "/srv/policy/index/.embedding-cache"),
])
def test_embedding_cache_of_an_absolute_index_dir(index_dir, cache):
    assert embedding_cache_dir(Path(index_dir)) == Path(cache)


def test_embedding_cache_of_relative_index_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert embedding_cache_dir(Path("index/default")) == tmp_path.resolve() / "index" / ".embedding-cache"
    assert embedding_cache_dir(Path("idx")) == tmp_path.resolve() / ".embedding-cache"
    monkeypatch.chdir("/")
    assert embedding_cache_dir(Path("idx")) == Path("/idx/.embedding-cache")
    assert embedding_cache_dir(Path("./idx/../idx2")) == Path("/idx2/.embedding-cache")


@pytest.mark.parametrize("index_dir", ["/nonexistent", "/x", "relative", "a/b/c", "/tmp", ".."])
def test_embedding_cache_is_never_at_the_filesystem_root(index_dir):
    cache = embedding_cache_dir(Path(index_dir))
    assert cache.parent != Path(cache.anchor), cache
    assert cache.name == ".embedding-cache"


def test_the_filesystem_root_is_not_an_index_dir():
    with pytest.raises(AssistantError, match="filesystem root"):
        embedding_cache_dir(Path("/"))
