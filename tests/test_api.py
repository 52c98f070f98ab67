"""The REST API (assistant/api.py) over real HTTP: a real uvicorn on loopback, httpx as the client.

Runs on the tiny corpus's index (real encoder): the routes, every error status, the page served
beside the API, `serve` itself in a subprocess, and a bounded schemathesis run from /openapi.json
asserting that no generated request gets a 5xx.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest

from assistant.api import MAX_BODY_BYTES, Service, create_app
from assistant.cli import main as cli_main
from assistant.pipeline import Assistant
from conftest import ROOT, write_tiny_corpus
from live_server import free_port, live_server, wait_until_healthy

QUESTION = "残保金要交吗"
LEVY_TEXT = "暂免征收残疾人就业保障金"


@pytest.fixture(scope="module")
def assistant(tiny_index):
    return Assistant.load(tiny_index)


@pytest.fixture(scope="module")
def base_url(assistant):
    from assistant.web import build_app

    page = build_app(assistant)
    page.queue()
    with live_server(create_app(Service(assistant), page=page)) as url:
        yield url


@pytest.fixture
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as http:
        yield http


# --- the routes ------------------------------------------------------------------------------------

def test_healthz_reports_model_and_clause_count(client, assistant):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": assistant.retriever.model_id, "clauses": 7, "documents": 2, "error": None}


def test_search_returns_the_same_hits_as_search_json(client, tiny_index, capsys):
    response = client.post("/v1/search", json={"query": "残保金要交吗", "k": 3, "mode": "bm25"})
    assert response.status_code == 200
    assert cli_main(["search", "残保金要交吗", "--index", str(tiny_index), "-k", "3", "--mode", "bm25", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert response.json() == {**printed, "notice": None}
    assert LEVY_TEXT in response.json()["hits"][0]["text"]


def test_search_filters_and_mode(client):
    hits = client.post("/v1/search", json={"query": "地源热泵 小微企业", "filters": {"city": ["鹤壁市"]}}).json()["hits"]
    assert hits and {h["city"] for h in hits} == {"鹤壁市"}
    assert all(set(h["ranks"]) == {"hybrid", "bm25", "dense"} for h in hits)
    by_file = client.post("/v1/search", json={"query": "奖励", "k": 10, "mode": "bm25", "filters": {"source": ["b_zz.txt"]}}).json()
    assert by_file["hits"] and {h["source"] for h in by_file["hits"]} == {"b_zz.txt"}


def test_ask_answers_with_verbatim_quotes_and_citations(client):
    response = client.post("/v1/ask", json={"question": QUESTION})
    assert response.status_code == 200
    data = response.json()
    assert data["abstained"] is False and data["reason"] is None and data["composer"] == "extractive"
    assert data["quotes"] and LEVY_TEXT in data["answer"]
    texts = {h["clause_id"]: h["text"] for h in data["hits"]}
    for q in data["quotes"]:
        assert q["text"] in texts[q["clause_id"]]
        assert "b_zz.txt:" in q["citation"]


def test_ask_takes_history_for_a_followup(client):
    alone = client.post("/v1/ask", json={"question": "那郑州呢？"}).json()
    assert alone["abstained"] is True and alone["reason"] == "needs_context" and alone["quotes"] == []
    followed = client.post("/v1/ask", json={"question": "那郑州呢？", "history": ["鹤壁地源热泵系统由哪个部门管理"]}).json()
    assert followed["resolved_question"] and "郑州" in followed["resolved_question"] and "地源热泵" in followed["resolved_question"]


def test_one_answer_is_one_search(client, assistant, monkeypatch):
    calls = []
    search = assistant.retriever.search

    def counting(*args, **kwargs):
        calls.append(args)
        return search(*args, **kwargs)

    monkeypatch.setattr(assistant.retriever, "search", counting)
    assert client.post("/v1/ask", json={"question": QUESTION, "filters": {"city": ["郑州市"]}}).status_code == 200
    assert len(calls) == 1


def test_clause_with_context_and_document(client, assistant):
    clause = next(c for c in assistant.retriever.clauses if LEVY_TEXT in c.text)
    response = client.get(f"/v1/clauses/{quote(clause.clause_id, safe='')}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["clause"]["text"] == clause.text and data["clause"]["line_start"] == clause.line_start
    assert clause.clause_id in [c["clause_id"] for c in data["context"]] and len(data["context"]) >= 2
    assert data["document"]["title"] == clause.doc_title and data["document"]["clause_count"] == 4


def test_documents_list_titles_files_and_cities(client):
    data = client.get("/v1/documents").json()
    assert [d["title"] for d in data["documents"]] == ["鹤壁市地源热泵系统建设应用管理暂行办法", "郑州市关于支持小微企业健康发展的若干措施"]
    assert data["files"] == ["a_hebi.txt", "b_zz.txt"] and data["cities"] == ["郑州市", "鹤壁市"]
    assert {"doc_number", "source", "city", "doc_id"} <= set(data["documents"][0])


def test_openapi_schema_and_docs_describe_the_routes(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/search", "/v1/ask", "/v1/clauses/{clause_id}", "/v1/documents", "/healthz"} <= set(schema["paths"])
    assert {"SearchRequest", "AskRequest", "AskResponse", "HitOut", "QuoteOut"} <= set(schema["components"]["schemas"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_the_page_is_served_beside_the_api(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "政策文件问答助手" in client.get("/config").text


def test_the_pages_gradio_client_endpoint_still_answers_through_the_mount(base_url):
    from gradio_client import Client

    result = Client(base_url + "/", verbose=False).predict("残保金要交吗", [], [], api_name="/ask")
    assert result["abstained"] is False and LEVY_TEXT in result["answer"]


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "path, body, words",
    [
        ("/v1/search", {"query": "   "}, "empty"),
        ("/v1/search", {"query": "残保金", "k": 0}, "k"),
        ("/v1/search", {"query": "残保金", "k": 10_000}, "k"),
        ("/v1/search", {"query": "残保金", "mode": "fuzzy"}, "mode"),
        ("/v1/search", {"q": "残保金"}, "query"),
        ("/v1/search", {"query": "残保金", "filters": {"town": ["x"]}}, "town"),
        ("/v1/search", {"query": "残保金", "filters": {"city": "鹤壁市"}}, "city"),
        ("/v1/ask", {"question": 42}, "question"),
        ("/v1/ask", {}, "question"),
        ("/v1/ask", {"question": "残保金", "history": "鹤壁"}, "history"),
        ("/v1/ask", ["残保金"], "body"),
    ],
)
def test_bad_input_is_400_with_a_message(client, path, body, words):
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_malformed_json_and_form_bodies_are_400(client):
    broken = client.post("/v1/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]
    form = client.post("/v1/ask", data={"question": "残保金"})
    assert form.status_code == 400 and "application/json" in form.json()["error"]


def test_unknown_clause_is_404(client):
    response = client.get("/v1/clauses/no%23such:clause")
    assert response.status_code == 404 and "no#such:clause" in response.json()["error"]


def test_unknown_route_is_404_and_wrong_method_405(client):
    assert client.get("/v1/nothing").status_code == 404 and "error" in client.get("/v1/nothing").json()
    wrong = client.get("/v1/ask")
    assert wrong.status_code == 405 and "GET" in wrong.json()["error"]


def test_too_large_bodies_are_413_declared_or_streamed(client):
    declared = client.post("/v1/ask", content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and str(MAX_BODY_BYTES) in declared.json()["error"]

    def chunks():  # no content-length: chunked transfer encoding
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b" " * 4096

    streamed = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    # just under the limit is read (and refused for what it says, not for its size)
    padded = json.dumps({"question": "残保金要交吗"}).encode() + b" " * (MAX_BODY_BYTES - 100)
    assert client.post("/v1/ask", content=padded, headers={"content-type": "application/json"}).status_code == 200


def test_503_until_the_index_is_loaded(assistant):
    service = Service()
    with live_server(create_app(service)) as url, httpx.Client(base_url=url, timeout=60) as http:
        health = http.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "loading" and health.headers["retry-after"]
        for method, path, body in (("POST", "/v1/ask", {"question": QUESTION}), ("POST", "/v1/search", {"query": "残保金"}),
                                   ("GET", "/v1/documents", None), ("GET", "/v1/clauses/x", None)):
            response = http.request(method, path, json=body)
            assert response.status_code == 503 and "not loaded" in response.json()["error"]
        service.failed("index/default is missing; run python -m assistant index build")
        failed = http.get("/healthz")
        assert failed.status_code == 503 and "index build" in failed.json()["error"]
        service.ready(assistant)
        assert http.get("/healthz").status_code == 200
        assert http.post("/v1/search", json={"query": "残保金", "mode": "bm25"}).status_code == 200


# --- no generated request gets a 5xx ---------------------------------------------------------------

class ConstantEmbedder:
    """A stand-in query encoder (one fixed unit vector): keeps the generated run fast while the real
    BM25, FAISS, fusion, filters, composer and verification code all run."""

    def __init__(self, retriever):
        import numpy as np

        self.model_id = retriever.model_id
        self.dimension = retriever.dense.vectors.shape[1]
        self.vector = np.ones(self.dimension, dtype=np.float32) / np.sqrt(self.dimension)

    def encode_queries(self, texts):
        import numpy as np

        return np.tile(self.vector, (len(texts), 1))

    encode_passages = encode_queries
    encode = encode_queries


def test_generated_requests_never_get_a_5xx(tiny_index):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    from assistant.retriever import Retriever
    from assistant.store import load_index

    loaded = Retriever.load(tiny_index)
    retriever = Retriever(load_index(tiny_index), ConstantEmbedder(loaded))
    seen: dict[tuple[str, int], int] = {}
    with live_server(create_app(Service(Assistant(retriever)))) as url:
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/search", "/v1/ask", "/v1/clauses/{clause_id}"}
        started = time.monotonic()
        for operation in operations:
            strategy = operation.as_strategy() | operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

            @given(case=strategy)
            @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def no_server_error(case):
                response = case.call(base_url=url, timeout=60)
                seen[(operation.path, response.status_code)] = seen.get((operation.path, response.status_code), 0) + 1
                assert response.status_code < 500, f"{case.as_curl_command()} -> {response.status_code} {response.text[:500]}"

            no_server_error()
        assert time.monotonic() - started < 300
    # the run reached both sides: answers and refusals
    assert any(path == "/v1/ask" and status == 200 for path, status in seen)
    assert any(path == "/v1/ask" and status == 400 for path, status in seen)


# --- serve ------------------------------------------------------------------------------------------

def test_serve_refuses_a_taken_port_before_loading_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--index", str(tmp_path / "none"), "--port", str(port)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "another --port" in result.stderr and "Traceback" not in result.stderr


def test_serve_says_503_while_building_then_answers_on_loopback(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--corpus", str(corpus),
                               "--index", str(tmp_path / "index"), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        statuses, pages, asks = [], [], []
        deadline = time.monotonic() + 240
        while not statuses or statuses[-1] != 200:
            assert server.poll() is None, server.stderr.read()
            try:
                statuses.append(httpx.get(url + "/healthz", timeout=5).status_code)
                if statuses[-1] == 503:  # the app may take over between these requests: either answer is fine
                    pages.append(httpx.get(url + "/", timeout=5))
                    asks.append(httpx.post(url + "/v1/ask", json={"question": "残保金要交吗"}, timeout=60))
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        # the port answered from the start: 503 while the first run built the index, then 200
        assert statuses[0] == 503 and set(statuses) == {503, 200}
        assert pages[0].status_code == 503 and "loading" in pages[0].text
        assert asks[0].status_code == 503 and "not loaded" in asks[0].json()["error"]
        assert {r.status_code for r in pages + asks} <= {200, 503}
        answer = httpx.post(url + "/v1/ask", content=json.dumps({"question": "残保金要交吗"}),
                            headers={"content-type": "application/json"}, timeout=120).json()
        assert answer["abstained"] is False and LEVY_TEXT in answer["answer"]
        assert httpx.get(url + "/", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def record_servers(monkeypatch) -> list:
    """The uvicorn servers serve() starts from now on (to stop them at the end of a test)."""
    import uvicorn

    servers, real_server = [], uvicorn.Server

    class RecordedServer(real_server):
        def __init__(self, config):
            super().__init__(config)
            servers.append(self)

    monkeypatch.setattr(uvicorn, "Server", RecordedServer)
    return servers


def test_serve_says_ready_only_once_the_full_app_answers(tiny_index, tmp_path, monkeypatch):
    """While the full app (page, MCP) is still being put together the index is already loaded; the
    loading server must not say 200 then, or a client that trusts /healthz gets 404 from /mcp."""
    import threading

    import assistant.api as api

    assembling, release = threading.Event(), threading.Event()
    real_create_app = api.create_app

    def slow_create_app(service, *, page=None, mcp_app=None):
        if page is not None:
            assembling.set()
            release.wait(120)
        return real_create_app(service, page=page, mcp_app=mcp_app)

    monkeypatch.setattr(api, "create_app", slow_create_app)
    servers = record_servers(monkeypatch)
    port = free_port()
    thread = threading.Thread(target=api.serve, kwargs={"index_dir": tiny_index, "corpus_dir": tmp_path, "port": port,
                                                        "mcp": True}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert assembling.wait(240), "serve never got to assembling the app"
        assert httpx.get(url + "/healthz", timeout=10).status_code == 503  # loaded, but not serving yet
        release.set()
        wait_until_healthy(url, timeout=120)  # the full app took over
        # the first 200 already comes from the full app: the MCP endpoint is there (405 to a GET
        # without an event-stream Accept header would also do; 404 would be the loading server)
        assert httpx.post(url + "/mcp", json={}, timeout=10).status_code != 404
        assert httpx.get(url + "/", timeout=30).status_code == 200
    finally:
        release.set()
        for server in servers:
            server.should_exit = True
        thread.join(timeout=60)


def test_serve_loads_the_encoder_in_the_background_once_ready(tiny_index, tmp_path, monkeypatch):
    """After the page said ready, the first question used to wait ~13 s for torch and the encoder."""
    import threading

    import assistant.api as api
    from assistant.pipeline import Assistant

    warmed = threading.Event()
    real_warm_up = Assistant.warm_up

    def recorded_warm_up(self):
        real_warm_up(self)
        if self.retriever._embedder is not None:  # the encoder is loaded, not just requested
            warmed.set()

    monkeypatch.setattr(Assistant, "warm_up", recorded_warm_up)
    servers = record_servers(monkeypatch)
    port = free_port()
    thread = threading.Thread(target=api.serve, kwargs={"index_dir": tiny_index, "corpus_dir": tmp_path, "port": port},
                              daemon=True)
    thread.start()
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", timeout=240)
        assert warmed.wait(120), "serve did not load the encoder before the first question"
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(timeout=60)


def test_concurrent_first_searches_load_the_encoder_once(tiny_index, monkeypatch):
    import threading

    import assistant.embedding as embedding
    from assistant.retriever import Retriever

    retriever = Retriever.load(tiny_index)
    real_load, calls = embedding.load_embedder, []

    def slow_load(model=None):
        calls.append(model)
        threading.Event().wait(0.5)  # long enough for the other thread to ask meanwhile
        return real_load(model)

    monkeypatch.setattr(embedding, "load_embedder", slow_load)
    threads = [threading.Thread(target=retriever.search, args=("地源热泵",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(calls) == 1
