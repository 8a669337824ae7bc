"""A lean asyncio client of a Gradio app's queue, as the browser uses it.

Each simulated person opens the page once, which gives them a session of their
own, then sends their messages from it: they join the queue with POST
/gradio_api/queue/join and read the SSE stream of /gradio_api/queue/data.
The client records when the answer's text first appears and when it grows, so
that time to first token and update gaps are seen as a person would see them.
gradio_client would do the same work with threads and full-state copies per
message, costing the benchmark machine more CPU than the app it measures.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from phi4ui.core.generation_settings import DEFAULT_SYSTEM
from phi4ui.core.history import NOTES_TITLE, STATS_PREFIX

API = "/gradio_api"
TOKENS_IN_STATS = re.compile(r"(\d+) tokens in")
FIRST_TOKEN_IN_STATS = re.compile(r"first token (\d+) ms|first token ([\d.]+) s")
TOKENS_AND_FINISH = re.compile(r"Completion tokens \| (\d+) \((\w+)\)")
# The statistics' details: the page process's rate from its first token to its last, and
# the engine's decode time (vLLM's own stamps), shown as "850 ms" or "2.35 s".
PAGE_RATE_IN_STATS = re.compile(r"Decode speed \| ([\d.]+) tok/s")
ENGINE_DECODE_IN_STATS = re.compile(
    r"Engine queue / prefill / decode \| [^|]* / ([\d.]+) (ms|s) \|")


@dataclass
class Reply:
    started: float
    first_text_at: float | None = None
    updates: list[float] = field(default_factory=list)  # times the answer text grew
    completion_tokens: int = 0
    app_ttft: float | None = None  # the page's own, in its statistics line
    page_rate: float | None = None  # tokens per second as the page process received them
    engine_decode_s: float | None = None  # first token to last on the engine core's clock
    chat: list[Any] = field(default_factory=list)  # the chat as the page holds it
    error: str = ""
    ended: float = 0.0
    steps_s: dict[str, float] = field(default_factory=dict)  # the page's steps, by name

    @property
    def ttft(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started


class GradioApp:
    """The page's chat as the browser drives it, step by step: `answer` checks the message,
    shows it and streams the reply (a page that checks it in a step of its own first has
    an `accept` step, and one that ends the answer in a step of its own after it a `finish`
    step). The steps are found by following the chain of events that the textbox's submit
    starts; each is sent through the queue or not, as the page's config says, like the
    browser does."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.fn: dict[str, int] = {}
        self.inputs: dict[str, int] = {}
        self.queued: dict[str, bool] = {}
        self.tick_s = 0.0  # how often an open page's timer ticks (0: it has none)
        self.sends = 0  # the browser's count, for each send's id

    async def connect(self) -> None:
        self.learn((await self.client.get(f"{self.base_url}/config")).json())

    def learn(self, config: dict[str, Any]) -> None:
        """Finds the page's steps in its configuration."""
        dependencies = {d.get("id", i): d for i, d in enumerate(config["dependencies"])}
        # The backend step that runs when the one before succeeded (or in any case).
        after = {d["trigger_after"]: fn for fn, d in dependencies.items()
                 if d.get("trigger_after") is not None and d.get("backend_fn")
                 and not d.get("trigger_only_on_failure")}
        loads = []  # the page's steps at load: one of them starts the session
        for fn, dependency in dependencies.items():
            if dependency.get("api_name") in ("accept", "send"):
                self.fn[dependency["api_name"]] = fn
            if dependency.get("backend_fn") and any(target[1] == "load"
                                                    for target in dependency["targets"]):
                loads.append(fn)
            if dependency.get("backend_fn") and any(target[1] == "clear"
                                                    for target in dependency["targets"]):
                self.fn.setdefault("clear", fn)
        if loads:
            self.fn["load"] = min(loads, key=lambda fn: len(dependencies[fn]["inputs"]))
        if not ({"load", "clear"} <= set(self.fn) and {"accept", "send"} & set(self.fn)):
            raise RuntimeError("the app has no send, clear or page load event")
        self.fn["answer"] = self.fn.pop("send") if "send" in self.fn else after[self.fn["accept"]]
        if self.fn["answer"] in after:  # a page whose answer ends in a step of its own
            self.fn["finish"] = after[self.fn["answer"]]
        self._find_page_steps(dependencies, config)
        self.inputs = {step: len(dependencies[fn]["inputs"]) for step, fn in self.fn.items()}
        self.queued = {step: dependencies[fn].get("queue") is not False
                       for step, fn in self.fn.items()}

    async def open_page(self) -> str:
        """A new session, started as a browser's page load starts it (Gradio builds the
        session's state then, not when the first message is sent)."""
        session = uuid.uuid4().hex
        await self._run(session, "load", [])
        return session

    async def upload(self, path: str) -> dict[str, Any]:
        with open(path, "rb") as handle:
            response = await self.client.post(f"{self.base_url}{API}/upload",
                                              files={"files": (path.split("/")[-1], handle)})
        response.raise_for_status()
        server_path = response.json()[0]
        return {"path": server_path, "orig_name": path.split("/")[-1],
                "meta": {"_type": "gradio.FileData"}}

    async def chat(self, session: str, text: str, files: list[dict[str, Any]], max_tokens: int,
                   system: str = DEFAULT_SYSTEM) -> Reply:
        """One message in a new conversation, timed from pressing Enter."""
        # The server keeps the conversation (the states are sent as None, as a browser does);
        # clearing it first makes each message a new conversation.
        clearing = time.perf_counter()
        await self._run(session, "clear", [None])
        reply = Reply(started=time.perf_counter())
        reply.steps_s["clear"] = reply.started - clearing
        if "accept" in self.fn:
            refusal = await self.accept(session, text, files, system)
            reply.steps_s["accept"] = time.perf_counter() - reply.started
            if refusal:
                reply.error, reply.ended = refusal, time.perf_counter()
                return reply
        await self._event(session, "answer", self.answer_data(text, files, system, max_tokens),
                          reply)
        if "finish" in self.fn:
            finishing = time.perf_counter()
            await self._run(session, "finish", [None, None])
            reply.steps_s["finish"] = time.perf_counter() - finishing
        reply.ended = time.perf_counter()
        return reply

    def answer_data(self, text: str, files: list[dict[str, Any]], system: str,
                    max_tokens: int) -> list[Any]:
        """The answer step's inputs (the server's states are sent as None): with the
        message itself, and the browser's id of the send, where no accept step came
        first."""
        settings = [system, 0.0, 1.0, max_tokens, None]
        if "accept" in self.fn:
            return [None, None, *settings]
        self.sends += 1
        return [{"text": text, "files": files}, str(self.sends), None, None, *settings]

    async def accept(self, session: str, text: str, files: list[dict[str, Any]],
                     system: str) -> str:
        """Sends a message as pressing Enter does, on a page that checks it in a step of its
        own before the answer; returns why it was refused, or "" (at once on a page
        without such a step: its answer step checks the message)."""
        if "accept" not in self.fn:
            return ""
        accepted = Reply(started=time.perf_counter())
        await self._step(session, "accept", [{"text": text, "files": files}, None, system, None],
                         accepted)
        return accepted.error

    async def run(self, session: str, step: str, data: list[Any]) -> list[Any]:
        """A step that is not queued (clear, stop, preview, the timer's tick)."""
        return await self._run(session, step, data)

    async def join(self, session: str, step: str, data: list[Any]) -> str:
        """Puts a queued step in the queue; returns its event id."""
        data = data + [None] * (self.inputs[step] - len(data))
        joined = await self.client.post(f"{self.base_url}{API}/queue/join", json={
            "data": data, "fn_index": self.fn[step], "session_hash": session,
            "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        return str(joined.json()["event_id"])

    async def read_events(self, session: str, reply: Reply, event_id: str = "",
                          reopen: int = 3) -> None:
        """Reads the session's SSE stream into `reply` until the event is over. Given the
        event's id, it skips messages of other events (one cancelled earlier may still
        report) and opens the stream again if it closes first, as the browser does."""
        for _ in range(reopen + 1):
            async with self.client.stream("GET", f"{self.base_url}{API}/queue/data",
                                          params={"session_hash": session}) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if event_id and message.get("event_id") not in (None, event_id):
                        continue
                    if message.get("msg") == "close_stream" and event_id:
                        break
                    if _handle(message, reply):
                        return
            if not event_id:
                return
        reply.error = reply.error or "the stream closed before the answer ended"

    def _find_page_steps(self, dependencies: dict[int, dict[str, Any]],
                         config: dict[str, Any]) -> None:
        """The other backend steps a page sends on its own: Stop, the input's change (the
        cost preview) and the timer's tick, where the page has them."""
        textbox = _submitted(dependencies, self.fn["accept" if "accept" in self.fn
                                                    else "answer"])
        for fn, dependency in dependencies.items():
            if not dependency.get("backend_fn"):
                continue
            targets = [tuple(target) for target in dependency["targets"]]
            if (textbox, "stop") in targets:
                self.fn.setdefault("stop", fn)
            if (textbox, "change") in targets:
                self.fn.setdefault("preview", fn)
            if any(trigger == "tick" for _, trigger in targets):
                self.fn.setdefault("tick", fn)
                self.tick_s = _timer_interval(config, targets[0][0])

    async def _step(self, session: str, step: str, data: list[Any], reply: Reply) -> None:
        """A step whose refusal is an answer, not a failure of the benchmark."""
        if self.queued[step]:
            await self._event(session, step, data, reply)
            return
        response = await self._post(session, step, data)
        if response.is_success:
            _on_output(response.json()["data"], reply)
        else:
            reply.error = str(response.json().get("error") or response.status_code)

    async def _run(self, session: str, step: str, data: list[Any]) -> list[Any]:
        """An event that is not queued, as the page sends it (states are the server's: the
        page sends null for them)."""
        response = await self._post(session, step, data)
        response.raise_for_status()
        return response.json()["data"]

    async def _post(self, session: str, step: str, data: list[Any]) -> httpx.Response:
        data = data + [None] * (self.inputs[step] - len(data))
        return await self.client.post(f"{self.base_url}{API}/run/predict", json={
            "data": data, "fn_index": self.fn[step], "session_hash": session,
            "event_data": None, "trigger_id": None})

    async def _event(self, session: str, step: str, data: list[Any], reply: Reply) -> None:
        """A queued event: join, then read its messages from the session's SSE stream."""
        await self.read_events(session, reply, await self.join(session, step, data))


def _handle(message: dict[str, Any], reply: Reply) -> bool:
    """Updates `reply` from one SSE message; True when the event is over."""
    kind = message.get("msg")
    if kind == "process_generating":
        _on_output(message.get("output", {}).get("data") or [], reply)
    elif kind == "process_completed":
        output = message.get("output", {})
        if not message.get("success", True):
            reply.error = str(output.get("error") or "failed")
        _on_output(output.get("data") or [], reply)
        return True
    elif kind == "close_stream":
        return True
    elif kind == "unexpected_error":
        reply.error = str(message.get("message") or "unexpected error")
        return True
    return False


def _submitted(dependencies: dict[int, dict[str, Any]], fn: int) -> int:
    """The component whose submit starts the chain that step `fn` is part of: the textbox."""
    dependency = dependencies[fn]
    while dependency.get("trigger_after") is not None:
        dependency = dependencies[dependency["trigger_after"]]
    return int(dependency["targets"][0][0])


def _timer_interval(config: dict[str, Any], component_id: int) -> float:
    for component in config.get("components", []):
        if component.get("id") == component_id:
            return float(component.get("props", {}).get("value") or 0.0)
    return 0.0


def _on_output(data: list[Any], reply: Reply) -> None:
    """Outputs are the chat history (first in full, then as diffs) and the textbox."""
    if not data:
        return
    if isinstance(data[0], list):  # a generator's first output comes in full, then diffs
        whole = bool(data[0]) and isinstance(data[0][0], dict)
        reply.chat = data[0] if whole else apply_diff(reply.chat, data[0])
    if _answer_grew(data[0]):
        now = time.perf_counter()
        if reply.first_text_at is None:
            reply.first_text_at = now
        reply.updates.append(now)
    if match := TOKENS_IN_STATS.search(shown := json.dumps(data[0])):
        reply.completion_tokens = int(match.group(1))
        if first := FIRST_TOKEN_IN_STATS.search(shown):
            reply.app_ttft = (float(first.group(1)) / 1000 if first.group(1)
                              else float(first.group(2)))
        _note_rates(shown, reply)


def _note_rates(shown: str, reply: Reply) -> None:
    if rate := PAGE_RATE_IN_STATS.search(shown):
        reply.page_rate = float(rate.group(1))
    if decode := ENGINE_DECODE_IN_STATS.search(shown):
        value = float(decode.group(1))
        reply.engine_decode_s = value / 1000 if decode.group(2) == "ms" else value


def apply_diff(value: Any, diff: list[Any]) -> Any:
    """Gradio's diff of an output, applied as gradio_client's `apply_diff` applies it but in
    place: that one deep-copies the whole chat on every update, the client's largest cost
    per update after parsing. The reply owns its chat, so nothing else sees the change."""
    for action, path, new in diff:
        if not path:
            value = new if action == "replace" else value + new
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if action == "replace":
            parent[key] = new
        elif action == "append":
            parent[key] += new
        elif action == "add" and isinstance(parent, list):
            parent.insert(int(key), new)
        elif action == "add":
            parent[key] = new
        elif action == "delete":
            del parent[int(key) if isinstance(parent, list) else key]
        else:
            raise ValueError(f"unknown diff action {action!r}")
    return value


def _answer_grew(chat_output: Any) -> bool:
    """True when an output adds text to the answer (not to the statistics under it)."""
    if not (isinstance(chat_output, list) and chat_output):
        return False
    if isinstance(chat_output[0], dict):  # a generator's first output comes in full
        return any(m.get("role") == "assistant" and not m.get("metadata") and m.get("content")
                   for m in chat_output if isinstance(m, dict))
    for op, path, value in chat_output:
        if op == "append" and path and path[-1] == "text" and value:
            return True
        if (op == "add" and isinstance(value, dict) and value.get("role") == "assistant"
                and not value.get("metadata") and value.get("content")):
            return True
    return False


def incomplete(reply: Reply, max_tokens: int) -> str:
    """Why an answer is not a full one, or "" when it is: it must end with its statistics
    and no other annotation (an error, "Stopped"), have text, and end at its token budget
    (finish reason "length", all `max_tokens` tokens) or at the model's end ("stop")."""
    if reply.error:
        return reply.error
    answer = _after_last_question(reply.chat)
    titles = [_title(m) for m in answer if _title(m)]
    if others := [t for t in titles if not t.startswith(STATS_PREFIX) and t != NOTES_TITLE]:
        return f"the chat shows: {others[0]}"
    stats = next((m for m in answer if _title(m).startswith(STATS_PREFIX)), None)
    if stats is None:
        return "the answer ended without its statistics"
    found = TOKENS_AND_FINISH.search(_text(stats.get("content")))
    if found is None:
        return "the statistics do not give the completion tokens"
    tokens, reason = int(found[1]), found[2]
    if tokens == 0 or not "".join(_text(m.get("content")) for m in answer
                                  if not _title(m)).strip():
        return "an empty answer"
    if reason == "length" and tokens != max_tokens:
        return f"{tokens} of {max_tokens} tokens"
    return "" if reason in ("length", "stop") else f"the answer ended: {reason}"


def _after_last_question(chat: list[Any]) -> list[dict[str, Any]]:
    messages = [m for m in chat if isinstance(m, dict)]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return messages[last + 1:]


def _title(message: dict[str, Any]) -> str:
    return str((message.get("metadata") or {}).get("title") or "")


def _text(content: Any) -> str:
    """A message's text, whether Gradio sent it as a string or as typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "".join(_text(part) for part in content)
    return ""
