"""The chat page: ``python -m assistant serve [--index DIR] [--corpus DIR] [--host 127.0.0.1] [--port 7860]``.

A Gradio page where people ask questions and get answers that quote the policy clauses verbatim,
with a sources panel listing the retrieved clauses (query terms highlighted), filters by corpus
file and city, example questions and a 「新对话」 button.

    >>> from assistant.retriever import Retriever
    >>> from assistant.web import build_app
    >>> app = build_app(Retriever.load("index/default"))
    >>> app.launch(server_name="127.0.0.1", server_port=7860, **LAUNCH_OPTIONS)

Other programs call the ``/ask`` endpoint:

    >>> from gradio_client import Client
    >>> Client("http://127.0.0.1:7860/").predict("地源热泵系统由哪个部门负责管理", [], [], api_name="/ask")
    {'question': ..., 'answer': ..., 'abstained': False, 'quotes': [...], 'hits': [...], 'notice': None}

Per-conversation state (the previous question, for follow-ups) lives in ``gr.State``; the
retriever is shared read-only, so concurrent users never see each other's questions.
"""

from __future__ import annotations

import html
import os
import re
import sys
from typing import Any, Sequence

# No usage reporting to the outside (the page must work offline, and it is nobody's business).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant.compose import (  # noqa: E402  (after the environment is set)
    NOT_FOUND,
    answer_question,
    document_name,
    location,
    query_terms,
)
from assistant.errors import AssistantError  # noqa: E402
from assistant.query import HENAN_CITIES  # noqa: E402
from assistant.text import normalize_query  # noqa: E402
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

# Cities and provinces a follow-up like 「那郑州呢？」 may name; the corpus adds its own at run time.
HENAN_PLACES = (*HENAN_CITIES, "河南")
PLACE_SUFFIXES = ("市", "省", "县", "区")

# Words that name an aspect of a subject rather than a subject: 「申请条件呢？」 asks about the
# previous question's subject.
ASPECT_WORDS = (
    "条件", "标准", "期限", "时间", "金额", "额度", "补贴", "奖励", "流程", "程序", "材料", "费用", "收费",
    "责任单位", "牵头单位", "部门", "要求", "对象", "范围", "有效期", "办法", "申请", "政策", "规定", "比例",
    "截止", "负责", "审批", "办理", "报送", "多久", "上报", "管理", "执行", "实施", "落实", "时候", "几号",
)
_FOLLOWUP_LEAD = re.compile(r"^(?:那么|那|还有|另外|再问一下|再问|然后|和|跟)\s*")
_FOLLOWUP_TAIL = re.compile(r"(?:的情况|的呢|呢|吗|怎么样|如何)?\s*[?？。!！]*$")
# Where the subject of a question ends: the first predicate or question word after it.
_PREDICATE = re.compile(
    r"由|是|有没有|有|能|可以|可|要|需要|应当|应|怎么|如何|什么|哪|多少|谁|吗|享受|给予|申请|办理|实行|执行|负责|对|在"
)
MAX_ELLIPTICAL_CHARS = 10


# --- Follow-up questions --------------------------------------------------------------------

def place_names(extra: Sequence[str] = ()) -> list[str]:
    """Short place names (without 市/省), longest first so 三门峡 wins over a shorter match."""
    names = set(HENAN_PLACES)
    for name in extra:
        if name:
            names.add(name[:-1] if name.endswith(PLACE_SUFFIXES) and len(name) > 2 else name)
    return sorted(names, key=len, reverse=True)


def _find_place(text: str, places: Sequence[str]) -> re.Match[str] | None:
    for place in places:
        match = re.search(re.escape(place) + "(?:市|省)?", text)
        if match:
            return match
    return None


def _subject_end(question: str, start: int = 0) -> int:
    """Index where the subject of a question ends (its first predicate word after 2 characters)."""
    match = _PREDICATE.search(question, start + 2)
    return match.start() if match else len(question)


