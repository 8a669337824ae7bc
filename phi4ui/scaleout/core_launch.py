"""`serve --frontends N --scale-out core`: the supervisor starts vLLM's engine core for the
model the settings name, and the page processes as its clients, each told its sockets."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from phi4ui.engines import model_source, shared_core, vllm_compat
from phi4ui.engines.cpu_allocator import tcmalloc_for_new_processes
from phi4ui.engines.cpu_primitive_cache import smaller_cache_for_new_processes
from phi4ui.engines.cpu_priority import ENGINE_NICE, lower_priority
from phi4ui.engines.shared_core import Attachment, SharedCore
from phi4ui.scaleout.processes import Child, lower_session_priority
from phi4ui.settings import Settings

log = logging.getLogger(__name__)


def start(settings: Settings, pages: list[Child], scratch: Path) -> SharedCore:
    """Starts the core, then the pages while it loads; returns once the core is ready.
    `scratch`, a folder of the supervisor's own, holds the pages' board."""
    vllm_compat.set_process_defaults(settings.cpu_kv_cache_gib)
    has_gpu = vllm_compat.has_cuda()
    source = model_source.resolve(settings, has_gpu=has_gpu)
    log.info("Loading %s into one vLLM %s engine core for %d page processes",
             source.path, vllm_compat.vllm_version(), len(pages))
    args = vllm_compat.engine_args(vllm_compat.engine_config(settings, source, has_gpu=has_gpu))
    with contextlib.ExitStack() as engine_environment:
        if not has_gpu:  # for the core's processes only: they are started first
            engine_environment.enter_context(tcmalloc_for_new_processes())
            engine_environment.enter_context(smaller_cache_for_new_processes())

        def start_pages(attachments: list[Attachment]) -> None:
            engine_environment.close()
            for child, attachment in zip(pages, attachments, strict=True):
                child.env = {**child.env, **attachment.as_env()}
                child.start()

        core = shared_core.start_core(args, len(pages), scratch / "engine-board",
                                      start_pages)
    if not has_gpu:  # as with `--scale-out server`: the pages' event loops come first
        lower_priority(core.pids, ENGINE_NICE)
        lower_session_priority(ENGINE_NICE)  # this process's session holds the core's
    return core
