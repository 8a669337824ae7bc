"""The answer record and its uses: the SQLite store and its migrations, recording an
answer, batch runs, side-by-side comparison, bundles and their replay.

May import: `phi4ui.core`, `phi4ui.errors`, `phi4ui.settings` and itself.
Never Gradio, vLLM, the OpenAI client, the engines, the page or the web app.
"""
