"""On the CPU, one full batch while the engine starts, so that its memory at start is what
it needs at full load.

A step's memory grows with the sequences in it: the sampler's logits alone hold one float
for each of the vocabulary's 200,064 tokens per sequence. On a GPU, vLLM runs a step of
`max_num_seqs` sequences while it starts (its profile run) and keeps that memory. On the
CPU it skips the run in eager mode with an explicit KV-cache size, so the engine's memory
grew in steps, each time more sequences than ever before shared one step: 5-6% in ten
minutes of the 2-core soak, never given back, and read as a leak.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from phi4ui.engines import vllm_compat

log = logging.getLogger(__name__)
# Enough steps for every sequence to be running at once, however their arrival is spread.
ANSWER_TOKENS = 16


async def run_full_batch(llm: Any, sequences: int, prompt_token_ids: list[int],
                         sink: vllm_compat.SchedulerSnapshotSink) -> int:
    """Runs `sequences` short answers at once; returns the most the scheduler ran together."""
    params = vllm_compat.sampling_params(temperature=0.0, top_p=1.0, max_tokens=ANSWER_TOKENS,
                                         seed=None, ignore_eos=True)
    batch = uuid.uuid4().hex
    sink.peak_running = 0

    async def answer(index: int) -> None:
        async for _ in llm.generate({"prompt_token_ids": list(prompt_token_ids)}, params,
                                    f"full-batch-{batch}-{index}"):
            pass

    await asyncio.gather(*(answer(i) for i in range(sequences)))
    together = sink.peak_running
    log.info("Ran %d of %d sequences in one step at start, so the engine holds the memory "
             "of a full batch from now on", together, sequences)
    return together
