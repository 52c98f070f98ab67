"""Command line: ``python -m assistant <command> ...`` (also installed as ``policy-assistant``).

Every command is a handler here that imports what it needs when it runs, so ``corpus inspect`` and
``search --mode bm25`` never load torch.

    python -m assistant corpus inspect [--file NAME] [--doc N]
    python -m assistant index build [--corpus DIR] [--model M] [--index DIR] [--force] [--ray [ADDRESS]]
                                    [--backend local|milvus --milvus-uri PATH.db|http://host:19530 [--collection NAME]]
    python -m assistant index verify [--index DIR]
    python -m assistant search "问题" [--index DIR] [-k 10] [--mode hybrid|bm25|dense] [--json]
    python -m assistant ask "问题" [--index DIR] [--json] [--llm-url URL --llm-model NAME]
    python -m assistant serve [--index DIR] [--corpus DIR] [--host 127.0.0.1] [--port 7860] [--llm-url URL --llm-model NAME]
    python -m assistant mcp [--index DIR]                       (MCP over stdio; serve --mcp for HTTP)
    python -m assistant eval [--qa FILE] [--index DIR] [--mode all] [-k 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

from assistant.errors import AssistantError
from assistant.paths import DEFAULT_CORPUS_DIR, DEFAULT_INDEX_DIR, DEFAULT_QA_FILE


def _add_index_args(parser: argparse.ArgumentParser, *, corpus: bool = False, model: bool = False) -> None:
    parser.add_argument("--index", default=str(DEFAULT_INDEX_DIR), help="index directory (default: %(default)s)")
    if corpus:
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus directory (default: %(default)s)")
    if model:
        parser.add_argument(
            "--model",
            default=None,
            help="encoder: 'e5' (default, multilingual-e5-small), 'use' (USE v3), or a local sentence-transformers model",
        )


def _add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", dest="filter_source", action="append", help="only this corpus file (repeatable)")
    parser.add_argument("--doc", dest="filter_doc", action="append", help="only this document id (repeatable)")
    parser.add_argument("--city", dest="filter_city", action="append", help="only documents of this city (repeatable)")


def filters_from_args(args) -> dict[str, list[str]] | None:
    """The search filters given by --file/--doc/--city, or None: the one filter builder."""
    filters = {
        key: values
        for key, values in (
            ("source", getattr(args, "filter_source", None)),
            ("doc_id", getattr(args, "filter_doc", None)),
            ("city", getattr(args, "filter_city", None)),
        )
        if values
    }
    return filters or None


def _add_llm_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm-url", help="answer with an OpenAI-compatible LLM at this base URL, e.g. http://127.0.0.1:11434/v1 "
                        "(key from OPENAI_API_KEY or LLM_API_KEY); its quotes are verified, else the extractive answer is shown")
    parser.add_argument("--llm-model", help="the model name at --llm-url, e.g. qwen2.5:7b")
    parser.add_argument("--llm-timeout", type=float, default=60.0, help="seconds to wait for the LLM (default: %(default)s)")


def composer_from_args(args):
    """The generative composer (with its extractive fallback) --llm-url/--llm-model ask for, or None."""
    from assistant.generative import composer_from_settings

    return composer_from_settings(getattr(args, "llm_url", None), getattr(args, "llm_model", None),
                                  timeout=getattr(args, "llm_timeout", 60.0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="look at the corpus as the assistant reads it")
    corpus_commands = corpus.add_subparsers(dest="subcommand", required=True)
    inspect = corpus_commands.add_parser("inspect", help="documents, metadata and clause tree with line numbers")
    inspect.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus directory (default: %(default)s)")
    inspect.add_argument("--file", help="only this corpus file (name or unique prefix)")
    inspect.add_argument("--doc", type=int, help="only document N (1-based, within --file or the whole corpus)")

    index = commands.add_parser("index", help="build or check the retrieval index")
    index_commands = index.add_subparsers(dest="subcommand", required=True)
    build = index_commands.add_parser("build", help="build or update the index (only what changed)")
    _add_index_args(build, corpus=True, model=True)
    build.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="read, tokenise and encode on Ray Data (needs the [ray] extra): a local Ray, or the cluster "
                            "at ADDRESS ('auto', host:6379 or ray://host:10001); the same index as without it")
    build.add_argument("--force", action="store_true", help="rebuild everything, ignoring the embedding cache "
                       "(and, for Milvus, dropping and recreating the collection)")
    build.add_argument("--backend", choices=["local", "milvus"], default=None,
                       help="where clause vectors and BM25 live: 'local' (in the index directory) or 'milvus' "
                       "(default: what the index was built with, else local)")
    build.add_argument("--milvus-uri", default=None, help="Milvus Lite file (PATH.db) or server (http://host:19530; "
                       "a token comes from the MILVUS_TOKEN environment variable, never from here)")
    build.add_argument("--collection", default=None, help="Milvus collection name (default: derived from --index)")
    build.add_argument("--milvus-bm25", choices=["words", "jieba", "exact"], default=None,
                       help="clause BM25 in Milvus: this program's bm25s weights as sparse vectors ('exact', default: "
                       "the local scores), Milvus's BM25 over this program's tokens ('words': incremental builds touch "
                       "only changed clauses) or over its own jieba analyzer ('jieba')")
    verify = index_commands.add_parser("verify", help="check every index file against its recorded checksum")
    _add_index_args(verify)

    search = commands.add_parser("search", help="retrieve the clauses for a question")
    search.add_argument("query")
    _add_index_args(search)
    search.add_argument("-k", type=int, default=10, help="number of hits (default: %(default)s)")
    search.add_argument("--mode", default="hybrid", choices=["hybrid", "bm25", "dense"])
    search.add_argument("--json", action="store_true", help="print one JSON object with a 'hits' list")
    _add_filter_args(search)

    ask = commands.add_parser("ask", help="answer a question by quoting clauses")
    ask.add_argument("query")
    _add_index_args(ask)
    ask.add_argument("--json", action="store_true", help="print one JSON object: answer, abstained, reason, quotes, hits")
    _add_filter_args(ask)
    _add_llm_args(ask)

    serve = commands.add_parser("serve", help="start the chat page and the REST API (builds the index on first run)")
    _add_index_args(serve, corpus=True, model=True)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--mcp", action="store_true", help="also serve MCP (streamable HTTP) at /mcp (needs the [mcp] extra)")
    _add_llm_args(serve)

    mcp = commands.add_parser("mcp", help="run the MCP server over stdio (tools search_policies, ask_policy)")
    _add_index_args(mcp)
    _add_llm_args(mcp)

    evaluate = commands.add_parser("eval", help="score retrieval and answers on a Q&A set")
    evaluate.add_argument("--qa", default=str(DEFAULT_QA_FILE), help="Q&A JSON Lines file (default: %(default)s)")
    _add_index_args(evaluate, corpus=True)
    evaluate.add_argument("--mode", default="all", choices=["hybrid", "bm25", "dense", "baseline", "all"])
    evaluate.add_argument("-k", type=int, default=10)
    evaluate.add_argument("--out", default=None, help="output directory (default: eval/runs/<timestamp>/)")
    return parser


# --- handlers -------------------------------------------------------------------------------------

def cmd_inspect(args) -> int:
    from assistant.inspect import cli_inspect

    return cli_inspect(args)


def cmd_index_build(args) -> int:
    from assistant.indexing import build_index

    options = dict(model=args.model, force=args.force, backend=args.backend, milvus_uri=args.milvus_uri,
                   collection=args.collection, milvus_bm25=args.milvus_bm25)
    if getattr(args, "ray", None) is not None:
        from assistant.distributed import build_index_on_ray

        report = build_index_on_ray(args.corpus, args.index, address=args.ray, **options)
    else:
        report = build_index(args.corpus, args.index, progress=True, **options)
    manifest = report.retriever.manifest
    where = ""
    if manifest.get("backend") == "milvus":
        milvus = manifest["milvus"]
        where = f"; Milvus {milvus['uri']} collection {milvus['collection']}"
        if not report.up_to_date:
            where += f" ({report.upserted} clauses upserted, {report.deleted} deleted)"
    if report.up_to_date:
        print(f"index {args.index} is up to date ({manifest['clause_count']} clauses, model {manifest['model_id']}{where})")
    else:
        print(
            f"built {args.index}: {manifest['clause_count']} clauses from {manifest['document_count']} documents in "
            f"{len(manifest['files'])} files; encoded {report.encoded}, reused {report.reused} cached embeddings; "
            f"model {manifest['model_id']} ({manifest['dimension']}-d, {manifest['dense_index']} index); "
            f"{report.seconds:.1f} s{where}"
        )
    return 0


def cmd_index_verify(args) -> int:
    from assistant.store import verify_index

    verify_index(args.index)
    print(f"index {args.index}: every file matches its checksum")
    return 0


def cmd_search(args) -> int:
    from assistant.query import prepare_query
    from assistant.retriever import Retriever

    prepared = prepare_query(args.query)
    if args.k < 1:
        raise AssistantError("-k must be at least 1")
    retriever = Retriever.load(args.index, light_query_encoder=True)
    hits = retriever.search(prepared.text, k=args.k, mode=args.mode, filters=filters_from_args(args))
    if args.json:
        from assistant.payloads import search_payload

        print(json.dumps(search_payload(prepared, args.mode, hits), ensure_ascii=False, indent=1))
        return 0
    if prepared.notice:
        print(f"注意：{prepared.notice}", file=sys.stderr)
    if not hits:
        print("没有找到相关条款 / no matching clause")
        return 0
    for n, hit in enumerate(hits, 1):
        c = hit.clause
        ranks = " ".join(f"{m}={r}" for m, r in hit.ranks.items() if r is not None)
        print(f"{n:>2}. [{hit.score:.3f}] {c.doc_title} › {c.section or c.label}  ({c.source}:{c.line_start}-{c.line_end}; {ranks})")
        snippet = c.text if len(c.text) <= 160 else c.text[:160] + "…"
        print(f"    {snippet}")
    return 0


def cmd_ask(args) -> int:
    from assistant.pipeline import Assistant
    from assistant.query import prepare_query
    from assistant.render import full_clauses_text

    prepare_query(args.query)  # fail fast on an empty question, before loading the index
    composer = composer_from_args(args)
    answer = Assistant.load(args.index, composer=composer, light_query_encoder=True).ask(args.query, filters=filters_from_args(args))
    if args.json:
        json.dump(answer.to_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if answer.notice:
        print(f"注意：{answer.notice}", file=sys.stderr)
    if composer is not None:
        print(f"回答方式 / composer: {answer.composer}", file=sys.stderr)
    print(answer.text)
    if answer.quotes:
        print(full_clauses_text(answer))
    return 0


def cmd_serve(args) -> int:
    from assistant.api import serve

    return serve(index_dir=args.index, corpus_dir=args.corpus, model=args.model, host=args.host, port=args.port,
                 composer=composer_from_args(args), mcp=args.mcp)


def cmd_mcp(args) -> int:
    import contextlib

    from assistant.api import Service
    from assistant.mcp_server import run_stdio
    from assistant.pipeline import Assistant

    composer = composer_from_args(args)
    # stdout is the protocol channel: whatever loading prints must not land there.
    with contextlib.redirect_stdout(sys.stderr):
        assistant = Assistant.load(args.index, composer=composer)
        assistant.retriever.embedder  # load the encoder now, not during the client's first call
    run_stdio(Service(assistant))
    return 0


def cmd_eval(args) -> int:
    from assistant.evaluation.run import cli_eval

    return cli_eval(args)


HANDLERS = {
    "corpus inspect": cmd_inspect,
    "index build": cmd_index_build,
    "index verify": cmd_index_verify,
    "search": cmd_search,
    "ask": cmd_ask,
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "eval": cmd_eval,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = f"{args.command} {args.subcommand}" if getattr(args, "subcommand", None) else args.command
    try:
        return int(HANDLERS[key](args) or 0)
    except AssistantError as error:
        print(f"错误 / error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
