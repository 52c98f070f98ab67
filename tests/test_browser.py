"""End to end: the real chat page in headless Debian Chromium (selenium, no browser downloads).

Types a question, waits for the answer, checks the citation and the sources panel, and saves a
screenshot (to a tmp dir, and to $SCREENSHOT_DIR when set). Skipped without chromium unless $CI.
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


def _bot_messages(driver) -> list[str]:
    """Texts of the assistant's chat messages (re-read when Gradio re-renders them mid-read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#chat [data-testid='bot']")]
        except StaleElementReferenceException:
            continue
    return []


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
