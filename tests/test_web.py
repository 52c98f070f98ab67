"""The chat page's logic (follow-ups, rendering, turns) and its gradio_client API endpoint."""

from __future__ import annotations

import html
import socket

import pytest

from assistant.compose import compose
from assistant.pipeline import Assistant
from assistant.web import (
    EXAMPLE_QUESTIONS,
    answer_markdown,
    chat_turn,
    corpus_choices,
    escape_markdown,
    highlight,
    resolve_followup,
    sources_html,
)
from compose_fixtures import HEBI_ART4, HEBI_ART6, HEBI_FILE, HEBI_TITLE, ZZ_GRAIN, FakeRetriever, hits


# --- follow-up questions ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "question, previous, expected",
    [
        ("那郑州呢？", "鹤壁市地源热泵系统由哪个部门负责管理", "郑州市地源热泵系统由哪个部门负责管理"),
        ("安阳呢", "郑州市粮食安全的责任单位有哪些", "安阳市粮食安全的责任单位有哪些"),
        ("那三门峡呢", "郑州市粮食安全的责任单位有哪些", "三门峡市粮食安全的责任单位有哪些"),
        ("安阳呢", "小微企业贷款能延期还本付息吗", "安阳小微企业贷款能延期还本付息吗"),
        ("申请条件呢？", "鹤壁地源热泵供热特许经营权由谁审批", "鹤壁地源热泵供热特许经营权申请条件"),
        ("什么时候截止", "鹤壁资源产出率统计数据什么时候报送", "鹤壁资源产出率统计数据什么时候截止"),
        ("那个体工商户呢", "小微企业贷款能延期还本付息吗", "个体工商户能延期还本付息吗"),
    ],
)
def test_elliptical_followups_carry_the_subject_over(question, previous, expected):
    assert resolve_followup(question, previous) == expected


@pytest.mark.parametrize(
    "question",
    ["小微企业贷款能延期还本付息吗", "地源热泵是什么", "郑州市粮食安全的责任单位有哪些", "专精特新中小企业什么时候更新企业信息"],
)
def test_complete_questions_are_answered_on_their_own(question):
    assert resolve_followup(question, "鹤壁市地源热泵系统由哪个部门负责管理") == question


def test_first_question_is_taken_as_is():
    assert resolve_followup("那郑州呢？", None) == "那郑州呢？"


# --- rendering -----------------------------------------------------------------------------------

def test_answer_markdown_quotes_in_blockquotes_with_citations():
    answer = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4, HEBI_ART6))
    md = answer_markdown(answer)
    assert f"**{HEBI_TITLE}（鹤政办〔2025〕9号）**" in md
    assert "> 「第四条 鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门。」" in md
    assert escape_markdown(f"{HEBI_FILE}:54") in md and "`" not in md  # no code span a file name could break out of


def test_abstained_answer_lists_possibly_related_without_quotes():
    answer = compose("北京市公积金贷款额度是多少", hits(HEBI_ART6, ZZ_GRAIN))
    md = answer_markdown(answer)
    assert "未在现有文件中找到相关规定" in md and "可能相关" in md and "「" not in md


def test_followup_reading_is_shown():
    answer = compose("那郑州呢？", hits(HEBI_ART4))
    answer.resolved_question = "郑州市地源热泵系统由哪个部门负责管理"
    assert "按「郑州市地源热泵系统由哪个部门负责管理」理解" in answer_markdown(answer)


def test_policy_text_is_not_turned_into_markdown():
    assert escape_markdown("1. 加大*力度*") == "1\\. 加大\\*力度\\*"
    assert escape_markdown("- 第一项 <b>") == "\\- 第一项 &lt;b&gt;"


def test_escaped_text_renders_no_link_or_tag_through_a_gfm_renderer():
    from markdown_it import MarkdownIt  # gradio's dependency; linkify-it-py (test extra) turns bare URLs into links

    renderer = MarkdownIt("gfm-like")
    text = "详见 http://evil.example/x 或 [链接](http://evil.example/y) <b>粗体</b> <img src=x>"
    assert renderer.render(text).count("<a ") == 2  # the renderer would make both links
    shown = renderer.render(escape_markdown(text))
    assert "<a " not in shown and "<b>" not in shown and "<img" not in shown
    assert "http://evil.example/x" in shown and "&lt;b&gt;粗体&lt;/b&gt;" in shown


