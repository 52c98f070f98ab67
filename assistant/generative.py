"""A generative composer for any OpenAI-compatible ``/chat/completions`` endpoint (optional, not default).

    python -m assistant ask "残保金要交吗" --llm-url http://127.0.0.1:11434/v1 --llm-model qwen2.5:7b
    >>> composer = with_fallback(OpenAICompatibleComposer("http://127.0.0.1:11434/v1", model="qwen2.5:7b"))
    >>> assistant = Assistant(retriever, composer=composer)

The model is shown the top clauses, each with its number and clause id, and must answer only by
quoting them, as JSON ``{"summary": "...", "quotes": [{"clause": 1, "text": "exact span"}]}``
(``clause`` may also be the clause id). The summary is shown as
the assistant's own words (never inside 「」); quotes go through
:func:`~assistant.verify.verify_answer`, so a model that paraphrases policy text makes the answer
fail instead of showing altered text. :class:`FallbackComposer` (what ``--llm-url`` turns on)
catches that failure, a timeout or an unreadable reply, and answers extractively from the same
search instead, with a one-line notice saying why. ``post`` can be replaced (tests, other
transports): ``post(url, payload_dict) -> response_dict``.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

from assistant.compose import AnswerRequest, Composer, ExtractiveComposer, abstain
from assistant.errors import AssistantError
from assistant.render import citation, document_name, render_quotes
from assistant.sentences import CLAUSES_TO_READ, Sentence
from assistant.types import Answer, Quote
from assistant.verify import QuoteVerificationError, verify_answer


class OpenAICompatibleComposer:
    SYSTEM_PROMPT = (
        "你是政策文件问答助手。只能通过逐字引用下面给出的条款来回答，每条引文注明条款编号（或条款 id）。回复一个 JSON 对象："
        '{"summary": "一句话概括（不要引用原文）", "quotes": [{"clause": 条款编号, "text": "从该条款原文逐字复制的句子"}]}。'
        "quotes 中的 text 必须与条款原文完全一致，不得改写、增删或合并；不得引用未给出的条款。若条款不能回答问题，quotes 为空数组。"
    )

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        post: Callable[[str, dict], dict] | None = None,
        clauses_to_read: int = CLAUSES_TO_READ,
    ):
        if not base_url or not model:
            raise ValueError("a generative composer needs a base URL and a model name")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = f"llm:{model}"
        self.api_key = api_key
        self.timeout = timeout
        self.post = post or self._http_post
        self.clauses_to_read = clauses_to_read

    def _http_post(self, url: str, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, json.dumps(payload).encode("utf-8"), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except (TimeoutError, socket.timeout) as error:
            raise AssistantError(f"{url} did not answer within {self.timeout:g} s") from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise AssistantError(f"{url} did not answer within {self.timeout:g} s") from error
            raise AssistantError(f"generative composer endpoint {url} failed ({error})") from error
        except (OSError, ValueError) as error:
            raise AssistantError(f"generative composer endpoint {url} failed ({error})") from error

    def compose(self, request: AnswerRequest) -> Answer:
        hits = request.hits
        shown = hits[: self.clauses_to_read]
        numbered = "\n\n".join(f"[{i}] (id: {h.clause.clause_id}) {document_name(h.clause)} › {h.clause.label}\n{h.clause.text}"
                                 for i, h in enumerate(shown, 1))
        payload = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": self.SYSTEM_PROMPT},
                {"role": "user", "content": f"条款：\n{numbered}\n\n问题：{request.question}"},
            ],
        }
        response = self.post(self.url, payload)
        try:
            content = response["choices"][0]["message"]["content"]
            reply = json.loads(content[content.index("{") : content.rindex("}") + 1])
            items = list(reply.get("quotes") or [])
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as error:
            raise AssistantError(f"generative composer returned an unreadable reply ({error})") from error
        quotes = []
        position = {h.clause.clause_id: n for n, h in enumerate(shown, 1)}
        for item in items:
            try:
                cited = item.get("clause", 0)
                number = position[cited] if isinstance(cited, str) and cited in position else int(cited)
            except (TypeError, ValueError, AttributeError):
                continue
            if not 1 <= number <= len(shown):
                continue
            clause = shown[number - 1].clause
            text = str(item.get("text", ""))
            start = clause.text.find(text) if text else -1
            if start < 0:  # left in: verify_answer rejects it loudly
                quotes.append(Quote(text, clause.clause_id, citation(clause), clause.doc_title, clause.label,
                                    clause.source, clause.line_start, clause.line_end))
                continue
            quotes.append(request.quotes.quote(Sentence(clause, text, start, start + len(text))))
        if not quotes:
            answer = abstain(request, "no_relevant_clause")
            answer.composer = self.name
            return answer
        summary = str(reply.get("summary") or "").replace("「", "“").replace("」", "”").strip() or None
        body = render_quotes(_group_by_document(quotes, hits), hits)
        return Answer(question=request.question, text=f"{summary}\n\n{body}" if summary else body, abstained=False,
                      quotes=quotes, hits=hits, summary=summary, composer=self.name)


def _group_by_document(quotes: list[Quote], hits) -> list[Quote]:
    doc_of = {h.clause.clause_id: h.clause.doc_id for h in hits}
    order: dict[str, int] = {}
    for q in quotes:
        order.setdefault(doc_of[q.clause_id], len(order))
    return sorted(quotes, key=lambda q: order[doc_of[q.clause_id]])


class FallbackComposer:
    """Answers with ``generative`` when its reply can be shown, else with ``fallback`` (extractive)
    from the same search, with a one-line ``notice`` saying why: the endpoint failed or timed out,
    its reply was unreadable, or a quote was not verbatim (checked here with the same
    :func:`verify_answer` the Assistant runs on every answer)."""

    def __init__(self, generative: Composer, fallback: Composer | None = None):
        self.generative = generative
        self.fallback = fallback or ExtractiveComposer()
        self.name = generative.name

    @property
    def max_chars(self) -> int:
        return getattr(self.fallback, "max_chars", 400)

    def compose(self, request: AnswerRequest) -> Answer:
        try:
            return verify_answer(self.generative.compose(request), request.hits)
        except QuoteVerificationError:
            why = "its quotes were not verbatim / 引文与原文不符"
        except AssistantError as error:
            why = str(error)
        answer = self.fallback.compose(request)
        answer.notice = f"大模型回答未采用，改为摘录原文 / {self.generative.name} not used: {why}"
        return answer


def with_fallback(generative: Composer) -> FallbackComposer:
    return FallbackComposer(generative, ExtractiveComposer())


def composer_from_settings(url: str | None, model: str | None, *, timeout: float = 60.0, environ=None) -> FallbackComposer | None:
    """The composer ``--llm-url URL --llm-model NAME`` turn on (None without them); the key comes
    from OPENAI_API_KEY or LLM_API_KEY."""
    import os

    if not url and not model:
        return None
    if not url or not model:
        raise AssistantError("--llm-url and --llm-model go together, e.g. --llm-url http://127.0.0.1:11434/v1 --llm-model qwen2.5:7b")
    if not url.startswith(("http://", "https://")):
        raise AssistantError(f"--llm-url must be an http(s) URL such as http://127.0.0.1:11434/v1, not {url!r}")
    if not timeout > 0:
        raise AssistantError("--llm-timeout must be a positive number of seconds")
    environ = os.environ if environ is None else environ
    key = environ.get("OPENAI_API_KEY") or environ.get("LLM_API_KEY") or None
    return with_fallback(OpenAICompatibleComposer(url, model, api_key=key, timeout=timeout))
