"""The REST API beside the chat page, on the same server: FastAPI routes over one Assistant.

    python -m assistant serve          # page at /, API at /v1/…, schema at /openapi.json, docs at /docs

    curl -s localhost:7860/v1/ask -H 'content-type: application/json' -d '{"question":"残保金要交吗"}'

Routes (JSON in, JSON out; the models below are the schema):

- ``POST /v1/search`` {query, k, mode, filters} → {query, mode, hits, notice}: hits as in ``search --json``;
- ``POST /v1/ask`` {question, filters, history} → ``Answer.to_dict()`` (answer, abstained, reason, quotes, hits …);
- ``GET /v1/clauses/{clause_id}`` → the clause, its context and its document;
- ``GET /v1/documents`` → titles, 文号, files and cities (what filters take);
- ``GET /healthz`` → 200 with the model and clause count once the index is loaded, else 503.

The routes are thin: searching is ``Retriever.search``, answering ``Assistant.ask``, and the
JSON shapes come from :mod:`assistant.payloads`. Errors are ``{"error": message}`` with a 4xx
status (400 bad input, 404 unknown clause or route, 405, 413 body too large) or 503 while no
index is loaded, so bad input never turns into a 500. Corpus text is only ever sent as JSON
strings; nothing from it is rendered as HTML here.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # as in web.py: the server works offline

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from assistant.errors import AssistantError  # noqa: E402
from assistant.payloads import clause_payload, documents_payload, search_payload  # noqa: E402

# A question is cut at 2000 characters anyway (prepare_query); 64 KiB leaves room for history
# and filters while keeping a client from making the server buffer megabytes per request.
MAX_BODY_BYTES = 64 * 1024
# Only the API's own paths are limited: the page's Gradio routes carry the whole chat history
# back and forth and bound uploads themselves (launch_options' max_file_size).
LIMITED_PREFIXES = ("/v1/", "/mcp")
MAX_K = 100
MAX_HISTORY = 50
MAX_FILTER_VALUES = 200


# --- the state the routes answer from ---------------------------------------------------------------

class Service:
    """The Assistant the routes use, once it is loaded; until then (or when loading failed) the
    routes answer 503 and ``problem`` says why."""

    def __init__(self, assistant=None):
        self._lock = threading.Lock()
        self.assistant = assistant
        self.problem: str | None = None if assistant is not None else "loading"

    def ready(self, assistant) -> None:
        with self._lock:
            self.assistant, self.problem = assistant, None

    def failed(self, message: str) -> None:
        with self._lock:
            self.assistant, self.problem = None, message

    def require(self):
        assistant = self.assistant
        if assistant is None:
            raise Unavailable(self.problem or "loading")
        return assistant


class Unavailable(Exception):
    """No index is loaded (yet): 503."""


class BodyTooLarge(Exception):
    pass


# --- request and response models --------------------------------------------------------------------

class Filters(BaseModel):
    """Limit the search to some corpus files, documents or cities (any combination; values OR'ed)."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] | None = Field(None, max_length=MAX_FILTER_VALUES, description="corpus file names, e.g. 000_ed0d53ce87970edb.txt")
    doc_id: list[str] | None = Field(None, max_length=MAX_FILTER_VALUES, description="document ids, e.g. 000_ed0d53ce87970edb#2")
    city: list[str] | None = Field(None, max_length=MAX_FILTER_VALUES, description="cities, e.g. 鹤壁市 (see GET /v1/documents)")

    def as_dict(self) -> dict[str, list[str]] | None:
        active = {key: values for key, values in self.model_dump().items() if values}
        return active or None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., description="the question or keywords, e.g. 地源热泵项目谁来审批", examples=["地源热泵项目谁来审批"])
    k: int = Field(10, ge=1, le=MAX_K, description="number of hits")
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filters: Filters | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., description="the question, e.g. 残保金要交吗", examples=["公司15个人没招残疾人，残保金要交吗"])
    filters: Filters | None = None
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY,
                               description="earlier questions of the conversation, oldest first (for follow-ups such as 那郑州呢？)")


class ClauseOut(BaseModel):
    clause_id: str
    text: str
    doc_title: str
    doc_number: str | None
    doc_id: str
    section: str
    section_path: list[str]
    label: str
    source: str
    line_start: int
    line_end: int
    city: str | None


class HitOut(ClauseOut):
    score: float
    ranks: dict[str, int | None]


class QuoteOut(BaseModel):
    text: str = Field(..., description="a verbatim span of the clause")
    clause_id: str
    citation: str
    doc_title: str
    label: str
    source: str
    line_start: int
    line_end: int


class SearchResponse(BaseModel):
    query: str
    mode: str
    hits: list[HitOut]
    notice: str | None = None


class AskResponse(BaseModel):
    question: str
    answer: str
    abstained: bool
    reason: str | None
    resolved_question: str | None
    quotes: list[QuoteOut]
    hits: list[HitOut]
    notice: str | None
    composer: str


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    doc_number: str | None
    issuer: str | None
    date: str | None
    city: str | None
    source: str
    line_start: int
    line_end: int
    clause_count: int


