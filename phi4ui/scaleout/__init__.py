"""Several page processes in front of one engine: vLLM's own server runs the model (its
API in several processes when asked), phi4ui's pages run as remote-engine front ends,
and HAProxy spreads visitors over them, each visitor staying with one page process.
`python -m phi4ui serve --frontends N` starts and stops it all.

May import: engines, tinymodel (and errors, settings).
"""
