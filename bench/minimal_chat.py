"""The simplest streaming chat page a person would write in front of an OpenAI-compatible
server: a `gr.ChatInterface` whose function streams chat completions and yields the growing
text. `bench.browser_latency` measures phi4ui's page against it.

    python -m bench.minimal_chat --base-url http://127.0.0.1:8000/v1 --model NAME --port 7861

Greedy, with a fixed number of new tokens (vLLM's `ignore_eos`), so that every answer is
as long as phi4ui's with the same settings.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
import openai

SYSTEM = "You are a helpful assistant."  # phi4ui's default system prompt: the same prompt


def text_of(content: Any) -> str:
    """A history message's text: Gradio 6 gives a list of parts, older code a string."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(part.get("text", "") for part in parts if isinstance(part, dict))


def build(base_url: str, model: str, max_tokens: int) -> gr.ChatInterface:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none")

    async def respond(message: str, history: list[dict[str, Any]]) -> AsyncIterator[str]:
        messages: list[Any] = [{"role": "system", "content": SYSTEM},
                    *({"role": m["role"], "content": text_of(m["content"])} for m in history),
                    {"role": "user", "content": message}]
        stream = await client.chat.completions.create(
            model=model, messages=messages, stream=True, max_tokens=max_tokens, temperature=0.0,
            extra_body={"ignore_eos": True})
        text = ""
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                yield text

    return gr.ChatInterface(respond, title="Minimal chat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    build(args.base_url, args.model, args.max_tokens).launch(
        server_name="127.0.0.1", server_port=args.port)


if __name__ == "__main__":
    main()
