"""The number type the engine runs in: the checkpoint's own (bfloat16 for Phi-4-MM), unless
the CPU has no bfloat16 arithmetic of its own and vLLM would take its slow path."""

from __future__ import annotations


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 itself (AVX-512 BF16, which AMX CPUs have too).
    Without it vLLM's CPU kernels fall back to a slow path: on a 2-core AVX2 machine the
    tiny checkpoint's first image took 181 s in bfloat16 and 27 s in float32. Other
    architectures keep the checkpoint's type."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    return bool(torch.cpu._is_avx512_bf16_supported())


def engine_dtype(setting: str, *, has_gpu: bool) -> str:
    """vLLM's `dtype` for the `--dtype` setting: "auto" is the checkpoint's own type,
    except on a CPU that would run it on the slow path."""
    if setting != "auto" or has_gpu or cpu_has_native_bfloat16():
        return setting
    return "float32"
