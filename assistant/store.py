"""The on-disk index: one directory with a manifest, written atomically.

Layout of ``index/<name>/``::

    manifest.json     format version, model id, dimension, chunker version, sha256 of each corpus
                      file, build time, clause count, and size + sha256 of every file below
    clauses.jsonl     one Clause per line (plus its text hash, the embedding-cache key)
    documents.jsonl   one Document per line
    vectors.npy       (clauses, dimension) float32, unit rows, same order as clauses.jsonl
    bm25/             bm25s index files + the tokenizer's user dictionary
    bm25_docs/        BM25 over whole documents (document prior of the hybrid mode)
    dense.faiss       only for an HNSW index (a flat index is rebuilt from vectors.npy in ms)

A build writes everything into a temporary sibling directory and renames it into place, so a
crash never leaves a half-written index. Any problem reading an index raises AssistantError
telling the user to rebuild.

>>> manifest = read_manifest(Path("index/default"))
>>> stored = load_index(Path("index/default"))
>>> stored.clauses[0].clause_id, stored.vectors.shape
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.types import Clause, Document

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CLAUSES = "clauses.jsonl"
DOCUMENTS = "documents.jsonl"
VECTORS = "vectors.npy"
BM25_DIR = "bm25"
DOC_BM25_DIR = "bm25_docs"
DENSE = "dense.faiss"


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with: python -m assistant index build --index {index_dir}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedding_cache_dir(index_dir: Path) -> Path:
    """Embedding cache shared by the indexes under one parent: ``index/.embedding-cache`` for ``index/default``.

    Outside the index directory so that replacing an index never drops the cache.
    """
    return Path(index_dir).resolve().parent / ".embedding-cache"


# --- (de)serialising the dataclasses -------------------------------------------------------------

def clause_to_json(clause: Clause) -> dict[str, Any]:
    data = asdict(clause)
    data["section_path"] = list(clause.section_path)
    return data


def clause_from_json(data: dict[str, Any]) -> Clause:
    names = {f.name for f in fields(Clause)}
    values = {k: v for k, v in data.items() if k in names}
    values["section_path"] = tuple(values.get("section_path", ()))
    return Clause(**values)


def document_to_json(document: Document) -> dict[str, Any]:
    data = asdict(document)
    data["lines"] = list(document.lines)
    return data


def document_from_json(data: dict[str, Any]) -> Document:
    names = {f.name for f in fields(Document)}
    values = {k: v for k, v in data.items() if k in names}
    values["lines"] = tuple(values.get("lines", ()))
    return Document(**values)


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


# --- writing -------------------------------------------------------------------------------------

def write_index(
    index_dir: Path,
    *,
    manifest: dict[str, Any],
    clauses: list[Clause],
    text_shas: list[str],
    documents: list[Document],
    vectors: np.ndarray,
    lexical,
    dense,
    doc_lexical=None,
) -> dict[str, Any]:
    """Write a complete index into a temp sibling dir, then rename it over ``index_dir``. Returns the manifest."""
    index_dir = Path(index_dir)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.parent / f".{index_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_jsonl(tmp / CLAUSES, ({**clause_to_json(c), "text_sha": s} for c, s in zip(clauses, text_shas)))
        _write_jsonl(tmp / DOCUMENTS, (document_to_json(d) for d in documents))
        np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
        lexical.save(tmp / BM25_DIR)
        if doc_lexical is not None:
            doc_lexical.save(tmp / DOC_BM25_DIR)
        if dense.kind != "flat":
            dense.save(tmp / DENSE)
        manifest = dict(manifest)
        manifest["format_version"] = FORMAT_VERSION
        manifest["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest["clause_count"] = len(clauses)
        manifest["document_count"] = len(documents)
        manifest["dense_index"] = dense.kind
        manifest["contents"] = {
            str(path.relative_to(tmp)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        _swap_into_place(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(tmp: Path, index_dir: Path) -> None:
    old = index_dir.parent / f".{index_dir.name}.old-{os.getpid()}"
    if index_dir.exists():
        os.rename(index_dir, old)
    os.rename(tmp, index_dir)
    shutil.rmtree(old, ignore_errors=True)


# --- reading -------------------------------------------------------------------------------------

def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest, or AssistantError when the directory holds no readable index."""
    index_dir = Path(index_dir)
    path = index_dir / MANIFEST
    if not index_dir.is_dir() or not path.is_file():
        raise AssistantError(f"no index at {index_dir} (missing {MANIFEST}); build it with: "
                             f"python -m assistant index build --index {index_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise AssistantError(f"the index manifest {path} is corrupt ({error}); {rebuild_hint(index_dir)}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise AssistantError(
            f"the index at {index_dir} has format version {manifest.get('format_version')}, this program reads "
            f"version {FORMAT_VERSION}; {rebuild_hint(index_dir)}"
        )
    return manifest


def verify_contents(index_dir: Path, manifest: dict[str, Any], *, hash_limit: int = 512 << 20) -> None:
    """Every file the manifest lists exists with its size; sha256 checked when the index is < hash_limit bytes."""
    contents = manifest.get("contents") or {}
    total = sum(int(entry.get("size", 0)) for entry in contents.values())
    for name, entry in contents.items():
        path = Path(index_dir) / name
        if not path.is_file():
            raise AssistantError(f"the index at {index_dir} is incomplete: {name} is missing; {rebuild_hint(index_dir)}")
        if path.stat().st_size != entry.get("size"):
            raise AssistantError(f"the index at {index_dir} is corrupt: {name} has the wrong size; {rebuild_hint(index_dir)}")
        if total <= hash_limit and file_sha256(path) != entry.get("sha256"):
            raise AssistantError(f"the index at {index_dir} is corrupt: {name} does not match its checksum; {rebuild_hint(index_dir)}")


@dataclass
class StoredIndex:
    index_dir: Path
    manifest: dict[str, Any]
    clauses: list[Clause]
    documents: list[Document]
    vectors: np.ndarray
    text_shas: list[str]
    lexical: Any
    dense: Any
    doc_lexical: Any = None  # LexicalIndex over documents, rows in order of first appearance in clauses


def load_index(index_dir: Path) -> StoredIndex:
    """Read and check a whole index directory; AssistantError (saying to rebuild) on any problem."""
    from assistant.dense import DenseIndex
    from assistant.lexical import LexicalIndex

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    verify_contents(index_dir, manifest)
    try:
        # row by row: holding every parsed row until all are converted doubles a x100 index's load peak
        clauses, text_shas = [], []
        for row in _iter_jsonl(index_dir / CLAUSES):
            clauses.append(clause_from_json(row))
            text_shas.append(row.get("text_sha", ""))
        documents = [document_from_json(row) for row in _iter_jsonl(index_dir / DOCUMENTS)]
        vectors = np.load(index_dir / VECTORS, allow_pickle=False)
        if vectors.shape != (len(clauses), manifest.get("dimension")):
            raise ValueError(f"vectors have shape {vectors.shape}, expected ({len(clauses)}, {manifest.get('dimension')})")
        if len(clauses) != manifest.get("clause_count"):
            raise ValueError(f"{len(clauses)} clauses, manifest says {manifest.get('clause_count')}")
        lexical = LexicalIndex.load(index_dir / BM25_DIR, len(clauses))
        doc_lexical = None
        if (index_dir / DOC_BM25_DIR).is_dir():
            doc_lexical = LexicalIndex.load(index_dir / DOC_BM25_DIR, len({c.doc_id for c in clauses}))
        if (index_dir / DENSE).is_file():
            dense = DenseIndex.load(index_dir / DENSE, vectors)
        else:
            dense = DenseIndex.build(vectors, kind="flat")
    except AssistantError:
        raise
    except Exception as error:  # json, numpy, bm25s and faiss each raise their own types
        raise AssistantError(
            f"the index at {index_dir} is corrupt or unreadable ({type(error).__name__}: {error}); {rebuild_hint(index_dir)}"
        ) from None
    return StoredIndex(index_dir, manifest, clauses, documents, vectors, text_shas, lexical, dense, doc_lexical)
