"""The chat page, served at / by ``python -m assistant serve`` (:func:`assistant.api.serve`, beside the REST API).

A Gradio page where people ask questions and get answers that quote the policy clauses verbatim,
with a sources panel listing the retrieved clauses (query terms highlighted), filters by corpus
file and city, example questions and a 「新对话」 button.

    >>> from assistant.pipeline import Assistant
    >>> from assistant.web import build_app, launch_options
    >>> app = build_app(Assistant.load("index/default"))
    >>> app.launch(server_name="127.0.0.1", server_port=7860, **launch_options())   # the page alone

Other programs call the ``/ask`` endpoint:

    >>> from gradio_client import Client
    >>> Client("http://127.0.0.1:7860/").predict("地源热泵系统由哪个部门负责管理", [], [], api_name="/ask")
    {'question': ..., 'answer': ..., 'abstained': False, 'quotes': [...], 'hits': [...], 'notice': None}

Per-conversation state (the previous question, for follow-ups) lives in ``gr.State``; the
Assistant is shared read-only, so concurrent users never see each other's questions. Every
string that came from the corpus or the user is escaped before the page renders it.
"""

from __future__ import annotations

import html
import os
import re
import sys
from typing import Any, Sequence

# No usage reporting to the outside (the page must work offline, and it is nobody's business).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant.dialogue import HENAN_PLACES, place_names, resolve_followup  # noqa: E402,F401  (after the environment is set)
from assistant.errors import AssistantError  # noqa: E402
from assistant.query import query_terms  # noqa: E402
from assistant.render import answer_markdown, document_name, escape_markdown, location  # noqa: E402,F401
from assistant.types import Answer, Hit  # noqa: E402

TITLE = "政策文件问答助手"
INTRO = (
    "用日常的话提问，例如「地源热泵系统由哪个部门负责管理」。回答只摘录文件原文（「」内为原文），"
    "并注明出处：文件标题 › 条款，文件名:行号。右侧列出检索到的全部条款。"
)

# Questions each answered by a specific clause of the bundled corpus (checked by tests/test_web.py).
EXAMPLE_QUESTIONS = (
    "地源热泵系统由哪个部门负责管理",
    "小微企业贷款能延期还本付息吗",
    "规模以上工业企业满负荷生产有什么奖励",
    "专精特新中小企业什么时候更新企业信息",
    "郑州市粮食安全的责任单位有哪些",
    "鹤壁资源产出率统计数据什么时候报送",
)

HITS_PER_QUESTION = 10
MAX_MESSAGE_CHARS = 10_000  # what the chat keeps of one message (the question itself is cut at 2000)


# --- Rendering ----------------------------------------------------------------------------------

def highlight(text: str, terms: Sequence[str]) -> str:
    """HTML-escape ``text`` and wrap the query terms in <mark> (stray PDF spaces inside a term allowed)."""
    patterns = [r"\s*".join(map(re.escape, term)) for term in sorted(set(terms), key=len, reverse=True) if len(term) >= 2]
    if not patterns:
        return html.escape(text)
    regex = re.compile("|".join(patterns), re.IGNORECASE)
    out, last = [], 0
    for match in regex.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def sources_html(question: str | None, hits: Sequence[Hit], quoted_ids: Sequence[str] = (), *, abstained: bool = False) -> str:
    """The sources panel: every retrieved clause with title, section, file:line, terms marked."""
    if not hits:
        return '<div class="sources-empty">提问后，这里会列出检索到的条款原文及出处。</div>'
    terms = query_terms(question or "")
    items = []
    for rank, hit in enumerate(hits, 1):
        c = hit.clause
        quoted = " quoted" if c.clause_id in quoted_ids else ""
        badge = '<span class="badge">已引用</span>' if quoted else ""
        section = html.escape(c.section or c.label)
        items.append(
            f'<details class="source{quoted}" data-clause-id="{html.escape(c.clause_id)}"{" open" if rank <= 3 else ""}>'
            f'<summary><span class="rank">{rank}</span> <b>{html.escape(document_name(c))}</b> {badge}<br>'
            f'<span class="where">{section} — <code>{html.escape(location(c.source, c.line_start, c.line_end))}</code></span></summary>'
            f'<div class="clause-text">{highlight(c.text, terms)}</div></details>'
        )
    head = f"检索到的条款（{len(hits)}）" + ("：未找到直接回答问题的规定，以下仅供参考" if abstained else "")
    return f'<div class="sources"><div class="sources-head">{head}</div>{"".join(items)}</div>'


