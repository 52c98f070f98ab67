"""eval/reliability.py: the quick battery passes on the tiny index and prints its table, and a case
that fails (an undamaged "corrupt" copy, a 5xx, cross-talk, an exception) is reported and fails the run."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "eval" / "reliability.py"
ROW = re.compile(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \|$", re.MULTILINE)


@pytest.fixture(scope="module")
def reliability():
    spec = importlib.util.spec_from_file_location("reliability", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_quick_battery_passes_and_prints_one_table(tiny_index):
    result = subprocess.run([sys.executable, str(SCRIPT), "--index", str(tiny_index), "--quick"], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("| case group | cases tried | passed | tracebacks |") == 1, result.stdout
    rows = {name: tuple(map(int, numbers)) for name, *numbers in ROW.findall(result.stdout)}
    assert set(rows) == {"load", "kill", "corrupt", "corpus", "queries"}, result.stdout
    for name, (tried, passed, tracebacks) in rows.items():
        assert tried > 0 and passed == tried and tracebacks == 0, (name, result.stdout)
    assert rows["load"][0] >= 4 * 3 and rows["kill"][0] >= 6  # 4 clients x 3 questions; 3 kills, each + a rebuild
    assert "FAILED" not in result.stdout


def test_an_undamaged_copy_counts_as_a_failed_corrupt_case_and_fails_the_run(reliability, tiny_index, monkeypatch, capsys):
    monkeypatch.setattr(reliability, "corrupt_cases", lambda directory, quick: [
        ("no damage at all", lambda d: None, False),
        ("vectors.npy truncated", lambda d: reliability._damage(d / "vectors.npy", "truncated"), False),
    ])
    assert reliability.main(["--index", str(tiny_index), "--only", "corrupt"]) == 1
    out = capsys.readouterr().out
    assert "| corrupt | 3 | 2 | 0 |" in out, out  # the two cases + the CLI on a truncated index
    assert "FAILED corrupt: no damage at all: loaded and verified: the damage went unnoticed" in out


def test_an_exception_in_a_check_is_a_traceback_and_a_failure(reliability):
    group = reliability.Group("g")
    group.run("raises", lambda: 1 / 0)
    group.run("passes", lambda: (True, ""))
    assert (group.tried, group.passed, group.tracebacks) == (2, 1, 1)
    assert reliability.failed([group]) and "ZeroDivisionError" in group.failures[0]
    assert "| g | 2 | 1 | 1 |" in reliability.render_table([group])
    assert not reliability.failed([reliability.Group("ok", 1, 1, 0)])


class _Fake:
    """A stand-in for the server: /v1/ask answers from ``reply(question)`` with ``status``."""

    def __init__(self, reply, status: int = 200):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                data = json.dumps(reply(body.get("question") or body.get("query"))).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def tracebacks(self) -> int:
        return 0

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_cross_talk_under_load_is_reported(reliability):
    answered = []

    def reply(question):  # the 3 answers asked alone are right; then every other one is someone else's
        answered.append(question)
        return {"answer": question if len(answered) <= 3 or len(answered) % 2 == 0 else "another client's answer"}

    fake = _Fake(reply)
    try:
        group = reliability.run_load(fake, 4, 3)
    finally:
        fake.close()
    assert group.tried == 3 + 4 * 3 and group.passed < group.tried
    assert any("differs from the one asked alone" in f for f in group.failures)


def test_a_5xx_to_a_bad_query_is_a_failed_case(reliability):
    fake = _Fake(lambda question: {"detail": "Internal Server Error"}, status=500)
    try:
        ok, why = reliability._http_query_case(fake, "/v1/ask", "")
    finally:
        fake.close()
    assert not ok and "HTTP 500" in why