def resolve_followup(question: str, previous: str | None, places: Sequence[str] = HENAN_PLACES) -> str:
    """The question to search for: ``question`` itself, or for an elliptical follow-up, the
    previous question with its subject carried over.

    >>> resolve_followup("那郑州呢？", "鹤壁市地源热泵系统由哪个部门负责管理")
    '郑州市地源热泵系统由哪个部门负责管理'
    >>> resolve_followup("安阳呢", "小微企业贷款能延期还本付息吗")
    '安阳小微企业贷款能延期还本付息吗'
    >>> resolve_followup("申请条件呢？", "鹤壁地源热泵供热特许经营权由谁审批")
    '鹤壁地源热泵供热特许经营权申请条件'
    >>> resolve_followup("小微企业贷款能延期还本付息吗", "鹤壁地源热泵由谁管")
    '小微企业贷款能延期还本付息吗'
    """
    question = question.strip()
    if not previous:
        return question
    places = place_names(places)
    core = _FOLLOWUP_TAIL.sub("", _FOLLOWUP_LEAD.sub("", question)).strip()
    if not core or len(core) > MAX_ELLIPTICAL_CHARS:
        return question
    asks_about = bool(re.search(r"呢\s*[?？]*$", question)) or question.startswith(("那", "还有", "另外"))
    new_place = _find_place(core, places)
    old_place = _find_place(previous, places)
    if new_place and len(new_place.group()) >= len(core) - 1:
        # 「那郑州呢？」: same question, another city.
        if old_place:
            suffix = "市" if old_place.group().endswith("市") and not new_place.group().endswith(("市", "省")) else ""
            return previous[: old_place.start()] + new_place.group() + suffix + previous[old_place.end() :]
        return new_place.group() + previous
    if not _names_a_subject(core):
        # 「申请条件呢？」, 「什么时候截止」: an aspect of the previous question's subject.
        subject = previous[: _subject_end(previous, old_place.end() if old_place else 0)]
        if subject and subject not in question:
            return subject + core if asks_about else subject + question
        return question
    if asks_about:
        # 「那个体工商户呢？」: the previous question about another subject (keeping its city).
        start = old_place.end() if old_place else 0
        end = _subject_end(previous, start)
        place = old_place.group() if old_place and not new_place else ""
        return place + core + previous[end:]
    return question


def _names_a_subject(core: str) -> bool:
    """Whether a short question names something of its own beyond aspect and question words."""
    rest = normalize_query(core)
    for word in sorted(ASPECT_WORDS, key=len, reverse=True):
        rest = rest.replace(word, "")
    return bool(query_terms(rest)) if rest.strip() else False