CSS = """
.sources { font-size: 14px; line-height: 1.6; }
.sources-head { font-weight: 600; margin-bottom: 6px; }
.sources-empty { color: var(--body-text-color-subdued); padding: 12px 0; }
.source { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 6px 10px; margin-bottom: 8px; }
.source.quoted { border-left: 4px solid var(--color-accent); }
.source summary { cursor: pointer; }
.source .where { color: var(--body-text-color-subdued); font-size: 13px; }
.source .rank { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 4px; background: var(--background-fill-secondary); }
.source .badge { font-size: 12px; color: var(--color-accent); border: 1px solid var(--color-accent); border-radius: 4px; padding: 0 4px; }
.clause-text { white-space: pre-wrap; margin-top: 6px; }
.clause-text mark { background: #ffe58f; padding: 0 1px; }
.sources { max-height: 70vh; overflow-y: auto; padding-right: 4px; }
"""


# --- The app ---------------------------------------------------------------------------------------

def corpus_choices(retriever) -> tuple[list[tuple[str, str]], list[str]]:
    """Filter choices: (label, file name) for each corpus file, and the cities of the documents."""
    documents = list(getattr(retriever, "documents", []) or [])
    from assistant.clause_table import factorize

    per_file: dict[str, list[str]] = {}
    for source in factorize(retriever.clauses, "source")[0]:  # a column, not a Clause per row
        per_file.setdefault(source, [])
    for doc in documents:
        per_file.setdefault(doc.source, []).append(doc.city or "")
    files = []
    for name in sorted(per_file):
        cities = sorted({c for c in per_file[name] if c})
        count = len(per_file[name])
        where = "、".join(cities[:2]) + ("等" if len(cities) > 2 else "")
        label = f"{name}（{count} 篇{'，' + where if where else ''}）" if count else name
        files.append((label, name))
    cities = sorted({d.city for d in documents if d.city} | {c for c in factorize(retriever.clauses, "city")[0] if c})
    return files, cities


def _string_list(value, name: str) -> list[str]:
    """A filter value from the page or the API: None/[] or a list of strings; anything else is refused."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v for v in value if v]
    raise AssistantError(f"「{name}」必须是字符串列表，例如 [\"000_ed0d53ce87970edb.txt\"] / {name} must be a list of strings")


def ask(assistant, question: str, files: Sequence[str] | None = None, cities: Sequence[str] | None = None,
        history: Sequence | None = None) -> Answer:
    """One answer from the page or its API, with the page's file and city filters."""
    if not isinstance(question, str):
        raise AssistantError("问题必须是文字 / the question must be a string")
    filters = {key: values for key, values in (("source", _string_list(files, "files")), ("city", _string_list(cities, "cities"))) if values}
    return assistant.ask(question, filters=filters or None, history=history)


def chat_turn(assistant, message: str, history: list[dict] | None, conversation: dict | None,
              files: Sequence[str] | None = None, cities: Sequence[str] | None = None) -> tuple[str, list[dict], dict, str | None]:
    """One chat turn: (cleared textbox, new history, new conversation state, sources panel HTML).

    Pure function of its inputs (new lists/dicts are returned, nothing shared is mutated), so
    concurrent conversations never mix. The sources panel is None when it should stay as it is.
    The user's message is shown exactly as typed (escaped, never rendered as Markdown or HTML).
    """
    history = list(history or [])
    conversation = dict(conversation or {})
    message = (message or "")[:MAX_MESSAGE_CHARS]
    if not message.strip():
        history.append({"role": "assistant", "content": "请输入问题，例如「小微企业贷款能延期还本付息吗」。"})
        return "", history, conversation, None
    history.append({"role": "user", "content": escape_markdown(message)})
    previous = [conversation["question"]] if conversation.get("question") else None
    try:
        answer = ask(assistant, message, files, cities, previous)
    except AssistantError as error:
        history.append({"role": "assistant", "content": f"**出错了：** {escape_markdown(str(error))}"})
        return "", history, conversation, None
    if answer.reason != "needs_context":
        conversation["question"] = answer.resolved_question or answer.question
    history.append({"role": "assistant", "content": answer_markdown(answer)})
    panel = sources_html(answer.resolved_question or answer.question, answer.hits,
                         [q.clause_id for q in answer.quotes], abstained=answer.abstained)
    return "", history, conversation, panel


