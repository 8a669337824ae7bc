"""The OpenAI chat-completions wire, for the remote engine: pure translation.

Requests (messages, sampling arguments) go out, streamed chunks come back as
`TextDelta`s with their token counts, and the client's exceptions become
phi4ui's errors in plain words. No I/O here.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import httpx2
import openai

from phi4ui.core.chat import Sampling, Turn, render_phi4_prompt
from phi4ui.core.engine import TextDelta
from phi4ui.core.textguard import TextGuard
from phi4ui.errors import BadInput, EngineUnavailable, Phi4UIError, PromptTooLong

FAILED_FINISH_REASONS = ("abort", "error")


# ---------------------------------------------------------------- requests

def extra_body(sampling: Sampling, *, prompt_token_ids: bool = False) -> dict[str, Any]:
    """Request fields beyond OpenAI's own, which vLLM understands. `prompt_token_ids` asks
    for the prompt's token ids in the first chunk."""
    body: dict[str, Any] = {
        # Every chunk then carries the running token counts, not only the last one.
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if sampling.ignore_eos:
        body["ignore_eos"] = True
    if prompt_token_ids:
        body["return_token_ids"] = True
    return body


def inline_placeholders(messages: list[dict[str, Any]], turns: Sequence[Turn],
                        guard: TextGuard) -> None:
    """Puts `<|image_N|>` / `<|audio_N|>` into each user message's text, where the
    embedded engine's prompt has them.

    Left to itself, vLLM puts each placeholder on a line of its own before the
    text; with them written in, it keeps the text as it is. The model then sees
    the prompt the embedded engine gives it, laid out as in the model card, and
    the server's prompt-token count is the planner's. The text is neutralised by
    `guard`, as `render_phi4_prompt` neutralises it.
    """
    offset = len(messages) - len(turns)  # a system message comes first
    bodies = _turn_bodies(turns, guard)
    for message, turn, body in zip(messages[offset:], turns, bodies, strict=True):
        if turn.role == "assistant":
            message["content"] = body
            continue
        parts = [part for part in message["content"] if part.get("type") != "text"]
        if body:
            parts.append({"type": "text", "text": body})
        message["content"] = parts


def _turn_bodies(turns: Sequence[Turn], guard: TextGuard) -> list[str]:
    """Each turn's text as `render_phi4_prompt` writes it, placeholders numbered
    across the whole conversation."""
    bodies: list[str] = []
    done = 0
    for index, turn in enumerate(turns):
        rendered = render_phi4_prompt("", turns[:index + 1], guard=guard
                                      ).removesuffix("<|assistant|>")
        segment, done = rendered[done:], len(rendered)
        bodies.append(segment.removeprefix(f"<|{turn.role}|>").removesuffix("<|end|>"))
    return bodies


# ---------------------------------------------------------------- the stream

class StreamProgress:
    """What the stream has told so far: tokens, the finish reason, the usage."""

    def __init__(self) -> None:
        self.streamed_tokens = 0
        self.completion_tokens = 0
        self.prompt_tokens: int | None = None
        self.prompt_token_ids: tuple[int, ...] | None = None  # when asked for
        self.finish_reason: str | None = None
        self.finished_at: float | None = None  # monotonic, when the finish reason arrived

    @property
    def completed(self) -> bool:
        return self.finish_reason is not None and self.finish_reason not in FAILED_FINISH_REASONS

    def update(self, chunk: Any) -> TextDelta | None:
        """Takes one chunk; returns the text and tokens it adds, if any."""
        usage = chunk.usage
        ids = getattr(chunk, "prompt_token_ids", None)  # vLLM's field, in the first chunk
        if ids is not None:
            self.prompt_token_ids = tuple(ids)
        if usage is not None:
            self.prompt_tokens = usage.prompt_tokens
            self.completion_tokens = usage.completion_tokens
        if not chunk.choices:  # the closing usage-only chunk
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
            self.finished_at = time.monotonic()
        text = choice.delta.content or ""
        # With continuous usage every chunk says how many tokens it carries;
        # a server without it is assumed to send one token a chunk.
        tokens = (usage.completion_tokens - self.streamed_tokens if usage is not None
                  else int(bool(text)))
        if not text and tokens <= 0 and not choice.finish_reason:
            return None
        self.streamed_tokens += tokens
        return TextDelta(text, tokens, last=bool(choice.finish_reason))


# ---------------------------------------------------------------- failures in plain words

def start_failure(error: openai.OpenAIError, *, where: str, connect_timeout: float,
                  request_timeout: float) -> str:
    """The one status line for a server that cannot be used at start."""
    if isinstance(error, openai.APITimeoutError):
        connecting = "Connect" in type(error.__cause__).__name__
        waited = connect_timeout if connecting else request_timeout
        return f"cannot reach {where}: no answer within {waited:g} s"
    if isinstance(error, openai.APIConnectionError):
        return f"cannot reach {where}: {connection_reason(error)}"
    if isinstance(error, openai.APIStatusError):
        code = error.status_code
        if code in (401, 403):
            return f"{where} refused the API key (HTTP {code}); check --api-key"
        if code == 404:
            return (f"{where} has no /models (HTTP 404); the address of a vLLM server "
                    "usually ends in /v1")
        return f"{where} answered HTTP {code} to GET /models: {server_message(error)}"
    return f"cannot use {where}: {error}"


def failure(error: openai.OpenAIError, *, where: str, model: str,
            request_timeout: float) -> Phi4UIError:
    """The error a person sees for a failed chat request."""
    if isinstance(error, openai.APITimeoutError):
        return EngineUnavailable(
            f"The server at {where} sent nothing for {request_timeout:g} s, so this answer was "
            "given up. It may be overloaded: send again, or raise --request-timeout.")
    if isinstance(error, openai.APIConnectionError):
        return EngineUnavailable(
            f"Lost the connection to the server at {where} ({connection_reason(error)}). "
            "Your conversation is kept; send again once the server is back.")
    if isinstance(error, openai.APIStatusError):
        return _status_failure(error, where=where, model=model)
    return EngineUnavailable(f"The server at {where} stopped this answer with an error: "
                             f"{server_message(error)}. Send again to retry.")


def _status_failure(error: openai.APIStatusError, *, where: str, model: str) -> Phi4UIError:
    code, message = error.status_code, server_message(error)
    if code in (400, 413, 422):
        too_long = "context length" in message or "too long" in message.lower()
        return (PromptTooLong if too_long else BadInput)(
            f"The server refused this prompt: {message}")
    if code in (401, 403):
        return EngineUnavailable(f"The server at {where} refused the API key (HTTP {code}). "
                                 "Check --api-key.")
    if code == 404:
        return EngineUnavailable(f"The server at {where} does not serve {model!r} any more: "
                                 f"{message}. Send again to reconnect.")
    if code == 429:
        return EngineUnavailable(f"The server at {where} is busy (HTTP 429): {message}. "
                                 "Send again in a moment.")
    return EngineUnavailable(f"The server at {where} failed to answer (HTTP {code}): {message}. "
                             "Send again; if it keeps failing, read the server's log.")


def reconnect_reason(error: openai.OpenAIError, *, where: str, model: str) -> str | None:
    """When a failed request means the server must be checked again before the next
    one, the engine's status line saying why; None otherwise."""
    if isinstance(error, openai.APITimeoutError):
        return None
    if isinstance(error, openai.APIConnectionError):
        return f"lost the connection to {where} ({connection_reason(error)})"
    if isinstance(error, openai.APIStatusError) and error.status_code in (401, 403):
        return f"{where} refused the API key (HTTP {error.status_code})"
    if isinstance(error, openai.APIStatusError) and error.status_code == 404:
        return f"{where} does not serve {model} any more"
    return None


# The OpenAI client's own transport is httpx2; httpx is what other callers may raise.
TIMEOUTS = (TimeoutError, httpx.TimeoutException, httpx2.TimeoutException)


def connection_reason(error: BaseException) -> str:
    """Why a connection failed, in a few plain words."""
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host name"
        if isinstance(cause, TIMEOUTS):
            return "timed out"
        if "incomplete chunked read" in str(cause) or "peer closed" in str(cause):
            return "the server closed the connection mid-answer"
        cause = cause.__cause__ or cause.__context__
    return str(error.__cause__ or error) or type(error).__name__


def server_message(error: openai.OpenAIError) -> str:
    """The server's own explanation, without the client's prefix or vLLM's parameter note."""
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = getattr(error, "message", None) or str(error)
    message = re.sub(r"^Error code: \d+ - ", "", message)
    message = re.sub(r"\s*\(parameter=[^)]*\)\s*$", "", message).strip()
    return message if len(message) <= 400 else message[:399] + "…"


# ---------------------------------------------------------------- addresses

def display_url(url: str) -> str:
    """The URL without user name, password or query, fit for the page and the logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def server_root(url: str) -> str:
    """The server's root, where vLLM serves /metrics and /tokenize, from its /v1 URL."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/").removesuffix("/v1")))
