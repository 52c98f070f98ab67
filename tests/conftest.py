"""Shared fixtures.

- ``bundled_index``: path of an index built ONCE per test session from the bundled corpus
  (/work/main/corpus via the repo's corpus/ dir) with the default model, in a tmp dir.
- ``bundled_retriever``: a Retriever opened on it (also once per session).
- ``tiny_corpus``: a hand-made corpus object (files/documents/clauses) of a few real clauses, for fast
  unit tests that must not depend on the chunker; ``write_tiny_corpus(dir)`` writes matching files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"

from assistant.types import Clause, Document, SourceFile


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory) -> Path:
    from assistant.indexing import build_index

    index_dir = tmp_path_factory.mktemp("bundled") / "index"
    build_index(CORPUS, index_dir, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def bundled_retriever(bundled_index):
    from assistant.retriever import Retriever

    return Retriever.load(bundled_index)


# --- a tiny hand-made corpus ----------------------------------------------------------------------

TINY_FILES = {
    "a_hebi.txt": [
        "鹤壁市地源热泵系统建设应用管理暂行办法",
        "第四条 鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门。",
        "第六条 对采用地源热泵系统的项目，系统用电和水资源费享受市政府有关优惠政策。",
        "第八条 市政府对在地源热泵系统建设应用管理方面作出突出贡献的单位和个人，给予表彰。",
    ],
    "b_zz.txt": [
        "郑州市关于支持小微企业健康发展的若干措施",
        "一、对小微企业贷款实施延期还本付息，最长可延至2021年3月31日。",
        "二、用人单位安排残疾人就业未达到规定比例的，在职职工总数30人（含）以下的，暂免征收残疾人就业保障金。",
        "三、对获得国家级专精特新“小巨人”称号的企业，给予一次性奖励50万元。",
        "四、对不裁员或少裁员的参保企业，按规定实施稳岗返还。",
    ],
}
TINY_CITIES = {"a_hebi.txt": "鹤壁市", "b_zz.txt": "郑州市"}


@dataclass
class TinyCorpus:
    files: list[SourceFile] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    clauses: list[Clause] = field(default_factory=list)
    noise: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def make_tiny_corpus(files: dict[str, list[str]] | None = None) -> TinyCorpus:
    """One document per file (title = line 1), one clause per following line."""
    files = files or TINY_FILES
    corpus = TinyCorpus()
    for name, lines in files.items():
        raw = ("\n".join(lines) + "\n").encode("utf-8")
        corpus.files.append(SourceFile(name, tuple(lines), hashlib.sha256(raw).hexdigest()))
        doc_id = f"{Path(name).stem}#1"
        title = lines[0]
        city = TINY_CITIES.get(name)
        corpus.documents.append(Document(doc_id, name, title, 1, len(lines), tuple(lines), city=city))
        for n, text in enumerate(lines[1:], start=2):
            label = text.split(" ")[0] if text.startswith("第") else text.split("、")[0] + "、"
            corpus.clauses.append(
                Clause(
                    clause_id=f"{doc_id}:{n}", doc_id=doc_id, source=name, doc_title=title,
                    section_path=(label,), label=label, text=text, index_text=f"{title} {label} {text}",
                    line_start=n, line_end=n, city=city,
                )
            )
    return corpus


def write_tiny_corpus(directory: Path, files: dict[str, list[str]] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in (files or TINY_FILES).items():
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def tiny_corpus() -> TinyCorpus:
    return make_tiny_corpus()


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory) -> Path:
    """An index of the tiny corpus (7 clauses, 2 documents, real encoder): for tests of the ways in
    (HTTP, MCP, adapters) that need a real index but not the bundled corpus's answers."""
    from assistant.indexing import build_index

    root = tmp_path_factory.mktemp("tiny")
    index_dir = root / "index"
    build_index(write_tiny_corpus(root / "corpus"), index_dir, progress=False)
    return index_dir
