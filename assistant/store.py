"""The on-disk index: immutable versions inside one directory, switched by one atomic rename.

(Why ~900 lines in one module: writing, switching, reading and validating an index share one
layout and one manifest schema, and the validation of each file sits beside the code that reads
it; the compatibility test is here too. Splitting the per-file checks out is the next cut.)

Layout of ``index/<name>/`` (format version 4; 2 and 3 had clauses.jsonl instead of clauses/)::

    current -> v-20261201T235308Z-12345-9f3a2c   symlink to the version in use; replaced with
                                                  os.replace, the single step that switches versions
    v-20261201T235308Z-12345-9f3a2c/              one complete, never modified index version:
        manifest.json     format version, model id, dimension, chunker version, sha256 of each
                          corpus file, build time, clause count, the shapes of the arrays, a digest
                          of the clause order, and size + sha256 + quick_sha256 of every file below
        clauses/          the clauses by column (assistant.clause_table), with each text's hash
                          (the embedding-cache key); read back as a ClauseTable, clauses made on access
        documents.jsonl   one Document per line
        vectors.npy       (clauses, dimension) float32, unit rows, in clause order; a flat index
                          reads it straight into FAISS's storage, which is then the only copy
        bm25/             bm25s index files + the tokenizer's user dictionary
        bm25_docs/        BM25 over whole documents (document prior of the hybrid mode)
        dense.faiss       only for an HNSW index (a flat index is rebuilt from vectors.npy in ms)
    manifest.json -> current/manifest.json        fixed entry points, so that ``index/<name>/<file>``
    clauses -> current/clauses                    keeps working for every reader; they never change
    ...                                           (one per top-level name of a version)
    .lock                                         held (flock) by the build writing a version
    .tmp-<pid>-<stamp>/                           a version being written (a build killed meanwhile
                                                  leaves it; the next build removes it)

A build writes a new version into ``.tmp-*``, renames it to ``v-*`` once complete, points ``current``
at it (os.replace of a fresh symlink: readers see the old version or the new one, never neither or
a mix), then removes older versions and leftovers. Readers resolve ``current`` once and read only
that version. An index directory of format version 1 (the files directly inside it) is still read,
and the next build turns it into this layout.

Every load checks cheaply what would otherwise break later or answer wrongly: file sizes, a
sha256 of each file's first and last 64 KiB (``quick_sha256``: all of a small file), array shapes
and dtypes, finite unit vectors, BM25 id ranges and parameter types, clause/document id
consistency and the clause order. The full sha256 of every file is computed at build time and
checked on demand by :func:`verify_index` (``python -m assistant index verify``), not on every
load (seconds at 100x). Any problem raises AssistantError telling the user to rebuild.

>>> manifest = read_manifest(Path("index/default"))
>>> stored = load_index(Path("index/default"))
>>> stored.clauses[0].clause_id, stored.vectors.shape
>>> verify_index(Path("index/default"))["files"]
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from assistant.clause_table import ClauseTableError, column, factorize, read_clause_table, write_clause_table
from assistant.errors import AssistantError
from assistant.paths import DEFAULT_CORPUS_DIR
from assistant.types import Clause, Document, index_text_of

FORMAT_VERSION = 4  # 4: clauses/ (columnar, assistant.clause_table) instead of clauses.jsonl
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)  # 1: the files directly in the index directory, fewer checks
MANIFEST = "manifest.json"
CLAUSES = "clauses.jsonl"  # formats 1-3 (3: a row leaves out an index_text that is title + section + text)
CLAUSE_TABLE = "clauses"
DOCUMENTS = "documents.jsonl"
VECTORS = "vectors.npy"
BM25_DIR = "bm25"
DOC_BM25_DIR = "bm25_docs"
DENSE = "dense.faiss"
ENTRY_NAMES = (MANIFEST, CLAUSE_TABLE, CLAUSES, DOCUMENTS, VECTORS, BM25_DIR, DOC_BM25_DIR, DENSE)
CURRENT = "current"
VERSION_PREFIX = "v-"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
LOCK = ".lock"
QUICK_BYTES = 64 << 10  # quick_sha256 covers this much at each end of a file
STALE_SECONDS = 24 * 3600  # a temp directory older than this is stale even if its pid is alive (reused)
# Test hook: the build exits (os._exit) at this point, as if killed: "writing" (data files written,
# no manifest yet), "written" (version complete, not yet current), "switched" (current points at it,
# older versions not yet removed).
CRASH_ENV = "ASSISTANT_STORE_CRASH_AT"
CRASH_EXIT_CODE = 75


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with: python -m assistant index build --index {index_dir}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quick_sha256(path: Path) -> str:
    """sha256 of the size and of the first and last QUICK_BYTES of a file (of all of a file up to
    2 x QUICK_BYTES): catches truncation, a file swapped for another and damage at either end, at
    a constant cost per file."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode("ascii") + b"\n")
    with open(path, "rb") as handle:
        if size <= 2 * QUICK_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(QUICK_BYTES))
            handle.seek(size - QUICK_BYTES)
            digest.update(handle.read(QUICK_BYTES))
    return digest.hexdigest()