# --- Rendering ----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$])")
_LIST_START = re.compile(r"^(\s*)(\d+)([.)])", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """Show policy text literally in markdown (no emphasis, lists or HTML from its characters)."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = _LIST_START.sub(r"\1\2\\\3", text)
    return re.sub(r"^(\s*)([-+])", r"\1\\\2", text, flags=re.MULTILINE)


def answer_markdown(answer: Answer, resolved_question: str | None = None) -> str:
    """The chat reply: quotes in block quotes under their document, each with its citation."""
    parts: list[str] = []
    if resolved_question:
        parts.append(f"*按「{escape_markdown(resolved_question)}」理解*")
    if answer.notice:
        parts.append(f"*注意：{escape_markdown(answer.notice)}*")
    if answer.abstained:
        first_line = answer.text.split("\n", 1)[0] if answer.text.startswith(NOT_FOUND) else f"{NOT_FOUND}。"
        parts.append(f"**{escape_markdown(first_line)}**")
        if answer.hits:
            lines = ["可能相关（未必回答您的问题）："]
            for hit in answer.hits[:3]:
                c = hit.clause
                lines.append(f"- {escape_markdown(document_name(c))} › {escape_markdown(c.label)} — `{location(c.source, c.line_start, c.line_end)}`")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)
    clauses = {h.clause.clause_id: h.clause for h in answer.hits}
    current_doc = None
    for quote in answer.quotes:
        clause = clauses[quote.clause_id]
        if clause.doc_id != current_doc:
            parts.append(f"**{escape_markdown(document_name(clause))}**")
            current_doc = clause.doc_id
        body = "\n".join(f"> {line}" if line else ">" for line in f"「{escape_markdown(quote.text)}」".split("\n"))
        where = location(quote.source, quote.line_start, quote.line_end)
        label = f"{escape_markdown(quote.label)} · " if quote.label else ""
        parts.append(f"{body}\n>\n> —— {label}`{where}`")
    parts.append("<sub>完整条款见右侧「检索到的条款」。</sub>")
    return "\n\n".join(parts)


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
#sources-panel { max-height: 720px; overflow-y: auto; }
"""


# --- The app ---------------------------------------------------------------------------------------

def corpus_choices(retriever) -> tuple[list[tuple[str, str]], list[str]]:
    """Filter choices: (label, file name) for each corpus file, and the cities of the documents."""
    documents = list(getattr(retriever, "documents", []) or [])
    per_file: dict[str, list[str]] = {}
    for clause in retriever.clauses:
        per_file.setdefault(clause.source, [])
    for doc in documents:
        per_file.setdefault(doc.source, []).append(doc.city or "")
    files = []
    for name in sorted(per_file):
        cities = sorted({c for c in per_file[name] if c})
        count = len(per_file[name])
        where = "、".join(cities[:2]) + ("等" if len(cities) > 2 else "")
        label = f"{name}（{count} 篇{'，' + where if where else ''}）" if count else name
        files.append((label, name))
    cities = sorted({d.city for d in documents if d.city} | {c.city for c in retriever.clauses if c.city})
    return files, cities


def ask(retriever, question: str, files: Sequence[str] | None = None, cities: Sequence[str] | None = None, composer=None) -> Answer:
    filters: dict[str, list[str]] = {}
    if files:
        filters["source"] = list(files)
    if cities:
        filters["city"] = list(cities)
    return answer_question(retriever, question, k=HITS_PER_QUESTION, filters=filters or None, composer=composer)


def chat_turn(retriever, message: str, history: list[dict] | None, conversation: dict | None,
              files: Sequence[str] | None = None, cities: Sequence[str] | None = None, *,
              places: Sequence[str] = HENAN_PLACES, composer=None) -> tuple[str, list[dict], dict, str | None]:
    """One chat turn: (cleared textbox, new history, new conversation state, sources panel HTML).

    Pure function of its inputs (new lists/dicts are returned, nothing shared is mutated), so
    concurrent conversations never mix. The sources panel is None when it should stay as it is.
    """
    history = list(history or [])
    conversation = dict(conversation or {})
    message = (message or "").strip()
    if not message:
        return "", history, conversation, None
    resolved = resolve_followup(message, conversation.get("question"), places)
    history.append({"role": "user", "content": message})
    try:
        answer = ask(retriever, resolved, files, cities, composer)
    except AssistantError as error:
        history.append({"role": "assistant", "content": f"**出错了：** {escape_markdown(str(error))}"})
        return "", history, conversation, None
    conversation["question"] = resolved
    history.append({"role": "assistant", "content": answer_markdown(answer, resolved if resolved != message else None)})
    panel = sources_html(resolved, answer.hits, [q.clause_id for q in answer.quotes], abstained=answer.abstained)
    return "", history, conversation, panel


def build_app(retriever, *, composer=None):
    """The Gradio Blocks page around a loaded (read-only, shared) retriever."""
    import gradio as gr

    query_terms("预热")  # load jieba's dictionary now, not during the first user's question
    file_choices, city_choices = corpus_choices(retriever)
    places = place_names(city_choices)

    def respond(message: str, history: list[dict], conversation: dict, files: list[str], cities: list[str]):
        text, history, conversation, panel = chat_turn(
            retriever, message, history, conversation, files, cities, places=places, composer=composer
        )
        return text, history, conversation, gr.update() if panel is None else panel

    def new_conversation():
        return "", [], {}, sources_html(None, [])

    def ask_api(question: str, files: list[str] | None = None, cities: list[str] | None = None) -> dict:
        """Answer one question (no conversation): the same JSON as `python -m assistant ask --json`."""
        try:
            return ask(retriever, question, files, cities, composer).to_dict()
        except AssistantError as error:
            raise gr.Error(str(error)) from error

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
    return {"share": False, "theme": theme, "css": CSS, "ssr_mode": False, "footer_links": ["api"]}


def cli_serve(args) -> int:
    """``python -m assistant serve``: load (or on first run build) the index, then serve the page."""
    from assistant.retriever import Retriever

    print(f"加载索引 / loading index {args.index} (building it from {args.corpus} if missing) ...", file=sys.stderr, flush=True)
    retriever = Retriever.load_or_build(args.index, args.corpus, model=args.model, progress=True)
    app = build_app(retriever)
    app.queue(default_concurrency_limit=4)
    print(f"页面 / page: http://{args.host}:{args.port}/  (Ctrl+C to stop)", file=sys.stderr, flush=True)
    try:
        app.launch(server_name=args.host, server_port=args.port, **launch_options())
    except OSError as error:
        raise AssistantError(f"cannot serve on {args.host}:{args.port} ({error}); choose another --port") from error
    return 0
