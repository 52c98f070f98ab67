"""The LlamaIndex BaseRetriever adapter (like tests/test_langchain.py, on the tiny corpus's index)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode  # noqa: E402

from assistant.llamaindex import PolicyRetriever  # noqa: E402
from assistant.retriever import Retriever  # noqa: E402


@pytest.fixture(scope="module")
def tiny_retriever(tiny_index):
    return Retriever.load(tiny_index)


def test_adapter_is_a_llamaindex_retriever_returning_cited_clauses(tiny_retriever):
    li = PolicyRetriever(tiny_retriever, k=3)
    assert isinstance(li, BaseRetriever)
    nodes = li.retrieve("鹤壁地源热泵系统归哪个部门管")
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    top = nodes[0]
    clause = tiny_retriever.clause(top.node.id_)
    assert top.node.text == clause.text  # verbatim
    assert "住房和城乡建设局" in top.node.text
    meta = top.node.metadata
    assert meta["doc_title"] == clause.doc_title and meta["source"] == clause.source == "a_hebi.txt"
    assert meta["line_start"] == clause.line_start and meta["section"] == clause.section and meta["ranks"]["hybrid"] == 1
    assert meta["citation"] == f"{clause.doc_title} › {clause.label} — a_hebi.txt:{clause.line_start}"
    assert "text" not in meta and top.score == pytest.approx(tiny_retriever.search("鹤壁地源热泵系统归哪个部门管", k=1)[0].score)
    # what an LLM is shown: the clause and its citation, not the bookkeeping
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert clause.text in shown and meta["citation"] in shown and "ranks" not in shown


def test_adapter_settings_mode_and_filters(tiny_index):
    li = PolicyRetriever.from_index(tiny_index, k=4, mode="bm25", filters={"city": ["郑州市"]})
    nodes = li.retrieve("小微企业 奖励 稳岗")
    assert 0 < len(nodes) <= 4
    assert all(n.node.metadata["city"] == "郑州市" and set(n.node.metadata["ranks"]) == {"bm25"} for n in nodes)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    with pytest.raises(ValueError):
        PolicyRetriever(li.retriever, k=0)
