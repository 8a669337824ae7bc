"""Builds random-weight Phi-4-multimodal checkpoint folders for vLLM's dummy loader."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from phi4ui.settings import RANDOM_DYNAMIC_HD

from . import hf_config
from .adapters import write_adapters
from .shapes import TINY, CheckpointShape
from .tokenizer import write_tokenizer

# Bump whenever the folder layout or any generated file changes meaning.
# 2: media placeholders are plain text (no added tokens), as in the real vocabulary;
#    the processor refuses images whose resized side would be under 10 pixels.
# 3: the vision tower's depth follows the shape (img_processor.layer_idx).
BUILDER_VERSION = 3
REMOTE_CODE_DIR = Path(__file__).with_name("remote")
REMOTE_CODE_FILES = (f"{hf_config.CONFIG_MODULE}.py", f"{hf_config.PROCESSING_MODULE}.py")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _remote_code_digest() -> str:
    digest = hashlib.sha256()
    for name in REMOTE_CODE_FILES:
        digest.update((REMOTE_CODE_DIR / name).read_bytes())
    return digest.hexdigest()


def checkpoint_key(shape: CheckpointShape, dynamic_hd: int) -> str:
    """Hash of everything that decides a folder's contents."""
    identity = {
        "builder_version": BUILDER_VERSION,
        "shape": dataclasses.asdict(shape),
        "dynamic_hd": dynamic_hd,
        "remote_code": _remote_code_digest(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _marker(shape: CheckpointShape, dynamic_hd: int) -> dict[str, Any]:
    return {
        "builder_version": BUILDER_VERSION,
        "key": checkpoint_key(shape, dynamic_hd),
        "shape": shape.name,
        "dynamic_hd": dynamic_hd,
    }


def build_checkpoint(
    folder: Path,
    shape: CheckpointShape = TINY,
    *,
    dynamic_hd: int = RANDOM_DYNAMIC_HD,
    with_adapters: bool = True,
) -> Path:
    """Writes a checkpoint folder that vLLM loads with trust_remote_code=True, load_format="dummy".

    Contents: config.json, generation_config.json, tokenizer files,
    preprocessor_config.json / processor_config.json, the remote-code modules
    named by their auto_map, and (unless with_adapters is false) random PEFT
    adapters in vision-lora/ and speech-lora/ of rank shape.lora_rank. No
    base-model weights are written. FULL's adapters take about 0.9 GB each.
    """
    if dynamic_hd < 1:
        raise ValueError("dynamic_hd must be at least 1")
    shape.validate()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in REMOTE_CODE_FILES:
        shutil.copyfile(REMOTE_CODE_DIR / name, folder / name)
    _write_json(folder / "config.json", hf_config.model_config(shape, _marker(shape, dynamic_hd)))
    _write_json(folder / "generation_config.json", hf_config.generation_config())
    _write_json(folder / "preprocessor_config.json", hf_config.preprocessor_config(dynamic_hd))
    _write_json(folder / "processor_config.json", hf_config.processor_config())
    write_tokenizer(folder, shape.vocab_size, shape.max_position_embeddings)
    if with_adapters:
        write_adapters(folder, shape)
    return folder


def _folder_name(shape: CheckpointShape, dynamic_hd: int) -> str:
    return f"phi4mm-{shape.name}-hd{dynamic_hd}-{checkpoint_key(shape, dynamic_hd)}"


def ensure_checkpoint(
    cache_dir: Path, shape: CheckpointShape = TINY, *, dynamic_hd: int = RANDOM_DYNAMIC_HD
) -> Path:
    """A ready checkpoint folder under cache_dir, built only if absent.

    The folder name carries a hash of the shape, dynamic_hd, the builder
    version and the remote code, so a stale folder is never reused. It is
    built in a temporary folder and renamed into place, so a concurrent
    reader never sees a half-written one; when two processes race, the
    loser discards its copy.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / _folder_name(shape, dynamic_hd)
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        build_checkpoint(staging, shape, dynamic_hd=dynamic_hd)
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def is_random_weight_checkpoint(folder: Path) -> bool:
    """True for folders made by this builder (their config.json carries a marker)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get(hf_config.MARKER_KEY), dict)
