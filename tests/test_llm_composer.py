"""--llm-url: the generative composer against a fake OpenAI-compatible server on loopback (real HTTP).

A good reply is shown (quotes verified); an altered quote, a timeout, a malformed body or a dead
endpoint fall back to the extractive answer from the same search, with a notice saying why.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from assistant.api import Service, create_app
from assistant.cli import main as cli_main
from assistant.errors import AssistantError
from assistant.generative import FallbackComposer, composer_from_settings
from assistant.pipeline import Assistant
from assistant.web import chat_turn
from compose_fixtures import HEBI_ART4, FakeRetriever
from live_server import free_port, live_server

QUESTION = "鹤壁市地源热泵系统由哪个部门负责管理"
MODEL = "fake-model"


class FakeLLM:
    """POST /v1/chat/completions answering as ``self.behaviour`` says; every request is recorded.

    good: quotes the first sentence of clause [1] verbatim, citing its id; altered: the same
    sentence with one character changed; slow: good, after 3 s; malformed: a broken JSON body;
    prose: a 200 whose message is not the JSON asked for; error: HTTP 500."""

    def __init__(self):
        self.behaviour = "good"
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"path": self.path, "authorization": self.headers.get("authorization"), "body": body})
                if fake.behaviour == "error":
                    self.send_error(500, "model crashed")
                    return
                if fake.behaviour == "slow":
                    time.sleep(3)
                if fake.behaviour == "malformed":
                    self._send(b'{"choices": [{"message": {"content": "')
                    return
                content = "这些条款说的是别的事。" if fake.behaviour == "prose" else json.dumps(fake.reply(body), ensure_ascii=False)
                self._send(json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())

            def _send(self, payload: bytes):
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, body: dict) -> dict:
        prompt = body["messages"][1]["content"]
        header = re.search(r"^\[1\] \(id: (?P<id>[^)]+)\).*\n(?P<text>.+)$", prompt, re.MULTILINE)
        sentence = re.match(r"[^。]+。", header["text"]).group()
        if self.behaviour == "altered":
            sentence = sentence.replace("行政主管部门", "主管部门", 1).replace("是", "为", 1)
        return {"summary": "住建局主管。", "quotes": [{"clause": header["id"], "text": sentence}]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm():
    fake = FakeLLM()
    yield fake
    fake.close()


def assistant_with(llm: FakeLLM, *, timeout: float = 10.0, environ=None) -> Assistant:
    return Assistant(FakeRetriever(), composer_from_settings(llm.url, MODEL, timeout=timeout, environ=environ or {}))


def test_a_good_reply_is_shown_with_verified_quotes(llm):
    assistant = assistant_with(llm, environ={"OPENAI_API_KEY": "sk-test"})
    answer = assistant.ask(QUESTION)
    assert answer.composer == f"llm:{MODEL}" and answer.notice is None and not answer.abstained
    assert answer.summary == "住建局主管。"
    assert [q.text for q in answer.quotes] == ["第四条 鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门。"]
    assert answer.quotes[0].clause_id == HEBI_ART4.clause_id and "000_ed0d53ce87970edb.txt:54" in answer.quotes[0].citation
    request = llm.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == MODEL
    system, user = (m["content"] for m in request["body"]["messages"])
    assert "逐字" in system and "条款编号" in system
    assert f"(id: {HEBI_ART4.clause_id})" in user and HEBI_ART4.text in user and QUESTION in user


def test_an_altered_quote_is_rejected_and_the_extractive_answer_shown(llm):
    llm.behaviour = "altered"
    assistant = assistant_with(llm)
    answer = assistant.ask(QUESTION)
    assert answer.composer == "extractive" and "not verbatim" in answer.notice
    assert answer.quotes and all(q.text in HEBI_ART4.text for q in answer.quotes if q.clause_id == HEBI_ART4.clause_id)
    assert "主管部门。" in answer.text and "为本市" not in answer.text  # the altered sentence never shows
    assert len(assistant.retriever.calls) == 1  # the fallback answers from the same search


def test_a_timeout_falls_back_quickly(llm):
    llm.behaviour = "slow"
    started = time.monotonic()
    answer = assistant_with(llm, timeout=1).ask(QUESTION)
    assert time.monotonic() - started < 2.9
    assert answer.composer == "extractive" and "within 1 s" in answer.notice and answer.quotes


@pytest.mark.parametrize("behaviour, words", [("malformed", "failed"), ("prose", "unreadable"), ("error", "500")])
def test_a_broken_reply_falls_back_with_the_reason(llm, behaviour, words):
    llm.behaviour = behaviour
    answer = assistant_with(llm).ask(QUESTION)
    assert answer.composer == "extractive" and words in answer.notice and answer.quotes
    assert "\n" not in answer.notice  # one line


def test_an_unreachable_endpoint_falls_back():
    composer = composer_from_settings(f"http://127.0.0.1:{free_port()}/v1", MODEL, timeout=5, environ={})
    answer = Assistant(FakeRetriever(), composer).ask(QUESTION)
    assert answer.composer == "extractive" and "failed" in answer.notice and answer.quotes


def test_settings_need_both_a_url_and_a_model_and_read_either_key():
    assert composer_from_settings(None, None) is None
    for url, model in (("http://127.0.0.1:1/v1", None), (None, "m"), ("127.0.0.1:11434", "m")):
        with pytest.raises(AssistantError, match="--llm"):
            composer_from_settings(url, model, environ={})
    composer = composer_from_settings("http://h/v1", "m", environ={"LLM_API_KEY": "k2"})
    assert isinstance(composer, FallbackComposer) and composer.generative.api_key == "k2"
    assert composer_from_settings("http://h/v1", "m", environ={}).generative.api_key is None


def test_the_page_shows_which_composer_answered(llm):
    assistant = assistant_with(llm)
    _, history, _, _ = chat_turn(assistant, QUESTION, [], {})
    assert f"回答方式：llm:{MODEL}" in history[-1]["content"]
    llm.behaviour = "altered"
    _, history, _, _ = chat_turn(assistant, QUESTION, [], {})
    assert "大模型回答未采用" in history[-1]["content"] and "回答方式：llm" not in history[-1]["content"]


def test_the_api_reports_the_composer(llm):
    with live_server(create_app(Service(assistant_with(llm)))) as url:
        data = httpx.post(url + "/v1/ask", json={"question": QUESTION}, timeout=60).json()
        assert data["composer"] == f"llm:{MODEL}" and data["quotes"]
        llm.behaviour = "malformed"
        data = httpx.post(url + "/v1/ask", json={"question": QUESTION}, timeout=60).json()
        assert data["composer"] == "extractive" and "大模型回答未采用" in data["notice"]


def test_ask_cli_turns_the_llm_on(llm, tiny_index, capsys, monkeypatch):
    monkeypatch.setenv("LLM_API_KEY", "local-key")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert cli_main(["ask", "鹤壁市地源热泵系统由哪个部门负责管理", "--index", str(tiny_index), "--json",
                     "--llm-url", llm.url, "--llm-model", MODEL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["composer"] == f"llm:{MODEL}" and "住房和城乡建设局" in data["quotes"][0]["text"]
    assert llm.requests[-1]["authorization"] == "Bearer local-key"
    assert cli_main(["ask", "地源热泵", "--index", str(tiny_index), "--llm-url", llm.url]) == 2
    assert "--llm-model" in capsys.readouterr().err
