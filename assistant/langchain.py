"""LangChain adapter: the Retriever as a ``langchain_core`` ``BaseRetriever`` (optional extra).

    pip install 'policy-assistant[langchain]'

>>> from assistant.langchain import PolicyRetriever
>>> lc = PolicyRetriever.from_index("index/default", k=5, mode="hybrid", filters={"city": ["鹤壁市"]})
>>> docs = lc.invoke("地源热泵项目谁来审批")
>>> docs[0].page_content                 # the clause text, verbatim
>>> docs[0].metadata["doc_title"], docs[0].metadata["section"], docs[0].metadata["line_start"]

Each LangChain Document carries the clause text as ``page_content`` and every field of
``Hit.to_dict()`` except the text (clause id, title, 文号, section path and label, source file,
line span, score, per-mode ranks) as ``metadata``, so a chain can cite its sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LangChainDocument
    from langchain_core.retrievers import BaseRetriever
except ImportError as error:  # pragma: no cover - depends on the optional extra
    from assistant.errors import AssistantError

    raise AssistantError(
        "the LangChain adapter needs langchain-core: pip install 'policy-assistant[langchain]'"
    ) from error

from pydantic import ConfigDict

from assistant.types import Hit


def hit_to_document(hit: Hit) -> LangChainDocument:
    metadata = hit.to_dict()
    text = metadata.pop("text")
    return LangChainDocument(page_content=text, metadata=metadata, id=hit.clause.clause_id)


class PolicyRetriever(BaseRetriever):
    """Wraps an ``assistant.retriever.Retriever``; ``k``, ``mode`` and ``filters`` are per-instance settings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 5
    mode: str = "hybrid"
    filters: dict[str, list[str]] | None = None

    @classmethod
    def from_index(cls, index_dir: str | Path, **settings: Any) -> PolicyRetriever:
        from assistant.retriever import Retriever

        return cls(retriever=Retriever.load(index_dir), **settings)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LangChainDocument]:
        hits = self.retriever.search(query, k=self.k, mode=self.mode, filters=self.filters)
        return [hit_to_document(hit) for hit in hits]
