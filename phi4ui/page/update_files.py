"""Works around: Gradio walks every streamed chat update for files, on the event loop.

For each update of an output, Gradio's `async_move_files_to_cache` walks the whole value
(twice per update: once dumped, once as the model), awaiting a coroutine for every dict,
list and string of the chat, and for every file in it validates a `FileData`, checks that
it may be served, looks for it in the cache and dumps it again. An answer streams ten
updates a second, and the chat holds every image and clip of the conversation: in the
2-core soak this walk, and the `FileData` it made, were where most of the stalls that
were left held the event loop.

Here, for the chat's output, the walk is a plain loop, and a file whose fields are those of
one Gradio has already handled for that chat gets the same answer again (a copy of it).
Only a file not seen before goes through Gradio's own handling; one Gradio refuses raises
as before and is never remembered, so it is checked again the next time. Only files in
Gradio's upload folder are remembered (`gradio_workarounds.kept_by_gradio`): what Gradio
answers for one depends only on its fields, the block, the upload folder, whether the page
is launched and the folders it blocks and allows, which are all part of what the answer is
remembered by. Any other file of the chat, inputs, and any other output
are handled by Gradio every time, as before.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio import utils as gradio_utils
from gradio.context import LocalContext
from gradio.data_classes import GradioModel, GradioRootModel
from gradio_client.utils import is_file_obj_with_meta

from phi4ui.page.gradio_workarounds import kept_by_gradio

FILES_REMEMBERED = 16384  # a few hundred bytes each
_answers: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

# (container, slot, file, key to remember its answer by: None for a file not to remember)
Missing = tuple[Any, Any, dict[str, Any], tuple[Any, ...] | None]


def walk_chat_updates_once_per_file() -> None:
    if getattr(processing_utils.async_move_files_to_cache, "once_per_file", False):
        return
    walked_by_gradio = processing_utils.async_move_files_to_cache

    async def async_move_files_to_cache(data: Any, block: Any, postprocess: bool = False,
                                        check_in_upload_folder: bool = False,
                                        keep_in_cache: bool = False) -> Any:
        if (not postprocess or check_in_upload_folder or keep_in_cache
                or not isinstance(block, gr.Chatbot)):
            return await walked_by_gradio(data, block, postprocess, check_in_upload_folder,
                                          keep_in_cache)
        if isinstance(data, GradioModel | GradioRootModel):
            data = data.model_dump()
        return await _walked(data, block, walked_by_gradio)

    async_move_files_to_cache.once_per_file = True  # type: ignore[attr-defined]
    async_move_files_to_cache.__wrapped__ = walked_by_gradio  # type: ignore[attr-defined]
    processing_utils.async_move_files_to_cache = async_move_files_to_cache


async def _walked(data: Any, block: Any, walked_by_gradio: Callable[..., Any]) -> Any:
    """`data` with every file as Gradio answers it for `block`'s output."""
    missing: list[Missing] = []
    root = [None]
    page = LocalContext.blocks.get(None)  # whether and against what it checks files
    checked_against = (gradio_utils.get_upload_folder(), None if page is None else (
        page.has_launched, tuple(map(str, page.blocked_paths)),
        tuple(map(str, page.allowed_paths))))
    root[0] = _copied(data, (block._id, block.proxy_url, checked_against), missing, root, 0)
    for container, slot, file, key in missing:
        answer = await walked_by_gradio(file, block, True)  # raises for a refused file
        if key is not None:
            _remember(key, answer)
        container[slot] = _fresh(answer)
    return root[0]


def _copied(node: Any, block_key: tuple[Any, ...], missing: list[Missing], container: Any,
            slot: Any) -> Any:
    """A copy of `node` as Gradio's walk makes it, with files answered from memory; a file
    not remembered is left as it is and listed in `missing` with where it goes."""
    if is_file_obj_with_meta(node):
        key = (*block_key, json.dumps(node, sort_keys=True, default=str))
        if (known := _answers.get(key)) is not None:
            _answers.move_to_end(key)
            return _fresh(known)
        missing.append((container, slot, node, key if kept_by_gradio(node["path"]) else None))
        return node
    if isinstance(node, dict):
        copied: dict[Any, Any] = {}
        for name, value in node.items():  # most values are text or None: no call for them
            copied[name] = (_copied(value, block_key, missing, copied, name)
                            if isinstance(value, dict | list) else value)
        return copied
    if isinstance(node, list):
        items: list[Any] = []
        for index, value in enumerate(node):
            items.append(_copied(value, block_key, missing, items, index)
                         if isinstance(value, dict | list) else value)
        return items
    return node


def _remember(key: tuple[Any, ...], answer: dict[str, Any]) -> None:
    _answers[key] = _fresh(answer)
    while len(_answers) > FILES_REMEMBERED:
        _answers.popitem(last=False)


def _fresh(answer: dict[str, Any]) -> dict[str, Any]:
    """A copy that Gradio may change (it rewrites `url` in place for the page's address)."""
    return {name: dict(value) if isinstance(value, dict) else value
            for name, value in answer.items()}
