"""The app's embedded engine on a real GPU: every modality, the adapter vLLM ran, and the
statistics read there (NVML memory, KV cache, queue/prefill/decode).

    python -m bench.gpu.smoke CHECKPOINT OUT.json [app flags...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.workload import make_media
from phi4ui.core import answer_stream
from phi4ui.core.chat import Sampling
from phi4ui.core.engine import Finished, TextDelta
from phi4ui.core.generation_settings import DEFAULT_SYSTEM
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.settings import load_settings

CASES = {"text": [], "image": ["image"], "audio": ["audio"], "image+audio": ["image", "audio"]}


async def run(checkpoint: str, extra: list[str]) -> dict[str, Any]:
    media = make_media(Path("/tmp/phi4ui-gpu-media"))
    engine = EmbeddedEngine(load_settings(["--model", checkpoint, *extra], environ={}))
    started = time.perf_counter()
    await engine.start()
    found: dict[str, Any] = {"engine_start_s": round(time.perf_counter() - started, 1),
                             "status": engine.status.state, "message": engine.status.message,
                             "info": engine.info.__dict__, "cases": {}}
    if engine.status.state != "ready":
        return found
    sampling = Sampling(temperature=0.0, max_tokens=128, ignore_eos=True)
    for name, kinds in CASES.items():
        for attempt in ("first", "again"):  # a new image is encoded once, then cached
            message = {"text": f"Describe what you got ({name}).",
                       "files": [str(media[k]) for k in kinds]}
            request = await answer_stream.plan(engine, [], message, DEFAULT_SYSTEM, sampling)
            before = engine.adapter_steps()
            deltas, stats = 0, None
            async for event in engine.stream(request):
                if isinstance(event, TextDelta):
                    deltas += 1
                elif isinstance(event, Finished):
                    stats = event.stats
            after = engine.adapter_steps()
            found["cases"][f"{name} ({attempt})"] = {
                "adapter_chosen": request.adapter,
                "adapters_vllm_ran": sorted(k for k in after if after[k] > before.get(k, 0)),
                "deltas": deltas, "planned_prompt_tokens": request.tokens.total,
                **(stats.as_dict() if stats else {}),
            }
    found["snapshot_idle"] = (await engine.snapshot()).__dict__
    await engine.close()
    return found


def main() -> None:
    checkpoint, out = sys.argv[1], Path(sys.argv[2])
    result = asyncio.run(run(checkpoint, sys.argv[3:]))
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str)[:6000])


if __name__ == "__main__":
    main()
