"""Retriever API: queries, modes, ranks, filters, context; a few checks on the bundled corpus."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import AssistantError
from assistant.indexing import build_index
from assistant.retriever import MAX_QUERY_CHARS, fuse, prepare_query
from assistant.text import strip_spaces
from conftest import make_tiny_corpus


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    return build_index(directory / "corpus", directory / "index", corpus=make_tiny_corpus(), progress=False).retriever


@pytest.mark.parametrize("query", ["", "   ", "\n\t　", None])
def test_empty_query_is_refused_with_an_example(tiny, query):
    with pytest.raises(AssistantError, match="empty"):
        prepare_query(query)
    with pytest.raises(AssistantError, match="empty"):
        tiny.search(query)


def test_huge_query_is_truncated_with_a_notice_not_a_crash(tiny):
    query = "残保金要交吗" * 20_000  # 120 kB of text
    prepared = prepare_query(query)
    assert len(prepared.text) == MAX_QUERY_CHARS and f"前 {MAX_QUERY_CHARS} 个字" in prepared.notice
    assert prepare_query("残保金要交吗").notice is None
    for mode in ("bm25", "dense", "hybrid"):
        assert tiny.search(query, k=3, mode=mode)


def test_every_mode_finds_the_clause_and_reports_its_ranks(tiny):
    for mode in ("bm25", "dense", "hybrid"):
        hits = tiny.search("公司15个人没招残疾人，残保金要交吗", k=3, mode=mode)
        assert "残疾人就业保障金" in hits[0].clause.text
        assert [h.ranks[mode] for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    top = tiny.search("残保金要交吗", k=1)[0]
    assert set(top.ranks) == {"hybrid", "bm25", "dense"} and top.ranks["bm25"] == 1
    data = top.to_dict()
    assert data["text"] == top.clause.text and data["source"] == "b_zz.txt" and data["line_start"] == 3


def test_traditional_characters_and_full_width_digits_match(tiny):
    simplified = tiny.search("小微企业贷款延期还本付息到2021年", k=1, mode="bm25")[0]
    assert tiny.search("小微企業貸款延期還本付息到２０２１年", k=1, mode="bm25")[0].clause == simplified.clause
    assert tiny.search("小微企業貸款延期還本付息", k=1, mode="hybrid")[0].clause == simplified.clause


def test_unknown_mode_and_filter_are_refused(tiny):
    with pytest.raises(AssistantError, match="mode"):
        tiny.search("地源热泵", mode="magic")
    with pytest.raises(AssistantError, match="filter"):
        tiny.search("地源热泵", filters={"year": ["2020"]})


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_filters_by_file_document_and_city(tiny, mode):
    by_city = tiny.search("单位和个人", k=10, mode=mode, filters={"city": ["鹤壁市"]})
    assert by_city and {h.clause.city for h in by_city} == {"鹤壁市"}
    by_file = tiny.search("地源热泵", k=10, mode=mode, filters={"source": "b_zz.txt"})
    assert {h.clause.source for h in by_file} <= {"b_zz.txt"}
    by_doc = tiny.search("地源热泵系统", k=10, mode=mode, filters={"doc_id": ["a_hebi#1"], "city": ["鹤壁市"]})
    assert {h.clause.doc_id for h in by_doc} == {"a_hebi#1"}
    assert tiny.search("企业", mode=mode, filters={"city": ["没有的市"]}) == []


def test_context_returns_neighbours_in_document_order(tiny):
    middle = tiny.clauses[1]
    context = tiny.context(middle.clause_id)
    assert [c.clause_id for c in context] == [tiny.clauses[0].clause_id, middle.clause_id, tiny.clauses[2].clause_id]
    first = tiny.context(tiny.clauses[0].clause_id)
    assert first[0] == tiny.clauses[0] and all(c.doc_id == tiny.clauses[0].doc_id for c in first)
    with pytest.raises(AssistantError):
        tiny.context("no-such-clause")


def test_score_fusion_lets_a_confident_bm25_match_stand():
    # candidate 0: strong BM25, middling cosine; candidate 1: no BM25, best cosine
    fused = fuse(bm25_scores=np.array([9.0, 0.0]), dense_scores=np.array([0.5, 0.6]),
                 bm25_ranks=np.array([1, 0]), dense_ranks=np.array([2, 1]), method="score")
    assert fused[0] > fused[1]
    rrf = fuse(bm25_scores=np.array([9.0, 0.0]), dense_scores=np.array([0.5, 0.6]),
               bm25_ranks=np.array([1, 0]), dense_ranks=np.array([2, 1]), method="rrf", bm25_weight=1, dense_weight=1)
    assert rrf[0] > rrf[1]  # in both fusions a clause found by both modes wins


# --- on the bundled corpus (the session index) ----------------------------------------------------

def _covers(hit, evidence):
    return strip_spaces(evidence) in strip_spaces(hit.clause.text)


def test_bundled_index_answers_the_issue_example(bundled_retriever):
    hits = bundled_retriever.search("公司15个人没招残疾人，残保金要交吗", k=5)
    assert any(_covers(h, "免征残疾人就业保障金") for h in hits)


def test_bundled_index_traditional_full_width_query(bundled_retriever):
    hits = bundled_retriever.search("小微企業貸款延期還本付息最長可以延期幾個月", k=5)
    assert any(_covers(h, "本息最长可延期6个月") for h in hits)
    assert bundled_retriever.search("２０２２年金融机构为多少户企业贷款办理延期还本付息", k=5, mode="bm25")


def test_bundled_index_city_filter(bundled_retriever):
    hits = bundled_retriever.search("地源热泵", k=5, filters={"city": ["鹤壁市"]})
    assert hits and all(h.clause.city == "鹤壁市" for h in hits)
    assert "地源热泵" in hits[0].clause.text


def test_bundled_index_prefers_the_clause_that_carries_the_kind_of_fact_asked(bundled_retriever):
    # 「罚多少」 asks for a penalty: 第四十三条 (违反…处…罚款) answers, 第二十六条 only forbids.
    question = "往淇河里直接排没处理的畜禽粪便，罚多少"
    assert bundled_retriever.search(question, k=1)[0].clause.label == "第四十三条"
    # the request bonus's own effect, on the fusion of the encoder's vectors (the query adapter,
    # fitted on dev questions about these notices, ranks 第四十三条 first here by itself)
    plain = bundled_retriever.with_config(query_adapter=False)
    assert plain.search(question, k=1)[0].clause.label == "第四十三条"
    words_alone = plain.with_config(intent_weight=0.0)
    assert words_alone.search(question, k=1)[0].clause.label == "第二十六条"  # what words alone rank first


def test_bundled_index_puts_the_named_citys_clauses_before_another_citys(bundled_retriever):
    from assistant.query import cities_named, clause_fits_cities

    question = "安阳工程质保金最多扣多少、扣多久"
    cities = cities_named(question)
    assert all(clause_fits_cities(h.clause, cities) for h in bundled_retriever.search(question, k=3))
    # the penalty's own effect, on the fusion of the encoder's vectors (the query adapter, fitted on
    # dev questions about these notices, already puts 安阳's clauses first for this one)
    plain = bundled_retriever.with_config(query_adapter=False)
    assert all(clause_fits_cities(h.clause, cities) for h in plain.search(question, k=3))
    no_penalty = plain.with_config(city_mismatch_penalty=0.0)
    assert not all(clause_fits_cities(h.clause, cities) for h in no_penalty.search(question, k=3))


def test_search_config_is_validated_and_saved_in_the_manifest(tiny):
    from assistant.retriever import SearchConfig

    assert tiny.manifest["search"] == tiny.config.to_dict() == SearchConfig().to_dict()
    assert SearchConfig.from_dict(tiny.manifest["search"]) == tiny.config
    for bad in ({"fusion": "max"}, {"bm25_weight": -1}, {"candidates": 0}, {"intent_weight": float("nan")}):
        with pytest.raises(ValueError):
            SearchConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        SearchConfig.from_dict({"weight": 1})


def test_search_reports_the_dense_similarity_it_measured(tiny):
    result = tiny.search("残保金要交吗", k=3)
    dense = tiny.search("残保金要交吗", k=1, mode="dense")
    assert result.dense_similarity == pytest.approx(dense[0].score, abs=1e-5)
    assert tiny.search("残保金要交吗", k=3, mode="bm25").dense_similarity is None


@pytest.mark.parametrize("query", ["\udcff残疾人", "\ud800残疾人", "残疾人\x00\x07"])
def test_undecodable_characters_are_dropped_not_a_crash(tiny, query):
    assert prepare_query(query).text == "残疾人"
    for mode in ("bm25", "dense", "hybrid"):
        assert tiny.search(query, k=2, mode=mode)


def test_filter_values_of_the_wrong_type_are_refused(tiny):
    with pytest.raises(AssistantError, match="list of strings"):
        tiny.search("地源热泵", filters={"source": 5})
    with pytest.raises(AssistantError, match="filters"):
        tiny.search("地源热泵", filters=["b_zz.txt"])


def test_with_config_searches_with_its_own_config_even_after_a_method_was_patched(tiny):
    import copy

    retriever = copy.copy(tiny)  # the fixture is shared: patch a copy
    retriever.search = retriever.search  # what monkeypatch.setattr(retriever, "search", ...) leaves when undone
    other = retriever.with_config(intent_weight=0.0)
    assert other.search.__self__ is other and other.config.intent_weight == 0.0
    assert retriever.config.intent_weight != 0.0
