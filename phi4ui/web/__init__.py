"""The web app around the page: the FastAPI server, its guards (files, request sizes,
headers, logins), the health check and the event-loop watch.

May import: everything in phi4ui except `phi4ui.engines`' vLLM side; it is handed an
engine. Never vLLM.
"""
