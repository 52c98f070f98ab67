"""Policy-notice question answering: find the clauses that answer a question and quote them.

>>> from assistant import Retriever                       # doctest: +SKIP
>>> retriever = Retriever.load("index/default")           # doctest: +SKIP
>>> for hit in retriever.search("地源热泵项目谁来审批", k=3):  # doctest: +SKIP
...     print(hit.clause.doc_title, hit.clause.label, hit.score)
"""

from assistant.types import Answer, Clause, Document, Hit, Quote, SourceFile

__all__ = ["Answer", "Clause", "Document", "Hit", "Quote", "SourceFile", "Retriever"]


def __getattr__(name):
    # Imported lazily so that `import assistant` (and corpus tools) never pull in torch/faiss.
    if name == "Retriever":
        from assistant.retriever import Retriever

        return Retriever
    raise AttributeError(name)
