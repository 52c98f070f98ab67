"""Embedders: the bundled USE v3 through sentence-transformers, any local ST model, the cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from assistant.embedding import (
    EmbeddingCache,
    UseModule,
    available_threads,
    encoder_threads,
    use_model_id,
    load_embedder,
    text_sha,
)
from assistant.errors import AssistantError
from assistant.indexing import build_index
from assistant.retriever import Retriever
from conftest import CORPUS, make_tiny_corpus


def tiny_static_model(directory, dimension=32):
    """A real sentence-transformers model made offline: StaticEmbedding over a BPE trained on corpus lines."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = [line.strip() for line in (CORPUS / "000_ed0d53ce87970edb.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(lines[:200], trainers.BpeTrainer(vocab_size=800, special_tokens=["[UNK]", "[PAD]"]))
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=dimension)])
    model.save(str(directory))
    return directory


def test_use_embedder_runs_through_sentence_transformers():
    embedder = load_embedder("use")
    from sentence_transformers import SentenceTransformer

    assert isinstance(embedder.model, SentenceTransformer)
    assert isinstance(embedder.model[0], UseModule)
    assert embedder.model_id == use_model_id() and embedder.model_id.startswith("usem3:")
    assert embedder.dimension == 512
    vectors = embedder.encode(["小微企业贷款能延期还本付息吗", "小微企业贷款延期还本付息", "地源热泵"])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    assert embedder.encode([]).shape == (0, 512)


def test_threads_follow_the_cores_this_process_may_use(monkeypatch):
    import assistant.embedding as embedding_module

    monkeypatch.delenv("ASSISTANT_THREADS", raising=False)
    cores = min(8, len(os.sched_getaffinity(0)))
    assert available_threads() == cores
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.0, 0.0))
    assert encoder_threads() == cores  # idle machine: every core (not the package default of 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores + 3), 0.0, 0.0))
    monkeypatch.setattr(embedding_module, "_other_runnable_now", lambda: cores + 3)
    assert encoder_threads() == 1  # busy machine: spinning BLAS threads would stall each other
    monkeypatch.setattr(embedding_module, "_other_runnable_now", lambda: 0)
    assert encoder_threads() == cores  # the average still says busy, but the other job has ended
    monkeypatch.setenv("ASSISTANT_THREADS", "2")
    assert encoder_threads() == 2 and UseModule().threads == 2


def test_bulk_encoding_in_worker_processes_gives_the_in_process_vectors_in_order(monkeypatch):
    import assistant.embedding as embedding_module

    texts = [f"第{n}条 {topic}" for n, topic in enumerate(["地源热泵系统用电优惠", "小微企业贷款延期还本付息",
                                                         "残疾人就业保障金免征", "市长质量奖每2年评选1届",
                                                         "稳岗返还比例", "卫河保护条例罚款"] * 3, 1)]
    module = UseModule(threads=1)
    alone = module.encode_texts(texts)
    monkeypatch.setattr(embedding_module, "PARALLEL_MIN_TEXTS", 4)
    module.threads = 3
    forked = []
    real_pool = embedding_module._fork_context().Pool

    def counting_pool(processes):
        forked.append(processes)
        return real_pool(processes)

    monkeypatch.setattr(embedding_module, "_fork_context", lambda: type("Ctx", (), {"Pool": staticmethod(counting_pool)})())
    parallel = module.encode_texts(texts)
    assert forked == [3]  # it did run in 3 workers
    assert np.allclose(parallel, alone, atol=1e-5)  # same vectors, same order
    assert module.encode_texts(texts[:3]).shape == (3, 512) and forked == [3]  # few texts: in-process


def test_use_module_saves_and_loads_as_a_sentence_transformer(tmp_path):
    embedder = load_embedder("use")
    embedder.model.save(str(tmp_path / "use"))
    modules = json.loads((tmp_path / "use" / "modules.json").read_text())
    assert modules[0]["type"] == "assistant.embedding.UseModule"
    reloaded = load_embedder(str(tmp_path / "use"))
    assert reloaded.model_id == embedder.model_id  # a saved copy of the bundled encoder is the same model
    np.testing.assert_allclose(reloaded.encode(["地源热泵"]), embedder.encode(["地源热泵"]), atol=1e-6)


def test_local_sentence_transformers_model_indexes_and_searches(tmp_path):
    model_dir = tiny_static_model(tmp_path / "static-model")
    embedder = load_embedder(str(model_dir))
    assert embedder.dimension == 32 and embedder.model_id.startswith("static-model@")

    retriever = build_index(tmp_path / "corpus", tmp_path / "index", model=str(model_dir), corpus=make_tiny_corpus(), progress=False).retriever
    assert retriever.manifest["model_id"] == embedder.model_id
    assert retriever.manifest["dimension"] == 32
    hits = retriever.search("地源热泵", k=3, mode="dense")
    assert len(hits) == 3 and all(h.ranks["dense"] for h in hits)

    reopened = Retriever.load(tmp_path / "index")  # finds the model again from the manifest
    assert reopened.search("地源热泵", k=3, mode="hybrid")[0].clause.doc_title.startswith("鹤壁")
    with pytest.raises(AssistantError, match="rebuild"):
        Retriever.load(tmp_path / "index", model="usem3")


def test_unavailable_model_gives_instructions_not_a_hub_traceback():
    with pytest.raises(AssistantError) as error:
        load_embedder("some-org/not-downloaded-model")
    message = str(error.value)
    assert "not available offline" in message and "--model DIR" in message and "cache" in message
    with pytest.raises(AssistantError, match="does not exist"):
        load_embedder("/nonexistent/model/dir")


def test_cache_encodes_only_texts_it_has_not_seen(tmp_path):
    embedder = load_embedder("use")
    cache = EmbeddingCache(tmp_path, embedder.model_id, embedder.dimension)
    first = cache.encode(embedder, ["第一条 甲", "第二条 乙"])
    assert (cache.misses, cache.hits) == (2, 0)
    cache.save()

    reopened = EmbeddingCache(tmp_path, embedder.model_id, embedder.dimension)
    again = reopened.encode(embedder, ["第一条 甲", "第三条 丙"])
    assert (reopened.misses, reopened.hits) == (1, 1)
    np.testing.assert_array_equal(again[0], first[0])
    other_model = EmbeddingCache(tmp_path, "another-model", embedder.dimension)
    assert text_sha("第一条 甲") not in other_model  # keyed by model id too
