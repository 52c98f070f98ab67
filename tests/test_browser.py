"""End to end: the real chat page in headless Debian Chromium (selenium, no browser downloads).

Types a question, waits for the answer, checks the citation and the sources panel, and saves a
screenshot (to a tmp dir, and to $SCREENSHOT_DIR when set). Scrolls the sources panel to its 10th
clause at two window sizes, and renders a hostile corpus (HTML and a backtick in a file name,
titles and clause text) plus a hostile user message, checking that none of it becomes markup.
Skipped without chromium unless $CI.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
QUESTION = "地源热泵系统由哪个部门负责管理"
EXPECTED_DOCUMENT = "鹤壁市地源热泵系统建设应用管理暂行办法"
EXPECTED_CLAUSE_TEXT = "鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门"


def _require_chromium():
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} / {CHROMEDRIVER} missing in CI (apt-get install chromium chromium-driver)")
    pytest.skip("Debian chromium + chromedriver not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(bundled_retriever):
    from assistant.web import build_app, launch_options

    from assistant.pipeline import Assistant

    app = build_app(Assistant(bundled_retriever))
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield url
    app.close()


@pytest.fixture
def browser(tmp_path):
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000",
        "--lang=zh-CN",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("SCREENSHOT_DIR"):
        target = Path(os.environ["SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def _ask(driver, question: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, "#question textarea")
    box.clear()
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def _texts(driver, selector: str) -> list[str]:
    """Texts of the elements the selector finds (re-read when Gradio re-renders them mid-read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]
        except StaleElementReferenceException:
            continue
    return []


def _bot_messages(driver) -> list[str]:
    """Texts of the assistant's chat messages."""
    return _texts(driver, "#chat [data-testid='bot']")


def test_question_gets_cited_answer_and_sources(page_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page_url)
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))
    save_screenshot(browser, tmp_path, "page-first-visit.png")

    _ask(browser, QUESTION)
    wait.until(lambda d: EXPECTED_DOCUMENT in "".join(_bot_messages(d)))
    answer = _bot_messages(browser)[-1]
    assert "「" in answer and "000_ed0d53ce87970edb.txt:" in answer  # verbatim quote with file:line
    assert "第四条" in answer

    panel = browser.find_element(By.ID, "sources-panel")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sources-panel [data-clause-id]"))
    assert EXPECTED_CLAUSE_TEXT in panel.text
    assert panel.find_elements(By.TAG_NAME, "mark"), "query terms are highlighted"
    assert "000_ed0d53ce87970edb.txt:" in panel.text
    shot = save_screenshot(browser, tmp_path, "page-answer.png")
    assert shot.stat().st_size > 10_000

    # An elliptical follow-up carries the subject over, and 「新对话」 clears everything.
    _ask(browser, "那郑州呢？")
    wait.until(lambda d: len(_bot_messages(d)) >= 2)
    assert "郑州" in _bot_messages(browser)[-1]
    save_screenshot(browser, tmp_path, "page-followup.png")
    browser.find_element(By.CSS_SELECTOR, "#new-chat").click()
    wait.until(lambda d: not _bot_messages(d))
    assert not browser.find_elements(By.CSS_SELECTOR, "#sources-panel [data-clause-id]")


# --- the sources panel scrolls to every clause (issue 12, item 11) -------------------------------

BROAD_QUESTION = "小微企业有哪些扶持政策"  # 10 clauses in the panel with the bundled corpus

# Scroll only the panel (not the page) so that clause N is at its top, as far as the panel scrolls,
# then report where the clause is and what is drawn at its centre.
SCROLL_TO_CLAUSE = """
const n = arguments[0];
const panel = document.querySelector('#sources-panel .sources');
const items = panel.querySelectorAll('[data-clause-id]');
const item = items[n - 1];
const before = panel.scrollTop;
if (item) panel.scrollTop += item.getBoundingClientRect().top - panel.getBoundingClientRect().top;
const r = item ? item.getBoundingClientRect() : null;
const p = panel.getBoundingClientRect();
const x = r && r.left + r.width / 2, y = r && r.top + r.height / 2;
const hit = r ? document.elementFromPoint(x, y) : null;
return {count: items.length, overflowY: getComputedStyle(panel).overflowY, before: before, after: panel.scrollTop,
        scrollable: panel.scrollHeight > panel.clientHeight, pageScroll: window.scrollY,
        item: r && [r.top, r.bottom, r.left, r.right], panel: [p.top, p.bottom],
        viewport: [window.innerWidth, window.innerHeight], covered: !!hit && !item.contains(hit),
        hit: hit ? hit.outerHTML.slice(0, 160) : null};
"""


