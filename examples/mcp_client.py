"""Ask phi4ui's MCP tool about an image, as an agent framework would (the `mcp` package,
streamable HTTP). The image goes inline, base64; a login is sent as HTTP Basic.

    python examples/mcp_client.py http://127.0.0.1:7860 photo.png [user:password]
"""

import asyncio
import base64
import json
import mimetypes
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def data_uri(path: str) -> str:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as file:
        return f"data:{kind};base64,{base64.b64encode(file.read()).decode()}"


async def main(url: str, image: str, login: str | None) -> None:
    auth = tuple(login.split(":", 1)) if login else None
    async with (httpx2.AsyncClient(auth=auth, timeout=300) as http,
                streamable_http_client(f"{url}/gradio_api/mcp", http_client=http) as streams,
                ClientSession(*streams) as session):
        await session.initialize()
        tools = await session.list_tools()
        print("tools:", [tool.name for tool in tools.tools])
        result = await session.call_tool("ask", {"question": "What is in this picture?",
                                                 "images": [data_uri(image)],
                                                 "max_new_tokens": 64})
        reply = json.loads(result.content[0].text)
        print(reply["answer"])
        print(reply["statistics"]["completion_tokens"], "tokens,",
              reply["statistics"]["adapter"], "adapter")


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
