"""What a script or an agent sends to the public API, checked as the page checks what a
browser sends: every value is untrusted. Files are the caller's own uploads (or, for the
MCP tool, media it sends inline or names by a URL on a host the server may fetch from);
never a path of the server's. An earlier conversation is plain turns the server reads,
never ids, annotations or files of someone else."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from gradio import processing_utils

from phi4ui.core.conversation import checked_files, checked_text
from phi4ui.core.generation_settings import (
    MIN_NEW_TOKENS,
    SEED_MAX,
    TEMPERATURE_RANGE,
    TOP_P_RANGE,
    GenerationSettings,
)
from phi4ui.core.history import History, file_path
from phi4ui.errors import BadInput
from phi4ui.page.files import upload_root

MAX_TURNS = 200
FETCH_TIMEOUT_S = 10.0
_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)",
                       re.DOTALL)
BAD_TURN = ("Each turn of the earlier conversation is {\"role\": \"user\" or \"assistant\", "
            "\"content\": text, or a file you uploaded (user turns only)}.")


def checked_settings(system: Any, temperature: Any, top_p: Any, max_new_tokens: Any, seed: Any,
                     limit: int) -> GenerationSettings:
    """The generation settings of a call; a value left out takes the page's default, one out
    of range is refused with the range (the page's sliders cannot send one)."""
    _refuse_outside("temperature", temperature, *TEMPERATURE_RANGE)
    _refuse_outside("top_p", top_p, *TOP_P_RANGE)
    _refuse_outside("max_new_tokens", max_new_tokens, MIN_NEW_TOKENS, max(MIN_NEW_TOKENS, limit))
    _refuse_outside("seed", seed, 0, SEED_MAX)
    if seed is not None and float(seed) != int(seed):
        raise BadInput("seed must be a whole number from 0, or left out for a random seed.")
    return GenerationSettings.checked(system, temperature, top_p, max_new_tokens, seed, limit)


def _refuse_outside(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{name} must be a number from {low:g} to {high:g}.")
    if not low <= value <= high:
        raise BadInput(f"{name} is {value:g}; it must be from {low:g} to {high:g}.")


def uploaded_paths(files: Any, may_use: Callable[[str], bool]) -> list[str]:
    """The paths of `files` (as `gradio_client.handle_file` sends them, uploaded by this
    caller); anything else is refused with the page's message."""
    if files is None:
        return []
    if not isinstance(files, list):
        files = [files]
    return checked_files([file_path(item) or item for item in files], may_use)


def earlier_conversation(turns: Any, may_use: Callable[[str], bool]) -> History:
    """The conversation a caller says came before, as the server's own chat messages."""
    if turns is None:
        return []
    if not isinstance(turns, list) or len(turns) > MAX_TURNS:
        raise BadInput(f"The earlier conversation is a list of at most {MAX_TURNS} turns.")
    return [_turn(turn, may_use) for turn in turns]


def _turn(turn: Any, may_use: Callable[[str], bool]) -> dict[str, Any]:
    if not isinstance(turn, Mapping) or turn.get("role") not in ("user", "assistant"):
        raise BadInput(BAD_TURN)
    role, content = turn["role"], turn.get("content")
    if isinstance(content, str):
        return {"role": role, "content": checked_text(content)}
    if role == "user" and isinstance(content, Mapping | list):
        items = content if isinstance(content, list) else [content]
        paths = uploaded_paths(items, may_use)
        return {"role": role, "content": [{"path": path} for path in paths]}
    raise BadInput(BAD_TURN)


class MediaSources:
    """Media the MCP tool is given: an inline `data:` URI (base64), a file the caller
    uploaded, or an http(s) URL on one of `fetch_hosts` (none by default: the server
    fetches nothing an agent names unless its operator allowed the host)."""

    def __init__(self, fetch_hosts: Sequence[str], max_bytes: int) -> None:
        self.fetch_hosts = {host.strip().lower() for host in fetch_hosts if host.strip()}
        self.max_bytes = max_bytes

    async def paths(self, sources: Any, may_use: Callable[[str], bool]) -> list[str]:
        if sources is None or sources == "":
            return []
        if isinstance(sources, str):
            sources = [sources]
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise BadInput("Images and audio are given as a list of strings: data: URIs, "
                           "URLs or the paths of files you uploaded.")
        return [await self._path(source.strip(), may_use) for source in sources]

    async def _path(self, source: str, may_use: Callable[[str], bool]) -> str:
        if source.startswith("data:"):
            data, name = _decoded(source, self.max_bytes)
        elif "://" in source:
            data, name = await self._fetched(source), Path(urlsplit(source).path).name
        else:
            return checked_files([source], may_use)[0]
        return await asyncio.to_thread(_saved, data, name)

    async def _fetched(self, url: str) -> bytes:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in self.fetch_hosts:
            allowed = ", ".join(sorted(self.fetch_hosts)) or "none"
            raise BadInput(f"This server fetches media only by http(s) URL from the hosts its "
                           f"operator allowed (--mcp-fetch-hosts: {allowed}); not {url[:200]}. "
                           "Send the file inline as a data: URI (base64) instead.")
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
                return await self._read(client, url)
        except httpx.HTTPError as error:
            raise BadInput(f"Could not fetch {url[:200]}: {error}") from None

    async def _read(self, client: httpx.AsyncClient, url: str) -> bytes:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise BadInput(f"Could not fetch {url[:200]}: HTTP {response.status_code}.")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > self.max_bytes:
                    raise BadInput(f"{url[:200]} is larger than the {self.max_bytes / 1e6:g} MB "
                                   "this server accepts.")
            return bytes(body)


def _decoded(uri: str, max_bytes: int) -> tuple[bytes, str]:
    """The bytes of a data: URI, and a file name whose suffix says its kind."""
    match = _DATA_URI.fullmatch(uri)
    if match is None:
        raise BadInput("A data: URI must be base64, as data:image/png;base64,....")
    if len(match["data"]) * 3 // 4 > max_bytes:
        raise BadInput(f"An inline file is larger than the {max_bytes / 1e6:g} MB this server "
                       "accepts.")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("An inline file is not valid base64.") from None
    return data, "inline" + (mimetypes.guess_extension(match["type"] or "") or "")


def _saved(data: bytes, name: str) -> str:
    """Written where Gradio keeps uploads, under a folder named by its content's hash."""
    safe = re.sub(r"[^\w.-]", "_", name)[-80:] or "media"
    return processing_utils.save_bytes_to_cache(data, safe, str(upload_root()))