@pytest.mark.parametrize("width, height", [(1440, 1000), (1920, 1080)])
def test_sources_panel_scrolls_to_the_tenth_clause(page_url, browser, tmp_path, width, height):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(width, height)
    browser.get(page_url)
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))
    _ask(browser, BROAD_QUESTION)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sources-panel [data-clause-id]")) >= 10)
    wait.until(lambda d: _bot_messages(d))  # the answer is in: no more re-rendering of the page

    state = browser.execute_script(SCROLL_TO_CLAUSE, 10)
    save_screenshot(browser, tmp_path, f"sources-scrolled-{width}x{height}.png")
    assert state["count"] >= 10, state
    assert state["overflowY"] in ("auto", "scroll") and state["scrollable"], state  # the list scrolls inside the panel
    assert state["after"] > state["before"], state  # ... and scrolling it moved the list
    top, bottom, left, right = state["item"]
    view_width, view_height = state["viewport"]
    assert 0 <= top < bottom <= view_height and 0 <= left < right <= view_width, f"10th clause outside the viewport: {state}"
    panel_top, panel_bottom = state["panel"]
    assert panel_top - 1 <= top and bottom <= panel_bottom + 1, f"10th clause outside the panel's visible part: {state}"
    assert not state["covered"], f"10th clause covered by {state['hit']}: {state}"


# --- a hostile corpus and a hostile user message never become markup (items 7 and 8) --------------

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=1</script>"
BOLD = "<b>粗体</b>"
LINK = "[点我](http://example.com)"
HOSTILE_FILE = "0`<img src=x onerror=window.__pwned=1>.txt"
HOSTILE_TITLE = f"关于{SCRIPT}{BOLD}支持小微企业的通知"  # a title holds no ':' so the link is in the text only
HOSTILE_CLAUSE = f"一、对小微企业贷款实施延期还本付息{IMG}，最长可延至2021年3月31日{SCRIPT}，详见{BOLD}和{LINK}。"
HOSTILE_FILES = {
    HOSTILE_FILE: [HOSTILE_TITLE, "各县区人民政府：", HOSTILE_CLAUSE,
                   "二、用人单位安排残疾人就业未达到规定比例的，在职职工总数30人（含）以下的，暂免征收残疾人就业保障金。"],
    "1_hebi`.txt": [f"{IMG}鹤壁市地源热泵系统管理办法", f"第四条 鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门{BOLD}。"],
}
HOSTILE_QUESTION = "小微企业贷款能延期还本付息吗"
HOSTILE_MESSAGE = f"{BOLD}<img src=x>{SCRIPT}残疾人就业保障金要交吗"

# Every element inside the chat and the sources panel that corpus or user text could have made. The
# panel's own <b> (the document name in each summary) and the answer's Markdown bold are the page's:
# they may hold text only.
FOREIGN_ELEMENTS = """
const found = [];
for (const root of document.querySelectorAll('#chat, #sources-panel')) {
  for (const e of root.querySelectorAll('img, script, iframe, object, embed, a, b')) {
    if (!(e.tagName === 'B' && e.parentElement.tagName === 'SUMMARY' && e.children.length === 0)) found.push(e.outerHTML.slice(0, 200));
  }
  for (const e of root.querySelectorAll('strong, em')) if (e.children.length) found.push(e.outerHTML.slice(0, 200));
}
return found;
"""


@pytest.fixture
def hostile_page_url(tmp_path):
    from assistant.indexing import build_index
    from assistant.pipeline import Assistant
    from assistant.web import build_app, launch_options

    from conftest import write_tiny_corpus

    corpus = write_tiny_corpus(tmp_path / "hostile-corpus", HOSTILE_FILES)
    assert (corpus / HOSTILE_FILE).is_file()  # the filesystem takes the name as it is
    report = build_index(corpus, tmp_path / "hostile-index", progress=False)
    app = build_app(Assistant(report.retriever))
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield url
    app.close()


def test_hostile_corpus_and_message_are_shown_as_text(hostile_page_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(hostile_page_url)
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))

    _ask(browser, HOSTILE_QUESTION)
    wait.until(lambda d: HOSTILE_FILE in "".join(_bot_messages(d)))
    wait.until(lambda d: HOSTILE_CLAUSE in browser.find_element(By.ID, "sources-panel").text)
    answer = _bot_messages(browser)[-1]
    for literal in (HOSTILE_TITLE, IMG, SCRIPT, BOLD, LINK, f"{HOSTILE_FILE}:3"):
        assert literal in answer, f"{literal!r} not shown literally in the answer: {answer!r}"
    panel = browser.find_element(By.ID, "sources-panel").text
    for literal in (HOSTILE_TITLE, HOSTILE_CLAUSE, f"{HOSTILE_FILE}:3"):
        assert literal in panel, f"{literal!r} not shown literally in the sources panel: {panel!r}"

    _ask(browser, HOSTILE_MESSAGE)
    wait.until(lambda d: len(_bot_messages(d)) >= 2)
    assert _texts(browser, "#chat [data-testid='user']") == [HOSTILE_QUESTION, HOSTILE_MESSAGE]  # exactly as typed
    browser.execute_script("return new Promise(done => setTimeout(done, 1000))")  # time for any onerror to fire
    save_screenshot(browser, tmp_path, "page-hostile.png")

    assert browser.execute_script("return typeof window.__pwned") == "undefined", "corpus or user HTML ran"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chat, #sources-panel")) == 2  # the containers searched
    foreign = browser.execute_script(FOREIGN_ELEMENTS)
    assert foreign == [], f"elements made from corpus or user text: {foreign}"
