"""`python -m phi4ui tinymodel OUT_DIR [--full] [--dynamic-hd N]`: a random-weight
Phi-4-multimodal checkpoint folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from phi4ui.tinymodel.builder import build_checkpoint
from phi4ui.tinymodel.shapes import FULL, TINY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phi4ui tinymodel",
        description="Build a random-weight Phi-4-multimodal checkpoint folder "
        "(load it with vLLM's load_format='dummy').",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument(
        "--full", action="store_true", help="real model sizes instead of the tiny ones"
    )
    parser.add_argument(
        "--dynamic-hd", type=int, default=4, help="max 448-pixel tiles per image (default 4)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    folder = build_checkpoint(args.out_dir, FULL if args.full else TINY, dynamic_hd=args.dynamic_hd)
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(folder.resolve())
    return 0

