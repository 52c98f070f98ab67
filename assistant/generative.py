"""A generative composer for any OpenAI-compatible ``/chat/completions`` endpoint (optional, not default).

    >>> composer = OpenAICompatibleComposer("http://127.0.0.1:11434/v1", model="qwen2.5:7b")
    >>> assistant = Assistant(retriever, composer=composer)

The model is shown the numbered top clauses and must reply with JSON
``{"summary": "...", "quotes": [{"clause": 1, "text": "exact span"}]}``. The summary is shown as
the assistant's own words (never inside 「」); quotes go through
:func:`~assistant.verify.verify_answer`, so a model that paraphrases policy text makes the answer
fail instead of showing altered text. ``post`` can be replaced (tests, other transports):
``post(url, payload_dict) -> response_dict``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

from assistant.compose import AnswerRequest, abstain
from assistant.errors import AssistantError
from assistant.render import citation, document_name, render_quotes
from assistant.sentences import CLAUSES_TO_READ, Sentence
from assistant.types import Answer, Quote


class OpenAICompatibleComposer:
    SYSTEM_PROMPT = (
        "你是政策文件问答助手。只根据给出的条款回答。回复一个 JSON 对象："
        '{"summary": "一句话概括（不要引用原文）", "quotes": [{"clause": 条款编号, "text": "从该条款原文逐字复制的句子"}]}。'
        "quotes 中的 text 必须与条款原文完全一致，不得改写。若条款不能回答问题，quotes 为空数组。"
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
        except (OSError, ValueError) as error:
            raise AssistantError(f"generative composer endpoint {url} failed ({error})") from error

    def compose(self, request: AnswerRequest) -> Answer:
        hits = request.hits
        shown = hits[: self.clauses_to_read]
        numbered = "\n\n".join(f"[{i}] {document_name(h.clause)} › {h.clause.label}\n{h.clause.text}" for i, h in enumerate(shown, 1))
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
        for item in items:
            try:
                number = int(item.get("clause", 0))
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
