"""A planned request as vLLM's inputs: the prompt with its media, and the sampling."""

from __future__ import annotations

from typing import Any

from phi4ui.core.audio import SAMPLE_RATE
from phi4ui.core.chat import ChatRequest, prompt_as_sent
from phi4ui.engines import vllm_compat


def vllm_prompt(request: ChatRequest) -> dict[str, Any]:
    """The request as vLLM's prompt: Phi-4's chat format and the media in placeholder order."""
    prompt: dict[str, Any] = {"prompt": prompt_as_sent(request)}
    media: dict[str, list[Any]] = {}
    if request.images:
        media["image"] = [item.image for item in request.images]
    if request.audios:
        media["audio"] = [(item.samples, SAMPLE_RATE) for item in request.audios]
    if media:
        prompt["multi_modal_data"] = media
    return prompt


def vllm_sampling(request: ChatRequest) -> Any:
    sampling = request.sampling
    return vllm_compat.sampling_params(
        temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
        seed=sampling.seed, ignore_eos=sampling.ignore_eos)