def embedding_cache_dir(index_dir: Path) -> Path:
    """Embedding (and token) cache shared by the indexes under one parent: ``index/.embedding-cache``
    for ``index/default``. Outside the index's versions, so that replacing one never drops the cache.

    Never at the filesystem root: for an index directly under the root (``/nonexistent``) the cache
    is inside the index directory (``/nonexistent/.embedding-cache``). The filesystem root itself is
    refused as an index directory.
    """
    index_dir = Path(os.path.abspath(Path(index_dir).expanduser()))
    resolved = index_dir.resolve()
    if resolved.parent == resolved:
        raise AssistantError(f"{index_dir} is the filesystem root, not an index directory; pass --index DIR")
    parent = resolved.parent
    if parent.parent == parent:  # the index sits directly under the root: keep the cache inside it
        return resolved / ".embedding-cache"
    return parent / ".embedding-cache"


# --- (de)serialising the dataclasses -------------------------------------------------------------

def clause_to_json(clause: Clause) -> dict[str, Any]:
    """A clause's row in clauses.jsonl. ``index_text`` is left out when it is the usual title +
    section + text, which is read back by recomputing it: that repeated every clause's text and
    made the file, and its parsing at load, about twice as large."""
    data = asdict(clause)
    data["section_path"] = list(clause.section_path)
    if clause.index_text == index_text_of(clause.doc_title, clause.section_path, clause.text):
        del data["index_text"]
    return data


def _field_names(cls) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def clause_from_json(data: dict[str, Any]) -> Clause:
    names = _field_names(Clause)
    values = {k: v for k, v in data.items() if k in names}
    values["section_path"] = tuple(values.get("section_path", ()))
    if "index_text" not in values and all(isinstance(values.get(k), str) for k in ("doc_title", "text")) \
            and all(isinstance(part, str) for part in values["section_path"]):
        values["index_text"] = index_text_of(values["doc_title"], values["section_path"], values["text"])
    return Clause(**values)


def document_to_json(document: Document) -> dict[str, Any]:
    data = asdict(document)
    data["lines"] = list(document.lines)
    return data


