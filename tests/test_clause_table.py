"""assistant.clause_table: the columnar clause store reads back the clauses it was written from,
behaves like their list, and refuses a damaged file by name."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from assistant.clause_table import (ClauseTable, ClauseTableError, column, factorize, read_clause_table,
                                    write_clause_table)
from assistant.types import Clause
from conftest import make_tiny_corpus


def _clauses() -> list[Clause]:
    clauses = list(make_tiny_corpus().clauses)
    # every kind of value a field can hold: None and not, an empty section path, non-BMP text,
    # a split part, an index_text that is not the usual one, an empty text
    clauses[0] = replace(clauses[0], doc_number=None, city=None, section_path=(), text="𠀀𠀁 第一条\n换行", part=2)
    clauses[1] = replace(clauses[1], index_text="自定义的索引文本", city="郑州市", doc_number="郑政〔2016〕24号")
    clauses[2] = replace(clauses[2], text="")
    return clauses


@pytest.fixture
def written(tmp_path):
    clauses = _clauses()
    shas = [f"{n:064x}" for n in range(len(clauses))]
    write_clause_table(tmp_path / "clauses", clauses, shas)
    return tmp_path / "clauses", clauses, shas


def test_round_trip_equals_the_clause_list(written):
    directory, clauses, shas = written
    table, read_shas = read_clause_table(directory)
    assert isinstance(table, ClauseTable) and read_shas == shas
    assert table == clauses and clauses == table and not (table != clauses)
    assert [table[n] for n in range(len(table))] == clauses
    for field in ("clause_id", "doc_id", "source", "doc_title", "section_path", "label", "text", "index_text",
                  "line_start", "line_end", "doc_number", "city", "part"):
        assert column(table, field) == [getattr(c, field) for c in clauses], field
    assert type(table[0].line_start) is int and type(table[0].section_path) is tuple


def test_lazy_clauses_behave_like_the_list(written):
    directory, clauses, _ = written
    table, _ = read_clause_table(directory)
    assert len(table) == len(clauses)
    assert table[-1] == clauses[-1] and table[np.int64(1)] == clauses[1]
    assert table[1:4] == clauses[1:4] and table[::-2] == clauses[::-2]
    assert list(table) == clauses and list(reversed(table)) == clauses[::-1]
    assert clauses[3] in table and table.index(clauses[3]) == 3
    with pytest.raises(IndexError):
        table[len(clauses)]
    assert table != clauses[:-1] and table != [*clauses[:-1], replace(clauses[-1], text="另一段")]
    (from_table, table_codes), (from_list, list_codes) = factorize(table, "doc_id"), factorize(clauses, "doc_id")
    assert from_table == from_list and np.array_equal(table_codes, list_codes)
    values, codes = factorize(table, "city")
    assert [values[c] for c in codes] == [c.city for c in clauses]
    assert values == list(dict.fromkeys(c.city for c in clauses))  # in order of first appearance


def test_an_empty_table_round_trips(tmp_path):
    write_clause_table(tmp_path / "clauses", [], [])
    table, shas = read_clause_table(tmp_path / "clauses")
    assert len(table) == 0 and list(table) == [] and table == [] and shas == []
    assert factorize(table, "doc_id")[0] == [] and len(factorize(table, "doc_id")[1]) == 0


@pytest.mark.parametrize("name, damage, message", [
    ("text.bin", lambda raw: raw[:-3], "offsets.npy does not fit text.bin"),
    ("offsets.npy", lambda raw: raw[:-8], "offsets.npy does not load"),
    ("codes.npy", lambda raw: raw[: len(raw) // 2], "codes.npy does not load"),
    ("table.json", lambda raw: raw[:-10], "table.json does not parse"),
    ("text.bin", lambda raw: raw[:5] + b"\xff" + raw[6:], "text.bin is not valid UTF-8"),
])
def test_a_truncated_or_corrupted_file_is_refused_by_name(written, name, damage, message):
    directory = written[0]
    path = directory / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ClauseTableError, match=message):
        read_clause_table(directory)


def test_the_store_names_the_rebuild_command_for_a_damaged_table(tmp_path):
    """Through load_index: a clause table damaged past its (re-signed) checksums is refused with the
    rebuild command, not a traceback."""
    import json

    from assistant.errors import AssistantError
    from assistant.store import file_sha256, index_version_dir, load_index, quick_sha256
    from test_index_safety import build

    index_dir = tmp_path / "index"
    build(index_dir)
    directory = index_version_dir(index_dir)
    path = directory / "clauses" / "text.bin"
    raw = bytearray(path.read_bytes())
    raw[-1] = 0xFF
    path.write_bytes(bytes(raw))
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest["contents"]["clauses/text.bin"] = {"size": path.stat().st_size, "sha256": file_sha256(path),
                                                "quick_sha256": quick_sha256(path)}
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(AssistantError, match="clauses/text.bin is not valid UTF-8") as error:
        load_index(index_dir)
    assert f"rebuild it with: python -m assistant index build --index {index_dir}" in str(error.value)
