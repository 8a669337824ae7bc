"""The chat core: requests and prompts, media, the conversation, statistics and the
answer stream, and the engine interface that engines implement.

May import: `phi4ui.errors`, `phi4ui.settings` and itself. Never Gradio, vLLM,
the OpenAI client, or another phi4ui subpackage.
"""
