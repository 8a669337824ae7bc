"""How many 448-pixel crops a remote server cuts an image into: its `dynamic_hd`.

Phi-4-multimodal's processor takes `dynamic_hd` from the model's
`preprocessor_config.json` (36 for microsoft/Phi-4-multimodal-instruct) unless the
server was started with `--mm-processor-kwargs '{"dynamic_hd": N}'`, and the
OpenAI API does not say which. An image's token cost depends on it, so the remote
engine asks once, when it connects, before the first request is planned.

It sends one generated image, 448 pixels wide and `MAX_MEASURED` crops tall: for
every `dynamic_hd` below that the processor picks a grid of one column and
`dynamic_hd` rows, so each value gives the image a different token count. vLLM's
`/tokenize` expands the image's placeholder without running the vision encoder;
where it fails, a one-token chat completion reports the prompt tokens in its usage.
The text around the image is counted as the planner counts it, and what is left is
the image's cost, which names the value.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from PIL import Image

from phi4ui.core.audio import audio_wav_base64
from phi4ui.core.chat import MEDIA_MARKER, Turn, render_openai_messages, render_phi4_prompt
from phi4ui.core.images import (
    MIN_RESIZED_SIDE,
    VIT_IMAGE_SIZE,
    PreparedImage,
    image_data_url,
    image_token_count,
)
from phi4ui.core.textguard import GENERIC
from phi4ui.engines import openai_wire as wire

log = logging.getLogger(__name__)

MAX_MEASURED = 44  # 448 / 44 keeps the image's side at 10 px when scaled to one crop
ANSWER_TOKENS = 1  # the fallback request asks for one token
# Without the served tokenizer the text is estimated; the candidates' image costs lie
# at least 16 tokens apart, so an estimate this close still names one value.
ESTIMATE_TOLERANCE = 7


@dataclass(frozen=True)
class Measured:
    """The server's `dynamic_hd`; `at_least`: it is that value or more (the image cannot
    tell larger ones apart, and an image needing more crops would not fit anyway)."""

    dynamic_hd: int
    at_least: bool = False

    @property
    def text(self) -> str:
        return f"{self.dynamic_hd} or more" if self.at_least else str(self.dynamic_hd)


def calibration_image(most: int = MAX_MEASURED) -> PreparedImage:
    """A plain image of one crop's width and `most` crops' height."""
    width = VIT_IMAGE_SIZE
    assert width // most >= MIN_RESIZED_SIDE, "the processor would refuse it at one crop"
    image = Image.new("RGB", (width, VIT_IMAGE_SIZE * most), (128, 128, 128))
    return PreparedImage(image=image, name="calibration.png", sha256="", tokens=0,
                         original_size=image.size)


def image_costs(image: PreparedImage, most: int = MAX_MEASURED) -> dict[int, int]:
    """Tokens the image costs at each `dynamic_hd` from 1 to `most`; all different."""
    costs = {hd: image_token_count(*image.size, dynamic_hd=hd) for hd in range(1, most + 1)}
    assert len(set(costs.values())) == len(costs)
    return costs


def match(prompt_tokens: int, text_tokens: int, costs: dict[int, int], *,
          exact: bool) -> Measured | None:
    """The value whose image cost plus the text makes `prompt_tokens`, if one does."""
    image_tokens = prompt_tokens - text_tokens
    tolerance = 0 if exact else ESTIMATE_TOLERANCE
    found = [hd for hd, cost in costs.items() if abs(cost - image_tokens) <= tolerance]
    if len(found) != 1:
        return None
    return Measured(found[0], at_least=found[0] == max(costs))


async def measure(http: httpx.AsyncClient, client: openai.AsyncOpenAI, model: str,
                  count_text_tokens: Callable[[str], int], *, exact: bool) -> Measured | None:
    """The `dynamic_hd` a vLLM server applies, or None when it cannot be told."""
    image = calibration_image()
    turns = [Turn("user", (image,))]
    messages = render_openai_messages("", turns, image_data_url, audio_wav_base64)
    wire.inline_placeholders(messages, turns, GENERIC)
    prompt = render_phi4_prompt("", turns, media_marker=MEDIA_MARKER)
    text_tokens = count_text_tokens(prompt) - 1
    costs = image_costs(image)
    # An older /tokenize may count the placeholder's text without the image: then ask again.
    ways: tuple[Callable[[], Awaitable[int | None]], ...] = (
        lambda: _tokenized(http, model, messages), lambda: _completed(client, model, messages))
    for count_prompt in ways:
        served = await count_prompt()
        found = None if served is None else match(served, text_tokens, costs, exact=exact)
        if found is not None:
            return found
        if served is not None:
            log.warning("Remote engine: the server counted %d tokens for the calibration "
                        "image, which matches no dynamic_hd from 1 to %d", served, MAX_MEASURED)
    return None


async def _tokenized(http: httpx.AsyncClient, model: str,
                     messages: list[dict[str, Any]]) -> int | None:
    """The prompt's tokens by vLLM's `/tokenize` (the processor runs, the encoder not)."""
    try:
        response = await http.post("/tokenize", json={
            "model": model, "messages": messages, "add_generation_prompt": True},
            timeout=httpx.Timeout(60.0))
        count = response.json().get("count") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as error:
        log.info("Remote engine: /tokenize did not count the calibration image (%s)", error)
        return None
    return count if isinstance(count, int) else None


async def _completed(client: openai.AsyncOpenAI, model: str,
                     messages: list[dict[str, Any]]) -> int | None:
    """The prompt's tokens as a one-token chat completion reports them."""
    try:
        completion = await client.chat.completions.create(
            model=model, messages=messages,  # type: ignore[arg-type]
            max_tokens=ANSWER_TOKENS, temperature=0.0)
    except openai.OpenAIError as error:
        log.info("Remote engine: the calibration request failed (%s)", error)
        return None
    return completion.usage.prompt_tokens if completion.usage else None
