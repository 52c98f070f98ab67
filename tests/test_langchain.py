"""The LangChain BaseRetriever adapter over the bundled index."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.retrievers import BaseRetriever  # noqa: E402

from assistant.langchain import PolicyRetriever  # noqa: E402


def test_adapter_is_a_langchain_retriever_returning_cited_clauses(bundled_retriever):
    lc = PolicyRetriever(retriever=bundled_retriever, k=3)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("鹤壁地源热泵项目归哪个部门管")
    assert len(docs) == 3
    top = docs[0]
    clause = bundled_retriever.clause(top.id)
    assert top.page_content == clause.text  # verbatim
    assert top.metadata["doc_title"] == clause.doc_title and top.metadata["source"] == clause.source
    assert top.metadata["line_start"] == clause.line_start and top.metadata["ranks"]["hybrid"] == 1
    assert "text" not in top.metadata
    assert any("地源热泵" in d.page_content for d in docs)


def test_adapter_settings_mode_and_filters(bundled_retriever, bundled_index):
    lc = PolicyRetriever.from_index(bundled_index, k=4, mode="bm25", filters={"city": ["郑州市"]})
    docs = lc.invoke("小微企业融资")
    assert 0 < len(docs) <= 4
    assert all(d.metadata["city"] == "郑州市" for d in docs)
    assert all(set(d.metadata["ranks"]) == {"bm25"} for d in docs)
    assert lc.batch(["会展专项资金", "市长质量奖"]) and len(lc.batch(["会展专项资金", "市长质量奖"])) == 2
