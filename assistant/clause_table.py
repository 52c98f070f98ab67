"""Clauses stored by column: an index's clause list, read back without parsing a row per clause.

An index of format 4 keeps its clauses in ``clauses/`` (:mod:`assistant.store` owns the rest of
the layout and the manifest)::

    clauses/table.json     row count, each clause's id and text hash, the distinct values of the
                           repeated fields (doc_id, source, doc_title, doc_number, city, label,
                           section_path) in order of first appearance, and the few index_texts
                           that are not the usual title + section + text (by row)
    clauses/codes.npy      (rows, 7) int32: each row's position in each of those value lists
    clauses/numbers.npy    (rows, 3) int64: line_start, line_end, part
    clauses/text.bin       every clause's text, UTF-8, one after another
    clauses/offsets.npy    (rows + 1,) int64: where each text starts in text.bin (the last: its size)

:func:`read_clause_table` checks what a load can check without decoding every row into a Clause
(array dtypes and shapes, codes inside their value lists, offsets in order and on UTF-8 character
boundaries, every text valid UTF-8, value types) and returns a :class:`ClauseTable`: a sequence of
:class:`~assistant.types.Clause` made on access, equal to the list it was written from. A damaged
file raises :class:`ClauseTableError` naming it.

Callers that need one field of every clause (the retriever's filters and maps, term rarity) use
:func:`column` and :func:`factorize`, which read a table's columns directly and work on a plain
list of clauses too.

>>> write_clause_table(Path("/tmp/x/clauses"), clauses, text_shas)
>>> table, text_shas = read_clause_table(Path("/tmp/x/clauses"))
>>> table[0] == clauses[0], table == clauses
(True, True)
>>> values, codes = factorize(table, "doc_id")   # distinct doc ids, first appearance first; each row's
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.types import Clause, index_text_of

TABLE = "table.json"
CODES = "codes.npy"
NUMBERS = "numbers.npy"
TEXT = "text.bin"
OFFSETS = "offsets.npy"
FILES = (TABLE, CODES, NUMBERS, TEXT, OFFSETS)
CODED = ("doc_id", "source", "doc_title", "doc_number", "city", "label", "section_path")
NUMBERED = ("line_start", "line_end", "part")
_OPTIONAL = ("doc_number", "city")  # may be None
_DECODE_BLOCK = 8 << 20  # text.bin is checked as UTF-8 this many bytes (rounded to whole texts) at a time


class ClauseTableError(ValueError):
    """A file of the clause table is damaged; the message names it."""


# --- writing -------------------------------------------------------------------------------------

def write_clause_table(directory: Path, clauses: Sequence[Clause], text_shas: Sequence[str]) -> None:
    """Write ``clauses`` (and each one's text hash) into ``directory`` (created), one text at a time."""
    directory = Path(directory)
    if len(text_shas) != len(clauses):
        raise ValueError(f"{len(text_shas)} text hashes for {len(clauses)} clauses")
    directory.mkdir(parents=True, exist_ok=True)
    rows = len(clauses)
    values: dict[str, dict[Any, int]] = {name: {} for name in CODED}
    codes = np.empty((rows, len(CODED)), dtype=np.int32)
    numbers = np.empty((rows, len(NUMBERED)), dtype=np.int64)
    offsets = np.empty(rows + 1, dtype=np.int64)
    offsets[0] = 0
    ids, index_texts = [], {}
    position = 0
    with open(directory / TEXT, "wb") as handle:
        for row, clause in enumerate(clauses):
            ids.append(clause.clause_id)
            for k, name in enumerate(CODED):
                value = getattr(clause, name)
                if name == "section_path":
                    value = tuple(value)
                known = values[name]
                code = known.get(value)
                if code is None:
                    code = known[value] = len(known)
                codes[row, k] = code
            numbers[row] = (clause.line_start, clause.line_end, clause.part)
            raw = clause.text.encode("utf-8")
            handle.write(raw)
            position += len(raw)
            offsets[row + 1] = position
            if clause.index_text != index_text_of(clause.doc_title, clause.section_path, clause.text):
                index_texts[str(row)] = clause.index_text
    table = {
        "rows": rows,
        "clause_id": ids,
        "text_sha": list(text_shas),
        "values": {name: [list(v) if name == "section_path" else v for v in known] for name, known in values.items()},
        "index_text": index_texts,
    }
    (directory / TABLE).write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    np.save(directory / CODES, codes)
    np.save(directory / NUMBERS, numbers)
    np.save(directory / OFFSETS, offsets)


# --- reading -------------------------------------------------------------------------------------

def read_clause_table(directory: Path) -> tuple[ClauseTable, list[str]]:
    """The table in ``directory`` and each clause's text hash; ClauseTableError on any damage."""
    directory = Path(directory)
    where = directory.name
    try:
        table = json.loads((directory / TABLE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ClauseTableError(f"{where}/{TABLE} does not parse ({error})") from None
    if not isinstance(table, dict) or type(table.get("rows")) is not int or table["rows"] < 0:
        raise ClauseTableError(f"{where}/{TABLE} gives no row count")
    rows = table["rows"]
    ids, shas = table.get("clause_id"), table.get("text_sha")
    for name, column_ in (("clause_id", ids), ("text_sha", shas)):
        if not isinstance(column_, list) or len(column_) != rows:
            raise ClauseTableError(f"{where}/{TABLE} holds {len(column_) if isinstance(column_, list) else 'no'} "
                                   f"{name} values for {rows} rows")
        wrong = set(map(type, column_)) - {str}
        if wrong:
            raise ClauseTableError(f"{where}/{TABLE} holds a {name} of type {sorted(t.__name__ for t in wrong)[0]}")
    values = _read_values(table.get("values"), where)
    index_texts = _read_index_texts(table.get("index_text", {}), rows, where)

    codes = _load_array(directory, CODES, np.int32, (rows, len(CODED)))
    for k, name in enumerate(CODED):
        if rows and (int(codes[:, k].min()) < 0 or int(codes[:, k].max()) >= len(values[name])):
            raise ClauseTableError(f"{where}/{CODES} refers to a {name} outside the {len(values[name])} in {TABLE}")
    numbers = _load_array(directory, NUMBERS, np.int64, (rows, len(NUMBERED)))
    offsets = _load_array(directory, OFFSETS, np.int64, (rows + 1,))
    size = os.path.getsize(directory / TEXT)
    if offsets[0] != 0 or offsets[-1] != size or (rows and (np.diff(offsets) < 0).any()):
        raise ClauseTableError(f"{where}/{OFFSETS} does not fit {TEXT} ({size} bytes): offsets out of order or range")
    text = np.memmap(directory / TEXT, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    _check_utf8(text, offsets, where)
    return ClauseTable(ids, values, codes, numbers, text, offsets, index_texts), shas


def _read_values(values, where: str) -> dict[str, list]:
    if not isinstance(values, dict) or any(not isinstance(values.get(name), list) for name in CODED):
        raise ClauseTableError(f"{where}/{TABLE} lacks the value lists of {', '.join(CODED)}")
    out: dict[str, list] = {}
    for name in CODED:
        listed = values[name]
        if name == "section_path":
            if not all(type(v) is list and all(type(part) is str for part in v) for v in listed):
                raise ClauseTableError(f"{where}/{TABLE} holds a section_path that is not a list of strings")
            listed = [tuple(v) for v in listed]
        else:
            allowed = {str, type(None)} if name in _OPTIONAL else {str}
            wrong = set(map(type, listed)) - allowed
            if wrong:
                raise ClauseTableError(f"{where}/{TABLE} holds a {name} of type {sorted(t.__name__ for t in wrong)[0]}")
        if len(set(listed)) != len(listed):
            raise ClauseTableError(f"{where}/{TABLE} lists a {name} value twice")
        out[name] = listed
    return out


def _read_index_texts(index_texts, rows: int, where: str) -> dict[int, str]:
    if not isinstance(index_texts, dict):
        raise ClauseTableError(f"{where}/{TABLE} index_text is not a mapping")
    out = {}
    for key, value in index_texts.items():
        if not key.isdigit() or not int(key) < rows or type(value) is not str:
            raise ClauseTableError(f"{where}/{TABLE} holds an index_text for row {key!r} ({type(value).__name__})")
        out[int(key)] = value
    return out


def _load_array(directory: Path, name: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
    where = f"{directory.name}/{name}"
    try:
        array = np.load(directory / name, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ClauseTableError(f"{where} does not load ({error})") from None
    if array.dtype != dtype or array.shape != shape:
        raise ClauseTableError(f"{where} is {array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape}")
    return array


def _check_utf8(text: np.ndarray, offsets: np.ndarray, where: str) -> None:
    """Every text decodes: whole blocks of texts decode as UTF-8 and no text starts inside a character."""
    starts = offsets[:-1][offsets[:-1] < len(text)]
    if len(starts) and ((text[starts] & 0xC0) == 0x80).any():
        raise ClauseTableError(f"{where}/{OFFSETS} puts a text's start inside a UTF-8 character of {TEXT}")
    cuts = np.unique(np.concatenate([offsets[np.searchsorted(offsets, np.arange(0, len(text), _DECODE_BLOCK))],
                                     offsets[-1:]]))
    for start, end in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        try:
            text[start:end].tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ClauseTableError(f"{where}/{TEXT} is not valid UTF-8 near byte {start}") from None


class ClauseTable(Sequence):
    """The clauses of a stored index, each made into a :class:`~assistant.types.Clause` when asked for.

    A sequence like the list it was written from (``len``, indexing, slicing, iteration, ``==``
    with a list of the same clauses); clauses are not kept, so two reads of one row give equal
    clauses, not the same object.
    """

    __hash__ = None  # type: ignore[assignment]  # compares by value, like a list

    def __init__(self, clause_ids: list[str], values: dict[str, list], codes: np.ndarray, numbers: np.ndarray,
                 text: np.ndarray, offsets: np.ndarray, index_texts: dict[int, str]):
        self._ids = clause_ids
        self._values = values
        self._coded = [values[name] for name in CODED]
        self._codes = codes
        self._numbers = numbers
        self._text = text
        self._offsets = offsets
        self._index_texts = index_texts

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._clause(row) for row in range(*index.indices(len(self)))]
        row = int(index) if isinstance(index, (int, np.integer)) else index.__index__()
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError("clause index out of range")
        return self._clause(row)

    def __iter__(self) -> Iterator[Clause]:
        for row in range(len(self)):
            yield self._clause(row)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"ClauseTable({len(self)} clauses)"

    def text_of(self, row: int) -> str:
        start, end = self._offsets[row], self._offsets[row + 1]
        return self._text[start:end].tobytes().decode("utf-8")

    def _clause(self, row: int) -> Clause:
        doc_id, source, doc_title, doc_number, city, label, section_path = (
            values[code] for values, code in zip(self._coded, self._codes[row].tolist()))
        line_start, line_end, part = self._numbers[row].tolist()
        text = self.text_of(row)
        index_text = self._index_texts.get(row)
        if index_text is None:
            index_text = index_text_of(doc_title, section_path, text)
        return Clause(clause_id=self._ids[row], doc_id=doc_id, source=source, doc_title=doc_title,
                      section_path=section_path, label=label, text=text, index_text=index_text,
                      line_start=line_start, line_end=line_end, doc_number=doc_number, city=city, part=part)

    def column(self, name: str) -> list:
        """One field of every clause, in row order, without making the clauses."""
        if name == "clause_id":
            return list(self._ids)
        if name in CODED:
            values = self._values[name]
            return [values[code] for code in self._codes[:, CODED.index(name)].tolist()]
        if name in NUMBERED:
            return self._numbers[:, NUMBERED.index(name)].tolist()
        if name == "text":
            return [self.text_of(row) for row in range(len(self))]
        return [getattr(clause, name) for clause in self]

    def factorize(self, name: str) -> tuple[list, np.ndarray]:
        if name not in CODED:
            return factorize_values(self.column(name))
        codes = self._codes[:, CODED.index(name)]
        if not len(codes):
            return [], np.zeros(0, np.int64)
        present, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # the codes present, by first appearance
        renumber = np.empty(len(order), dtype=np.int64)
        renumber[order] = np.arange(len(order))
        values = self._values[name]
        return [values[code] for code in present[order].tolist()], renumber[inverse.reshape(-1)]


def column(clauses: Sequence[Clause], name: str) -> list:
    """Field ``name`` of every clause, in order (read from the columns of a :class:`ClauseTable`)."""
    if isinstance(clauses, ClauseTable):
        return clauses.column(name)
    return [getattr(clause, name) for clause in clauses]


def factorize(clauses: Sequence[Clause], name: str) -> tuple[list, np.ndarray]:
    """(distinct values of field ``name`` in order of first appearance, each clause's int64 position
    in that list)."""
    if isinstance(clauses, ClauseTable):
        return clauses.factorize(name)
    return factorize_values(column(clauses, name))


def factorize_values(values: list) -> tuple[list, np.ndarray]:
    """(distinct ``values`` in order of first appearance, each value's int64 position in that list)."""
    positions: dict[Any, int] = {}
    codes = np.fromiter((positions.setdefault(v, len(positions)) for v in values), dtype=np.int64, count=len(values))
    return list(positions), codes
