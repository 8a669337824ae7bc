"""A server that streams small chunks at a steady pace, for tests of what sits between a
page process and the browser: `python -m tests.support.chunked_server PORT COUNT EVERY_S`.
GET /stream sends COUNT server-sent events EVERY_S apart; GET /healthz answers "ok"."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route


def app(count: int, every_s: float) -> Starlette:
    async def events() -> AsyncIterator[str]:
        for index in range(count):
            yield f"data: {index}\n\n"
            await asyncio.sleep(every_s)

    async def stream(request: Request) -> Response:
        return StreamingResponse(events(), media_type="text/event-stream")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/stream", stream), Route("/healthz", healthz)])


if __name__ == "__main__":
    port, count, every_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    uvicorn.run(app(count, every_s), host="127.0.0.1", port=port, log_level="warning")
