"""Retrieval benchmark: build times, query latency, memory, encoder throughput, HNSW vs flat.

    python eval/benchmark.py                       # scales 1, 10, 100; prints a table, writes JSON
    python eval/benchmark.py --scales 1 --queries 50 --out /tmp/bench.json
    python eval/benchmark.py --scales 100 --cli-runs 0 --keep /tmp/bench   # keeps /tmp/bench/x100/index/x100
    python eval/benchmark.py --load-worker 100 --workdir /tmp/bench/x100/index/x100 --no-hnsw   # time its load again

Each scale is built in one subprocess and loaded and queried in a fresh one, so that each peak
memory (ru_maxrss) is that phase's own. At x1 the same run times whole CLI commands (median of
``--cli-runs``) and the baseline peer's build and queries, so the ratios come from one run.

- scale 1 (the bundled corpus, real encoding): cold build (empty embedding cache, encoder already
  loaded; model load reported separately), warm rebuild (index deleted, embedding cache kept),
  up-to-date check, incremental rebuild after appending a clause to one file; encoder throughput.
- scale 10 / 100: the bundled documents replicated with varied text (numbers shifted, city names
  replaced, sentence order rotated, a replica tag in each clause). Their dense vectors are NOT
  encoded: each is the original clause's cached USE vector plus Gaussian noise (cosine ~0.9 to
  the original), re-normalised. BM25 (jieba tokenisation included) and FAISS are built for real
  through indexing.build_index, and queries are encoded for real.
- query latency: the eval questions, k=10, per mode, including query encoding.
- HNSW: build time, per-query latency and recall@10 against exact search on the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "corpus"
QA_CANDIDATES = [ROOT / "eval" / "qa.jsonl", *sorted((ROOT / "eval" / "qa_parts").glob("*.jsonl"))]
FALLBACK_QUERIES = ["小微企业贷款能延期还本付息吗", "公司15个人没招残疾人，残保金要交吗", "地源热泵项目谁来审批", "稳岗返还怎么申请"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_queries(limit: int) -> list[str]:
    """The eval set's questions (eval/qa.jsonl, else the parts under eval/qa_parts/)."""
    questions: list[str] = []
    paths = [QA_CANDIDATES[0]] if QA_CANDIDATES[0].is_file() else QA_CANDIDATES[1:]
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return (questions or FALLBACK_QUERIES)[:limit]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def measure_queries(retriever, queries: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in ("bm25", "dense", "hybrid"):
        for query in queries[:3]:  # warm-up (first BLAS / jieba calls)
            retriever.search(query, k=10, mode=mode)
        times = []
        for query in queries:
            started = time.perf_counter()
            retriever.search(query, k=10, mode=mode)
            times.append(time.perf_counter() - started)
        out[mode] = percentiles(times)
    return out


def dir_size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


# --- synthetic scale-up ----------------------------------------------------------------------------

CITY_NAMES = ["洛阳市", "开封市", "新乡市", "焦作市", "许昌市", "南阳市", "信阳市", "商丘市", "周口市", "濮阳市",
              "漯河市", "驻马店市", "平顶山市", "济源市"]
_CITY = re.compile(r"(鹤壁|郑州|安阳|三门峡)(市)?")
_NUMBER = re.compile(r"\d+")
_SENTENCE = re.compile(r"(?<=[。；])")


def vary(text: str, replica: int) -> str:
    city = CITY_NAMES[replica % len(CITY_NAMES)].rstrip("市")
    text = _CITY.sub(lambda m: city + (m.group(2) or ""), text)
    text = _NUMBER.sub(lambda m: str(int(m.group()) + replica) if len(m.group()) < 9 else m.group(), text)
    sentences = [s for s in _SENTENCE.split(text) if s]
    if len(sentences) > 2:
        shift = replica % (len(sentences) - 1)
        sentences = sentences[:1] + sentences[1:][shift:] + sentences[1:][:shift]
    return "".join(sentences) + f"（副本{replica}）"


class SyntheticCorpus:
    def __init__(self, files, documents, clauses):
        self.files, self.documents, self.clauses = files, documents, clauses
        self.noise, self.skipped = {}, []


def scale_corpus(corpus, scale: int):
    """corpus x scale: the originals plus (scale - 1) varied replicas of every document.

    Returns the corpus and, for each clause, (row of its original clause, replica number).
    """
    from assistant.types import SourceFile, index_text_of

    files, documents, clauses, origin = list(corpus.files), list(corpus.documents), list(corpus.clauses), []
    origin = [(i, 0) for i in range(len(clauses))]
    for replica in range(1, scale):
        for f in corpus.files:
            files.append(SourceFile(f"x{replica:03d}_{f.name}", (), f"{replica:08x}{f.sha256[8:]}"))
        city = CITY_NAMES[replica % len(CITY_NAMES)]
        for d in corpus.documents:
            documents.append(replace(d, doc_id=f"{d.doc_id}~{replica}", source=f"x{replica:03d}_{d.source}",
                                     title=vary(d.title, replica), lines=(), city=city))
        for i, c in enumerate(corpus.clauses):
            clauses.append(replace(
                c, clause_id=f"{c.clause_id}~{replica}", doc_id=f"{c.doc_id}~{replica}", source=f"x{replica:03d}_{c.source}",
                doc_title=vary(c.doc_title, replica), text=vary(c.text, replica), city=city,
                index_text=index_text_of(vary(c.doc_title, replica), c.section_path, vary(c.text, replica)),
            ))
            origin.append((i, replica))
    return SyntheticCorpus(files, documents, clauses), origin


class PerturbedEmbedder:
    """Vectors for synthetic clauses = original clause vector + noise; anything else (queries) really encoded."""

    def __init__(self, real, base_vectors: np.ndarray, texts: list[str], origin: list[tuple[int, int]], sigma: float = 0.021):
        self.real = real
        self.model_id = real.model_id + "+perturbed-benchmark"
        self.dimension = real.dimension
        self.base = base_vectors
        self.lookup = {t: o for t, o in zip(texts, origin)}
        self.sigma = sigma

    def encode(self, texts, *, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        unknown = []
        for n, text in enumerate(texts):
            found = self.lookup.get(text)
            if found is None:
                unknown.append(n)
                continue
            row, replica = found
            vector = self.base[row]
            if replica:
                noise = np.random.default_rng(row * 1000 + replica).standard_normal(self.dimension).astype(np.float32)
                vector = vector + self.sigma * noise
            out[n] = vector / np.linalg.norm(vector)
        if unknown:
            out[unknown] = self.real.encode([texts[n] for n in unknown])
        return out


# --- one scale: a build process, then a fresh load process ------------------------------------------

def run_build(scale: int, workdir: Path) -> dict:
    """Build the scale's index into ``workdir/index/x<scale>`` (its own process: peak RSS is the build's)."""
    from assistant.corpus import load_corpus
    from assistant.embedding import encoder_threads, load_embedder
    from assistant.indexing import build_index

    result: dict = {"scale": scale, "threads": encoder_threads(), "loadavg_1m": os.getloadavg()[0]}
    started = time.perf_counter()
    embedder = load_embedder()
    result["model_load_s"] = round(time.perf_counter() - started, 2)
    index_dir = workdir / "index" / f"x{scale}"
    if scale == 1:
        corpus_dir = workdir / "corpus"
        shutil.copytree(CORPUS, corpus_dir)
        cold = build_index(corpus_dir, index_dir, embedder=embedder, progress=False)
        result["cold_build_s"] = cold.seconds
        texts = [c.index_text for c in cold.retriever.clauses]
        chars = sum(len(t) for t in texts)
        result["clauses"] = len(texts)
        result["encode_s"] = cold.encode_seconds
        result["encoder_clauses_per_s"] = round(len(texts) / cold.encode_seconds, 1)
        result["encoder_chars_per_s"] = round(chars / cold.encode_seconds)
        result["encoded_chars"] = chars
        del cold

        shutil.rmtree(index_dir)  # the embedding cache beside it stays
        result["warm_rebuild_s"] = build_index(corpus_dir, index_dir, embedder=embedder, progress=False).seconds
        result["up_to_date_check_s"] = round(build_index(corpus_dir, index_dir, embedder=embedder, progress=False).seconds, 2)

        first_file = sorted(corpus_dir.glob("*.txt"))[0]
        with open(first_file, "a", encoding="utf-8") as handle:
            handle.write("第九十九条 本办法由市住房和城乡建设局负责解释，自发布之日起施行。\n")
        updated = build_index(corpus_dir, index_dir, embedder=embedder, progress=False)
        result["incremental_rebuild_s"] = updated.seconds
        result["incremental_encoded"] = updated.encoded
    else:
        base = load_corpus(CORPUS)
        base_retriever = build_index(CORPUS, workdir / "base-index", embedder=embedder, progress=False, corpus=base).retriever
        corpus, origin = scale_corpus(base, scale)
        perturbed = PerturbedEmbedder(embedder, base_retriever.dense.vectors,
                                      [c.index_text for c in corpus.clauses], origin)
        del base_retriever
        started = time.perf_counter()
        build_index(workdir / "synthetic", index_dir, embedder=perturbed, progress=False, corpus=corpus)
        result["build_s_vectors_synthesized"] = round(time.perf_counter() - started, 2)
        result["clauses"] = len(corpus.clauses)
        result["corpus_chars"] = sum(len(c.index_text) for c in corpus.clauses)
        shutil.rmtree(workdir / "base-index", ignore_errors=True)
    result["index_dir"] = str(index_dir)
    result["index_mb"] = dir_size_mb(index_dir)
    result["build_peak_rss_mb"] = round(peak_rss_mb())
    return result


class QueryEncoder:
    """The real encoder under the id of a synthetic index (whose passage vectors were perturbed copies)."""

    def __init__(self, real, model_id: str):
        self.real, self.model_id, self.dimension = real, model_id, real.dimension

    def encode(self, texts, **options):
        return self.real.encode(texts, **options)

    def encode_queries(self, texts):
        return self.real.encode_queries(texts)


def run_load(scale: int, index_dir: Path, n_queries: int, hnsw: bool) -> dict:
    """Open the built index in this fresh process and query it: load time, latency, peak RSS."""
    from assistant.dense import DenseIndex
    from assistant.embedding import load_embedder
    from assistant.retriever import Retriever
    from assistant.store import load_index, read_manifest

    queries = load_queries(n_queries)
    embedder = QueryEncoder(load_embedder(), read_manifest(index_dir)["model_id"])
    embedder.encode_queries(queries[:1])  # the model's first call, not the index's load
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    retriever = Retriever(load_index(index_dir), embedder)
    result: dict = {"load_s": round(time.perf_counter() - started, 2), "queries": len(queries),
                    "dense_index": retriever.dense.kind, "rss_before_load_mb": round(rss_before)}
    result["latency"] = measure_queries(retriever, queries)
    result["load_peak_rss_mb"] = round(peak_rss_mb())  # encoder + index + queries

    if scale == 1:
        from assistant.baseline import BaselineRetriever

        started = time.perf_counter()
        baseline = BaselineRetriever.build(CORPUS)
        result["baseline_build_s"] = round(time.perf_counter() - started, 2)
        for query in queries[:3]:
            baseline.search(query, k=10)
        times = []
        for query in queries:
            started = time.perf_counter()
            baseline.search(query, k=10)
            times.append(time.perf_counter() - started)
        result["baseline_latency"] = percentiles(times)

    if hnsw:
        vectors = retriever.dense.vectors
        query_vectors = embedder.encode_queries(queries)
        flat = DenseIndex.build(vectors, kind="flat")
        started = time.perf_counter()
        graph = DenseIndex.build(vectors, kind="hnsw")
        build_s = time.perf_counter() - started
        recall, flat_t, graph_t = [], [], []
        for q in query_vectors:
            t0 = time.perf_counter(); _, exact = flat.search(q, 10); flat_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); _, approx = graph.search(q, 10); graph_t.append(time.perf_counter() - t0)
            recall.append(len(set(exact.tolist()) & set(approx.tolist())) / 10)
        result["hnsw"] = {
            "build_s": round(build_s, 2),
            "recall_at_10": round(float(np.mean(recall)), 4),
            "flat": percentiles(flat_t),
            "hnsw": percentiles(graph_t),
        }
    return result


# --- whole commands on the x1 index (process start to output) ---------------------------------------

CLI_QUESTION = "小微企业贷款能延期还本付息吗"


def _median_run(command: list[str], runs: int) -> dict:
    subprocess.run(command, capture_output=True, cwd=ROOT)  # warm-up: OS cache, first-use conversions
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return {"median_s": round(float(np.median(times)), 2), "min_s": round(min(times), 2), "max_s": round(max(times), 2)}


def _serve_until_url(index_dir: Path, port: int) -> float:
    """Seconds from process start to the page URL line (printed once the page serves)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--index", str(index_dir), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        for line in process.stdout:
            if "页面 / page" in line:
                return time.perf_counter() - started
        raise RuntimeError("serve exited before printing the page URL")
    finally:
        process.terminate()
        process.wait(30)


def run_cli(index_dir: Path, runs: int) -> dict:
    base = [sys.executable, "-m", "assistant"]
    out = {
        "search_hybrid": _median_run(base + ["search", CLI_QUESTION, "--index", str(index_dir), "--json"], runs),
        "search_bm25": _median_run(base + ["search", CLI_QUESTION, "--index", str(index_dir), "--mode", "bm25", "--json"], runs),
        "ask": _median_run(base + ["ask", CLI_QUESTION, "--index", str(index_dir), "--json"], runs),
    }
    _serve_until_url(index_dir, 7899)  # warm-up
    times = [_serve_until_url(index_dir, 7899) for _ in range(runs)]
    out["serve_to_url"] = {"median_s": round(float(np.median(times)), 2), "min_s": round(min(times), 2),
                           "max_s": round(max(times), 2)}
    return out


# --- driver ------------------------------------------------------------------------------------------

def _worker(args: list[str]) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scale(scale: int, n_queries: int, hnsw: bool, cli_runs: int, keep: Path | None = None) -> dict:
    """Build in one process, load and query in a fresh one, then (x1) time whole CLI commands.
    With ``keep``, the work directory is ``keep/x<scale>`` and stays (to time loads again without
    rebuilding: ``--load-worker <scale> --workdir keep/x<scale>/index/x<scale>``)."""
    if keep is not None:  # an embedding cache left there by an earlier run is reused
        workdir = Path(keep) / f"x{scale}"
        for name in ("index", "corpus", "synthetic", "base-index"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-x{scale}-"))
    try:
        result = _worker(["--build-worker", str(scale), "--workdir", str(workdir)])
        if "error" in result:
            return {"scale": scale, **result}
        index_dir = result.pop("index_dir")
        loaded = _worker(["--load-worker", str(scale), "--workdir", index_dir, "--queries", str(n_queries)]
                         + ([] if hnsw else ["--no-hnsw"]))
        if "error" in loaded:
            return {"scale": scale, **result, "error": loaded["error"]}
        result.update(loaded)
        if scale == 1 and cli_runs:
            result["cli"] = run_cli(Path(index_dir), cli_runs)
        return result
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _fig(entry: dict | None) -> str:
    if not entry:
        return "-"
    if "error" in entry:
        return f"error: {entry['error'][:60]}"
    return f"{entry['median_s']} ({entry['min_s']}-{entry['max_s']})"


def format_table(results: list[dict]) -> str:
    lines = []
    header = ("| scale | clauses | build s | warm rebuild s | load s (fresh process) | bm25 p50/p95 ms | dense p50/p95 ms | "
              "hybrid p50/p95 ms | peak RSS MiB build / load | index MB |")
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| x{r['scale']} | error: {r['error'][:80]} |")
            continue
        lat = r["latency"]
        build = r.get("cold_build_s", r.get("build_s_vectors_synthesized"))
        build_note = "" if r["scale"] == 1 else " (vectors synthesized)"
        lines.append(
            f"| x{r['scale']} | {r['clauses']} | {build}{build_note} | {r.get('warm_rebuild_s', '-')} | {r['load_s']} | "
            f"{lat['bm25']['p50_ms']} / {lat['bm25']['p95_ms']} | {lat['dense']['p50_ms']} / {lat['dense']['p95_ms']} | "
            f"{lat['hybrid']['p50_ms']} / {lat['hybrid']['p95_ms']} | {r['build_peak_rss_mb']} / {r['load_peak_rss_mb']} | "
            f"{r['index_mb']} |"
        )
    for r in results:
        if r.get("scale") == 1 and "error" not in r:
            lines.append("")
            lines.append(
                f"x1: model load {r['model_load_s']} s; encoder {r['encoder_clauses_per_s']} clauses/s, "
                f"{r['encoder_chars_per_s']} chars/s on {r['threads']} cores ({r['encoded_chars']} chars in {r['encode_s']} s); "
                f"up-to-date check {r['up_to_date_check_s']} s; incremental rebuild {r['incremental_rebuild_s']} s "
                f"({r['incremental_encoded']} clauses encoded)"
            )
            if "baseline_build_s" in r:
                base = r["baseline_latency"]
                lines.append(
                    f"baseline peer (LangChain splitter + bm25s, no vectors): build {r['baseline_build_s']} s "
                    f"(assistant cold build / baseline: {r['cold_build_s'] / max(r['baseline_build_s'], 1e-9):.1f}x); "
                    f"query p50/p95 {base['p50_ms']} / {base['p95_ms']} ms (assistant hybrid / baseline p50: "
                    f"{r['latency']['hybrid']['p50_ms'] / max(base['p50_ms'], 1e-9):.1f}x)"
                )
            cli = r.get("cli")
            if cli:
                lines += ["", "| whole command (x1 index, median of runs after a warm-up, min-max) | seconds |", "|---|---|"]
                lines.append(f"| `search \"{CLI_QUESTION}\" --json` (hybrid) | {_fig(cli.get('search_hybrid'))} |")
                lines.append(f"| `search … --mode bm25 --json` | {_fig(cli.get('search_bm25'))} |")
                lines.append(f"| `ask \"{CLI_QUESTION}\" --json` | {_fig(cli.get('ask'))} |")
                lines.append(f"| `serve`: process start to page URL printed | {_fig(cli.get('serve_to_url'))} |")
    hnsw_rows = [r for r in results if "hnsw" in r]
    if hnsw_rows:
        lines += ["", "| scale | vectors | HNSW build s | recall@10 | flat p50/p95 ms | HNSW p50/p95 ms |", "|---|---|---|---|---|---|"]
        for r in hnsw_rows:
            h = r["hnsw"]
            lines.append(f"| x{r['scale']} | {r['clauses']} | {h['build_s']} | {h['recall_at_10']} | "
                         f"{h['flat']['p50_ms']} / {h['flat']['p95_ms']} | {h['hnsw']['p50_ms']} / {h['hnsw']['p95_ms']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--cli-runs", type=int, default=5, help="runs of each whole CLI command at x1 (0: skip)")
    parser.add_argument("--no-hnsw", action="store_true", help="skip the HNSW-vs-flat measurement")
    parser.add_argument("--out", default=None, help="write the JSON here too")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="build in DIR/x<scale> and keep it (the built index is DIR/x<scale>/index/x<scale>)")
    parser.add_argument("--build-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build_worker is not None:
        print(json.dumps(run_build(args.build_worker, Path(args.workdir)), ensure_ascii=False))
        return 0
    if args.load_worker is not None:
        hnsw = not args.no_hnsw and args.load_worker > 1
        print(json.dumps(run_load(args.load_worker, Path(args.workdir), args.queries, hnsw), ensure_ascii=False))
        return 0

    results = []
    for scale in [int(s) for s in args.scales.split(",") if s.strip()]:
        print(f"running scale x{scale} ...", file=sys.stderr, flush=True)
        results.append(run_scale(scale, args.queries, not args.no_hnsw, args.cli_runs,
                                 Path(args.keep) if args.keep else None))
    payload = {"command": "python eval/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "loadavg_1m": os.getloadavg()[0]},
               "results": results}
    print(json.dumps(payload, ensure_ascii=False, indent=1))
    print()
    print(format_table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
