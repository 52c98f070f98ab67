"""jieba's word frequencies in a read-only SQLite file, so one question is cut without loading them all.

``jieba.Tokenizer.initialize()`` unmarshals its whole prefix dictionary (~500k entries, 0.8 s on
the project machine) before it cuts anything, and a one-shot ``search`` or ``ask`` pays that for a
question whose cut looks up ~100 of them. jieba reads its dictionary only through ``FREQ`` (``in``,
``[]``, ``get``, and ``[]=`` when a word is added) and ``total``, so a tokenizer whose ``FREQ`` answers
from this file cuts exactly as a loaded one.

The file is written from a loaded tokenizer (one that has just read jieba's own dictionary, before
any user words are added) by the first process that loads one, for example an index build; its
name carries jieba's version and its dictionary file's size and time, so an upgraded jieba gets a
new file. A missing or unreadable file is only the slower path, never an error.

>>> path = store_path()
>>> write_store(loaded_tokenizer, path)          # once per machine (~0.5 s)
>>> tokenizer = stored_tokenizer(path)            # a jieba.Tokenizer answering from the file, or None
>>> list(tokenizer.cut_for_search("小微企业贷款能延期还本付息吗"))
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

from assistant.paths import default_cache_dir

STORE_FORMAT = 1
_ABSENT = object()


def _jieba_dictionary() -> Path:
    import jieba

    return Path(jieba.__file__).with_name("dict.txt")


def store_path(cache_dir: Path | None = None) -> Path:
    """Where the store for the installed jieba and its default dictionary lives."""
    import jieba

    dictionary = _jieba_dictionary()
    try:
        stat = dictionary.stat()
        signature = f"{STORE_FORMAT}|{jieba.__version__}|{stat.st_size}|{int(stat.st_mtime)}"
    except OSError:
        signature = f"{STORE_FORMAT}|{jieba.__version__}|missing"
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "jieba" / f"word-frequencies-{hashlib.sha256(signature.encode()).hexdigest()[:16]}.sqlite"


def write_store(tokenizer, path: Path) -> Path:
    """Write an initialized tokenizer's frequencies (before user words are added) to ``path``,
    atomically: a concurrent reader sees the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".words-", suffix=".sqlite", dir=path.parent)
    os.close(handle)
    try:
        db = sqlite3.connect(temporary)
        try:
            db.execute("CREATE TABLE frequency (word TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.executemany("INSERT INTO frequency VALUES (?, ?)", tokenizer.FREQ.items())
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("total", str(tokenizer.total)), ("words", str(len(tokenizer.FREQ))),
                            ("format", str(STORE_FORMAT))])
            db.commit()
        finally:
            db.close()
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


class StoredFrequencies:
    """The mapping jieba uses as ``FREQ``, answered from the store; words added in this process
    (user terms) are held in memory over it. Lookups are memoised: a page asks many questions."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self._known: dict[str, int | None] = {}
        self._added: dict[str, int] = {}
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if meta.get("format") != str(STORE_FORMAT):
            raise ValueError(f"word store format {meta.get('format')!r}, expected {STORE_FORMAT}")
        self.total = int(meta["total"])
        self.words = int(meta["words"])
        # a truncated or half-written file fails here rather than on some later lookup
        count = self._db.execute("SELECT count(*) FROM frequency").fetchone()[0]
        if count != self.words:
            raise ValueError(f"word store holds {count} words, its header says {self.words}")

    def get(self, word: str, default=None):
        value = self._added.get(word, _ABSENT)
        if value is _ABSENT:
            value = self._known.get(word, _ABSENT)
            if value is _ABSENT:
                with self._lock:
                    row = self._db.execute("SELECT count FROM frequency WHERE word = ?", (word,)).fetchone()
                value = None if row is None else int(row[0])
                self._known[word] = value
        return default if value is None else value

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def __getitem__(self, word: str) -> int:
        value = self.get(word)
        if value is None:
            raise KeyError(word)
        return value

    def __setitem__(self, word: str, count: int) -> None:
        self._added[word] = int(count)

    def close(self) -> None:
        self._db.close()


def stored_tokenizer(path: Path | None = None):
    """A ``jieba.Tokenizer`` answering from the store at ``path`` (default :func:`store_path`),
    or None when there is no readable store."""
    import jieba

    path = Path(path) if path is not None else store_path()
    if not path.is_file():
        return None
    try:
        frequencies = StoredFrequencies(path)
    except (sqlite3.Error, ValueError, KeyError, OSError):
        return None
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ = frequencies
    tokenizer.total = frequencies.total
    tokenizer.initialized = True
    return tokenizer
