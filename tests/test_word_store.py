"""jieba's word store: questions are cut exactly as by a loaded jieba, without loading its dictionary,
and a missing or damaged store only means the slower path."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import lexical
from assistant.lexical import ChineseTokenizer
from assistant.word_store import StoredFrequencies, store_path, stored_tokenizer, write_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loaded():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@pytest.fixture(scope="module")
def store(loaded, tmp_path_factory):
    return write_store(loaded, tmp_path_factory.mktemp("words") / "words.sqlite")


def _texts() -> list[str]:
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    corpus = [line for path in sorted((ROOT / "corpus").glob("*.txt"))
              for line in path.read_text(encoding="utf-8").splitlines()[:400] if line.strip()]
    return questions + corpus


def test_the_stored_tokenizer_cuts_exactly_as_the_loaded_one(store):
    terms = tuple(ChineseTokenizer().user_terms)
    full = lexical._jieba_with_terms(terms)
    stored = lexical._add_user_terms(stored_tokenizer(store), terms)
    assert stored.total == full.total
    texts = _texts()
    assert len(texts) > 2000
    different = [t for t in texts if list(stored.cut_for_search(t, HMM=True)) != list(full.cut_for_search(t, HMM=True))]
    assert different == []
    assert "地源热泵" in stored.FREQ and "地源热泵" not in StoredFrequencies(store)  # a user term, held in memory only


def test_a_damaged_or_missing_store_is_only_the_slower_path(store, tmp_path):
    assert stored_tokenizer(tmp_path / "absent.sqlite") is None
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(store.read_bytes()[: store.stat().st_size // 3])
    assert stored_tokenizer(truncated) is None
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 100)
    assert stored_tokenizer(garbage) is None


def test_the_store_is_named_for_the_installed_jieba(monkeypatch, tmp_path):
    import jieba

    first = store_path(tmp_path)
    monkeypatch.setattr(jieba, "__version__", jieba.__version__ + ".post1")
    assert store_path(tmp_path) != first and store_path(tmp_path).parent == first.parent


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_a_one_shot_search_does_not_load_the_jieba_dictionary(bundled_index, loaded, mode):
    """With the store on disk (an index build writes it), `search` never unmarshals jieba's
    dictionary, and finds the same clauses as a process that loads it."""
    if not store_path().is_file():
        write_store(loaded, store_path())
    args = ["search", "地源热泵系统由哪个部门负责管理", "--index", str(bundled_index), "--json", "--mode", mode]
    run = f"from assistant.cli import main\nsys.exit(main({args!r}))\n"
    no_loading = ("import sys, jieba\n"
                  "def refuse(self, *args, **kwargs):\n"
                  "    raise SystemExit('jieba dictionary loaded')\n"
                  "jieba.Tokenizer.initialize = refuse\n") + run
    no_store = "import sys, assistant.word_store as w\nw.stored_tokenizer = lambda path=None: None\n" + run
    outputs = []
    for script in (no_loading, no_store):
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append([h["clause_id"] for h in json.loads(done.stdout)["hits"]])
    assert outputs[0] == outputs[1] and outputs[0]