def build_app(assistant):
    """The Gradio Blocks page around a loaded (read-only, shared) Assistant."""
    import gradio as gr

    query_terms("预热", assistant.tokenizer)  # load jieba's dictionary now, not during the first user's question
    file_choices, city_choices = corpus_choices(assistant.retriever)

    def respond(message: str, history: list[dict], conversation: dict, files: list[str], cities: list[str]):
        text, history, conversation, panel = chat_turn(assistant, message, history, conversation, files, cities)
        return text, history, conversation, gr.update() if panel is None else panel

    def new_conversation():
        return gr.update(value="", lines=1), [], {}, sources_html(None, [])

    def ask_api(question: str, files: list[str] | None = None, cities: list[str] | None = None) -> dict:
        """Answer one question (no conversation): the same JSON as `python -m assistant ask --json`."""
        try:
            return ask(assistant, question, files, cities).to_dict()
        except AssistantError as error:
            print(f"ask API: refused a request: {error}", file=sys.stderr)
            # one line in the log, not gradio's traceback of its own Error
            raise gr.Error(str(error), print_exception=False) from None

    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"## {TITLE}\n{INTRO}")
        conversation = gr.State({})
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="对话",
                    height=480,
                    elem_id="chat",
                    buttons=["copy"],
                    feedback_options=None,
                    placeholder="在下方输入问题，或点选示例问题。",
                )
                with gr.Row():
                    question = gr.Textbox(
                        show_label=False,
                        placeholder="输入问题，按回车发送，例如：小微企业贷款能延期还本付息吗",
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                        lines=1,
                        max_lines=4,
                    )
                    send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="send")
                    new_chat = gr.Button("新对话", variant="secondary", scale=1, min_width=80, elem_id="new-chat")
                gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=[question], label="示例问题（点击填入，再按发送）")
            with gr.Column(scale=2):
                with gr.Accordion("筛选范围（可选）", open=False):
                    files = gr.Dropdown(choices=file_choices, value=[], multiselect=True, label="文件", elem_id="filter-file")
                    cities = gr.Dropdown(choices=city_choices, value=[], multiselect=True, label="城市", elem_id="filter-city")
                sources = gr.HTML(sources_html(None, []), elem_id="sources-panel")

        inputs = [question, chatbot, conversation, files, cities]
        outputs = [question, chatbot, conversation, sources]
        question.submit(respond, inputs, outputs, api_visibility="private")
        send.click(respond, inputs, outputs, api_visibility="private")
        new_chat.click(new_conversation, None, outputs, api_visibility="private")
        # The chat's own trash button starts over too (else a follow-up would resolve against
        # a question no longer on screen).
        chatbot.clear(new_conversation, None, outputs, api_visibility="private")
        gr.api(ask_api, api_name="ask")
    return app


def launch_options() -> dict[str, Any]:
    """What every launch passes: local fonts (no web font downloads), our CSS, no sharing."""
    import gradio as gr

    cjk = ["Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", "sans-serif"]
    theme = gr.themes.Default(font=cjk, font_mono=["DejaVu Sans Mono", "monospace"])
    # The page has no upload; max_file_size bounds what /gradio_api/upload accepts anyway.
    return {"share": False, "theme": theme, "css": CSS, "ssr_mode": False, "footer_links": ["api"], "max_file_size": "1mb"}
