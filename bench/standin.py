"""A zero-cost stand-in server: what the benchmark's clients can take when the server costs
nothing. `python -m bench.standin --port P [--cut-every N]`

It speaks the two protocols the clients use, and nothing else: vLLM's streaming chat
completions (one chunk a token, usage in every chunk, as `continuous_usage_stats` asks)
and the subset of the Gradio page protocol that `bench/sse_client.py` drives (the page's
config, page load, clear, the queued send step over the session's SSE stream with
the chat as diffs, one token an update, the statistics annotation at the end).
Tokens go out as fast as the event loop can write them; `--cut-every N` ends every N-th
answer halfway without its end (no finish reason, no statistics), so that tests can
check that the clients count a cut answer as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN = "tok "
EVENTS_PER_WRITE = 8  # SSE events joined per write: the stand-in's cost, not the clients'
SUBMIT, SEND, LOAD, CLEAR = range(4)
MAX_TOKENS_INPUT = 7  # of the send step's: message, send id, 2 states, system, temperature, top-p
GRADIO_CONFIG = {"components": [], "dependencies": [
    {"id": SUBMIT, "targets": [[1, "submit"]], "inputs": [1], "backend_fn": False,
     "trigger_after": None},
    {"id": SEND, "api_name": "send", "targets": [[None, "success"]],
     "inputs": [10, 12, 2, 3, 4, 5, 6, 7, 8, 11], "backend_fn": True, "queue": True,
     "trigger_after": SUBMIT, "trigger_only_on_success": True},
    {"id": LOAD, "targets": [[0, "load"]], "inputs": [], "backend_fn": True, "queue": False},
    {"id": CLEAR, "targets": [[9, "clear"]], "inputs": [2], "backend_fn": True,
     "queue": False},
]}


class StandIn:
    """The stand-in's state: answers queued per page session, and which answers to cut."""

    def __init__(self, cut_every: int = 0) -> None:
        self.cut_every = cut_every
        self.answers = itertools.count(1)
        self.pending: defaultdict[str, asyncio.Queue[tuple[str, int]]] = defaultdict(
            asyncio.Queue)

    def cut(self) -> bool:
        return bool(self.cut_every) and next(self.answers) % self.cut_every == 0

    async def chat_completions(self, request: Request) -> Response:
        body = await request.json()
        return _sse(self._completion_chunks(str(body.get("model", "")),
                                            int(body.get("max_tokens") or 16), self.cut()))

    async def _completion_chunks(self, model: str, tokens: int, cut: bool) -> AsyncIterator[str]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": 0, "model": model}

        def chunk(delta: dict[str, str], finish: str | None, done: int) -> str:
            return json.dumps({**base, "choices": [{"index": 0, "delta": delta,
                                                    "finish_reason": finish}],
                               "usage": _usage(done)})

        yield chunk({"role": "assistant", "content": ""}, None, 0)
        for done in range(1, (tokens // 2 if cut else tokens) + 1):
            yield chunk({"content": TOKEN}, None, done)
        if not cut:
            yield chunk({}, "length", tokens)
            yield json.dumps({**base, "choices": [], "usage": _usage(tokens)})
        yield "[DONE]"

    async def predict(self, request: Request) -> Response:
        await request.json()
        return JSONResponse({"data": [None]})

    async def join(self, request: Request) -> Response:
        body = await request.json()
        event_id = uuid.uuid4().hex
        tokens = int(body["data"][MAX_TOKENS_INPUT] or 16) if body["fn_index"] == SEND else 0
        await self.pending[body["session_hash"]].put((event_id, tokens))
        return JSONResponse({"event_id": event_id})

    async def queue_data(self, request: Request) -> Response:
        session = request.query_params.get("session_hash", "")
        event_id, tokens = await asyncio.wait_for(self.pending[session].get(), 60)
        return _sse(self._answer_messages(event_id, tokens, self.cut()))

    async def _answer_messages(self, event_id: str, tokens: int,
                               cut: bool) -> AsyncIterator[str]:
        def message(msg: str, data: list[Any]) -> str:
            return json.dumps({"msg": msg, "event_id": event_id, "success": True,
                               "output": {"data": data}})

        yield json.dumps({"msg": "process_starts", "event_id": event_id})
        # The message first, while the engine reads it, then the answer as it grows.
        yield message("process_generating", [[
            {"role": "user", "content": [{"type": "text", "text": "question"}],
             "metadata": None}], None])
        yield message("process_generating", [[["add", [1], {
            "role": "assistant", "content": [{"type": "text", "text": TOKEN}],
            "metadata": None}]], None])
        for _ in range(1, tokens // 2 if cut else tokens):
            yield message("process_generating", [[["append", [1, "content", 0, "text"], TOKEN]],
                                                 None])
        if not cut:
            yield message("process_generating", [[["add", [2], _statistics(tokens)]], None])
        yield message("process_completed", [[], None])
        yield json.dumps({"msg": "close_stream"})


def _usage(done: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": done, "total_tokens": 10 + done}


def _statistics(tokens: int) -> dict[str, Any]:
    """The annotation the app puts under a finished answer (phi4ui.core.history)."""
    return {"role": "assistant", "metadata": {"title": f"Statistics · {tokens} tokens in 0.1 s",
                                              "status": "done"},
            "content": [{"type": "text", "text": f"| Completion tokens | {tokens} (length) |"}]}


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    async def batched() -> AsyncIterator[bytes]:
        batch: list[str] = []
        async for event in events:
            batch.append(f"data: {event}\n\n")
            if len(batch) == EVENTS_PER_WRITE:
                yield "".join(batch).encode()
                batch = []
        if batch:
            yield "".join(batch).encode()

    return StreamingResponse(batched(), media_type="text/event-stream")


async def _upload(request: Request) -> Response:
    form = await request.form()
    return JSONResponse([f"/standin/{getattr(f, 'filename', 'file')}"
                         for f in form.getlist("files")])


def build(cut_every: int = 0) -> Starlette:
    standin = StandIn(cut_every)

    async def ok(_: Request) -> Response:
        return JSONResponse({"status": "ok", "engine_ready": True})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "standin", "object": "model"}]})

    async def config(_: Request) -> Response:
        return JSONResponse(GRADIO_CONFIG)

    return Starlette(routes=[
        Route("/", ok), Route("/health", ok), Route("/healthz", ok), Route("/config", config),
        Route("/v1/models", models),
        Route("/v1/chat/completions", standin.chat_completions, methods=["POST"]),
        Route("/gradio_api/run/predict", standin.predict, methods=["POST"]),
        Route("/gradio_api/queue/join", standin.join, methods=["POST"]),
        Route("/gradio_api/queue/data", standin.queue_data),
        Route("/gradio_api/upload", _upload, methods=["POST"]),
    ])


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.standin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cut-every", type=int, default=0)
    args = parser.parse_args(argv)
    uvicorn.run(build(args.cut_every), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
