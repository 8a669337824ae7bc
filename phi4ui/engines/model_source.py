"""Which weights the embedded engine loads, and where its adapters are.

`--weights real` loads the model (a local folder, or a Hugging Face id at the
pinned revision, downloaded once). `--weights random` builds a tiny
random-weight Phi-4-multimodal locally, so the app runs where the real weights
or a GPU are missing; answers are then noise and the page says so.
`--weights auto` picks real on a CUDA machine and random elsewhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from phi4ui.errors import SettingsError
from phi4ui.settings import RANDOM_DYNAMIC_HD, REAL_DYNAMIC_HD, Settings

log = logging.getLogger(__name__)

LoraRank = Literal[8, 16, 32, 64, 128, 256, 320, 512]  # the ranks vLLM accepts
LORA_RANKS: tuple[LoraRank, ...] = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class ModelSource:
    path: str
    revision: str | None
    vision_lora: str
    speech_lora: str
    random_weights: bool
    dynamic_hd: int
    display_name: str

    @property
    def max_lora_rank(self) -> LoraRank:
        rank = max(_adapter_rank(self.vision_lora), _adapter_rank(self.speech_lora))
        return next((r for r in LORA_RANKS if r >= rank), LORA_RANKS[-1])


def resolve(settings: Settings, *, has_gpu: bool) -> ModelSource:
    use_random = settings.weights == "random" or (settings.weights == "auto" and not has_gpu)
    if use_random and not Path(settings.model).is_dir():
        return _tiny(settings)
    folder, revision = _local_folder(settings)
    random_weights = _is_random(folder)
    dynamic_hd = settings.dynamic_hd or (RANDOM_DYNAMIC_HD if random_weights and not has_gpu
                                         else REAL_DYNAMIC_HD)
    return ModelSource(
        path=str(folder), revision=revision,
        vision_lora=_adapter(settings.vision_lora, folder / "vision-lora", "--vision-lora"),
        speech_lora=_adapter(settings.speech_lora, folder / "speech-lora", "--speech-lora"),
        random_weights=random_weights, dynamic_hd=dynamic_hd,
        display_name=settings.model if not Path(settings.model).is_dir() else folder.name,
    )


def _tiny(settings: Settings) -> ModelSource:
    from phi4ui.tinymodel import ensure_checkpoint

    dynamic_hd = settings.dynamic_hd or RANDOM_DYNAMIC_HD
    log.info("No GPU or --weights random: using a tiny random-weight Phi-4-multimodal "
             "(answers are noise). Pass --weights real on a GPU machine for the real model.")
    folder = ensure_checkpoint(Path(settings.cache_dir) / "checkpoints", dynamic_hd=dynamic_hd)
    return ModelSource(path=str(folder), revision=None,
                       vision_lora=str(folder / "vision-lora"),
                       speech_lora=str(folder / "speech-lora"), random_weights=True,
                       dynamic_hd=dynamic_hd, display_name="tiny random-weight Phi-4-multimodal")


def _local_folder(settings: Settings) -> tuple[Path, str | None]:
    if Path(settings.model).is_dir():
        return Path(settings.model).resolve(), None
    from huggingface_hub import snapshot_download

    log.info("Fetching %s at revision %s (once; later starts use the cache)",
             settings.model, settings.revision)
    try:
        folder = snapshot_download(settings.model, revision=settings.revision)
    except Exception as error:  # noqa: BLE001 - any hub failure ends the start the same way
        raise SettingsError(f"--model: cannot fetch {settings.model}@{settings.revision}: "
                            f"{error}") from None
    return Path(folder), settings.revision


def _is_random(folder: Path) -> bool:
    from phi4ui.tinymodel import is_random_weight_checkpoint

    return is_random_weight_checkpoint(folder)


def _adapter(given: str, default: Path, flag: str) -> str:
    folder = Path(given) if given else default
    if not (folder / "adapter_config.json").is_file():
        raise SettingsError(f"{flag}: no LoRA adapter (adapter_config.json) in {folder}")
    return str(folder)


def _adapter_rank(folder: str) -> int:
    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    return int(config.get("r", 8))
