"""Talks to the running app over plain HTTP the way its page does (or an attacker would):
reads `/config`, uploads files, and calls any event with any values, queued or not.
Only 127.0.0.1."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/gradio_api"
FILE_URL = re.compile(r"/gradio_api/file=([^\"'\s)]+)")


@dataclass
class EventResult:
    success: bool
    data: list[Any] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # toasts: warnings, infos, errors
    raw: str = ""  # every byte the server sent about this event

    @property
    def text(self) -> str:
        return " ".join(self.messages)


class PageClient:
    def __init__(self, base_url: str, *, login: tuple[str, str] | None = None) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=120, follow_redirects=True)
        if login is not None:
            response = self.http.post("/login", data={"username": login[0],
                                                      "password": login[1]})
            response.raise_for_status()
        self.http.get("/").raise_for_status()  # the visitor cookie
        self.config = self.http.get("/config").json()
        self.session_hash = secrets.token_hex(6)

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ the page's structure

    def component(self, elem_id: str) -> dict[str, Any]:
        return next(c for c in self.config["components"]
                    if c.get("props", {}).get("elem_id") == elem_id)

    def components_by_id(self) -> dict[int, dict[str, Any]]:
        return {c["id"]: c for c in self.config["components"]}

    def dependencies(self) -> list[dict[str, Any]]:
        return [d for d in self.config["dependencies"] if d.get("backend_fn")]

    def dependency(self, elem_id: str, event: str) -> dict[str, Any]:
        target = self.component(elem_id)["id"]
        return next(d for d in self.dependencies() if [target, event] in d["targets"])

    # ------------------------------------------------------------ calls

    def upload(self, name: str, content: bytes) -> dict[str, Any]:
        response = self.http.post(f"{API}/upload", files={"files": (name, content)})
        response.raise_for_status()
        path = response.json()[0]
        return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def call(self, dependency: dict[str, Any], data: list[Any],
             event_data: Any = None) -> EventResult:
        body = {"data": data, "fn_index": dependency["id"], "session_hash": self.session_hash,
                "event_data": event_data, "trigger_id": dependency["targets"][0][0]}
        if dependency.get("queue") is False:
            return self._direct(body)
        return self._queued(body)

    def _direct(self, body: dict[str, Any]) -> EventResult:
        response = self.http.post(f"{API}/run/predict", json=body)
        raw = response.text
        try:
            payload = response.json()
        except ValueError:
            return EventResult(False, raw=raw)
        if response.status_code != 200:
            return EventResult(False, messages=[str(payload.get("error") or "")], raw=raw)
        return EventResult(True, payload.get("data") or [], raw=raw)

    def _queued(self, body: dict[str, Any]) -> EventResult:
        joined = self.http.post(f"{API}/queue/join", json=body)
        if joined.status_code != 200:
            return EventResult(False, messages=[joined.text], raw=joined.text)
        event_id = joined.json()["event_id"]
        result = EventResult(False)
        for message in self._messages(event_id):
            result.raw += json.dumps(message)
            kind = message.get("msg")
            if kind == "log":
                result.messages.append(str(message.get("log") or ""))
            elif kind == "process_completed":
                output = message.get("output") or {}
                result.success = bool(message.get("success"))
                result.data = output.get("data") or []
                if output.get("error"):
                    result.messages.append(str(output["error"]))
                return result
        return result

    def events(self, event_id: str) -> Iterator[dict[str, Any]]:
        """The session stream's messages about one queued event, until it completes."""
        for message in self._messages(event_id):
            yield message
            if message.get("msg") == "process_completed":
                return

    def _messages(self, event_id: str) -> Iterator[dict[str, Any]]:
        with self.http.stream("GET", f"{API}/queue/data",
                              params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") in (event_id, None):
                    yield message
                if message.get("msg") == "close_stream":
                    return

    def fetch(self, url_path: str) -> httpx.Response:
        return self.http.get(f"{API}/file={url_path}")


def file_urls(text: str) -> list[str]:
    """The file paths a response asks the browser to fetch."""
    return FILE_URL.findall(text)


# ---------------------------------------------------------------- the send chain

def chain(client: PageClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """The send chain's backend steps: the queued send (it checks the message, shows it and
    streams its answer), and the step that runs when it was refused, which tells why and
    gives the message back. The browser moves the message out of the input before them."""
    textbox = client.component("mm")["id"]
    moved = next(d for d in client.config["dependencies"] if [textbox, "submit"] in d["targets"])
    assert not moved.get("backend_fn"), "moving the message to send is the browser's step"
    send = next(d for d in client.dependencies() if d.get("trigger_after") == moved["id"])
    unsent = next(d for d in client.dependencies() if d.get("trigger_after") == send["id"]
                  and d.get("trigger_only_on_failure"))
    return send, unsent


def retry_chain(client: PageClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Retry's steps: the check, the queued answer, and the step that runs only when Gradio
    refused the answer step's settings."""
    retry = client.dependency("chatbot", "retry")
    answer = next(d for d in client.dependencies() if d.get("trigger_after") == retry["id"]
                  and d.get("trigger_only_on_success") and d.get("queue") is not False)
    not_started = next(d for d in client.dependencies() if d.get("trigger_after") == answer["id"]
                       and d.get("trigger_only_on_failure"))
    return retry, answer, not_started


def message(text: str, files: list[Any] | None = None) -> dict[str, Any]:
    return {"text": text, "files": files or []}


def send_data(sent: dict[str, Any], max_tokens: int = 16, temperature: float = 0.0,
              send_id: str = "1") -> list[Any]:
    """The send step's inputs: the message, the browser's id of this send, the server's
    states as the page sends them (null), the settings."""
    return [sent, send_id, None, None, "Be brief.", temperature, 1.0, max_tokens, 1, None]


def unsent_data(sent: dict[str, Any], send_id: str = "1", typed: Any = None) -> list[Any]:
    """The inputs of the step after a send that did not go through."""
    return [sent, typed, send_id, None, None]


def send(client: PageClient, text: str, max_tokens: int = 16) -> tuple[EventResult, Any]:
    """Sends a message as the page does; returns the send step's result (or, refused, the
    result of the step that tells why) and the chat its last update shows."""
    sent, told = send_message(client, message(text), max_tokens)
    if told is not None:
        return told, None
    return sent, sent.data[0] if sent.data else None


def send_message(client: PageClient, sent: dict[str, Any], max_tokens: int = 16
                 ) -> tuple[EventResult, EventResult | None]:
    """The send chain: the send step's result, and when it failed, the result of the step
    after it, which tells why."""
    send_step, unsent = chain(client)
    result = client.call(send_step, send_data(sent, max_tokens))
    if result.success:
        return result, None
    return result, client.call(unsent, unsent_data(sent))
