"""The embedded and the remote engine on one prompt: time to first token and decode speed.

    python bench/compare_engines.py [--repetitions 10] [--tokens 64] [--checkpoint DIR]

Both engines serve the tiny random-weight checkpoint (built if no folder is
given), one after the other so they never share the CPU: first phi4ui's
embedded engine (vLLM AsyncLLM in this process, its engine core in a child),
then the remote engine against a vLLM OpenAI server started here. Each gets
two warm-up requests, then the same text-only prompt with a fixed number of
output tokens (ignore_eos), measured by the engine's own `RequestStats`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Count from one to one hundred, one number a line."
SYSTEM = "Be brief."
WARMUP = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per answer")
    parser.add_argument("--checkpoint", type=Path, help="a tiny checkpoint folder")
    return parser.parse_args()


async def measure(engine: Any, repetitions: int, tokens: int) -> list[Any]:
    from phi4ui.core import answer_stream
    from phi4ui.core.chat import Sampling
    from phi4ui.core.engine import Finished

    sampling = Sampling(temperature=0.0, max_tokens=tokens, ignore_eos=True)
    request = await answer_stream.plan(engine, [], PROMPT, SYSTEM, sampling)
    results = []
    for index in range(WARMUP + repetitions):
        async for event in engine.stream(request):
            if isinstance(event, Finished) and index >= WARMUP:
                results.append(event.stats)
    return results


async def embedded(checkpoint: Path, repetitions: int, tokens: int) -> list[Any]:
    from phi4ui.engines.embedded import EmbeddedEngine
    from phi4ui.settings import load_settings

    settings = load_settings(["--model", str(checkpoint), "--max-model-len", "4096",
                              "--max-num-seqs", "16", "--cpu-kv-cache-gib", "1"], environ={})
    engine = EmbeddedEngine(settings)
    await engine.start()
    if engine.status.state != "ready":
        raise RuntimeError(f"embedded engine: {engine.status.message}")
    try:
        return await measure(engine, repetitions, tokens)
    finally:
        await engine.close()


async def remote(checkpoint: Path, work: Path, repetitions: int, tokens: int) -> list[Any]:
    from phi4ui.engines.remote import RemoteEngine
    from phi4ui.settings import load_settings
    from tests.support.vllm_server import VllmServer

    server = VllmServer(checkpoint, work / "vllm-server.log")
    await asyncio.to_thread(server.start)
    try:
        engine = RemoteEngine(load_settings(["--engine", "remote", "--base-url",
                                             server.base_url], environ={}))
        await engine.start()
        if engine.status.state != "ready":
            raise RuntimeError(f"remote engine: {engine.status.message}")
        try:
            return await measure(engine, repetitions, tokens)
        finally:
            await engine.close()
    finally:
        await asyncio.to_thread(server.stop)


def summary(name: str, results: list[Any]) -> str:
    ttft = statistics.median(r.ttft_s for r in results) * 1000
    rates = [r.decode_tokens_per_s for r in results if r.decode_tokens_per_s]
    rate = statistics.median(rates) if rates else float("nan")
    tokens = {r.completion_tokens for r in results}
    return (f"| {name} | {len(results)} | {ttft:.1f} | {rate:.1f} | "
            f"{'/'.join(map(str, sorted(tokens)))} |")


async def main() -> None:
    args = parse_args()
    from phi4ui.tinymodel import TINY, ensure_checkpoint

    with tempfile.TemporaryDirectory(prefix="phi4ui-bench-") as folder:
        work = Path(folder)
        checkpoint = args.checkpoint or ensure_checkpoint(work / "checkpoints", TINY,
                                                          dynamic_hd=4)
        local = await embedded(checkpoint, args.repetitions, args.tokens)
        served = await remote(checkpoint, work, args.repetitions, args.tokens)
    print("| engine | answers | TTFT p50 (ms) | decode p50 (tok/s) | output tokens |")
    print("|---|---|---|---|---|")
    print(summary("embedded (AsyncLLM)", local))
    print(summary("remote (vLLM OpenAI server)", served))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint is local
    asyncio.run(main())
