"""Sizing for docs/scale-out.md: what the bundled corpus measures here, and what that extrapolates to.

    python eval/scale_out.py --index /tmp/idx/e5            # measure (about a minute), then extrapolate
    python eval/scale_out.py --index /tmp/idx/e5 --sample 128 --json /tmp/scale_out.json
    python eval/scale_out.py --index /tmp/idx/e5 --no-encode   # sizes only (no encoder timing)

Two tables, kept apart:

1. **measured here** on an index of the bundled corpus (read only): clause count, BM25 index bytes
   on disk (clause + document indexes: bm25s CSC matrices and vocabularies), postings and
   tokens per clause, clause-store bytes (clauses/, or clauses.jsonl before format 4), e5 tokens per clause (the encoder's own
   tokenizer, truncated at its max length), and the default encoder's passage throughput on ONE
   CPU core (1 torch thread, bf16 autocast where the CPU has it, as the Ray actors run it) over
   an evenly spaced sample of clauses.
2. **extrapolated** to 10^6, 10^7 and 10^8 clauses, every figure linear in the clause count:
   - vectors: exact arithmetic (384 float32 = 1,536 B per clause); HNSW adds its level-0 graph
     (2*M links of 4 B, M=16); IVF_SQ8 keeps 1 B per dimension; DiskANN keeps PQ codes in RAM
     (~1/8 of the raw vectors is Milvus's rule of thumb) and the rest on SSD.
   - BM25 and clause store: bytes per clause measured here times N. The vocabulary grows more
     slowly than the corpus (Heaps' law), so this over-estimates that part; postings dominate.
   - encode CPU core-hours: N / (measured clauses per core-hour).
   - encode GPU-hours: an ESTIMATE, nothing here has a GPU. Basis: FLOPs per clause from the
     model's shape (2 x non-embedding parameters per token, plus attention) and the measured
     tokens per clause, divided by an assumed sustained GPU throughput (``--gpu-tflops``,
     default 10 TFLOP/s: a fraction of a T4/A10's fp16 tensor peak, as small-hidden models reach).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALES = (10**6, 10**7, 10**8)
DIMENSION = 384  # multilingual-e5-small
HNSW_M = 16
GiB = 1024**3


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).resolve().rglob("*") if f.is_file())


def measure_sizes(index_dir: Path) -> dict:
    from assistant.store import load_index

    stored = load_index(index_dir)
    clauses = len(stored.clauses)
    folders = [(index_dir / name).resolve() for name in ("bm25", "bm25_docs")]
    bm25_bytes = sum(directory_bytes(folder) for folder in folders)
    vocab_bytes = sum((folder / "vocab.index.json").stat().st_size for folder in folders)
    shapes = stored.manifest["shapes"]["bm25"]
    return {
        "index": str(index_dir),
        "model_id": stored.manifest["model_id"],
        "clauses": clauses,
        "documents": len(stored.documents),
        "index_text_chars": sum(len(c.index_text) for c in stored.clauses),
        "bm25_bytes": bm25_bytes,
        "bm25_postings": int(shapes["nnz"]),
        "bm25_vocab_bytes": vocab_bytes,
        "bm25_vocab": int(shapes["vocab"]),
        "clause_store_bytes": _clause_store_bytes(stored.manifest),
        "vector_bytes": int(stored.vectors.nbytes),
        "dimension": int(stored.vectors.shape[1]),
        "texts": [c.index_text for c in stored.clauses],
    }


def _clause_store_bytes(manifest: dict) -> int:
    """Bytes of the clause store: the files of the clause table (format 4), or clauses.jsonl."""
    return sum(entry["size"] for name, entry in manifest["contents"].items()
               if name.startswith("clauses/") or name == "clauses.jsonl")


def model_flops_per_token(config: dict, tokens: float) -> float:
    """2 x non-embedding parameters (dense layers) + attention scores and mixing, per token."""
    hidden, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    dense = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = layers * 2 * tokens * hidden  # QK^T and AV, per token, at sequence length ``tokens``
    return 2.0 * (dense + attention)


def measure_encoder(texts: list[str], sample: int) -> dict:
    """Passage throughput of the default encoder on one core, and e5 tokens per clause."""
    import torch

    from assistant.embedding import load_embedder

    embedder = load_embedder(None)
    torch.set_num_threads(1)
    model = embedder.model
    limit = int(getattr(model, "max_seq_length", 512) or 512)
    tokenizer = model.tokenizer
    prompt = (getattr(model, "prompts", None) or {}).get("passage", "")
    lengths = [min(limit, len(ids)) for ids in tokenizer([prompt + t for t in texts], add_special_tokens=True)["input_ids"]]
    step = max(1, len(texts) // sample)
    chosen = texts[::step][:sample]
    embedder.encode(chosen[:16])  # warm-up (first-call allocations)
    started = time.perf_counter()
    embedder.encode(chosen)
    seconds = time.perf_counter() - started
    chosen_tokens = sum(lengths[::step][:sample])
    transformer = model[0].auto_model.config
    config = {k: getattr(transformer, k) for k in ("hidden_size", "num_hidden_layers", "intermediate_size")}
    return {
        "encoder_sample": len(chosen),
        "encoder_seconds": round(seconds, 2),
        "encoder_threads": torch.get_num_threads(),
        "encoder_bf16": bool(embedder.bf16),
        "clauses_per_core_second": len(chosen) / seconds,
        "tokens_per_core_second": chosen_tokens / seconds,
        "e5_tokens_per_clause": float(np.mean(lengths)),
        "e5_max_tokens": limit,
        "model_config": config,
        "load_average": os.getloadavg()[0],
    }


def extrapolate(measured: dict, gpu_tflops: float) -> list[dict]:
    per_clause = {
        "bm25": measured["bm25_bytes"] / measured["clauses"],
        "store": measured["clause_store_bytes"] / measured["clauses"],
    }
    rows = []
    for n in SCALES:
        vectors = n * DIMENSION * 4
        row = {
            "clauses": n,
            "vectors_float32_gib": vectors / GiB,
            "hnsw_gib": (vectors + n * 2 * HNSW_M * 4) / GiB,
            "ivf_sq8_gib": n * DIMENSION / GiB,
            "diskann_ram_gib": vectors / 8 / GiB,
            "bm25_gib": n * per_clause["bm25"] / GiB,
            "clause_store_gib": n * per_clause["store"] / GiB,
        }
        if "clauses_per_core_second" in measured:
            row["encode_cpu_core_hours"] = n / (measured["clauses_per_core_second"] * 3600)
            tokens = measured["e5_tokens_per_clause"]
            flops = tokens * model_flops_per_token(measured["model_config"], tokens)
            row["encode_gpu_hours_estimate"] = n * flops / (gpu_tflops * 1e12) / 3600
        rows.append(row)
    return rows


def print_tables(measured: dict, rows: list[dict], gpu_tflops: float) -> None:
    m = measured
    print("## Measured here (bundled corpus)\n")
    print("| figure | value |\n|---|---|")
    print(f"| index | `{m['index']}` ({m['model_id']}) |")
    print(f"| clauses / documents | {m['clauses']:,} / {m['documents']:,} |")
    print(f"| index_text characters per clause | {m['index_text_chars'] / m['clauses']:.0f} |")
    print(f"| vectors ({m['dimension']} float32) | {m['vector_bytes']:,} B = {m['vector_bytes'] / m['clauses']:,.0f} B per clause |")
    print(f"| BM25 on disk (clause + document indexes) | {m['bm25_bytes']:,} B = {m['bm25_bytes'] / m['clauses']:,.0f} B per clause |")
    print(f"| BM25 postings (distinct terms) per clause | {m['bm25_postings'] / m['clauses']:.0f} |")
    print(f"| BM25 vocabulary | {m['bm25_vocab']:,} terms, {m['bm25_vocab_bytes']:,} B of the BM25 bytes (both indexes' copies) |")
    print(f"| clause store (clauses/) | {m['clause_store_bytes']:,} B = {m['clause_store_bytes'] / m['clauses']:,.0f} B per clause |")
    if "clauses_per_core_second" in m:
        print(f"| e5 tokens per clause (max {m['e5_max_tokens']}) | {m['e5_tokens_per_clause']:.0f} |")
        print(f"| encode, 1 CPU core ({'bf16' if m['encoder_bf16'] else 'float32'}, {m['encoder_sample']} clauses in {m['encoder_seconds']} s, load avg {m['load_average']:.1f}) "
              f"| {m['clauses_per_core_second']:.1f} clauses/s = {m['clauses_per_core_second'] * 3600:,.0f} clauses per core-hour; {m['tokens_per_core_second']:,.0f} tokens/s |")
    print("\n## Extrapolated (linear in clauses; BM25 is an upper bound; GPU column is an estimate, see the docstring)\n")
    head = ["clauses", "vectors f32", "HNSW (M=16)", "IVF_SQ8", "DiskANN RAM", "BM25 (bm25s)", "clause store"]
    if rows and "encode_cpu_core_hours" in rows[0]:
        head += ["encode CPU core-h", f"encode GPU-h (est., {gpu_tflops:g} TFLOP/s)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [f"{r['clauses']:.0e}", *(f"{r[k]:,.1f} GiB" for k in ("vectors_float32_gib", "hnsw_gib", "ivf_sq8_gib",
                                                                        "diskann_ram_gib", "bm25_gib", "clause_store_gib"))]
        if "encode_cpu_core_hours" in r:
            cells += [f"{r['encode_cpu_core_hours']:,.0f}", f"{r['encode_gpu_hours_estimate']:,.1f}"]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index" / "default"), help="an index of the bundled corpus (read only)")
    parser.add_argument("--sample", type=int, default=256, help="clauses to time the encoder on (default: %(default)s)")
    parser.add_argument("--no-encode", action="store_true", help="sizes only: do not load or time the encoder")
    parser.add_argument("--gpu-tflops", type=float, default=10.0, help="assumed sustained GPU TFLOP/s for the estimate")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    measured = measure_sizes(Path(args.index))
    texts = measured.pop("texts")
    if not args.no_encode:
        measured.update(measure_encoder(texts, args.sample))
    rows = extrapolate(measured, args.gpu_tflops)
    print_tables(measured, rows, args.gpu_tflops)
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": measured, "extrapolated": rows, "gpu_tflops": args.gpu_tflops},
                                              ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
