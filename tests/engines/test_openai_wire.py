"""The OpenAI wire's pure parts without a server: how the client's errors become the
sentences a person reads, the request's extra fields, the stream's token accounting and
the addresses shown.

The errors are the `openai` client's own exception classes, built as the client builds
them from a response (`Error code: N - {body}`, the body's `error` object), with bodies
shaped as vLLM's OpenAI server sends them; the causes of connection failures are the
exceptions the socket layer raises. The engine tests meet the same errors from a real
server; these cover every branch of the mapping in a fraction of a second.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from phi4ui.core.chat import Sampling
from phi4ui.engines import openai_wire as wire
from phi4ui.errors import BadInput, EngineUnavailable, PromptTooLong

WHERE = "http://127.0.0.1:8000/v1"
REQUEST = httpx.Request("POST", f"{WHERE}/chat/completions")
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError, 401: openai.AuthenticationError,
    403: openai.PermissionDeniedError, 404: openai.NotFoundError,
    422: openai.UnprocessableEntityError, 429: openai.RateLimitError,
    500: openai.InternalServerError,
}
TOO_LONG = ("This model's maximum context length is 4096 tokens. However, your request has "
            "5000 input tokens. Please reduce the length of the input messages. "
            "(parameter=input_tokens, value=5000)")


def status_error(code: int, message: str) -> openai.APIStatusError:
    """What the client raises for a vLLM error response with this status and message."""
    body = {"message": message, "type": "BadRequestError", "param": None, "code": code}
    response = httpx.Response(code, request=REQUEST, json={"error": body})
    return STATUS_ERRORS[code](f"Error code: {code} - {{'error': {body}}}", response=response,
                               body=body)


def connection_error(cause: BaseException) -> openai.APIConnectionError:
    error = openai.APIConnectionError(request=REQUEST)
    error.__cause__ = cause
    return error


def timeout_error(cause: BaseException) -> openai.APITimeoutError:
    error = openai.APITimeoutError(request=REQUEST)
    error.__cause__ = cause
    return error


def start_failure(error: openai.OpenAIError) -> str:
    return wire.start_failure(error, where=WHERE, connect_timeout=3, request_timeout=120)


def failure(error: openai.OpenAIError) -> Exception:
    return wire.failure(error, where=WHERE, model="phi4", request_timeout=120)


# ---------------------------------------------------------------- at start

def test_a_start_timeout_names_the_timeout_that_ran_out():
    connecting = timeout_error(httpx.ConnectTimeout("timed out", request=REQUEST))
    reading = timeout_error(httpx.ReadTimeout("timed out", request=REQUEST))
    assert start_failure(connecting) == f"cannot reach {WHERE}: no answer within 3 s"
    assert start_failure(reading) == f"cannot reach {WHERE}: no answer within 120 s"


@pytest.mark.parametrize(("cause", "reason"), [
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (socket.gaierror(-2, "Name or service not known"), "unknown host name"),
    (TimeoutError("timed out"), "timed out"),
])
def test_a_server_out_of_reach_at_start_says_why_in_a_few_words(cause, reason):
    assert start_failure(connection_error(cause)) == f"cannot reach {WHERE}: {reason}"


def test_a_refusal_at_start_says_which_flag_to_check():
    assert start_failure(status_error(401, "Unauthorized")) == (
        f"{WHERE} refused the API key (HTTP 401); check --api-key")
    assert "ends in /v1" in start_failure(status_error(404, "Not Found"))
    assert start_failure(status_error(500, "EngineCore died")) == (
        f"{WHERE} answered HTTP 500 to GET /models: EngineCore died")


# ---------------------------------------------------------------- during a request

def test_a_prompt_over_the_context_is_too_long_in_the_server_s_own_words():
    error = failure(status_error(400, TOO_LONG))
    assert isinstance(error, PromptTooLong)
    assert str(error) == ("The server refused this prompt: This model's maximum context length "
                          "is 4096 tokens. However, your request has 5000 input tokens. Please "
                          "reduce the length of the input messages.")


@pytest.mark.parametrize("code", [400, 422])
def test_another_refused_prompt_is_bad_input(code):
    error = failure(status_error(code, "At most 2 image(s) may be provided in one prompt."))
    assert type(error) is BadInput
    assert str(error) == ("The server refused this prompt: At most 2 image(s) may be provided "
                          "in one prompt.")


@pytest.mark.parametrize(("code", "words"), [
    (401, "refused the API key (HTTP 401). Check --api-key."),
    (403, "refused the API key (HTTP 403). Check --api-key."),
    (404, "does not serve 'phi4' any more: The model `phi4` does not exist."),
    (429, "is busy (HTTP 429): Too many requests. Send again in a moment."),
    (500, "failed to answer (HTTP 500): EngineCore died."),
])
def test_a_server_side_failure_leaves_the_engine_unavailable_and_says_what_to_do(code, words):
    messages = {404: "The model `phi4` does not exist.", 429: "Too many requests"}
    error = failure(status_error(code, messages.get(code, "EngineCore died")))
    assert type(error) is EngineUnavailable
    assert words in str(error)


def test_a_request_timeout_and_a_lost_connection_keep_the_conversation():
    timed_out = failure(timeout_error(httpx.ReadTimeout("timed out", request=REQUEST)))
    assert "sent nothing for 120 s" in str(timed_out)
    assert "--request-timeout" in str(timed_out)
    lost = failure(connection_error(ConnectionRefusedError(111, "Connection refused")))
    assert str(lost) == (f"Lost the connection to the server at {WHERE} (connection refused). "
                         "Your conversation is kept; send again once the server is back.")


def test_only_failures_that_question_the_server_make_the_engine_check_it_again():
    def reason(error: openai.OpenAIError) -> str | None:
        return wire.reconnect_reason(error, where=WHERE, model="phi4")

    assert reason(connection_error(ConnectionRefusedError())) == (
        f"lost the connection to {WHERE} (connection refused)")
    assert reason(status_error(403, "Forbidden")) == f"{WHERE} refused the API key (HTTP 403)"
    assert reason(status_error(404, "gone")) == f"{WHERE} does not serve phi4 any more"
    assert reason(timeout_error(httpx.ReadTimeout("timed out", request=REQUEST))) is None
    assert reason(status_error(400, TOO_LONG)) is None
    assert reason(status_error(500, "EngineCore died")) is None


# ---------------------------------------------------------------- reasons and messages

def test_a_connection_reason_is_found_down_the_chain_of_causes():
    refused = ConnectionRefusedError(111, "Connection refused")
    wrapped = httpx.ConnectError("All connection attempts failed")
    wrapped.__cause__ = refused
    assert wire.connection_reason(connection_error(wrapped)) == "connection refused"
    cut = httpx.RemoteProtocolError("peer closed connection without sending complete message")
    assert wire.connection_reason(connection_error(cut)) == (
        "the server closed the connection mid-answer")


def test_a_cycle_of_causes_ends_with_the_first_cause_s_words():
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert wire.connection_reason(connection_error(first)) == "first"


def test_the_server_message_drops_the_client_s_prefix_and_is_cut_at_400_characters():
    assert wire.server_message(status_error(400, "  bad  ")) == "bad"
    long = wire.server_message(status_error(400, "x" * 1000))
    assert len(long) == 400
    assert long.endswith("x…")
    # Without a JSON body, the client's own message is all there is.
    plain = openai.InternalServerError("Error code: 502 - Bad Gateway", response=httpx.Response(
        502, request=REQUEST, text="Bad Gateway"), body=None)
    assert wire.server_message(plain) == "Bad Gateway"


# ---------------------------------------------------------------- requests and the stream

def test_extra_fields_ask_for_usage_on_every_chunk_and_what_the_sampling_needs():
    plain = wire.extra_body(Sampling())
    assert plain == {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    body = wire.extra_body(Sampling(ignore_eos=True), prompt_token_ids=True)
    assert body["ignore_eos"] is True
    assert body["return_token_ids"] is True


def chunk(text: str | None, *, completion: int | None, finish: str | None = None,
          choices: bool = True, **extra: Any) -> ChatCompletionChunk:
    """One streamed chunk, as vLLM sends it with continuous usage statistics, built as the
    client builds it: without validation, which vLLM's "abort" and "error" would fail."""
    data: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "phi4",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]
        if choices else [],
        "usage": None if completion is None else {
            "prompt_tokens": 12, "completion_tokens": completion,
            "total_tokens": 12 + completion},
        **extra,
    }
    return ChatCompletionChunk.construct(**data)


