"""The Gradio page: the chat tab, the evaluation tabs and their text.

May import: Gradio, `phi4ui.core`, `phi4ui.evaluation`, `phi4ui.errors`,
`phi4ui.settings` and itself. Never vLLM, the OpenAI client or `phi4ui.engines`:
the page talks to whichever engine it is given through `phi4ui.core.engine`.
"""
