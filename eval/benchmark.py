"""Retrieval benchmark: build times, query latency, memory, encoder throughput, HNSW vs flat.

    python eval/benchmark.py                       # scales 1, 10, 100; prints a table, writes JSON
    python eval/benchmark.py --scales 1 --queries 50 --out /tmp/bench.json

Each scale runs in its own subprocess so that its peak memory (ru_maxrss) is its own.

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
    from assistant.types import SourceFile

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
                doc_title=vary(c.doc_title, replica), text=vary(c.text, replica), index_text=vary(c.index_text, replica), city=city,
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


# --- one scale (runs in a subprocess) --------------------------------------------------------------

def run_scale(scale: int, n_queries: int, workdir: Path, hnsw: bool) -> dict:
    from assistant.corpus import load_corpus
    from assistant.dense import DenseIndex
    from assistant.embedding import encoder_threads, load_embedder
    from assistant.indexing import build_index

    result: dict = {"scale": scale, "threads": encoder_threads(), "loadavg_1m": os.getloadavg()[0]}
    started = time.perf_counter()
    embedder = load_embedder()
    result["model_load_s"] = round(time.perf_counter() - started, 2)
    queries = load_queries(n_queries)
    result["queries"] = len(queries)

    if scale == 1:
        corpus_dir = workdir / "corpus"
        shutil.copytree(CORPUS, corpus_dir)
        index_dir = workdir / "index" / "default"
        started = time.perf_counter()
        retriever = build_index(corpus_dir, index_dir, embedder=embedder, progress=False).retriever
        result["cold_build_s"] = round(time.perf_counter() - started, 2)
        stats = retriever.build_stats
        texts = [c.index_text for c in retriever.clauses]
        chars = sum(len(t) for t in texts)
        result["clauses"] = len(retriever.clauses)
        result["encode_s"] = stats["encode_seconds"]
        result["encoder_clauses_per_s"] = round(len(texts) / stats["encode_seconds"], 1)
        result["encoder_chars_per_s"] = round(chars / stats["encode_seconds"])
        result["encoded_chars"] = chars

        shutil.rmtree(index_dir)
        started = time.perf_counter()
        build_index(corpus_dir, index_dir, embedder=embedder, progress=False).retriever
        result["warm_rebuild_s"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        build_index(corpus_dir, index_dir, embedder=embedder, progress=False).retriever
        result["up_to_date_check_s"] = round(time.perf_counter() - started, 2)

        first_file = sorted(corpus_dir.glob("*.txt"))[0]
        with open(first_file, "a", encoding="utf-8") as handle:
            handle.write("第九十九条 本办法由市住房和城乡建设局负责解释，自发布之日起施行。\n")
        started = time.perf_counter()
        updated = build_index(corpus_dir, index_dir, embedder=embedder, progress=False)
        result["incremental_rebuild_s"] = round(time.perf_counter() - started, 2)
        result["incremental_encoded"] = updated.encoded
    else:
        base = load_corpus(CORPUS)
        base_dir = workdir / "base-index"
        base_retriever = build_index(CORPUS, base_dir, embedder=embedder, progress=False, corpus=base).retriever
        corpus, origin = scale_corpus(base, scale)
        perturbed = PerturbedEmbedder(embedder, base_retriever.dense.vectors,
                                      [c.index_text for c in corpus.clauses], origin)
        del base_retriever
        index_dir = workdir / "index" / f"x{scale}"
        started = time.perf_counter()
        build_index(workdir / "synthetic", index_dir, embedder=perturbed, progress=False, corpus=corpus).retriever
        result["build_s_vectors_synthesized"] = round(time.perf_counter() - started, 2)
        result["clauses"] = len(corpus.clauses)
        result["corpus_chars"] = sum(len(c.index_text) for c in corpus.clauses)
        del corpus, origin
        embedder_for_queries = perturbed

    started = time.perf_counter()
    from assistant.retriever import Retriever
    from assistant.store import load_index

    retriever = Retriever(load_index(index_dir), embedder if scale == 1 else embedder_for_queries)
    result["load_s"] = round(time.perf_counter() - started, 2)
    result["index_mb"] = dir_size_mb(index_dir)
    result["dense_index"] = retriever.dense.kind
    result["latency"] = measure_queries(retriever, queries)
    result["peak_rss_mb"] = round(peak_rss_mb())  # build + load + queries, before the HNSW probe below

    if hnsw:
        vectors = retriever.dense.vectors
        query_vectors = embedder.encode(queries)
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
        result["peak_rss_mb_with_hnsw_probe"] = round(peak_rss_mb())
    return result


# --- driver ------------------------------------------------------------------------------------------

def format_table(results: list[dict]) -> str:
    lines = []
    header = "| scale | clauses | build s | warm rebuild s | load s | bm25 p50/p95 ms | dense p50/p95 ms | hybrid p50/p95 ms | peak RSS MB | index MB |"
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
            f"{lat['hybrid']['p50_ms']} / {lat['hybrid']['p95_ms']} | {r['peak_rss_mb']} | {r['index_mb']} |"
        )
    for r in results:
        if r.get("scale") == 1 and "error" not in r:
            lines.append("")
            lines.append(
                f"x1: model load {r['model_load_s']} s; encoder {r['encoder_clauses_per_s']} clauses/s, "
                f"{r['encoder_chars_per_s']} chars/s on {r['threads']} cores (one worker process each) ({r['encoded_chars']} chars in {r['encode_s']} s); "
                f"up-to-date check {r['up_to_date_check_s']} s; incremental rebuild {r['incremental_rebuild_s']} s "
                f"({r['incremental_encoded']} clauses encoded)"
            )
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
    parser.add_argument("--no-hnsw", action="store_true", help="skip the HNSW-vs-flat measurement")
    parser.add_argument("--out", default=None, help="write the JSON here too")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        result = run_scale(args.worker, args.queries, Path(args.workdir), hnsw=not args.no_hnsw and args.worker > 1)
        print(json.dumps(result, ensure_ascii=False))
        return 0

    results = []
    for scale in [int(s) for s in args.scales.split(",") if s.strip()]:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-x{scale}-"))
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(scale), "--workdir", str(workdir),
                   "--queries", str(args.queries)] + (["--no-hnsw"] if args.no_hnsw else [])
        print(f"running scale x{scale} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        shutil.rmtree(workdir, ignore_errors=True)
        if done.returncode != 0:
            results.append({"scale": scale, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"})
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
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
