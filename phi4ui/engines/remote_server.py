"""What the remote engine learns about a server when it connects: the model it serves, its
context length, adapters and metrics, a tokenizer to plan prompts with, and the warnings a
person should read about what is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from phi4ui.core.textguard import GENERIC, TextGuard, checked_guard, control_tokens
from phi4ui.engines import calibration, prometheus
from phi4ui.engines import openai_wire as wire
from phi4ui.engines.remote_tokens import PROBE, TokenCounter, load_tokenizer
from phi4ui.settings import REAL_DYNAMIC_HD, Settings

log = logging.getLogger(__name__)

ADAPTERS = ("vision", "speech")
ADAPTER_INPUTS = {"vision": "images", "speech": "audio clips"}
DEFAULT_DYNAMIC_HD = REAL_DYNAMIC_HD  # until the server's own is measured (calibration.py)
TOKENIZER_TIMEOUT_S = 30.0  # a download from the Hugging Face hub, at most once
NO_METRICS = ("KV-cache use", "running and waiting requests", "queue time", "prefill time",
              "decode time")


class StartFailed(Exception):
    """The server cannot be used; the message is the one line the page shows."""


@dataclass(frozen=True)
class Server:
    """What the start-up check learned about the server."""

    model: str
    root: str  # where the server loaded the model from: a Hugging Face id or a folder
    max_model_len: int | None
    adapters: dict[str, str]  # adapter name -> its folder on the server
    is_vllm: bool
    has_metrics: bool
    random_weights: bool


async def check_server(client: openai.AsyncOpenAI, http: httpx.AsyncClient,
                       settings: Settings, shown_url: str) -> Server:
    """The server's models, with the one to use; raises `StartFailed` when there is none."""
    try:
        listed = (await client.models.list()).data
    except openai.OpenAIError as error:
        raise StartFailed(wire.start_failure(
            error, where=shown_url, connect_timeout=settings.connect_timeout,
            request_timeout=settings.request_timeout)) from error
    base = choose_base(listed, settings.remote_model, shown_url)
    root = str(getattr(base, "root", None) or base.id)
    length = getattr(base, "max_model_len", None)
    return Server(
        model=base.id, root=root,
        max_model_len=int(length) if isinstance(length, int | float) else None,
        adapters={m.id: str(getattr(m, "root", "") or "") for m in listed if m.id in ADAPTERS},
        is_vllm=base.owned_by == "vllm",
        has_metrics=await has_metrics(http),
        random_weights=await asyncio.to_thread(is_random_weight_folder, root),
    )


def choose_base(listed: Sequence[Any], wanted: str, shown_url: str) -> Any:
    """The model named `wanted` (`--remote-model`), or else the first base model listed."""
    names = [model.id for model in listed]
    if wanted:
        chosen = [model for model in listed if model.id == wanted]
        if not chosen or wanted in ADAPTERS:
            raise StartFailed(f"{shown_url} does not serve {wanted!r} (it lists "
                              f"{', '.join(names) or 'nothing'}); check --remote-model")
        return chosen[0]
    bases = [model for model in listed
             if model.id not in ADAPTERS and not getattr(model, "parent", None)]
    if not bases:
        raise StartFailed(f"{shown_url} lists no base model "
                          f"(only {', '.join(names) or 'nothing'})")
    return bases[0]


async def has_metrics(http: httpx.AsyncClient) -> bool:
    try:
        response = await http.get("/metrics")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and prometheus.looks_like_vllm(response.text)


def is_random_weight_folder(root: str) -> bool:
    if not Path(root).is_dir():
        return False
    from phi4ui.tinymodel import is_random_weight_checkpoint

    return is_random_weight_checkpoint(Path(root))


# ---------------------------------------------------------------- tokens

async def token_counter(http: httpx.AsyncClient, server: Server, settings: Settings
                        ) -> tuple[TokenCounter, tuple[str, ...]]:
    """The served model's tokenizer, when it loads here and counts as the server does;
    else an estimating counter, with the note that says so."""
    revision = settings.revision if server.root == settings.model else None
    try:
        counter = await asyncio.wait_for(
            asyncio.to_thread(load_tokenizer, server.root, revision), TOKENIZER_TIMEOUT_S)
    except TimeoutError:
        counter = None
    if counter is not None and await counts_differently(http, counter, server.model):
        log.warning("Remote engine: the tokenizer of %s here counts differently from the "
                    "server's; estimating instead", server.root)
        counter = None
    if counter is not None:
        return counter, ()
    return TokenCounter(), (f"No tokenizer for {server.root} on this machine: prompt sizes "
                            "are estimated, and a prompt near the context limit may be "
                            "refused by the server.",)


async def counts_differently(http: httpx.AsyncClient, counter: TokenCounter, model: str) -> bool:
    """Checks a local tokenizer once against the server's `/tokenize`, when offered."""
    try:
        response = await http.post("/tokenize", json={
            "model": model, "prompt": PROBE, "add_special_tokens": False})
        served = response.json().get("tokens") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return False
    return served is not None and served != counter.ids(PROBE)


def text_guard(tokens: TokenCounter) -> TextGuard:
    """The guard for the served model's tokenizer when it is at hand, else `GENERIC`, which
    covers every token shaped `<|...|>` (all of Phi-4's) and the media placeholders."""
    if not tokens.exact:
        return GENERIC
    try:
        return checked_guard(control_tokens(tokens.added_tokens()), tokens.ids)
    except ValueError as error:
        raise StartFailed(f"the served model's tokenizer is not supported: {error}") from error


# ---------------------------------------------------------------- warnings

def warnings(server: Server, settings: Settings,
             measured_hd: calibration.Measured | None) -> tuple[str, ...]:
    """What the page warns about a server it uses: what it lacks, and where it differs from
    the app's settings."""
    return (*adapter_warnings(server), *length_warnings(server, settings),
            *dynamic_hd_warnings(server, settings, measured_hd), *metrics_warnings(server))


def adapter_warnings(server: Server) -> list[str]:
    missing = [name for name in ADAPTERS if name not in server.adapters]
    if not missing:
        return []
    names = " or ".join(repr(name) for name in missing)
    inputs = " and ".join(ADAPTER_INPUTS[name] for name in missing)
    return [f"The server lists no {names} LoRA adapter: {inputs} go to the base model, which "
            "handles them poorly. Start the server with --enable-lora --lora-modules "
            "vision=<model>/vision-lora speech=<model>/speech-lora."]


def length_warnings(server: Server, settings: Settings) -> list[str]:
    if server.max_model_len is not None:
        return []
    return [f"The server does not report its context length: prompts are planned for "
            f"--max-model-len {settings.max_model_len}."]


def dynamic_hd_warnings(server: Server, settings: Settings,
                        measured: calibration.Measured | None) -> list[str]:
    given = settings.dynamic_hd
    if measured is None:
        assumed = given or DEFAULT_DYNAMIC_HD
        reason = "it is not vLLM" if not server.is_vllm else "the measurement failed"
        return [f"The server's image tiling (dynamic_hd) could not be measured ({reason}): "
                f"image costs are planned for {assumed} crops and may be off."]
    if given and given != measured.dynamic_hd:
        return [f"--dynamic-hd {given} differs from the server's {measured.text}: image "
                "costs are planned with the server's."]
    return []


def metrics_warnings(server: Server) -> list[str]:
    if server.has_metrics:
        return []
    return [f"The server has no vLLM /metrics: {', '.join(NO_METRICS)} are not shown."]
