"""The MCP server at /gradio_api/mcp (streamable HTTP): one tool, `ask`, which is the public
API's `/ask` (`phi4ui.page.api`): the same checks, limits, recording and refusals.

Built on the `mcp` package itself rather than Gradio's `mcp_server=True`: Gradio 6.31's
MCP support needs mcp 1.x, and the vLLM this app runs on requires mcp 2. Building it
here also offers exactly one tool, and hands the agent's request (its visitor cookie,
if any, and the login `McpGuard` accepted) to the API like a page event's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.routing import BaseRoute

from phi4ui.page.api import ASK_DESCRIPTION, PublicApi
from phi4ui.web.mcp_guard import LOGIN_STATE, MCP_PATH

INSTRUCTIONS = ("phi4ui serves Microsoft's Phi-4-multimodal-instruct. Call `ask` with a "
                "question and, if it is about them, images and audio clips.")


class McpTool:
    """The MCP server and the routes that serve it; `running()` must wrap the app's life."""

    def __init__(self, api: PublicApi, host: str) -> None:
        self.server: MCPServer[Any] = MCPServer("phi4ui", instructions=INSTRUCTIONS)
        self.server.tool(name="ask", description=ASK_DESCRIPTION)(_asker(api))
        routes = self.server.streamable_http_app(streamable_http_path=MCP_PATH,
                                                 stateless_http=True, json_response=True,
                                                 host=host).routes
        self.routes: list[BaseRoute] = list(routes)

    def mount(self, app: FastAPI) -> None:
        """Ahead of the page, which is mounted at / and would take every path."""
        app.router.routes[:0] = self.routes

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield


def _asker(api: PublicApi) -> Any:
    async def ask(question: str, images: list[str] | None = None,
                  audio: list[str] | None = None, max_new_tokens: int | None = None,
                  ctx: Context | None = None) -> dict[str, Any]:
        http = ctx.request_context.request if ctx is not None else None
        login = ""
        if isinstance(http, Request):
            login = str(http.scope.get("state", {}).get(LOGIN_STATE, ""))
        request = gr.Request(request=http if isinstance(http, Request) else None,
                             username=login or None)
        try:
            return await api.ask(question, images, audio, max_new_tokens, request)
        except gr.Error as error:
            raise ToolError(str(error.message)) from None

    return ask
