"""Default locations, relative to the working directory (the project root in the Quick start)."""

import os
from pathlib import Path

DEFAULT_CORPUS_DIR = Path("corpus")
DEFAULT_INDEX_DIR = Path("index/default")
DEFAULT_QA_FILE = Path("eval/qa.jsonl")


def default_cache_dir() -> Path:
    """``$POLICY_ASSISTANT_CACHE`` or ``~/.cache/policy-assistant``: the root of the per-machine caches
    (the converted e5 model, jieba's word-frequency store)."""
    root = os.environ.get("POLICY_ASSISTANT_CACHE", "").strip()
    return Path(root).expanduser() if root else Path.home() / ".cache" / "policy-assistant"
