"""On the CPU the engine's processes run below the app (nice), so that the event loop that
serves every page does not wait for a CPU behind them, and with tcmalloc, which gives back
the memory vLLM frees, and a smaller cache of oneDNN's compiled matrix products, which grew
for minutes; checked on the real tiny engine."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest

from phi4ui.engines import vllm_compat
from phi4ui.engines.cpu_allocator import (
    find_tcmalloc,
    preload_tcmalloc,
    tcmalloc_for_new_processes,
)
from phi4ui.engines.cpu_dtype import engine_dtype
from phi4ui.engines.cpu_primitive_cache import (
    CAPACITY,
    VARIABLE,
    smaller_cache_for_new_processes,
)
from phi4ui.engines.cpu_priority import ENGINE_NICE

pytestmark = pytest.mark.engine


def engine_processes(embedded_engine: Any) -> list[psutil.Process]:
    if embedded_engine._has_gpu:
        pytest.skip("on a GPU the engine's processes are left as vLLM starts them")
    processes = []
    for pid in vllm_compat.engine_pids(embedded_engine._llm):
        parent = psutil.Process(pid)
        processes += [parent, *parent.children(recursive=True)]
    return processes


def test_every_engine_thread_runs_below_the_app(embedded_engine: Any) -> None:
    processes = engine_processes(embedded_engine)
    threads = [thread.id for process in processes for thread in process.threads()]
    assert len(processes) >= 2 and threads  # the engine core and its worker
    assert all(os.getpriority(os.PRIO_PROCESS, tid) >= ENGINE_NICE for tid in threads)
    assert os.getpriority(os.PRIO_PROCESS, 0) < ENGINE_NICE  # the app's own stays


def _maps_tcmalloc(pid: int | str) -> bool:
    with open(f"/proc/{pid}/maps") as maps:
        return "libtcmalloc" in maps.read()


def test_the_engine_s_processes_allocate_with_tcmalloc(embedded_engine: Any) -> None:
    processes = engine_processes(embedded_engine)
    if find_tcmalloc() is None:
        pytest.skip("Debian's libtcmalloc-minimal4 is not installed (scripts/setup.sh)")
    assert all(_maps_tcmalloc(process.pid) for process in processes)
    assert not _maps_tcmalloc("self")  # the app keeps the allocator it started with
    assert "tcmalloc" not in os.environ.get("LD_PRELOAD", "")  # and its later processes


@pytest.mark.parametrize("before", ["", "/opt/libgomp.so.1"])
def test_tcmalloc_goes_first_in_ld_preload(before: str) -> None:
    if find_tcmalloc() is None:
        pytest.skip("Debian's libtcmalloc-minimal4 is not installed (scripts/setup.sh)")
    environ = {"LD_PRELOAD": before} if before else {}
    library = preload_tcmalloc(environ)
    assert library is not None and environ["LD_PRELOAD"].split(":") == [
        library, *([before] if before else [])]


def test_a_tcmalloc_already_preloaded_is_kept() -> None:
    environ = {"LD_PRELOAD": "/opt/libtcmalloc.so.4 /opt/other.so"}
    assert preload_tcmalloc(environ) == "/opt/libtcmalloc.so.4"
    assert environ["LD_PRELOAD"] == "/opt/libtcmalloc.so.4 /opt/other.so"


def test_ld_preload_is_as_it_was_once_the_engine_has_started() -> None:
    for before in ({}, {"LD_PRELOAD": "/opt/libgomp.so.1"}):
        environ = dict(before)
        with tcmalloc_for_new_processes(environ):
            environ["LD_PRELOAD"] = environ.get("LD_PRELOAD", "") + ":/opt/vllm-adds-this.so"
        assert environ == before


def _environment(pid: int | str) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        pairs = [item.decode(errors="replace").partition("=")
                 for item in environ.read().split(b"\0") if item]
    return {name: value for name, _, value in pairs}


def test_the_engine_s_processes_get_a_smaller_onednn_cache(embedded_engine: Any) -> None:
    processes = engine_processes(embedded_engine)
    expected = os.environ.get(VARIABLE, str(CAPACITY))  # a value set for the tests is kept
    assert all(_environment(process.pid).get(VARIABLE) == expected for process in processes)
    assert _environment("self").get(VARIABLE) == os.environ.get(VARIABLE)


def test_the_app_s_environment_is_as_it_was_once_the_engine_has_started() -> None:
    environ: dict[str, str] = {}
    with smaller_cache_for_new_processes(environ) as capacity:
        assert environ == {VARIABLE: str(CAPACITY)} and capacity == str(CAPACITY)
    assert environ == {}


def test_a_capacity_the_deployment_set_is_kept() -> None:
    environ = {VARIABLE: "2048"}
    with smaller_cache_for_new_processes(environ) as capacity:
        assert capacity == "2048" and environ == {VARIABLE: "2048"}
    assert environ == {VARIABLE: "2048"}


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as info:
        line = next((line for line in info if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x86 CPU flags decide")
def test_on_a_cpu_without_native_bfloat16_the_engine_runs_in_float32(embedded_engine: Any
                                                                      ) -> None:
    """The checkpoint says bfloat16; vLLM's CPU path for it without AVX-512 BF16 made the
    first image ten times slower."""
    if embedded_engine._has_gpu:
        pytest.skip("on a GPU the checkpoint's own type is kept")
    import torch

    expected = torch.bfloat16 if "avx512_bf16" in cpu_flags() else torch.float32
    assert embedded_engine._llm.model_config.dtype == expected


@pytest.mark.parametrize("setting", ["bfloat16", "float16", "float32"])
def test_a_chosen_dtype_is_kept(setting: str) -> None:
    assert engine_dtype(setting, has_gpu=False) == setting
    assert engine_dtype(setting, has_gpu=True) == setting


def test_auto_on_a_gpu_is_the_checkpoint_s_own() -> None:
    assert engine_dtype("auto", has_gpu=True) == "auto"
