"""Reliability battery against a built index: load, kill -9 during builds, corrupt index files, a
bad corpus folder, bad queries. Prints one table and exits 1 if any case failed (issue 12).

    python eval/reliability.py --index index/default            # the full battery
    python eval/reliability.py --index index/default --quick    # a small version of each group (~1 min)
    python eval/reliability.py --index DIR --only corrupt --only queries

Groups (each case passes or fails; a Python traceback anywhere counts in "tracebacks" and fails):

- load: ``python -m assistant serve --index DIR`` on loopback; 32 clients x 20 questions of
  eval/qa.jsonl at once (quick: 4 x 3) on POST /v1/ask; every answer must equal the answer to the
  same question asked alone (no cross-talk), with no error.
- kill: a corpus of two documents of the index, built; then rebuilt with a changed corpus in a
  subprocess killed at several moments: kill -9 when the build says it loads the encoder, encodes,
  builds BM25, writes (its progress lines), and the store's crash hooks (``ASSISTANT_STORE_CRASH_AT``:
  writing, written, switched; the process ends with os._exit, as under kill -9). After each kill the
  index must load, pass ``verify_index``, hold the old or the new corpus in full and answer; the next
  build must succeed and leave no temp, trash or superseded version directory.
- corrupt: copies of the index with each file truncated, emptied, damaged at its start or end,
  removed, files swapped, and re-signed tampering (checksums updated to match: NaN vectors, shuffled
  clauses, bad BM25 parameters); each must be refused with an AssistantError naming the rebuild command.
- corpus: a folder with binary, empty, GBK, Big5, UTF-16, NUL-containing, fake-PDF and symlink-out
  files beside a good notice: ``index build`` must succeed, name every skipped file with its reason,
  decode GBK/Big5/UTF-16 right and index no mojibake, NUL or symlinked-in text.
- queries: empty, whitespace, 100k characters, lone surrogates / invalid UTF-8, NUL, emoji only,
  via ``search --json`` and ``ask --json`` (NUL cannot be passed in argv) and via HTTP (/v1/ask,
  /v1/search, the page's /gradio_api/call/ask): a clear error or an answer, never a traceback or 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.errors import AssistantError  # noqa: E402
from assistant.store import (  # noqa: E402
    CRASH_ENV, CURRENT, MANIFEST, TMP_PREFIX, TRASH_PREFIX, VERSION_PREFIX, file_sha256, index_version_dir, load_index,
    quick_sha256, verify_index,
)

TRACEBACK = "Traceback (most recent call last)"
HINT = "index build"  # every refusal names the command that rebuilds the index
QA_FILE = ROOT / "eval" / "qa.jsonl"
GROUPS = ("load", "kill", "corrupt", "corpus", "queries")


# --- results ----------------------------------------------------------------------------------------

@dataclass
class Group:
    name: str
    tried: int = 0
    passed: int = 0
    tracebacks: int = 0
    failures: list[str] = field(default_factory=list)

    def case(self, name: str, ok: bool, why: str = "", *, tracebacks: int = 0) -> bool:
        self.tried += 1
        self.tracebacks += tracebacks
        ok = ok and not tracebacks
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{name}: {why or 'traceback'}"[:500])
        return ok

    def run(self, name: str, check) -> bool:
        """``check()`` returns (ok, why); any exception but AssistantError is a traceback."""
        try:
            ok, why = check()
        except Exception as error:  # noqa: BLE001 - the battery reports it, it does not stop
            return self.case(name, False, "".join(traceback.format_exception_only(error)).strip(), tracebacks=1)
        return self.case(name, ok, why)


def render_table(groups: list[Group]) -> str:
    rows = ["| case group | cases tried | passed | tracebacks |", "|---|---|---|---|"]
    rows += [f"| {g.name} | {g.tried} | {g.passed} | {g.tracebacks} |" for g in groups]
    total = Group("total", sum(g.tried for g in groups), sum(g.passed for g in groups), sum(g.tracebacks for g in groups))
    rows.append(f"| **{total.name}** | **{total.tried}** | **{total.passed}** | **{total.tracebacks}** |")
    return "\n".join(rows)


def failed(groups: list[Group]) -> bool:
    return any(g.passed < g.tried or g.tracebacks for g in groups)


# --- helpers ----------------------------------------------------------------------------------------

def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop(CRASH_ENV, None)
    return {**env, **extra}


def cli(args: list, *, timeout: float = 300, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """``python -m assistant ARGS`` (str or bytes arguments), output as text with undecodable bytes escaped."""
    result = subprocess.run([sys.executable, "-m", "assistant", *args], env=_env(**env), capture_output=True,
                            timeout=timeout, cwd=cwd or ROOT)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode("utf-8", "replace"),
                                       result.stderr.decode("utf-8", "replace"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, payload=None, *, timeout: float = 120) -> tuple[int, str]:
    """(status, body) of a GET, or of a POST of ``payload`` (JSON, or bytes as they are)."""
    parts = urllib.parse.urlsplit(url)
    data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8"))
    connection = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        try:
            connection.request("GET" if data is None else "POST", parts.path, body=data,
                               headers={"content-type": "application/json"} if data is not None else {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) before it read all of a large body: its answer is still there
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in QA_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["question"] for row in rows[:n]]


class Server:
    """``python -m assistant serve --index DIR`` on a free loopback port; its stderr goes to a file
    whose tracebacks are counted."""

    def __init__(self, index_dir: Path, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        self._log = open(self.log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--index", str(index_dir.resolve()), "--host", "127.0.0.1",
             "--port", str(self.port)], env=_env(), stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)

    def wait(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}: {self.output()[-2000:]}")
            try:
                if http(f"{self.url}/healthz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"serve did not become ready in {timeout:.0f} s")

    def output(self) -> str:
        self._log.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tracebacks(self) -> int:
        return self.output().count(TRACEBACK)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- load -------------------------------------------------------------------------------------------

def run_load(server: Server, clients: int, per_client: int) -> Group:
    group = Group("load")
    asked = questions(per_client)
    before = server.tracebacks()

    def ask(question: str) -> tuple[int, str]:
        status, body = http(f"{server.url}/v1/ask", {"question": question})
        return status, body if status != 200 else json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False)

    alone = {}
    for question in asked:  # one at a time: the reference answers
        status, body = ask(question)
        alone[question] = body
        group.case(f"alone {question[:20]}", status == 200, f"HTTP {status}: {body[:200]}")

    def client(seed: int) -> list[tuple[str, int, str]]:
        order = list(asked)
        random.Random(seed).shuffle(order)
        return [(question, *ask(question)) for question in order]

    with ThreadPoolExecutor(clients) as pool:
        results = [row for rows in pool.map(client, range(clients)) for row in rows]
    for question, status, body in results:
        why = f"HTTP {status}: {body[:200]}" if status != 200 else f"answer differs from the one asked alone: {question}"
        group.case(f"concurrent {question[:20]}", status == 200 and body == alone[question], why)
    group.tracebacks += server.tracebacks() - before
    return group


# --- kill -------------------------------------------------------------------------------------------

# (name, how): kill -9 when the build prints a line starting with this, or the store's crash hook.
KILL_MOMENTS = [("loading the encoder", "line:加载模型"), ("encoding", "line:编码条款"), ("building BM25", "line:建立检索索引"),
                ("writing (progress line)", "line:写入索引"), ("writing files", "hook:writing"),
                ("written, before the switch", "hook:written"), ("switched, before cleanup", "hook:switched")]
QUICK_KILL_MOMENTS = ["encoding", "written, before the switch", "switched, before cleanup"]


def _write_corpus(directory: Path, documents, tag: str) -> None:
    """Two documents of the index as two files; ``tag`` changes the last line of the first."""
    directory.mkdir(parents=True, exist_ok=True)
    for n, document in enumerate(documents):
        lines = list(document.lines)
        if n == 0:
            lines.append(f"第九十九条 本办法由{tag}负责解释，自发布之日起施行。")
        (directory / f"{n}_{Path(document.source).stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _texts(index_dir: Path) -> list[str]:
    return [c.text for c in load_index(index_dir).clauses]


def _leftovers(index_dir: Path) -> list[str]:
    names = [p.name for p in index_dir.iterdir()]
    current = os.readlink(index_dir / CURRENT) if (index_dir / CURRENT).is_symlink() else None
    bad = [n for n in names if n.startswith((TMP_PREFIX, TRASH_PREFIX, ".current-", ".link-"))
           or (n.startswith(VERSION_PREFIX) and n != current)]
    bad += [p.name for p in index_dir.parent.iterdir() if p.name.startswith(f".{index_dir.name}.")]
    return bad


def _killed_build(corpus: Path, index_dir: Path, how: str) -> tuple[int, str]:
    kind, _, value = how.partition(":")
    command = [sys.executable, "-m", "assistant", "index", "build", "--corpus", str(corpus), "--index", str(index_dir),
               "--force"]
    env = _env(**({CRASH_ENV: value} if kind == "hook" else {}))
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    output = []
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace")
        output.append(line)
        if kind == "line" and line.startswith(value):
            process.send_signal(signal.SIGKILL)
            break
    process.stdout.close()
    return process.wait(timeout=600), "".join(output)


def run_kill(index_dir: Path, workdir: Path, moments: list[tuple[str, str]]) -> Group:
    from assistant.embedding import load_embedder
    from assistant.indexing import build_index
    from assistant.pipeline import Assistant

    group = Group("kill")
    source = load_index(index_dir)
    documents = sorted(source.documents, key=lambda d: len(d.lines))[:2]  # the two shortest: a quick build
    model = source.manifest.get("model_source")
    corpus, target = workdir / "kill-corpus", workdir / "kill-index" / "tiny"
    _write_corpus(corpus, documents, "初版")
    embedder = load_embedder(model)
    build_index(corpus, target, model=model, embedder=embedder, progress=False)
    question = f"{documents[0].title}由谁负责解释"
    for n, (name, how) in enumerate(moments):
        old = _texts(target)
        _write_corpus(corpus, documents, f"第{n}版")
        code, output = _killed_build(corpus, target, how)

        def survived(code=code, output=output, old=old, new_tag=f"第{n}版"):
            if code not in (-signal.SIGKILL, 75):
                return False, f"the build was not killed (exit {code}): {output[-300:]}"
            texts = _texts(target)  # loads, or AssistantError: reported as a failure
            verify_index(target)
            if texts != old and not any(new_tag in t for t in texts):
                return False, "the index holds neither the old nor the new corpus"
            answer = Assistant.load(target, light_query_encoder=True).ask(question)
            return bool(answer.hits), "no hit after the kill"

        group.run(f"killed at {name}: old or new index loads, verifies and answers", lambda: _refusal_as_failure(survived))

        def rebuilt(new_tag=f"第{n}版再建"):
            # a changed corpus, so that the next build writes (an up-to-date one only opens the index)
            _write_corpus(corpus, documents, new_tag)
            build_index(corpus, target, model=model, embedder=embedder, progress=False)
            texts = _texts(target)
            left = _leftovers(target)
            if not any(new_tag in t for t in texts):
                return False, "the next build does not hold the new corpus"
            return not left, f"left behind: {left}"

        group.run(f"next build after the kill at {name} succeeds and cleans up", lambda: _refusal_as_failure(rebuilt))
        group.tracebacks += output.count(TRACEBACK)
    return group


def _refusal_as_failure(check):
    try:
        return check()
    except AssistantError as error:
        return False, f"refused: {error}"


# --- corrupt ----------------------------------------------------------------------------------------

def _resign(directory: Path) -> None:
    """Update every checksum in the manifest to the files now on disk (tampering by hand)."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    for name in manifest["contents"]:
        path = directory / name
        manifest["contents"][name] = {"size": path.stat().st_size, "sha256": file_sha256(path), "quick_sha256": quick_sha256(path)}
    (directory / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def _damage(path: Path, where: str) -> None:
    raw = bytearray(path.read_bytes())
    if where == "truncated":
        raw = raw[: max(0, len(raw) - 5)]
    elif where == "emptied":
        raw = bytearray()
    elif where == "garbled start":
        raw[: min(16, len(raw))] = os.urandom(min(16, len(raw)))
    elif where == "garbled end":
        raw[-min(16, len(raw)):] = os.urandom(min(16, len(raw)))
    path.write_bytes(bytes(raw))


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


def _nan_vector(d: Path) -> None:
    vectors = np.load(d / "vectors.npy")
    vectors[len(vectors) // 2, 0] = np.nan
    np.save(d / "vectors.npy", vectors)


def _shuffle_clauses(d: Path) -> None:
    """The clause table's rows rotated by one (each clause keeps its own text hash)."""
    from assistant.clause_table import read_clause_table, write_clause_table

    table, shas = read_clause_table(d / "clauses")
    clauses, shas = list(table), list(shas)
    if len(clauses) > 1:
        clauses, shas = clauses[1:] + clauses[:1], shas[1:] + shas[:1]
    shutil.rmtree(d / "clauses")
    write_clause_table(d / "clauses", clauses, shas)


def _json_file(name: str, change):
    def mutate(d: Path) -> None:
        path = d / name
        path.write_text(json.dumps(change(json.loads(path.read_text(encoding="utf-8"))), ensure_ascii=False), encoding="utf-8")
    return mutate


def corrupt_cases(directory: Path, *, quick: bool) -> list[tuple[str, object, bool]]:
    """(name, mutate(version_dir), resign afterwards) for every damage to try."""
    names = sorted(json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["contents"]) + [MANIFEST]
    if quick:
        names = [n for n in names if "/" not in n or n.startswith("clauses/")
                 or n.endswith(("params.index.json", "data.csc.index.npy"))]
    cases = []
    for name in names:
        for where in ("truncated", "emptied", "garbled start", "garbled end"):
            cases.append((f"{name} {where}", lambda d, name=name, where=where: _damage(d / name, where), False))
        cases.append((f"{name} removed", lambda d, name=name: (d / name).unlink(), False))
    cases += [
        ("clauses/table.json and documents.jsonl swapped",
         lambda d: _swap(d / "clauses" / "table.json", d / "documents.jsonl"), False),
        ("bm25 and bm25_docs swapped", lambda d: _swap(d / "bm25", d / "bm25_docs"), False),
        ("bm25 and bm25_docs swapped, re-signed", lambda d: _swap(d / "bm25", d / "bm25_docs"), True),
        ("a NaN vector, re-signed", _nan_vector, True),
        ("the clause table rotated by one row, re-signed", _shuffle_clauses, True),
        ("bm25 params {}, re-signed", _json_file("bm25/params.index.json", lambda _: {}), True),
        ("a vocabulary value of the wrong type, re-signed",
         _json_file("bm25/vocab.index.json", lambda v: {**v, next(iter(v)): "0"}), True),
        ("manifest clause_count off by one", _json_file(MANIFEST, lambda m: {**m, "clause_count": m["clause_count"] + 1}), False),
        ("manifest is a JSON list", _json_file(MANIFEST, lambda m: [m]), False),
    ]
    return cases


def refused(index_dir: Path) -> tuple[bool, str]:
    """Does loading (then full verification) refuse ``index_dir`` with a message naming the fix?"""
    for check in (load_index, verify_index):
        try:
            check(index_dir)
        except AssistantError as error:
            return HINT in str(error), f"refused without the rebuild command: {error}"
    return False, "loaded and verified: the damage went unnoticed"


def run_corrupt(index_dir: Path, workdir: Path, *, quick: bool, cases=None) -> Group:
    group = Group("corrupt")
    pristine = workdir / "corrupt-pristine" / "index"
    shutil.copytree(index_dir, pristine, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    for n, (name, mutate, resign) in enumerate(cases or corrupt_cases(index_version_dir(pristine), quick=quick)):
        copy = workdir / f"corrupt-{n}" / "index"
        shutil.copytree(pristine, copy, symlinks=True)

        def check(copy=copy, mutate=mutate, resign=resign):
            directory = index_version_dir(copy)
            mutate(directory)
            if resign and (directory / MANIFEST).is_file():
                _resign(directory)
            return refused(copy)

        group.run(name, check)
        shutil.rmtree(copy.parent, ignore_errors=True)
    # the CLI on a damaged index: a message and exit 2, no traceback
    copy = workdir / "corrupt-cli" / "index"
    shutil.copytree(pristine, copy, symlinks=True)
    _damage(index_version_dir(copy) / "vectors.npy", "truncated")
    result = cli(["search", "残疾人就业保障金", "--index", str(copy), "--json"])
    group.case("search on a truncated index: exit 2 with the rebuild command", result.returncode == 2 and HINT in result.stderr,
               f"exit {result.returncode}: {result.stderr[-300:]}", tracebacks=result.stderr.count(TRACEBACK))
    return group


# --- bad corpus -------------------------------------------------------------------------------------

NOTICE = ["鹤壁市人民政府办公室", "关于开展资源产出率统计工作的通知", "各县区人民政府、开发区管委会：",
          "一、充分认识开展资源产出率统计工作的重要性", "资源产出率是评价循环经济综合发展水平的核心指标。",
          "二、工作要求", "各县区要结合实际，统筹安排，认真抓好落实。"]
ENCODED = {  # file -> (codec, lines, a phrase its clauses must hold, decoded right)
    "gbk.txt": ("gbk", ["郑州市关于支持小微企业发展的通知", "一、对小微企业贷款实施延期还本付息，最长可延至2021年3月31日。"], "延期还本付息"),
    "big5.txt": ("big5", ["鶴壁市關於加強糧食安全工作的通知", "一、各縣區人民政府負責本轄區糧食安全工作，落實屬地責任。"], "負責本轄區糧食安全"),
    "utf16.txt": ("utf-16", ["安阳市关于推进地源热泵应用的通知", "一、新建公共建筑优先采用地源热泵系统，市住房城乡建设局负责指导。"], "优先采用地源热泵"),
    "utf16le-nobom.txt": ("utf-16-le", ["新乡市关于稳岗返还的通知", "一、对不裁员或少裁员的参保企业，按规定实施稳岗返还。"], "少裁员的参保企业"),
}
EXPECTED_SKIPS = ("binary.txt", "empty.txt", "broken.pdf", "outside-link.txt", "many-nuls.txt")


def write_bad_corpus(directory: Path, outside: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "good.txt").write_text("\n".join(NOTICE) + "\n", encoding="utf-8")
    for name, (codec, lines, _) in ENCODED.items():
        (directory / name).write_bytes("\n".join(lines).encode(codec))
    padding = "\n".join(NOTICE[3:] * 60) + "\n"  # > 4 KB, then one stray NUL
    (directory / "nul-late.txt").write_text("许昌市关于开展统计工作的通知\n" + padding + "三、\x00按时报送统计数据。\n", encoding="utf-8")
    (directory / "many-nuls.txt").write_bytes(b"".join(line.encode("utf-8") + b"\x00" * 30 for line in NOTICE * 20))
    (directory / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (directory / "empty.txt").write_bytes(b"")
    (directory / "broken.pdf").write_bytes(b"mp\x05^\xc1" + bytes(range(200)))
    outside.mkdir(parents=True)
    (outside / "secret.txt").write_text("鹤壁市秘密文件的通知\n一、这段文字在语料文件夹之外，不得被索引。\n", encoding="utf-8")
    os.symlink((outside / "secret.txt").resolve(), directory / "outside-link.txt")


def run_corpus(index_dir: Path, workdir: Path) -> Group:
    from assistant.loaders import MAX_RARE_SHARE, rare_share

    group = Group("corpus")
    corpus, index = workdir / "bad-corpus", workdir / "bad-corpus-index" / "index"
    write_bad_corpus(corpus, workdir / "outside")
    model = load_index(index_dir).manifest.get("model_source")
    result = cli(["index", "build", "--corpus", str(corpus), "--index", str(index), *(["--model", model] if model else [])])
    output = result.stdout + result.stderr
    group.case("index build of the bad folder succeeds", result.returncode == 0, f"exit {result.returncode}: {output[-500:]}",
               tracebacks=output.count(TRACEBACK))
    for name in EXPECTED_SKIPS:
        line = next((line for line in output.splitlines() if line.startswith(f"跳过 / skipped {name}: ")), None)
        group.case(f"{name} skipped, named with a reason", bool(line and line.split(": ", 1)[1].strip()),
                   f"not named as skipped: {output[-500:]}")
    count = re.search(rf"\b{len(EXPECTED_SKIPS)} file\(s\) skipped|skipped {len(EXPECTED_SKIPS)} of", output)
    group.case(f"the {len(EXPECTED_SKIPS)} skipped files are counted", bool(count), output[-300:])
    if result.returncode != 0:
        return group
    clauses = load_index(index).clauses
    texts = {name: " ".join(c.text for c in clauses if c.source == name) for name in {c.source for c in clauses}}
    for name, (codec, _, phrase) in ENCODED.items():
        group.case(f"{name} ({codec}) decoded right", phrase in texts.get(name, ""), f"{phrase} not in {texts.get(name, '')[:80]!r}")
    group.case("nul-late.txt loaded without its NUL", "按时报送统计数据" in texts.get("nul-late.txt", "")
               and not any("\x00" in c.text or "\x00" in c.index_text for c in clauses), "NUL indexed or text lost")
    group.case("nothing from outside the folder is indexed", not any("语料文件夹之外" in t for t in texts.values()), str(sorted(texts)))
    mojibake = [c.clause_id for c in clauses if rare_share(c.text) > MAX_RARE_SHARE]
    group.case("no clause is mojibake", not mojibake, f"mojibake clauses: {mojibake[:5]}")
    return group


# --- bad queries --------------------------------------------------------------------------------------

LONG = "残疾人就业保障金" * 12_500  # 100,000 characters
BAD_QUERIES = [("empty", ""), ("whitespace", " \t\u3000\n "), ("100k characters", LONG), ("lone surrogate", "\ud800残疾人"),
               ("lone low surrogate", "残疾人\udfff就业"), ("NUL", "残疾人\x00就业保障金"), ("emoji only", "😀🎉🙏")]
# argv carries bytes: invalid UTF-8 arrives in the program as lone surrogates; NUL cannot be passed
CLI_QUERIES = [("empty", b""), ("whitespace", " \t\u3000 ".encode()), ("100k characters", ("残疾人就业" + "x" * 99_995).encode()),
               ("invalid UTF-8", b"\xff\xfe" + "残疾人".encode()), ("emoji only", "😀🎉🙏".encode())]


def _cli_query_case(index_dir: Path, command: str, query: bytes) -> tuple[bool, str, int]:
    result = cli([command, query, "--index", str(index_dir), "--json"])
    tracebacks = (result.stdout + result.stderr).count(TRACEBACK)
    if result.returncode == 0:
        try:
            json.loads(result.stdout)
        except ValueError:
            return False, f"exit 0 without JSON: {result.stdout[:200]}", tracebacks
        return True, "", tracebacks
    message = result.stderr.strip().splitlines()[-1:] or [""]
    ok = result.returncode == 2 and message[0].startswith("错误 / error:")
    return ok, f"exit {result.returncode}: {result.stderr[-300:]}", tracebacks


def _http_query_case(server: Server, route: str, query: str) -> tuple[bool, str]:
    if route == "/gradio_api/call/ask":
        status, body = http(f"{server.url}{route}", {"data": [query, [], []]})
        if status != 200:
            return status < 500, f"HTTP {status}: {body[:200]}"
        status, body = http(f"{server.url}{route}/{json.loads(body)['event_id']}")
        events = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("event:")]
        data = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("data:")]
        if "complete" in events:
            return True, ""
        return "error" in events and bool(data) and data[-1] not in ("null", "None", ""), f"no message: {body[:300]}"
    payload = {"question": query} if route == "/v1/ask" else {"query": query}
    status, body = http(f"{server.url}{route}", payload)
    if status >= 500:
        return False, f"HTTP {status}: {body[:200]}"
    try:
        reply = json.loads(body)
    except ValueError:
        return False, f"HTTP {status} without JSON: {body[:200]}"
    return (status == 200) or bool(reply.get("error")), f"HTTP {status} without an error message: {body[:200]}"


def run_queries(index_dir: Path, server: Server | None, *, workers: int = 2) -> Group:
    group = Group("queries")
    jobs = [(f"CLI {command} {name}", command, query) for name, query in CLI_QUERIES for command in ("search", "ask")]
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(lambda job: _cli_query_case(index_dir, job[1], job[2]), jobs))
    for (name, _, _), (ok, why, tracebacks) in zip(jobs, outcomes):
        group.case(name, ok, why, tracebacks=tracebacks)
    if server is not None:
        before = server.tracebacks()
        for name, query in BAD_QUERIES:
            for route in ("/v1/ask", "/v1/search", "/gradio_api/call/ask"):
                group.run(f"HTTP {route} {name}", lambda route=route, query=query: _http_query_case(server, route, query))
        status, body = http(f"{server.url}/v1/ask", b'{"question": ')
        group.case("HTTP /v1/ask malformed JSON", 400 <= status < 500, f"HTTP {status}: {body[:200]}")
        group.tracebacks += server.tracebacks() - before
        if server.tracebacks() > before:
            group.failures.append(f"server log: {server.output()[-1500:]}")
    return group


# --- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", required=True, help="a built index directory (only read: the battery works on copies)")
    parser.add_argument("--quick", action="store_true", help="a small version of every group (4 clients x 3 questions, 3 kills, ...)")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only this group (repeatable)")
    args = parser.parse_args(argv)
    index_dir = Path(args.index)
    load_index(index_dir)  # a missing or damaged index: the AssistantError below, before anything starts
    wanted = args.only or list(GROUPS)
    started = time.perf_counter()
    groups: list[Group] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        workdir = Path(tmp)
        server = Server(index_dir, workdir) if {"load", "queries"} & set(wanted) else None  # starts while the others run
        try:
            if "kill" in wanted:
                moments = [m for m in KILL_MOMENTS if not args.quick or m[0] in QUICK_KILL_MOMENTS]
                groups.append(run_kill(index_dir, workdir, moments))
            if "corrupt" in wanted:
                groups.append(run_corrupt(index_dir, workdir, quick=args.quick))
            if "corpus" in wanted:
                groups.append(run_corpus(index_dir, workdir))
            if server is not None:
                server.wait()
            if "load" in wanted:
                groups.insert(0, run_load(server, *((4, 3) if args.quick else (32, 20))))
            if "queries" in wanted:
                groups.append(run_queries(index_dir, server if "queries" in wanted else None))
        finally:
            if server is not None:
                server.stop()
    print(render_table(groups))
    print(f"\n{'quick ' if args.quick else ''}run against {index_dir} in {time.perf_counter() - started:.0f} s")
    for group in groups:
        for failure in group.failures:
            print(f"FAILED {group.name}: {failure}")
    return 1 if failed(groups) else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AssistantError as error:
        print(f"错误 / error: {error}", file=sys.stderr)
        raise SystemExit(2)
