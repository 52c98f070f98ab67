"""The numpy query encoder: the same vectors as the torch path, and one-shot commands without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.numpy_encoder import NumpyBertEncoder, light_query_encoder

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "小微企业贷款能延期还本付息吗",
    "地源热泵项目谁来审批",
    "第六条 对采用地源热泵系统的项目，系统用电和水资源费享受市政府有关优惠政策。",
    "Ａ",  # one character: the shortest sequence next to the longest in one padded batch
    "用人单位安排残疾人就业未达到规定比例的，" * 60,  # over 512 tokens: truncated as torch does
]


@pytest.fixture(scope="module")
def encoders():
    from assistant.embedding import load_embedder

    light = light_query_encoder(None)
    assert light is not None
    return light, load_embedder(None)


def _float32_vectors(embedder, encode):
    bf16 = embedder.bf16
    embedder.bf16 = False
    try:
        return encode()
    finally:
        embedder.bf16 = bf16


def test_numpy_vectors_match_the_torch_vectors(encoders):
    light, torch_embedder = encoders
    assert light.model_id == torch_embedder.model_id and light.dimension == torch_embedder.dimension
    for kind in ("encode_queries", "encode_passages"):
        ours = getattr(light, kind)(TEXTS)
        exact = _float32_vectors(torch_embedder, lambda: getattr(torch_embedder, kind)(TEXTS))
        stored = getattr(torch_embedder, kind)(TEXTS)  # bf16, as the index's vectors are made
        assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), light.dimension)
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert (ours * exact).sum(axis=1).min() > 0.99999, kind
        assert (ours * stored).sum(axis=1).min() > 0.999, kind
    # queries and passages differ by the e5 prompt
    assert float(light.encode_queries(TEXTS[:1])[0] @ light.encode_passages(TEXTS[:1])[0]) < 0.999


def test_the_light_path_is_only_for_the_default_encoder():
    assert light_query_encoder("use") is None
    assert light_query_encoder("/some/other/model") is None
    assert light_query_encoder("e5") is not None


def test_an_unreadable_model_directory_is_a_clear_error(tmp_path):
    from assistant.errors import AssistantError

    with pytest.raises(AssistantError, match="numpy encoder"):
        NumpyBertEncoder.from_directory(tmp_path, "x")


@pytest.mark.parametrize("command, mode", [("search", "hybrid"), ("search", "bm25"), ("ask", None)])
def test_one_shot_commands_do_not_import_torch(bundled_index, command, mode):
    """`search` and `ask` answer with the light encoder; torch (seconds to import) is never loaded."""
    args = [command, "小微企业贷款能延期还本付息吗", "--index", str(bundled_index), "--json"]
    if mode:
        args += ["--mode", mode]
    script = (
        "import sys, json\n"
        "from assistant.cli import main\n"
        f"code = main({args!r})\n"
        "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "torch": False}
    payload = json.loads(run.stdout)
    assert payload["hits"] if command == "search" else payload["quotes"]


def test_the_light_encoder_searches_like_torch(bundled_index):
    from assistant.retriever import Retriever

    questions = ["小微企业贷款能延期还本付息吗", "地源热泵项目谁来审批", "残疾人就业保障金怎么减免"]
    light = Retriever.load(bundled_index, light_query_encoder=True)
    heavy = Retriever.load(bundled_index)
    assert type(light.embedder).__name__ == "NumpyBertEncoder" and type(heavy.embedder).__name__ == "Embedder"
    for question in questions:
        ids = [[h.clause.clause_id for h in r.search(question, k=5)] for r in (light, heavy)]
        assert ids[0] == ids[1], question


def test_the_erf_gelu_matches_the_exact_one():
    from scipy.special import erf

    from assistant.numpy_encoder import _gelu

    x = np.concatenate([np.linspace(-12, 12, 20001), [0.0, -0.0, 1e-8, -1e-8]]).astype(np.float32)
    exact = 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    ours = _gelu(x)
    assert ours.dtype == np.float32
    assert np.abs(ours - exact).max() < 2e-6
