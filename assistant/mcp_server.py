"""A Model Context Protocol server (official ``mcp`` SDK, optional extra ``.[mcp]``) with two tools.

    python -m assistant mcp [--index DIR]     # stdio, for MCP clients that spawn the server
    python -m assistant serve --mcp           # streamable HTTP at http://127.0.0.1:7860/mcp, beside the page and REST

- ``search_policies(query, k, filters)``: the clauses that best match, verbatim, each with its citation;
- ``ask_policy(question, filters)``: the answer quoting clauses verbatim, each quote with its citation,
  or an abstention with its reason.

Both are thin shells over the one :class:`~assistant.pipeline.Assistant` (held by an
:class:`~assistant.api.Service`, shared with the REST API under ``serve``); bad input comes back
as a tool error with the same message the CLI prints.
"""

from __future__ import annotations

from typing import Annotated, Any

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as error:  # pragma: no cover - depends on the optional extra
    from assistant.errors import AssistantError

    raise AssistantError("the MCP server needs the mcp SDK: pip install 'policy-assistant[mcp]'") from error

from pydantic import Field

from assistant.api import MAX_K, Filters, Service, Unavailable
from assistant.errors import AssistantError
from assistant.payloads import search_payload
from assistant.render import citation

SEARCH_DESCRIPTION = (
    "检索河南等地的政策通知条款：按问题或关键词返回最相关的条款原文（逐字），每条附出处"
    "（文件标题、条款、文件名、行号，见 citation）。可用 filters 限定文件（source）、文档（doc_id）或城市（city，如 鹤壁市）。\n"
    "Search local-government policy notices: the clauses that best match a question or keywords, verbatim, "
    "each with its citation (document title › section — file:line). filters limits the search to corpus files "
    "(source), documents (doc_id) or cities (city, e.g. 鹤壁市)."
)
ASK_DESCRIPTION = (
    "回答关于政策通知的问题：只逐字引用条款原文作答，每条引文附出处（citation）；"
    "文件中没有答案时明确说明（abstained=true，reason 说明原因）。用中文提问效果最好。\n"
    "Answer a question about the policy notices by quoting their clauses verbatim, each quote with its citation; "
    "when the notices do not answer it, it says so (abstained=true, with a reason). Ask in Chinese for best results."
)
INSTRUCTIONS = (
    "政策文件问答助手：用 search_policies 查找条款，用 ask_policy 获得逐字引用原文的回答。引用时请保留 citation。"
    " / Policy-notice assistant: search_policies finds clauses, ask_policy answers by quoting them; keep the citations."
)


def _citation_of(hit_dict: dict[str, Any], clause) -> dict[str, Any]:
    return {**hit_dict, "citation": citation(clause)}


def build_mcp_server(service: Service) -> MCPServer:
    """The MCP server whose tools answer from ``service``'s Assistant."""
    server = MCPServer(name="policy-assistant", instructions=INSTRUCTIONS, log_level="WARNING")

    def require():
        try:
            return service.require()
        except Unavailable as error:
            raise ToolError(f"索引尚未加载 / the index is not loaded: {error}") from None

    def search_policies(
        query: Annotated[str, Field(description="问题或关键词 / question or keywords, e.g. 地源热泵项目谁来审批")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="返回条款数 / number of clauses")] = 5,
        filters: Annotated[Filters | None, Field(description="限定范围 / limit to files, documents or cities")] = None,
    ) -> dict[str, Any]:
        from assistant.query import prepare_query

        retriever = require().retriever
        try:
            prepared = prepare_query(query)
            hits = retriever.search(prepared.text, k=k, filters=filters.as_dict() if filters else None)
        except AssistantError as error:
            raise ToolError(str(error)) from None
        payload = search_payload(prepared, "hybrid", hits)
        payload["hits"] = [_citation_of(d, h.clause) for d, h in zip(payload["hits"], hits)]
        return payload

    def ask_policy(
        question: Annotated[str, Field(description="问题 / the question, e.g. 公司没招残疾人，残保金要交吗")],
        filters: Annotated[Filters | None, Field(description="限定范围 / limit to files, documents or cities")] = None,
    ) -> dict[str, Any]:
        assistant = require()
        try:
            answer = assistant.ask(question, filters=filters.as_dict() if filters else None)
        except AssistantError as error:
            raise ToolError(str(error)) from None
        result = answer.to_dict()
        # The retrieved clauses as citations only: the quotes carry the text that answers.
        result["hits"] = [{key: value for key, value in _citation_of(h.to_dict(), h.clause).items() if key != "text"}
                          for h in answer.hits]
        return result

    server.add_tool(search_policies, title="检索政策条款 / Search policy clauses", description=SEARCH_DESCRIPTION)
    server.add_tool(ask_policy, title="政策问答 / Ask the policy notices", description=ASK_DESCRIPTION)
    return server


def http_app(service: Service, *, host: str = "127.0.0.1"):
    """The streamable-HTTP Starlette app (route /mcp, lifespan running the session manager), for
    :func:`assistant.api.create_app` to take in beside the REST routes."""
    return build_mcp_server(service).streamable_http_app(streamable_http_path="/mcp", host=host)


def run_stdio(service: Service) -> None:
    build_mcp_server(service).run("stdio")


__all__ = ["ASK_DESCRIPTION", "SEARCH_DESCRIPTION", "build_mcp_server", "http_app", "run_stdio"]
