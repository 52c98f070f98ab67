"""The word lists and patterns in assistant/data/ load once, and a bad entry names its file and line."""

from __future__ import annotations

import shutil

import pytest

from assistant.lexicon import DATA_DIR, load_lexicon


def test_fact_kinds_load_by_role_with_one_number_row():
    lexicon = load_lexicon()
    assert [k.name for k in lexicon.fact_kinds][:4] == ["amount", "date", "unit", "condition"]
    assert all(k.role == "intent" for k in lexicon.intent_kinds)
    assert lexicon.number_kind is not None and lexicon.number_kind.role == "number"
    assert lexicon.number_kind not in lexicon.fact_kinds + lexicon.intent_kinds


def test_an_unknown_role_or_a_missing_column_is_refused(tmp_path):
    shutil.copytree(DATA_DIR, tmp_path / "data")
    kinds = tmp_path / "data" / "fact_kinds.tsv"
    original = kinds.read_text(encoding="utf-8")
    kinds.write_text(original + "money\tabstain\t多少\t元\n", encoding="utf-8")
    with pytest.raises(ValueError, match="role must be fact, intent or number"):
        load_lexicon(tmp_path / "data")
    kinds.write_text(original + "money\tnumber\t多少\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fact_kinds\.tsv:\d+: expected 4"):
        load_lexicon(tmp_path / "data")


def test_open_value_phrases_are_one_pattern_and_a_bad_one_names_its_line(tmp_path):
    lexicon = load_lexicon()
    assert lexicon.open_value.search("由企业所属市、区给予一定奖励")
    assert lexicon.open_value.search("具体补助标准由市粮食局、财政局研究确定")
    assert not lexicon.open_value.search("给予 10 万元一次性奖励")
    shutil.copytree(DATA_DIR, tmp_path / "data")
    phrases = tmp_path / "data" / "open_value_phrases.txt"
    phrases.write_text(phrases.read_text(encoding="utf-8") + "另行(制定\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"open_value_phrases\.txt: pattern \d+ .*does not compile"):
        load_lexicon(tmp_path / "data")
