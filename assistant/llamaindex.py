"""LlamaIndex adapter: the Retriever as a ``llama_index.core`` ``BaseRetriever`` (optional extra).

    pip install 'policy-assistant[llamaindex]'

>>> from assistant.llamaindex import PolicyRetriever
>>> li = PolicyRetriever.from_index("index/default", k=5, mode="hybrid", filters={"city": ["鹤壁市"]})
>>> nodes = li.retrieve("地源热泵项目谁来审批")
>>> nodes[0].node.text                   # the clause text, verbatim
>>> nodes[0].node.metadata["citation"], nodes[0].score

The same shape as :mod:`assistant.langchain`: each ``NodeWithScore`` holds a ``TextNode`` whose
``id_`` is the clause id and ``text`` the clause text, with every other field of
``Hit.to_dict()`` (title, 文号, section, file, line span, per-mode ranks) plus the citation
string as ``metadata``; ``score`` is the search's score. The citation fields are kept out of
what LlamaIndex shows an LLM or embeds (``excluded_*_metadata_keys``) except the citation itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as error:  # pragma: no cover - depends on the optional extra
    from assistant.errors import AssistantError

    raise AssistantError(
        "the LlamaIndex adapter needs llama-index-core: pip install 'policy-assistant[llamaindex]'"
    ) from error

from assistant.render import citation
from assistant.types import Hit


def hit_to_node(hit: Hit) -> NodeWithScore:
    metadata = hit.to_dict()
    text = metadata.pop("text")
    metadata.pop("clause_id")  # it is the node's id
    metadata.pop("score")  # it is the NodeWithScore's score
    metadata["citation"] = citation(hit.clause)
    hidden = [key for key in metadata if key != "citation"]
    node = TextNode(id_=hit.clause.clause_id, text=text, metadata=metadata,
                    excluded_llm_metadata_keys=hidden, excluded_embed_metadata_keys=list(metadata))
    return NodeWithScore(node=node, score=float(hit.score))


class PolicyRetriever(BaseRetriever):
    """Wraps an ``assistant.retriever.Retriever``; ``k``, ``mode`` and ``filters`` are per-instance settings."""

    def __init__(self, retriever, *, k: int = 5, mode: str = "hybrid", filters: dict[str, list[str]] | None = None,
                 **base: Any):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.retriever = retriever
        self.k = k
        self.mode = mode
        self.filters = filters
        super().__init__(**base)

    @classmethod
    def from_index(cls, index_dir: str | Path, **settings: Any) -> PolicyRetriever:
        from assistant.retriever import Retriever

        return cls(Retriever.load(index_dir), **settings)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search(query_bundle.query_str, k=self.k, mode=self.mode, filters=self.filters)
        return [hit_to_node(hit) for hit in hits]