class DocumentsResponse(BaseModel):
    documents: list[DocumentOut]
    files: list[str]
    cities: list[str]


class ClauseResponse(BaseModel):
    clause: ClauseOut
    context: list[ClauseOut]
    document: DocumentOut | None


class Health(BaseModel):
    status: str
    model: str | None = None
    clauses: int | None = None
    documents: int | None = None
    error: str | None = None


class ErrorOut(BaseModel):
    error: str


ERRORS = {400: {"model": ErrorOut}, 413: {"model": ErrorOut}, 503: {"model": ErrorOut}}


# --- the app ---------------------------------------------------------------------------------------

def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(request: Request, error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    message = "请求无效 / invalid request: " + "; ".join(parts)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and "json" not in content_type:
        message += " (send a JSON body with content-type: application/json)"
    return message


def limit_body_size(app, max_bytes: int = MAX_BODY_BYTES, prefixes: tuple[str, ...] = LIMITED_PREFIXES):
    """ASGI middleware: a body over ``max_bytes`` on ``prefixes`` gets 413, whether it declares its
    length or streams it chunked (then the app's own response is replaced by the 413)."""

    async def send_413(send) -> None:
        body = (b'{"error":"request body too large: at most %d bytes"}' % max_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def middleware(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(prefixes):
            return await app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            return await send_413(send)
        received = 0
        too_large = False
        replied = False

        async def counting_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    too_large = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal replied
            if too_large:
                if not replied:
                    replied = True
                    await send_413(send)
                return
            await send(message)

        try:
            await app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not replied:
                await send_413(send)

    return middleware


def create_app(service: Service, *, page=None, mcp_app=None) -> FastAPI:
    """The FastAPI app: the /v1 routes and /healthz over ``service``; ``page`` (a Gradio Blocks) is
    mounted at / and ``mcp_app`` (:func:`assistant.mcp_server.http_app`) serves /mcp, when given."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if mcp_app is None:
            yield
            return
        async with mcp_app.router.lifespan_context(mcp_app):  # the MCP session manager's task group
            yield

    app = FastAPI(
        title="政策文件问答助手 API · Policy-notice QA API",
        version="1",
        description="Search the policy clauses and get answers that quote them verbatim, with citations "
                    "(title › section — file:line). 检索政策条款，逐字引用原文回答并注明出处。",
        lifespan=lifespan,
    )

    @app.exception_handler(AssistantError)
    async def _bad_input(request: Request, error: AssistantError):
        return error_response(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        return error_response(400, _validation_message(request, error))

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, error: Unavailable):
        response = error_response(503, f"索引尚未加载 / the index is not loaded: {error}")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail))

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz():
        assistant = service.assistant
        if assistant is None:
            status = "loading" if service.problem == "loading" else "unavailable"
            return JSONResponse(Health(status=status, error=None if status == "loading" else service.problem).model_dump(),
                                status_code=503, headers={"Retry-After": "5"})
        retriever = assistant.retriever
        return Health(status="ok", model=retriever.model_id, clauses=len(retriever.clauses), documents=len(retriever.documents))

    # Sync handlers: FastAPI runs them in its thread pool, so a search never blocks the event loop.
    @app.post("/v1/search", response_model=SearchResponse, responses=ERRORS)
    def search(request: SearchRequest):
        """The k best clauses for a query, best first; the same hits as `python -m assistant search --json`."""
        from assistant.query import prepare_query

        retriever = service.require().retriever
        prepared = prepare_query(request.query)
        filters = request.filters.as_dict() if request.filters else None
        hits = retriever.search(prepared.text, k=request.k, mode=request.mode, filters=filters)
        return search_payload(prepared, request.mode, hits)

    @app.post("/v1/ask", response_model=AskResponse, responses=ERRORS)
    def ask(request: AskRequest):
        """An answer quoting clauses verbatim with citations, or an abstention with its reason."""
        assistant = service.require()
        filters = request.filters.as_dict() if request.filters else None
        return assistant.ask(request.question, filters=filters, history=request.history).to_dict()

    @app.get("/v1/clauses/{clause_id:path}", response_model=ClauseResponse, responses={404: {"model": ErrorOut}, **ERRORS})
    def clause(clause_id: str):
        """One clause with its context; ids contain '#', send it as %23."""
        retriever = service.require().retriever
        try:
            return clause_payload(retriever, clause_id)
        except AssistantError as error:
            return error_response(404, str(error))

    @app.get("/v1/documents", response_model=DocumentsResponse, responses=ERRORS)
    def documents():
        """Every document (title, 文号, issuer, date, city, file), and the files and cities to filter by."""
        return documents_payload(service.require().retriever)

    api_paths = {route.path for route in app.routes if getattr(route, "path", "").startswith("/v1/")}

    # Before the page's catch-all mount: an unknown /v1 path or method is the API's JSON error, not the page's.
    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    def unknown(rest: str, request: Request):
        if request.url.path in api_paths:
            return error_response(405, f"method {request.method} not allowed on {request.url.path}")
        return error_response(404, f"no such route {request.url.path}; see /docs")

    if mcp_app is not None:
        # Its /mcp route joins ours (a Mount would answer only /mcp/…, and the page's "/" mount
        # would take /mcp); its lifespan runs in ours, above.
        app.router.routes.extend(mcp_app.routes)
    if page is not None:
        import gradio as gr

        from assistant.web import launch_options

        options = {key: value for key, value in launch_options().items() if key != "share"}
        app = gr.mount_gradio_app(app, page, path="/", **options)
    app.add_middleware(_BodyLimit)
    return app


class _BodyLimit:
    """:func:`limit_body_size` in the shape ``add_middleware`` wants."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app = limit_body_size(app, max_bytes)

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


# --- serve -----------------------------------------------------------------------------------------

def open_retriever(index_dir, corpus_dir, model=None):
    """The index to serve, building it (with progress) on first run or when it needs a rebuild."""
    from assistant.indexing import open_or_build
    from assistant.retriever import Retriever

    index_dir = Path(index_dir)
    if (index_dir / "manifest.json").exists() and model is None:
        print(f"加载索引 / loading index {index_dir} ...", file=sys.stderr, flush=True)
        try:
            return Retriever.load(index_dir)
        except AssistantError as error:
            if not Path(corpus_dir).is_dir():
                raise
            print(f"索引需要重建 / the index needs a rebuild: {error}", file=sys.stderr, flush=True)
            return open_or_build(index_dir, corpus_dir, progress=True)
    print(f"首次运行，正在从 {corpus_dir} 建立索引 / building index {index_dir} from {corpus_dir} ...",
          file=sys.stderr, flush=True)
    return open_or_build(index_dir, corpus_dir, model=model, progress=True)


def listening_socket(host: str, port: int):
    """The server's socket, bound and listening before anything loads: a taken port fails at once
    with the fix, and the same socket serves the loading phase and then the app (see serve)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        raise AssistantError(f"cannot serve on {host}:{port} ({error}); choose another --port or --host") from error
    return sock


def loading_app(service: Service) -> FastAPI:
    """What the port answers while the index loads or builds: /healthz and /v1 say 503 (with
    Retry-After), the page a plain-text line to reload in a moment."""
    from fastapi.responses import PlainTextResponse

    app = create_app(service)

    @app.get("/", include_in_schema=False)
    def page_loading():
        return PlainTextResponse("正在加载索引，请稍候刷新 / loading the index, reload in a moment\n", status_code=503,
                                 headers={"Retry-After": "5"})

    return app


def _warm_up(assistant) -> None:
    """The first question waited ~13 s for the encoder after the page said ready; load it now."""
    try:
        assistant.warm_up()
    except Exception as error:  # the first real question then loads it (and reports any problem)
        print(f"预热失败 / warm-up failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


def serve(*, index_dir, corpus_dir, model=None, host: str = "127.0.0.1", port: int = 7860, composer=None,
          mcp: bool = False) -> int:
    """``python -m assistant serve``: listen at once, answering 503 while the index opens (or is
    built on first run), then serve the page at /, the API at /v1 and, with ``mcp``, the MCP
    server at /mcp, with uvicorn on ``host:port``."""
    import uvicorn

    from assistant.pipeline import Assistant
    from assistant.web import build_app

    if mcp:
        from assistant.mcp_server import http_app  # fail on a missing extra before loading anything
    sock = listening_socket(host, port)
    # The loading server answers from a Service of its own that never becomes ready: a 200 from
    # /healthz then always comes from the full app, so a client that saw it finds /mcp and the page
    # (sharing one Service let the loading server say 200 while it still answered /mcp with 404).
    # It gets a duplicate of the socket (uvicorn closes the sockets it served on); connections that
    # arrive between the two servers wait in the listen backlog.
    loading = uvicorn.Server(uvicorn.Config(loading_app(Service()), log_level="warning"))
    loading_thread = threading.Thread(target=loading.run, kwargs={"sockets": [sock.dup()]}, daemon=True)
    loading_thread.start()
    print(f"正在加载；就绪前 /healthz 返回 503 / loading: http://{host}:{port}/healthz answers 503 until ready",
          file=sys.stderr, flush=True)
    try:
        assistant = Assistant(open_retriever(index_dir, corpus_dir, model), composer)
        page = build_app(assistant)
        page.queue(default_concurrency_limit=4)
        service = Service(assistant)
        app = create_app(service, page=page, mcp_app=http_app(service, host=host) if mcp else None)
    finally:
        loading.should_exit = True
        loading_thread.join(timeout=30)
    if composer is not None:
        print(f"回答方式 / composer: {composer.name}, extractive when its reply fails verification", file=sys.stderr, flush=True)
    if mcp:
        print(f"MCP (streamable HTTP): http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    print(f"页面 / page: http://{host}:{port}/   API: http://{host}:{port}/docs  (Ctrl+C to stop)", file=sys.stderr, flush=True)
    threading.Thread(target=_warm_up, args=(assistant,), name="warm-up", daemon=True).start()
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


__all__ = ["AskRequest", "Filters", "MAX_BODY_BYTES", "SearchRequest", "Service", "create_app", "serve"]