def test_highlight_marks_terms_escapes_html_and_tolerates_pdf_spaces():
    out = highlight("地源 热泵系统<script>", ["地源热泵", "系统"])
    assert "<mark>地源 热泵</mark>" in out and "<mark>系统</mark>" in out
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_sources_panel_lists_clauses_with_location_and_marks():
    html = sources_html("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4, ZZ_GRAIN), [HEBI_ART4.clause_id])
    assert f'data-clause-id="{HEBI_ART4.clause_id}"' in html and f'data-clause-id="{ZZ_GRAIN.clause_id}"' in html
    assert f"{HEBI_FILE}:54-56" in html and "第一章 总则 › 第四条" in html
    assert "<mark>" in html and "已引用" in html


# --- chat turns --------------------------------------------------------------------------------------

def test_chat_turn_answers_and_carries_the_subject_over():
    retriever = FakeRetriever()
    _, history, state, panel = chat_turn(Assistant(retriever), "鹤壁市地源热泵系统由哪个部门负责管理", [], {})
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "住房和城乡建设局" in history[1]["content"] and HEBI_ART4.clause_id in panel
    _, history2, state2, _ = chat_turn(Assistant(retriever), "那郑州呢？", history, state)
    assert retriever.calls[-1][0] == "郑州市地源热泵系统由哪个部门负责管理"
    assert len(history2) == 4 and len(history) == 2  # inputs are not mutated
    assert state == {"question": "鹤壁市地源热泵系统由哪个部门负责管理"}
    assert state2 == {"question": "郑州市地源热泵系统由哪个部门负责管理"}


def test_chat_turn_passes_filters_and_reports_errors_in_the_chat():
    retriever = FakeRetriever()
    chat_turn(Assistant(retriever), "粮食安全谁负责", [], {}, [ZZ_GRAIN.source], ["郑州市"])
    assert retriever.calls[-1][1] == {"source": [ZZ_GRAIN.source], "city": ["郑州市"]}
    text, history, state, panel = chat_turn(Assistant(retriever), "   ", [], {})
    assert panel is None and [m["role"] for m in history] == ["assistant"]
    assert "请输入问题" in history[0]["content"]  # an empty question gets a message, not silence


def test_a_followup_without_a_previous_question_asks_for_the_whole_question():
    retriever = FakeRetriever()
    _, history, state, panel = chat_turn(Assistant(retriever), "那郑州呢？", [], {})
    assert retriever.calls == [] and state == {}
    assert "上一个问题" in history[-1]["content"] and "「" not in history[-1]["content"]


def test_the_users_message_is_shown_as_typed_not_as_html():
    _, history, _, _ = chat_turn(Assistant(FakeRetriever()), "<img src=x>地源热泵<b>粗体</b><script>x</script>谁管", [], {})
    shown = history[0]["content"]
    assert "<img" not in shown and "<b>" not in shown and "<script>" not in shown
    assert "<" not in shown
    assert html.unescape(shown.replace("\\", "")) == "<img src=x>地源热泵<b>粗体</b><script>x</script>谁管"


def test_corpus_choices_name_every_file():
    files, cities = corpus_choices(FakeRetriever())
    assert {value for _, value in files} == {c.source for c in FakeRetriever().clauses}
    assert "郑州市" in cities


# --- the real index ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_example_questions_are_answered_from_the_corpus(bundled_retriever):
    from assistant.web import ask

    assistant = Assistant(bundled_retriever)
    for question in EXAMPLE_QUESTIONS:
        answer = ask(assistant, question)
        assert not answer.abstained, question
        assert answer.quotes, question


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gradio_client_ask_endpoint(bundled_retriever):
    from gradio_client import Client

    from assistant.web import build_app, launch_options

    app = build_app(Assistant(bundled_retriever))
    app.queue()
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        assert url.startswith("http://127.0.0.1:")
        client = Client(url, verbose=False)
        result = client.predict("地源热泵系统由哪个部门负责管理", [], [], api_name="/ask")
        assert result["abstained"] is False
        assert any(HEBI_TITLE in q["citation"] for q in result["quotes"])
        assert {"answer", "quotes", "hits", "notice"} <= set(result)
        assert result["hits"][0]["clause_id"] and "text" in result["hits"][0]
        filtered = client.predict("粮食安全的责任单位", ["002_009ccee41da37f96.txt"], [], api_name="/ask")
        assert {h["source"] for h in filtered["hits"]} == {"002_009ccee41da37f96.txt"}
        with pytest.raises(Exception, match="empty"):
            client.predict("  ", [], [], api_name="/ask")
        # Many users at once: every answer belongs to its own question.
        questions = ["地源热泵系统由哪个部门负责管理", "小微企业贷款能延期还本付息吗", "专精特新中小企业什么时候更新企业信息"] * 3
        jobs = [client.submit(q, [], [], api_name="/ask") for q in questions]
        for question, job in zip(questions, jobs):
            assert job.result(timeout=120)["question"] == question
    finally:
        app.close()
