"""The query-time encoder for BERT sentence models, in numpy: the same weights, without torch.

Importing torch and sentence-transformers costs several seconds per process, which a one-shot
``search`` or ``ask`` would pay to encode one question and a few dozen sentences. This module runs
the forward pass of a saved sentence-transformers BERT model (``BertModel`` weights in
``model.safetensors``, ``tokenizer.json``, mean pooling, Normalize, the model's prompts) with numpy
and the ``tokenizers`` library. The weights are memory-mapped, so only the vocabulary rows a text
uses are read from the 250k-row embedding table.

Bulk encoding (building an index) stays on torch under bf16, which is several times faster for
thousands of texts; the two agree to float tolerance (tests/test_numpy_encoder.py).

>>> encoder = NumpyBertEncoder.from_directory(path, model_id)   # a directory assistant.e5 wrote
>>> encoder.encode_queries(["小微企业贷款能延期吗"]).shape
(1, 384)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16}
BATCH_SIZE = 16


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only memory-mapped array (no copy)."""
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_size)
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] not in _SAFETENSORS_DTYPES:
            raise AssistantError(f"{path}: tensor {name} has dtype {spec['dtype']}, which the numpy encoder does not read")
        start, end = spec["data_offsets"]
        tensors[name] = data[start:end].view(_SAFETENSORS_DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


# erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below float32 rounding of BERT's
# activations): importing scipy.special for the exact one cost a one-shot command ~0.2 s.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    # In place on two temporaries (the same operations in the same order as the textbook form, so
    # the same bits): this runs on every (batch, length, 1536) activation of every layer, and
    # allocating a fresh array per step made it ~3x slower.
    a = np.abs(x)
    t = _ERF_P * a
    t += 1.0
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = (np.float32(c) for c in _ERF_A)
    poly = t * a5
    for c in (a4, a3, a2):
        poly += c
        poly *= t
    poly += a1
    poly *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(1.0, poly, out=poly)
    return np.copysign(poly, x, out=poly).astype(x.dtype, copy=False)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    out = _erf(x / np.sqrt(2.0, dtype=x.dtype))
    out += 1.0
    out *= x
    out *= 0.5
    return out


class NumpyBertEncoder:
    """Encodes texts to L2-normalised float32 vectors, as :class:`assistant.embedding.Embedder` does."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict, tokenizer, prompts: dict[str, str], model_id: str):
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            raise AssistantError("the numpy encoder runs BERT models with absolute positions only")
        self.tensors = tensors
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = int(config.get("max_position_embeddings", 512))
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        self.prompts = prompts
        self.model_id = model_id
        self.dimension = int(config["hidden_size"])

    @classmethod
    def from_directory(cls, path: str | Path, model_id: str) -> NumpyBertEncoder:
        """A saved sentence-transformers model: BERT weights, tokenizer.json, mean pooling + Normalize."""
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text(encoding="utf-8"))]
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
            st_config = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            tensors = read_safetensors(path / "model.safetensors")
        except (OSError, ValueError, KeyError) as error:
            raise AssistantError(f"cannot read the model in {path} for the numpy encoder ({error})") from None
        if modules != ["Transformer", "Pooling", "Normalize"] or pooling.get("pooling_mode", "mean") != "mean":
            raise AssistantError(f"the numpy encoder runs Transformer → mean Pooling → Normalize models, not {modules}")
        return cls(tensors, config, tokenizer, dict(st_config.get("prompts") or {}), model_id)

    def _weight(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, normalised vectors of a padded (batch, length) id matrix."""
        w = self._weight
        batch, length = ids.shape
        x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[:length]
        x = x + w("embeddings.token_type_embeddings.weight")[0]
        x = _layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), self.eps)
        head_size = self.dimension // self.heads
        # padded keys get -inf-like scores so softmax ignores them
        key_bias = np.where(mask[:, None, None, :], 0.0, -1e9).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(head_size))
        for n in range(self.layers):
            p = f"encoder.layer.{n}."

            def linear(h, name):  # on 2-D rows, so numpy hands the product to BLAS in one call
                rows = h.reshape(-1, h.shape[-1]) @ w(p + name + ".weight").T + w(p + name + ".bias")
                return rows.reshape(batch, length, -1)

            def split(h):  # contiguous per head: numpy's stacked matmul uses BLAS only then
                return np.ascontiguousarray(h.reshape(batch, length, self.heads, head_size).transpose(0, 2, 1, 3))

            q = split(linear(x, "attention.self.query"))
            k = split(linear(x, "attention.self.key"))
            v = split(linear(x, "attention.self.value"))
            scores = (q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2))) * scale + key_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimension)
            x = _layer_norm(x + linear(context, "attention.output.dense"),
                            w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias"), self.eps)
            hidden = _gelu(linear(x, "intermediate.dense"))
            x = _layer_norm(x + linear(hidden, "output.dense"),
                            w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), self.eps)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch([prompt + t for t in texts])
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            length = int(lengths[rows].max())
            ids = np.ones((len(rows), length), dtype=np.int64)  # pad id; masked out
            mask = np.zeros((len(rows), length), dtype=bool)
            for i, row in enumerate(rows):
                ids[i, : lengths[row]] = encodings[row].ids
                mask[i, : lengths[row]] = True
            out[rows] = self._forward(ids, mask)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dimension) float32 unit rows for questions (the model's "query" prompt, if any)."""
        return self._encode(texts, self.prompts.get("query", ""))

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(N, dimension) float32 unit rows for passages (the model's "passage" prompt, if any)."""
        return self._encode(texts, self.prompts.get("passage", ""))

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encode_passages(texts)

    def __repr__(self) -> str:
        return f"NumpyBertEncoder({self.model_id!r}, dimension={self.dimension})"


def light_query_encoder(model_source: str | None) -> NumpyBertEncoder | None:
    """The numpy encoder for an index's model when it is the default e5 (None for any other model,
    which then runs on torch)."""
    from assistant.e5 import DEFAULT_NAMES, ensure_e5_model, model_id

    if model_source not in DEFAULT_NAMES:
        return None
    path = ensure_e5_model()
    return NumpyBertEncoder.from_directory(path, model_id(path))
