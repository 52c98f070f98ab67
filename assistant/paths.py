"""Default locations, relative to the working directory (the project root in the Quick start)."""

from pathlib import Path

DEFAULT_CORPUS_DIR = Path("corpus")
DEFAULT_INDEX_DIR = Path("index/default")
DEFAULT_QA_FILE = Path("eval/qa.jsonl")