def document_from_json(data: dict[str, Any]) -> Document:
    names = _field_names(Document)
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
        for number, line in enumerate(handle, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise _Corrupt(f"{path.name} line {number} is not a JSON object")
                yield row


def _jsonl_blocks(path: Path, lines_per_block: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """The objects of a JSON Lines file, a block of lines at a time; a block that does not parse
    is read again line by line, so that the error names its line."""
    with open(path, encoding="utf-8") as handle:
        while True:
            lines = list(itertools.islice(handle, lines_per_block))
            if not lines:
                return
            kept = [line for line in lines if line.strip()]
            try:
                rows = json.loads("[" + ",".join(kept) + "]")
                if not all(type(row) is dict for row in rows):
                    raise ValueError("not every row is an object")
            except ValueError:
                for _ in _iter_jsonl(path):  # raises, naming the line
                    pass
                raise _Corrupt(f"{path.name} does not parse as JSON Lines") from None
            yield rows


def clause_order_digest(clause_ids, text_shas) -> str:
    """sha256 of the clause ids and text hashes in index order (recorded at build, checked on load:
    clause rows reordered would pair every clause with another clause's vector)."""
    digest = hashlib.sha256()
    # a block of rows per update: one update per row cost ~0.3 s at 100x
    pairs = zip(clause_ids, text_shas)
    while block := list(itertools.islice(pairs, 65536)):
        digest.update("".join(f"{clause_id}\t{sha}\n" for clause_id, sha in block).encode("utf-8"))
    return digest.hexdigest()


# --- the layout ----------------------------------------------------------------------------------

def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_CODE)


def _fsync(path: Path, *, directory: bool = False) -> None:
    try:
        fd = os.open(path, (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if directory else os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a filesystem without fsync on directories
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _pid_of(name: str, prefix: str) -> int | None:
    """The pid in ``<prefix><pid>-...`` (temp/trash directories) or ``.<index>.tmp-<pid>`` (old code)."""
    rest = name[len(prefix):] if name.startswith(prefix) else name.rsplit("-", 1)[-1]
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _is_stale(path: Path, prefix: str) -> bool:
    pid = _pid_of(path.name, prefix)
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    return pid is None or not _pid_alive(pid) or age > STALE_SECONDS


def index_version_dir(index_dir: Path) -> Path:
    """The directory holding the files of the index in use: the version ``current`` points at, or
    ``index_dir`` itself for an index of format version 1. AssistantError when there is none."""
    index_dir = Path(index_dir)
    current = index_dir / CURRENT
    if current.is_symlink() or current.is_dir():
        if not (current / MANIFEST).is_file():
            raise AssistantError(f"no index at {index_dir}: {CURRENT} points to {_link_text(current)}, which holds no "
                                 f"{MANIFEST}; {rebuild_hint(index_dir)}")
        if current.is_symlink():
            target = os.readlink(current)
            if os.sep in target or (os.altsep and os.altsep in target) or not target.startswith(VERSION_PREFIX):
                raise AssistantError(f"the index at {index_dir} is corrupt: {CURRENT} points to {target}, not to a "
                                     f"version inside it; {rebuild_hint(index_dir)}")
            return index_dir / target
        return current
    if (index_dir / MANIFEST).is_file() and not (index_dir / MANIFEST).is_symlink():
        return index_dir  # format version 1
    raise AssistantError(f"no index at {index_dir} (missing {MANIFEST}); build it with: "
                         f"python -m assistant index build --index {index_dir}")


def _link_text(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return str(path)


def _current_target(index_dir: Path) -> str | None:
    try:
        return os.readlink(Path(index_dir) / CURRENT)
    except OSError:
        return None


@contextlib.contextmanager
def _build_lock(index_dir: Path, *, wait: bool = True):
    """One build at a time per index directory (released by the OS if the build is killed).
    Yields whether the lock is held: with ``wait=False`` it is not when another build holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: temp names carry the pid instead
        yield True
        return
    handle = open(index_dir / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def cleanup_index_dir(index_dir: Path, *, locked: bool = False) -> list[Path]:
    """Remove what interrupted builds left: temp and trash directories of dead processes, versions
    other than ``current``, and ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings written by the
    format-1 code. Returns what was removed. Versions are removed only under the build lock
    (``locked=True``), when no other build can be about to switch to one."""
    index_dir = Path(index_dir)
    removed: list[Path] = []
    if index_dir.is_dir():
        current = _current_target(index_dir)
        for path in sorted(index_dir.iterdir()):
            name = path.name
            if name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                prefix = TMP_PREFIX if name.startswith(TMP_PREFIX) else TRASH_PREFIX
                if locked or _is_stale(path, prefix):
                    _remove(path)
                    removed.append(path)
            elif name.startswith(VERSION_PREFIX) and locked and current is not None and name != current:
                if path.is_dir() and not path.is_symlink():
                    _remove(path)
                    removed.append(path)
            elif name.startswith((".current-", ".link-")) and locked:
                _remove(path)
                removed.append(path)
    parent = index_dir.parent
    if parent.is_dir():
        for pattern in (f".{index_dir.name}.tmp-*", f".{index_dir.name}.old-*"):
            for path in sorted(parent.glob(pattern)):
                if path.is_dir() and _is_stale(path, ""):
                    _remove(path)
                    removed.append(path)
    return removed


def tidy_index_dir(index_dir: Path) -> list[Path]:
    """What a build killed after its switch left (the superseded version), removed when no build is
    running. A build that finds the index up to date calls this, since it writes nothing itself."""
    index_dir = Path(index_dir)
    if not (index_dir / LOCK).is_file():
        return []
    with _build_lock(index_dir, wait=False) as held:
        return cleanup_index_dir(index_dir, locked=held)


def _replace_with_link(path: Path, target: str) -> None:
    """Make ``path`` a symlink to ``target`` (relative): atomic for a file or link, a rename to the
    trash then a new link for a directory of the format-1 layout."""
    link = path.with_name(f".link-{os.getpid()}-{secrets.token_hex(4)}")
    os.symlink(target, link)
    try:
        if path.is_dir() and not path.is_symlink():
            trash = path.with_name(f"{TRASH_PREFIX}{os.getpid()}-{path.name}-{secrets.token_hex(4)}")
            os.rename(path, trash)
        os.replace(link, path)
    except BaseException:
        link.unlink(missing_ok=True)
        raise


def _ensure_entry_points(index_dir: Path, names: set[str]) -> None:
    """``index_dir/<name>`` -> ``current/<name>`` for every top-level name of the new version."""
    for name in sorted(names):
        path = index_dir / name
        target = f"{CURRENT}/{name}"
        if path.is_symlink() and os.readlink(path) == target:
            continue
        _replace_with_link(path, target)


def _drop_unused_entry_points(index_dir: Path, names: set[str]) -> None:
    for name in ENTRY_NAMES:
        path = index_dir / name
        if name not in names and (path.is_symlink() or path.exists()):
            if path.is_dir() and not path.is_symlink():
                trash = path.with_name(f"{TRASH_PREFIX}{os.getpid()}-{name}-{secrets.token_hex(4)}")
                os.rename(path, trash)
                _remove(trash)
            else:
                path.unlink(missing_ok=True)


def _switch(index_dir: Path, version: str) -> None:
    """Point ``current`` at ``version``: a new symlink renamed over the old one, atomically."""
    link = index_dir / f".current-{os.getpid()}-{secrets.token_hex(4)}"
    os.symlink(version, link)
    try:
        current = index_dir / CURRENT
        if current.is_dir() and not current.is_symlink():  # a copied index (cp -rL): its current is a folder
            os.rename(current, index_dir / f"{TRASH_PREFIX}{os.getpid()}-current-{secrets.token_hex(4)}")
        os.replace(link, current)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
    _fsync(index_dir, directory=True)


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
    """Write a complete new version of the index and switch ``index_dir`` to it atomically (see the
    module docstring). Returns the manifest."""
    index_dir = Path(index_dir)
    if len(text_shas) != len(clauses):
        raise ValueError(f"{len(text_shas)} text hashes for {len(clauses)} clauses")
    index_dir.mkdir(parents=True, exist_ok=True)
    with _build_lock(index_dir):
        cleanup_index_dir(index_dir, locked=True)
        stamp = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-{secrets.token_hex(3)}"
        tmp = index_dir / f"{TMP_PREFIX}{os.getpid()}-{stamp}"
        version = index_dir / f"{VERSION_PREFIX}{stamp}"
        tmp.mkdir()
        try:
            manifest = _write_version(tmp, manifest=manifest, clauses=clauses, text_shas=text_shas,
                                      documents=documents, vectors=vectors, lexical=lexical, dense=dense,
                                      doc_lexical=doc_lexical, version=version.name)
            os.rename(tmp, version)
            _fsync(index_dir, directory=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _crash_point("written")
        names = {path.name for path in version.iterdir()}
        try:
            if _current_target(index_dir) is None:
                # first build, or a format-1 directory: point current at the new version before any
                # top-level file is touched, so that readers switch to it in one step
                _switch(index_dir, version.name)
                _ensure_entry_points(index_dir, names)
            else:
                _ensure_entry_points(index_dir, names)  # new names only: dangling until the switch
                _switch(index_dir, version.name)
        except BaseException:
            if _current_target(index_dir) != version.name:
                shutil.rmtree(version, ignore_errors=True)
            raise
        _crash_point("switched")
        _drop_unused_entry_points(index_dir, names)
        cleanup_index_dir(index_dir, locked=True)
    return manifest


def _write_version(tmp: Path, *, manifest, clauses, text_shas, documents, vectors, lexical, dense, doc_lexical,
                   version: str) -> dict[str, Any]:
    # An index whose clause vectors and clause BM25 live in an external engine (a Milvus backend:
    # assistant.milvus_backend) passes vectors, lexical and dense as None: only the clause and
    # document metadata and the document BM25 are written here.
    external = vectors is None
    if external and (lexical is not None or dense is not None or doc_lexical is None):
        raise ValueError("an index without local vectors takes no clause BM25 or dense index, and needs doc_lexical")
    if not external:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    write_clause_table(tmp / CLAUSE_TABLE, clauses, text_shas)
    _write_jsonl(tmp / DOCUMENTS, (document_to_json(d) for d in documents))
    if not external:
        np.save(tmp / VECTORS, vectors)
        lexical.save(tmp / BM25_DIR)
    if doc_lexical is not None:
        doc_lexical.save(tmp / DOC_BM25_DIR)
    if not external and dense.kind != "flat":
        dense.save(tmp / DENSE)
    _crash_point("writing")
    manifest = dict(manifest)
    manifest["format_version"] = FORMAT_VERSION
    manifest["version"] = version
    manifest["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["clause_count"] = len(clauses)
    manifest["document_count"] = len(documents)
    manifest["dense_index"] = manifest.get("dense_index", "external") if external else dense.kind
    manifest["clause_order"] = clause_order_digest((c.clause_id for c in clauses), text_shas)
    shapes: dict[str, Any] = {} if external else {"vectors": list(vectors.shape), BM25_DIR: _bm25_shape(lexical)}
    if doc_lexical is not None:
        shapes[DOC_BM25_DIR] = _bm25_shape(doc_lexical)
    manifest["shapes"] = shapes
    contents = {}
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            _fsync(path)
            contents[path.relative_to(tmp).as_posix()] = {
                "size": path.stat().st_size, "sha256": file_sha256(path), "quick_sha256": quick_sha256(path),
            }
    manifest["contents"] = contents
    path = tmp / MANIFEST
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    _fsync(path)
    for directory in {p.parent for p in tmp.rglob("*")} | {tmp}:
        _fsync(directory, directory=True)
    return manifest


def _bm25_shape(lexical) -> dict[str, int]:
    scores = lexical.bm25.scores
    return {"num_docs": int(scores["num_docs"]), "tokens": int(len(scores["indptr"]) - 1),
            "nnz": int(len(scores["indices"])), "vocab": len(lexical.bm25.vocab_dict)}


# --- reading -------------------------------------------------------------------------------------

class _Corrupt(ValueError):
    """A check of the index failed; the message says which."""


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest of the version in use, or AssistantError when the directory holds no readable index."""
    index_dir = Path(index_dir)
    return _read_manifest(index_dir, index_version_dir(index_dir))


def _read_manifest(index_dir: Path, directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if directory != index_dir and not os.path.lexists(index_dir / MANIFEST):
        raise AssistantError(f"no index at {index_dir} (missing {MANIFEST}); build it with: "
                             f"python -m assistant index build --index {index_dir}")
    if not path.is_file():
        raise AssistantError(f"no index at {index_dir} (missing {MANIFEST}); build it with: "
                             f"python -m assistant index build --index {index_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise AssistantError(f"the index manifest {index_dir / MANIFEST} is corrupt ({error}); {rebuild_hint(index_dir)}") from None
    if manifest.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise AssistantError(
            f"the index at {index_dir} has format version {manifest.get('format_version')}, this program reads "
            f"version {FORMAT_VERSION}; {rebuild_hint(index_dir)}"
        )
    return manifest


def _contents(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    contents = manifest.get("contents")
    if not isinstance(contents, dict) or not contents:
        raise _Corrupt("its manifest lists no files")
    for name, entry in contents.items():
        if (not isinstance(name, str) or not isinstance(entry, dict) or type(entry.get("size")) is not int
                or not isinstance(entry.get("sha256"), str)):
            raise _Corrupt(f"its manifest entry for {name!r} is malformed")
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or not parts:
            raise _Corrupt(f"its manifest lists a file outside the index ({name!r})")
    return contents


def check_contents(index_dir: Path, manifest: dict[str, Any], *, full: bool = False, directory: Path | None = None) -> None:
    """Every file the manifest lists exists with its size and quick_sha256 (format 2); with ``full``
    also its sha256. AssistantError naming the first file that does not match."""
    index_dir = Path(index_dir)
    directory = index_version_dir(index_dir) if directory is None else Path(directory)
    try:
        contents = _contents(manifest)
    except _Corrupt as error:
        raise AssistantError(f"the index at {index_dir} is corrupt: {error}; {rebuild_hint(index_dir)}") from None
    quick_required = manifest.get("format_version", FORMAT_VERSION) >= 2
    if directory != index_dir:
        for top in sorted({Path(name).parts[0] for name in contents} | {MANIFEST}):
            if not os.path.lexists(index_dir / top):
                raise AssistantError(f"the index at {index_dir} is incomplete: {top} is missing; {rebuild_hint(index_dir)}")
    for name, entry in contents.items():
        path = directory / name
        if not path.is_file():
            raise AssistantError(f"the index at {index_dir} is incomplete: {name} is missing; {rebuild_hint(index_dir)}")
        if path.stat().st_size != entry["size"]:
            raise AssistantError(f"the index at {index_dir} is corrupt: {name} has the wrong size "
                                 f"({path.stat().st_size} bytes, the manifest says {entry['size']}); {rebuild_hint(index_dir)}")
        quick = entry.get("quick_sha256")
        if quick is None and quick_required:
            raise AssistantError(f"the index at {index_dir} is corrupt: its manifest has no quick_sha256 for {name}; "
                                 f"{rebuild_hint(index_dir)}")
        if (quick is not None and quick_sha256(path) != quick) or (full and file_sha256(path) != entry["sha256"]):
            raise AssistantError(f"the index at {index_dir} is corrupt: {name} does not match its checksum; {rebuild_hint(index_dir)}")


def verify_contents(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Full check of every file's size and sha256 (kept for callers of the format-1 code)."""
    check_contents(index_dir, manifest, full=True)


def verify_index(index_dir: Path) -> dict[str, Any]:
    """Everything :func:`load_index` checks, plus the full sha256 of every file and files the
    manifest does not list; AssistantError (with the rebuild command) on the first problem.

    Returns a summary: ``{"index_dir", "version", "format_version", "files", "bytes", "clauses",
    "documents"}`` (``version`` is None for a format-1 index).
    """
    index_dir = Path(index_dir)
    for attempt in range(3):
        directory = index_version_dir(index_dir)
        try:
            manifest = _read_manifest(index_dir, directory)
            check_contents(index_dir, manifest, full=True, directory=directory)
            listed = set(manifest["contents"]) | {MANIFEST}
            extra = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                           if p.is_file() and p.relative_to(directory).as_posix() not in listed)
            if directory != index_dir and extra:
                raise AssistantError(f"the index at {index_dir} is corrupt: {', '.join(extra)} "
                                     f"{'is' if len(extra) == 1 else 'are'} not in its manifest; {rebuild_hint(index_dir)}")
            stored = _load(index_dir, directory, manifest)
        except AssistantError:
            if attempt < 2 and _switched(index_dir, directory):
                continue
            raise
        return {
            "index_dir": str(index_dir),
            "version": None if directory == index_dir else directory.name,
            "format_version": manifest.get("format_version"),
            "files": len(manifest["contents"]),
            "bytes": sum(entry["size"] for entry in manifest["contents"].values()),
            "clauses": len(stored.clauses),
            "documents": len(stored.documents),
        }
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class StoredIndex:
    index_dir: Path
    manifest: dict[str, Any]
    clauses: Sequence[Clause]  # a ClauseTable (clauses made on access) when read from a format-4 index
    documents: list[Document]
    vectors: np.ndarray | None  # None, and lexical and dense too, when an external backend holds them
    text_shas: list[str]
    lexical: Any
    dense: Any
    doc_lexical: Any = None  # LexicalIndex over documents, rows in order of first appearance in clauses
    version_dir: Path | None = None  # the directory the files were read from


def _switched(index_dir: Path, directory: Path) -> bool:
    """Did a build switch ``current`` away from ``directory`` (while we were reading it)?"""
    if directory == index_dir:
        return False
    return _current_target(index_dir) not in (None, directory.name)


def load_index(index_dir: Path) -> StoredIndex:
    """Read and check the index in use; AssistantError (saying to rebuild) on any problem.

    Checks sizes, quick checksums, shapes, types and id ranges (see the module docstring), not the
    full sha256 of every file: that is :func:`verify_index`. A build switching versions while this
    reads is noticed and the new version is read instead.
    """
    index_dir = Path(index_dir)
    for attempt in range(3):
        directory = index_version_dir(index_dir)
        try:
            manifest = _read_manifest(index_dir, directory)
            check_contents(index_dir, manifest, directory=directory)
            return _load(index_dir, directory, manifest)
        except AssistantError:
            if attempt < 2 and _switched(index_dir, directory):
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _load(index_dir: Path, directory: Path, manifest: dict[str, Any]) -> StoredIndex:
    from assistant.dense import DenseIndex

    try:
        dimension, clause_count, document_count = _manifest_numbers(manifest)
        if manifest.get("format_version", FORMAT_VERSION) >= 4:
            clauses, text_shas = read_clause_table(directory / CLAUSE_TABLE)
        else:
            clauses, text_shas = _read_clauses(directory / CLAUSES)
        documents = [document_from_json(row) for row in _iter_jsonl(directory / DOCUMENTS)]
        _check_types(documents, Document, DOCUMENTS)
        _check_ids(clauses, text_shas, documents, manifest, clause_count, document_count)
        shapes = manifest.get("shapes") if isinstance(manifest.get("shapes"), dict) else {}
        if manifest.get("format_version", FORMAT_VERSION) >= 2 and not shapes:
            raise _Corrupt("its manifest records no array shapes")
        distinct = len(factorize(clauses, "doc_id")[0])
        if is_external(manifest):
            # vectors and clause BM25 are in the backend's engine, checked when the backend opens it
            doc_lexical = _load_lexical(directory / DOC_BM25_DIR, distinct, manifest, shapes.get(DOC_BM25_DIR), DOC_BM25_DIR)
            return StoredIndex(index_dir, manifest, clauses, documents, None, text_shas, None, None, doc_lexical,
                               version_dir=directory)
        flat = None
        if not (directory / DENSE).is_file():
            flat = _read_flat(directory / VECTORS, len(clauses), dimension)
        vectors = np.load(directory / VECTORS, allow_pickle=False) if flat is None else flat.vectors
        _check_vectors(vectors, len(clauses), dimension, manifest)
        lexical = _load_lexical(directory / BM25_DIR, len(clauses), manifest, shapes.get(BM25_DIR), BM25_DIR)
        doc_lexical = None
        if (directory / DOC_BM25_DIR).is_dir() or DOC_BM25_DIR in shapes:
            doc_lexical = _load_lexical(directory / DOC_BM25_DIR, distinct, manifest, shapes.get(DOC_BM25_DIR), DOC_BM25_DIR)
        if (directory / DENSE).is_file():
            dense = DenseIndex.load(directory / DENSE, vectors)
            if int(getattr(dense.index, "d", dimension)) != dimension:
                raise _Corrupt(f"{DENSE} has dimension {dense.index.d}, expected {dimension}")
        elif manifest.get("dense_index", "flat") != "flat":
            raise _Corrupt(f"{DENSE} is missing for its {manifest.get('dense_index')} dense index")
        else:
            dense = flat if flat is not None else DenseIndex.build(vectors, kind="flat")
    except AssistantError:
        raise
    except Exception as error:  # json, numpy, bm25s and faiss each raise their own types
        detail = str(error) if isinstance(error, (_Corrupt, ClauseTableError)) else f"{type(error).__name__}: {error}"
        raise AssistantError(
            f"the index at {index_dir} is corrupt or unreadable ({detail}); {rebuild_hint(index_dir)}"
        ) from None
    return StoredIndex(index_dir, manifest, clauses, documents, vectors, text_shas, lexical, dense, doc_lexical,
                       version_dir=directory)


def is_external(manifest: dict[str, Any]) -> bool:
    """Does another engine than this directory hold the clause vectors and clause BM25?"""
    return manifest.get("backend", "local") != "local"


def _is_int(value) -> bool:
    return type(value) is int


def _manifest_numbers(manifest: dict[str, Any]) -> tuple[int, int, int]:
    dimension, clause_count = manifest.get("dimension"), manifest.get("clause_count")
    document_count = manifest.get("document_count")
    if not _is_int(dimension) or dimension <= 0:
        raise _Corrupt(f"its manifest gives dimension {dimension!r}")
    if not _is_int(clause_count) or clause_count < 0:
        raise _Corrupt(f"its manifest gives clause_count {clause_count!r}")
    if document_count is not None and (not _is_int(document_count) or document_count < 0):
        raise _Corrupt(f"its manifest gives document_count {document_count!r}")
    if not isinstance(manifest.get("model_id"), str) or not manifest.get("model_id"):
        raise _Corrupt(f"its manifest gives model_id {manifest.get('model_id')!r}")
    return dimension, clause_count, document_count


# field type (as written in assistant.types) -> check of a loaded value
# field type (as written in assistant.types) -> the types a loaded value may have; fields of other
# types are not checked. Exact types (type(v) in ...): True is not an int here.
_ALLOWED_TYPES = {
    "str": (str,),
    "int": (int,),
    "str | None": (str, type(None)),
    "int | None": (int, type(None)),
    "float": (int, float),
    "bool": (bool,),
    "tuple[str, ...]": (tuple,),
}
_CHECKS: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {}


def _field_checks(cls) -> tuple[tuple[str, tuple[type, ...]], ...]:
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = tuple((f.name, _ALLOWED_TYPES[f.type]) for f in fields(cls)
                                      if isinstance(f.type, str) and f.type in _ALLOWED_TYPES)
    return checks


def _check_types(values: list, cls, where: str) -> None:
    """Every field of every loaded Clause/Document has its declared type (one pass per field, in C:
    a per-row check would cost seconds at 100x)."""
    from itertools import chain
    from operator import attrgetter

    for name, allowed in _field_checks(cls):
        column = list(map(attrgetter(name), values))
        found = set(map(type, column))
        if allowed == (tuple,) and found <= {tuple}:
            found = set(map(type, chain.from_iterable(column))) - {str}
            if found:
                raise _Corrupt(f"{where} holds a {cls.__name__.lower()} whose {name} holds a {sorted(t.__name__ for t in found)[0]}")
            continue
        wrong = found - set(allowed)
        if wrong:
            raise _Corrupt(f"{where} holds a {cls.__name__.lower()} whose {name} is {sorted(t.__name__ for t in wrong)[0]}")


def _read_clauses(path: Path) -> tuple[list[Clause], list[str]]:
    clauses, text_shas = [], []
    # in blocks of lines parsed as one JSON array: one json call per block, not per row, and
    # never every parsed row at once (holding them all doubled a x100 index's load peak)
    for rows in _jsonl_blocks(path):
        for row in rows:
            clauses.append(clause_from_json(row))
            text_shas.append(row.get("text_sha", ""))
    _check_types(clauses, Clause, CLAUSES)
    wrong = set(map(type, text_shas)) - {str}
    if wrong:
        raise _Corrupt(f"{CLAUSES} holds a text_sha of type {sorted(t.__name__ for t in wrong)[0]}")
    return clauses, text_shas


def _check_ids(clauses, text_shas, documents, manifest, clause_count: int, document_count: int | None) -> None:
    if len(clauses) != clause_count:
        raise _Corrupt(f"{len(clauses)} clauses, manifest says {clause_count}")
    if document_count is not None and len(documents) != document_count:
        raise _Corrupt(f"{len(documents)} documents, manifest says {document_count}")
    clause_file = CLAUSES if isinstance(clauses, list) else CLAUSE_TABLE  # formats 1-3 / 4
    clause_ids = column(clauses, "clause_id")
    if len(set(clause_ids)) != len(clause_ids):
        raise _Corrupt(f"{clause_file} repeats a clause id")
    doc_ids = {d.doc_id for d in documents}
    if len(doc_ids) != len(documents):
        raise _Corrupt(f"{DOCUMENTS} repeats a document id")
    unknown = next((doc_id for doc_id in factorize(clauses, "doc_id")[0] if doc_id not in doc_ids), None)
    if unknown is not None:
        raise _Corrupt(f"a clause belongs to document {unknown!r}, which {DOCUMENTS} does not hold")
    expected = manifest.get("clause_order")
    if expected is None:
        if manifest.get("format_version", FORMAT_VERSION) >= 2:
            raise _Corrupt("its manifest records no clause order")
    elif clause_order_digest(clause_ids, text_shas) != expected:
        raise _Corrupt(f"the clauses in {clause_file} are not in the order the index was built with")


def _read_flat(path: Path, rows: int, dimension: int):
    """vectors.npy read straight into the storage of an exact FAISS index, so that the vectors are
    held once (FAISS's copy is ``DenseIndex.vectors``); None when the file is not a C-order float32
    (rows, dimension) array, which np.load then reads for :func:`_check_vectors` to name the problem."""
    from assistant.dense import DenseIndex

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        if dtype != np.float32 or fortran_order or tuple(shape) != (rows, dimension):
            return None
        dense = DenseIndex.flat(rows, dimension)
        target = memoryview(dense.vectors.reshape(-1)).cast("B")
        done = 0
        while done < len(target):
            got = handle.readinto(target[done:])
            if not got:
                raise _Corrupt(f"{VECTORS} ends after {done} of its {len(target)} bytes of vectors")
            done += got
    return dense


def _check_vectors(vectors: np.ndarray, rows: int, dimension: int, manifest) -> None:
    if vectors.dtype != np.float32:
        raise _Corrupt(f"vectors have dtype {vectors.dtype}, expected float32")
    if vectors.shape != (rows, dimension):
        raise _Corrupt(f"vectors have shape {vectors.shape}, expected ({rows}, {dimension})")
    # finite unit rows (zero rows allowed: an empty text), checked in blocks to bound memory
    for start in range(0, rows, 65536):
        block = vectors[start:start + 65536]
        norms = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        bad = ~((np.abs(norms - 1.0) <= 1e-2) | (norms <= 1e-12))
        if bad.any():
            row = start + int(np.argmax(bad))
            value = float(norms[row - start])
            what = "not finite (NaN or infinity)" if not math.isfinite(value) else f"of squared norm {value:.4g}, not 1"
            raise _Corrupt(f"vector {row} in {VECTORS} is {what}")


_BM25_METHODS = ("robertson", "atire", "bm25l", "bm25+", "lucene")


def _load_lexical(directory: Path, expected_docs: int, manifest, shape, name: str):
    from assistant.lexical import LexicalIndex

    tokenizer = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    if (not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("user_terms", []), list)
            or not all(isinstance(t, str) for t in tokenizer.get("user_terms", []))
            or not isinstance(tokenizer.get("bigrams", True), bool)):
        raise _Corrupt(f"{name}/tokenizer.json is malformed")
    lexical = LexicalIndex.load(directory, expected_docs)
    bm25 = lexical.bm25
    for key in ("k1", "b", "delta"):
        value = getattr(bm25, key, None)
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _Corrupt(f"{name} has BM25 parameter {key}={value!r}")
    if getattr(bm25, "method", None) not in _BM25_METHODS or getattr(bm25, "idf_method", None) not in _BM25_METHODS:
        raise _Corrupt(f"{name} has BM25 method {getattr(bm25, 'method', None)!r}/{getattr(bm25, 'idf_method', None)!r}")
    try:
        np.dtype(bm25.dtype), np.dtype(bm25.int_dtype)
    except TypeError:
        raise _Corrupt(f"{name} has BM25 dtypes {bm25.dtype!r}/{bm25.int_dtype!r}") from None
    expected_params = manifest.get("bm25")
    if isinstance(expected_params, dict):
        for key, value in expected_params.items():
            if getattr(bm25, key, None) != value:
                raise _Corrupt(f"{name} was saved with {key}={getattr(bm25, key, None)!r}, the manifest says {value!r}")
    scores = bm25.scores
    num_docs = scores.get("num_docs")
    if not _is_int(num_docs) or num_docs != expected_docs:
        raise _Corrupt(f"{name} indexes {num_docs!r} texts, expected {expected_docs}")
    data, indices, indptr = scores.get("data"), scores.get("indices"), scores.get("indptr")
    for label, array, kind in (("data", data, "f"), ("indices", indices, "iu"), ("indptr", indptr, "iu")):
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in kind:
            raise _Corrupt(f"{name} {label} array is {getattr(array, 'dtype', type(array).__name__)} "
                           f"{getattr(array, 'shape', '')}")
    if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(indices) or len(data) != len(indices):
        raise _Corrupt(f"{name} arrays do not fit together ({len(indptr)} pointers, {len(indices)} ids, {len(data)} scores)")
    if len(indptr) > 1 and (np.diff(indptr) < 0).any():
        raise _Corrupt(f"{name} pointers are not in order")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= expected_docs):
        raise _Corrupt(f"{name} refers to text {int(indices.max()) if int(indices.min()) >= 0 else int(indices.min())}, "
                       f"outside 0..{expected_docs - 1}")
    if not np.isfinite(data).all():
        raise _Corrupt(f"{name} holds scores that are not finite")
    tokens = len(indptr) - 1
    vocab = bm25.vocab_dict
    if not isinstance(vocab, dict):
        raise _Corrupt(f"{name} vocabulary is not a mapping")
    ids = []
    for token, token_id in vocab.items():
        if not isinstance(token, str) or type(token_id) is not int:
            raise _Corrupt(f"{name} vocabulary maps {token!r} to {token_id!r} (a {type(token_id).__name__}), not to a token id")
        # bm25s keeps its empty-string token one past the last column
        if not 0 <= token_id < tokens + (token == ""):
            raise _Corrupt(f"{name} vocabulary maps {token!r} to {token_id}, outside 0..{tokens - 1}")
        ids.append(token_id)
    if len(set(ids)) != len(ids):
        raise _Corrupt(f"{name} vocabulary gives two tokens the same id")
    if isinstance(shape, dict):
        actual = {"num_docs": num_docs, "tokens": tokens, "nnz": len(indices), "vocab": len(vocab)}
        differs = {key: (actual.get(key), value) for key, value in shape.items() if actual.get(key) != value}
        if differs:
            key, (got, want) = next(iter(differs.items()))
            raise _Corrupt(f"{name} is not the one this index was built with ({key} {got}, the manifest says {want})")
    elif manifest.get("format_version", FORMAT_VERSION) >= 2:
        raise _Corrupt(f"its manifest records no shape for {name}")
    return lexical


# --- compatibility ---------------------------------------------------------------------------------

def chunker_version() -> str:
    from assistant.chunking import CHUNKER_VERSION

    return str(CHUNKER_VERSION)


def rebuild_command(index_dir: Path, manifest: dict[str, Any] | None = None, *, model: str | None = None) -> str:
    """The command that rebuilds this index as it was built (its corpus and model when not the defaults)."""
    parts = ["python -m assistant index build", f"--index {index_dir}"]
    corpus = (manifest or {}).get("corpus_dir")
    if corpus and Path(corpus).resolve() != DEFAULT_CORPUS_DIR.resolve():
        parts.append(f"--corpus {corpus}")
    source = model or (manifest or {}).get("model_source")
    if source:
        parts.append(f"--model {source}")
    milvus = (manifest or {}).get("milvus")
    if (manifest or {}).get("backend") == "milvus" and isinstance(milvus, dict):
        parts.append(f"--backend milvus --milvus-uri {milvus.get('uri')} --collection {milvus.get('collection')}")
    return " ".join(parts)


def check_compatible(index_dir: Path, manifest: dict[str, Any], *, model_id: str | None = None) -> None:
    """AssistantError with the rebuild command unless this program can search the index: same
    chunker version and BM25 parameters, and (when given) the same encoder model."""
    from assistant.lexical import bm25_params

    index_dir = Path(index_dir)
    problems = []
    if manifest.get("chunker_version") != chunker_version():
        problems.append(f"built by chunker version {manifest.get('chunker_version')}, this program uses {chunker_version()}")
    if manifest.get("bm25") != bm25_params():
        problems.append(f"built with BM25 parameters {manifest.get('bm25')}, this program uses {bm25_params()}")
    if model_id is not None and manifest.get("model_id") != model_id:
        problems.append(f"built with model {manifest.get('model_id')}, but {model_id} was asked for")
    if problems:
        model = None if model_id is None or model_id == manifest.get("model_id") else "MODEL"
        raise AssistantError(f"the index at {index_dir} was {'; '.join(problems)}; rebuild it with: "
                             f"{rebuild_command(index_dir, manifest, model=model)}")
