"""The MCP server through the official SDK's client: over stdio (a spawned `python -m assistant mcp`)
and over streamable HTTP (/mcp on the same app as the REST API)."""

from __future__ import annotations

import os
import re
import sys

import pytest

pytest.importorskip("mcp")

import anyio  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402

from assistant.api import Service, create_app  # noqa: E402
from assistant.mcp_server import http_app  # noqa: E402
from assistant.pipeline import Assistant  # noqa: E402
from conftest import ROOT  # noqa: E402
from live_server import live_server  # noqa: E402

LEVY_TEXT = "暂免征收残疾人就业保障金"
CITATION = re.compile(r"^.+ › .+ — [\w.]+\.txt:\d+(-\d+)?$")
HAS_CHINESE = re.compile(r"[\u4e00-\u9fff]")
HAS_ENGLISH = re.compile(r"\b(the|clauses|policy)\b")


async def exercise(client: Client) -> dict:
    """List the tools and call each (also with bad input); return what came back."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    search = await client.call_tool("search_policies", {"query": "残保金要交吗", "k": 3, "filters": {"city": ["郑州市"]}})
    ask = await client.call_tool("ask_policy", {"question": "残保金要交吗"})
    empty = await client.call_tool("ask_policy", {"question": "   "})
    bad_k = await client.call_tool("search_policies", {"query": "残保金", "k": 0})
    return {"tools": tools, "search": search, "ask": ask, "empty": empty, "bad_k": bad_k}


def check(seen: dict) -> None:
    tools = seen["tools"]
    assert set(tools) == {"search_policies", "ask_policy"}
    for tool in tools.values():
        assert HAS_CHINESE.search(tool.description) and HAS_ENGLISH.search(tool.description)
    assert set(tools["search_policies"].input_schema["properties"]) == {"query", "k", "filters"}
    assert tools["search_policies"].input_schema["required"] == ["query"]
    assert set(tools["ask_policy"].input_schema["properties"]) == {"question", "filters"}

    search = seen["search"]
    assert not search.is_error
    hits = search.structured_content["hits"]
    assert 0 < len(hits) <= 3 and {h["city"] for h in hits} == {"郑州市"}
    assert LEVY_TEXT in hits[0]["text"]
    for hit in hits:
        assert CITATION.match(hit["citation"]) and hit["source"] in hit["citation"] and hit["doc_title"] in hit["citation"]
        assert isinstance(hit["line_start"], int) and hit["section"]

    ask = seen["ask"].structured_content
    assert not seen["ask"].is_error and ask["abstained"] is False and LEVY_TEXT in ask["answer"]
    for quote in ask["quotes"]:
        assert CITATION.match(quote["citation"]) and quote["source"] == "b_zz.txt" and quote["line_start"] == 3
    assert ask["hits"] and all("citation" in h and "text" not in h for h in ask["hits"])

    assert seen["empty"].is_error and "empty" in seen["empty"].content[0].text
    assert seen["bad_k"].is_error and "k" in seen["bad_k"].content[0].text


def test_stdio_server_lists_and_calls_both_tools(tiny_index):
    # The SDK hands the child only a safe default environment (HOME, PATH …) plus this.
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if os.environ.get("POLICY_ASSISTANT_CACHE"):
        env["POLICY_ASSISTANT_CACHE"] = os.environ["POLICY_ASSISTANT_CACHE"]
    params = StdioServerParameters(command=sys.executable, args=["-m", "assistant", "mcp", "--index", str(tiny_index)],
                                   cwd=str(ROOT), env=env)

    async def run():
        with anyio.fail_after(240):
            async with Client(params) as client:
                return await exercise(client)

    check(anyio.run(run))


def test_streamable_http_on_the_same_server_as_the_api(tiny_index):
    service = Service(Assistant.load(tiny_index))
    with live_server(create_app(service, mcp_app=http_app(service))) as url:
        import httpx

        assert httpx.get(url + "/healthz", timeout=30).status_code == 200  # REST beside it

        async def run():
            with anyio.fail_after(240):
                async with Client(url + "/mcp") as client:
                    return await exercise(client)

        check(anyio.run(run))


def test_tools_report_an_index_not_yet_loaded():
    service = Service()
    with live_server(create_app(service, mcp_app=http_app(service))) as url:

        async def run():
            async with Client(url + "/mcp") as client:
                return await client.call_tool("ask_policy", {"question": "残保金要交吗"})

        result = anyio.run(run)
    assert result.is_error and "not loaded" in result.content[0].text


def test_serve_mcp_answers_beside_the_page(tiny_index):
    import subprocess

    import httpx

    from live_server import free_port, wait_until_healthy

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--mcp", "--index", str(tiny_index), "--port", str(port)],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def still_running():
            assert server.poll() is None, server.stderr.read()

        wait_until_healthy(url, timeout=240, still_running=still_running, interval=0.5)

        async def run():
            with anyio.fail_after(120):
                async with Client(url + "/mcp") as client:
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    return names, await client.call_tool("ask_policy", {"question": "残保金要交吗"})

        names, answer = anyio.run(run)
        assert names == {"search_policies", "ask_policy"}
        assert not answer.is_error and answer.structured_content["quotes"]
        assert httpx.get(url + "/", timeout=30).status_code == 200  # the page still at /
    finally:
        server.terminate()
        server.wait(timeout=30)
