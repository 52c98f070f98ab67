"""Command line: ``python -m assistant <command> ...`` (also installed as ``policy-assistant``).

Each command's work lives in the module of its pipeline stage, as a ``cli_<command>(args) -> int``
function imported only when that command runs, so ``corpus inspect`` never loads torch.

    python -m assistant corpus inspect [--file NAME] [--doc N]
    python -m assistant index build [--corpus DIR] [--model M] [--index DIR]
    python -m assistant search "问题" [--index DIR] [-k 10] [--mode hybrid|bm25|dense] [--json]
    python -m assistant ask "问题" [--index DIR] [--json]
    python -m assistant serve [--index DIR] [--host 127.0.0.1] [--port 7860]
    python -m assistant eval [--qa FILE] [--index DIR] [--mode all] [-k 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib
import sys

from assistant.errors import AssistantError
from assistant.paths import DEFAULT_CORPUS_DIR, DEFAULT_INDEX_DIR, DEFAULT_QA_FILE

# command -> (module, function); the module owns the command's behaviour.
HANDLERS = {
    "corpus inspect": ("assistant.inspect", "cli_inspect"),
    "index build": ("assistant.retriever", "cli_index_build"),
    "search": ("assistant.retriever", "cli_search"),
    "ask": ("assistant.compose", "cli_ask"),
    "serve": ("assistant.web", "cli_serve"),
    "eval": ("assistant.evaluation", "cli_eval"),
}


def _add_index_args(parser: argparse.ArgumentParser, *, corpus: bool = False, model: bool = False) -> None:
    parser.add_argument("--index", default=str(DEFAULT_INDEX_DIR), help="index directory (default: %(default)s)")
    if corpus:
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus directory (default: %(default)s)")
    if model:
        parser.add_argument(
            "--model",
            default=None,
            help="sentence-transformers model name or local path (default: bundled multilingual USE v3)",
        )


def _add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", dest="filter_source", action="append", help="only this corpus file (repeatable)")
    parser.add_argument("--doc", dest="filter_doc", action="append", help="only this document id (repeatable)")
    parser.add_argument("--city", dest="filter_city", action="append", help="only documents of this city (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="look at the corpus as the assistant reads it")
    corpus_commands = corpus.add_subparsers(dest="subcommand", required=True)
    inspect = corpus_commands.add_parser("inspect", help="documents, metadata and clause tree with line numbers")
    inspect.add_argument("--corpus", default=str(DEFAULT_CORPUS_DIR), help="corpus directory (default: %(default)s)")
    inspect.add_argument("--file", help="only this corpus file (name or unique prefix)")
    inspect.add_argument("--doc", type=int, help="only document N (1-based, within --file or the whole corpus)")

    index = commands.add_parser("index", help="build the retrieval index")
    index_commands = index.add_subparsers(dest="subcommand", required=True)
    build = index_commands.add_parser("build", help="build or update the index (only what changed)")
    _add_index_args(build, corpus=True, model=True)
    build.add_argument("--force", action="store_true", help="rebuild everything, ignoring the embedding cache")

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
    ask.add_argument("--json", action="store_true", help="print one JSON object: answer, abstained, quotes, hits")
    _add_filter_args(ask)

    serve = commands.add_parser("serve", help="start the chat page (builds the index on first run)")
    _add_index_args(serve, corpus=True, model=True)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=7860)

    evaluate = commands.add_parser("eval", help="score retrieval and answers on a Q&A set")
    evaluate.add_argument("--qa", default=str(DEFAULT_QA_FILE), help="Q&A JSON Lines file (default: %(default)s)")
    _add_index_args(evaluate, corpus=True)
    evaluate.add_argument("--mode", default="all", choices=["hybrid", "bm25", "dense", "baseline", "all"])
    evaluate.add_argument("-k", type=int, default=10)
    evaluate.add_argument("--out", default=None, help="output directory (default: eval/runs/<timestamp>/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = f"{args.command} {args.subcommand}" if getattr(args, "subcommand", None) else args.command
    module_name, function_name = HANDLERS[key]
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        return int(handler(args) or 0)
    except AssistantError as error:
        print(f"错误 / error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