def test_the_stream_counts_tokens_from_the_running_usage():
    progress = wire.StreamProgress()
    first = progress.update(chunk("", completion=0, prompt_token_ids=[1, 2, 3]))
    assert first is None  # the role-only first chunk
    assert progress.prompt_token_ids == (1, 2, 3)
    deltas = [progress.update(chunk("Hel", completion=1)),
              progress.update(chunk("lo there", completion=3)),
              progress.update(chunk("", completion=4, finish="stop"))]
    assert [(d.text, d.tokens) for d in deltas if d] == [("Hel", 1), ("lo there", 2), ("", 1)]
    assert progress.update(chunk(None, completion=4, choices=False)) is None
    assert (progress.prompt_tokens, progress.completion_tokens) == (12, 4)
    assert progress.completed
    assert progress.finished_at is not None


def test_without_usage_each_chunk_with_text_counts_as_one_token():
    progress = wire.StreamProgress()
    assert progress.update(chunk("a", completion=None)).tokens == 1
    assert progress.update(chunk("", completion=None)) is None
    assert progress.streamed_tokens == 1
    assert progress.prompt_tokens is None


@pytest.mark.parametrize("reason", ["abort", "error"])
def test_an_aborted_or_failed_stream_is_not_complete(reason):
    progress = wire.StreamProgress()
    progress.update(chunk("", completion=1, finish=reason))
    assert progress.finish_reason == reason
    assert not progress.completed


# ---------------------------------------------------------------- addresses

@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pw@example.org:8443/v1?key=x", "https://example.org:8443/v1"),
    ("http://[::1]:8000/v1#top", "http://[::1]:8000/v1"),
    ("http://localhost/v1", "http://localhost/v1"),
])
def test_a_shown_address_has_no_credentials_or_query(url, shown):
    assert wire.display_url(url) == shown


def test_the_server_root_is_the_address_without_v1():
    assert wire.server_root("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    assert wire.server_root("http://host/proxy/v1/") == "http://host/proxy"
    assert wire.server_root("http://host") == "http://host"


def test_a_timeout_of_the_client_s_own_transport_reads_as_timed_out():
    request = httpx2.Request("POST", f"{WHERE}/chat/completions")
    for error in (httpx2.ReadTimeout("read", request=request),
                  httpx2.ConnectTimeout("connect", request=request)):
        assert wire.connection_reason(_wrapped(error)) == "timed out"


def _wrapped(cause: BaseException) -> BaseException:
    try:
        raise RuntimeError("the stream failed") from cause
    except RuntimeError as error:
        return error
