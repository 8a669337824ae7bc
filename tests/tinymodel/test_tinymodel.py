"""The random-weight Phi-4-multimodal checkpoint builder, checked against a real vLLM engine.

Run with ``-s`` or look at the end of the report for the measured timings
(lines starting with ``[tinymodel]``).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import multiprocessing
import os
import re
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from phi4ui.engines.cpu_dtype import engine_dtype
from phi4ui.tinymodel import (
    AUDIO_PLACEHOLDER_ID,
    END_ID,
    EOS_ID,
    FULL,
    IMAGE_PLACEHOLDER_ID,
    TINY,
    build_checkpoint,
    builder,
    ensure_checkpoint,
    expected_audio_tokens,
    expected_image_tokens,
    is_random_weight_checkpoint,
)
from phi4ui.tinymodel.adapters import lora_tensors
from tests.support.model_probes import vision_tower_depth

ENGINE_DYNAMIC_HD = 1
IMAGE_SIZES = [(640, 480), (480, 640), (448, 448), (1000, 300), (300, 1000), (1920, 1080), (50, 50)]
DYNAMIC_HDS = [1, 2, 4, 16]
SYSTEM = "<|system|>You are a helpful assistant.<|end|>"


def _prompt(media: str, question: str = "What is this?") -> str:
    return f"{SYSTEM}<|user|>{media}{question}<|end|><|assistant|>"


def _noise_image(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _tone(seconds: float, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _encoder_token_count(mask: np.ndarray, padded_size: tuple[int, int]) -> int:
    """Embeddings vLLM's Phi4MMImageEncoder produces for one image, derived from its mask."""
    rows, cols = padded_size[0] // 448, padded_size[1] // 448
    used = mask[: 1 + rows * cols, 0::2, 0::2]
    grid = used[1:].reshape(rows, cols, 16, 16).transpose(0, 2, 1, 3).reshape(rows * 16, cols * 16)
    useful_height = int(grid[:, 0].sum())
    return int(used.sum()) + useful_height + 1 + 16


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tinymodel_report(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    lines: dict[str, str] = {}
    yield lines
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print()
        for key, value in lines.items():
            print(f"[tinymodel] {key}: {value}")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, tinymodel_report: dict[str, str]) -> Path:
    started = time.perf_counter()
    folder = ensure_checkpoint(tmp_path_factory.mktemp("tinymodel-cache"), TINY)
    tinymodel_report["TINY folder build"] = f"{time.perf_counter() - started:.2f} s"
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_folder, trust_remote_code=True)


@pytest.fixture(scope="module")  # its memory is given back before the next module
def tiny_llm(tiny_folder: Path, tinymodel_report: dict[str, str]) -> Iterator[Any]:
    from vllm import LLM

    started = time.perf_counter()
    # The engine core runs in a spawned process of its own: in this process, modules other
    # tests imported (numba's llvmlite, through librosa) trip vLLM's start-up scan of
    # sys.modules. The variables are read while the engine is built, so they are set only then.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
        env.setenv("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        env.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
        # Lets apply_model hand a function to the engine's process.
        env.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        llm = LLM(
            model=str(tiny_folder),
            trust_remote_code=True,
            load_format="dummy",
            distributed_executor_backend="uni",
            enforce_eager=True,
            max_model_len=4096,
            enable_lora=True,
            max_lora_rank=TINY.lora_rank,
            max_loras=2,
            limit_mm_per_prompt={"image": 2, "audio": 2},
            mm_processor_kwargs={"dynamic_hd": ENGINE_DYNAMIC_HD},
            seed=0,
            dtype=engine_dtype("auto", has_gpu=False),
        )
    tinymodel_report["engine startup (LLM, in-process)"] = f"{time.perf_counter() - started:.1f} s"
    yield llm
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tinymodel_report["peak RSS of the test process"] = f"{peak_gib:.2f} GiB"
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()


# ---------------------------------------------------------------- building


def test_build_is_fast_and_ensure_reuses_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tinymodel_report: dict[str, str]
) -> None:
    started = time.perf_counter()
    folder = build_checkpoint(tmp_path / "direct")
    elapsed = time.perf_counter() - started
    tinymodel_report["build_checkpoint(TINY)"] = f"{elapsed:.2f} s"
    assert elapsed < 10
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "configuration_phi4mm.py",
        "processing_phi4mm.py",
        "vision-lora/adapter_config.json",
        "vision-lora/adapter_model.safetensors",
        "speech-lora/adapter_config.json",
        "speech-lora/adapter_model.safetensors",
    ):
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.safetensors")), "no base-model weights expected"

    cache = tmp_path / "cache"
    first = ensure_checkpoint(cache)
    stamp = (first / "config.json").stat().st_mtime_ns
    started = time.perf_counter()
    again = ensure_checkpoint(cache)
    assert again == first
    assert time.perf_counter() - started < 0.5
    assert (again / "config.json").stat().st_mtime_ns == stamp

    assert ensure_checkpoint(cache, dynamic_hd=2) != first
    monkeypatch.setattr(builder, "BUILDER_VERSION", builder.BUILDER_VERSION + 1)
    assert ensure_checkpoint(cache) != first
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")], "staging left behind"

    assert is_random_weight_checkpoint(first)
    assert is_random_weight_checkpoint(folder)
    assert not is_random_weight_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi4mm"}))
    assert not is_random_weight_checkpoint(tmp_path)


def test_concurrent_ensure_checkpoint_builds_one_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        results = list(pool.map(ensure_checkpoint, [cache, cache]))
    assert results[0] == results[1]
    assert [p.name for p in cache.iterdir()] == [results[0].name]
    assert is_random_weight_checkpoint(results[0])


def test_ensure_checkpoint_keeps_the_folder_of_a_faster_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    target = cache / builder._folder_name(TINY, 4)
    real_build = builder.build_checkpoint

    def build_while_another_process_wins(folder: Path, *args: Any, **kwargs: Any) -> Path:
        built = real_build(folder, *args, **kwargs)
        target.mkdir()
        (target / "built-by-the-other-process").touch()
        return built

    monkeypatch.setattr(builder, "build_checkpoint", build_while_another_process_wins)
    assert ensure_checkpoint(cache) == target
    assert (target / "built-by-the-other-process").exists()
    assert [p.name for p in cache.iterdir()] == [target.name], "staging folder left behind"


def test_folder_contents(tiny_folder: Path, tiny_tokenizer: Any) -> None:
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["architectures"] == ["Phi4MMForCausalLM"]
    assert config["model_type"] == "phi4mm"
    assert config["vocab_size"] == 200064
    assert config["img_processor"] == {"name": "siglip-so400m-patch14-448", "layer_idx": 0}
    assert config["embd_layer"]["embedding_cls"] == "image_audio"
    assert config["embd_layer"]["audio_embd_layer"]["compression_rate"] == 8
    encoder = config["audio_processor"]["config"]
    assert config["audio_processor"]["name"] == "cascades"
    assert (encoder["attention_dim"], encoder["num_blocks"], encoder["attention_heads"]) == (
        64,
        1,
        2,
    )
    assert (encoder["time_reduction"], encoder["input_layer"]) == (8, "nemo_conv")
    assert config["hidden_size"] // config["num_attention_heads"] == 64

    generation = json.loads((tiny_folder / "generation_config.json").read_text())
    assert {END_ID, EOS_ID} <= set(generation["eos_token_id"])

    tok = tiny_tokenizer
    assert len(tok) == 200064
    for text, token_id in [
        ("<|endoftext|>", 199999),
        ("<|endoftext10|>", IMAGE_PLACEHOLDER_ID),
        ("<|endoftext11|>", AUDIO_PLACEHOLDER_ID),
        ("<|assistant|>", 200019),
        ("<|end|>", 200020),
        ("<|user|>", 200021),
        ("<|system|>", 200022),
    ]:
        assert tok.encode(text, add_special_tokens=False) == [token_id], text
    # As in the real vocabulary, media placeholders are plain text: several ordinary
    # tokens, none of them added, and merged with the character before them.
    added = set(tok.get_added_vocab().values())
    for tag in ("<|image_1|>", "<|image_100|>", "<|audio_1|>", "<|audio_100|>"):
        ids = tok.encode(tag, add_special_tokens=False)
        assert len(ids) > 1 and not added.intersection(ids), tag
        assert tag not in tok.get_added_vocab()
    alone = tok.encode("<|image_1|>", add_special_tokens=False)
    glued = tok.encode("Look at this.<|image_1|>", add_special_tokens=False)
    assert glued[-len(alone):] != alone, "'.<|' is one piece, as in the real vocabulary"
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|user|>Hi<|end|><|assistant|>"
    assert tok.decode(list(range(150000, 150010))).strip(), "random ids must decode to text"

    from safetensors import safe_open

    for name in ("vision-lora", "speech-lora"):
        adapter = json.loads((tiny_folder / name / "adapter_config.json").read_text())
        assert adapter["r"] == TINY.lora_rank
        assert set(adapter["target_modules"]) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
        with safe_open(tiny_folder / name / "adapter_model.safetensors", "np") as weights:
            shapes = {key: weights.get_slice(key).get_shape() for key in weights.keys()}  # noqa: SIM118
        assert len(shapes) == 2 * 4 * TINY.num_hidden_layers
        assert shapes["base_model.model.model.layers.1.self_attn.qkv_proj.lora_B.weight"] == [
            (2 + 2 * 1) * 64,
            TINY.lora_rank,
        ]
        assert shapes["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"] == [
            TINY.lora_rank,
            TINY.intermediate_size,
        ]


def test_full_shape_builds_config_and_processor_fast(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoProcessor

    started = time.perf_counter()
    folder = build_checkpoint(tmp_path / "full", FULL, dynamic_hd=16, with_adapters=False)
    assert time.perf_counter() - started < 10
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (
        3072,
        8192,
        32,
    )
    assert (config.num_attention_heads, config.num_key_value_heads) == (24, 8)
    assert config.rope_parameters["rope_type"] == "longrope"
    assert len(config.rope_parameters["long_factor"]) == 48
    assert config.audio_processor["config"]["attention_dim"] == 1024
    assert config.audio_processor["config"]["num_blocks"] == 24
    assert config.img_processor is None, "the full shape keeps the real model's vision tower"
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert processor.image_processor.dynamic_hd == 16
    assert processor.audio_processor.sampling_rate == 16000

    full_bytes = sum(tensor.nbytes for tensor in lora_tensors(FULL))
    assert 0.9e9 < full_bytes < 0.95e9  # per adapter, written tensor by tensor


@pytest.mark.skipif(
    not os.environ.get("PHI4UI_TEST_FULL_ADAPTERS"),
    reason="writes 1.8 GB; set PHI4UI_TEST_FULL_ADAPTERS=1 to run",
)
def test_full_adapters_pass_vllm_lora_checks(
    tmp_path: Path, tinymodel_report: dict[str, str]
) -> None:
    import torch
    from vllm.config.lora import LoRAConfig
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper
    from vllm.model_executor.models.phi4mm import Phi4MMForCausalLM

    started = time.perf_counter()
    folder = build_checkpoint(tmp_path / "full", FULL)
    tinymodel_report["build_checkpoint(FULL) with adapters"] = (
        f"{time.perf_counter() - started:.1f} s, "
        f"{(folder / 'vision-lora' / 'adapter_model.safetensors').stat().st_size / 1e6:.0f} MB each"
    )
    adapter = str(folder / "speech-lora")
    peft = PEFTHelper.from_local_dir(adapter, 131072)
    peft.validate_legal(LoRAConfig(max_lora_rank=320, max_loras=2))
    model = LoRAModel.from_local_checkpoint(
        adapter,
        {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
        peft_helper=peft,
        lora_model_id=1,
        device="cpu",
        dtype=torch.bfloat16,
        model_vocab_size=200064,
        weights_mapper=Phi4MMForCausalLM.hf_to_vllm_mapper.get_rename_mapper(),
    )
    assert model.rank == 320
    assert len(model.loras) == 4 * 32


# ---------------------------------------------------------------- against vLLM's own arithmetic


@pytest.mark.engine
def test_engine_builds_the_shapes_vision_tower(tiny_llm: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM reads the depth from the config class's img_processor; a change on either side
    # would bring back the full 26-layer tower, and its 45 s per new image on 2 cores.
    monkeypatch.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # both ends pickle it
    depths = tiny_llm.apply_model(vision_tower_depth)
    assert depths == [TINY.vision_layers]


@pytest.mark.engine
def test_placeholder_counts_match_vllm(tiny_llm: Any) -> None:
    from vllm.multimodal import MULTIMODAL_REGISTRY

    vllm_processor = MULTIMODAL_REGISTRY.create_processor(tiny_llm.llm_engine.model_config)
    info = vllm_processor.info
    assert info.get_hf_processor().image_processor.dynamic_hd == ENGINE_DYNAMIC_HD
    for dynamic_hd in DYNAMIC_HDS:
        hf = info.get_hf_processor(dynamic_hd=dynamic_hd)
        assert hf.image_processor.dynamic_hd == dynamic_hd
        for width, height in IMAGE_SIZES:
            vllm_count = info.get_num_image_tokens(
                image_width=width, image_height=height, processor=hf
            )
            assert expected_image_tokens(width, height, dynamic_hd) == vllm_count
            out = hf(
                text="<|image_1|>",
                images=[Image.new("RGB", (width, height), (200, 30, 30))],
                dynamic_hd=dynamic_hd,
                return_tensors="np",
            )
            assert int((out["input_ids"] == IMAGE_PLACEHOLDER_ID).sum()) == vllm_count
            crops = 1 + int(np.prod(out["image_sizes"][0] // 448))
            assert out["input_image_embeds"].shape == (1, crops, 3, 448, 448)
            assert out["image_attention_mask"].shape == (1, crops, 32, 32)
            padded = tuple(int(x) for x in out["image_sizes"][0])
            assert _encoder_token_count(out["image_attention_mask"][0], padded) == vllm_count

    assert expected_image_tokens(640, 480, 1) == 477
    hf = info.get_hf_processor()
    for seconds in (0.5, 1.0, 2.0, 7.3, 40.0):
        samples = int(seconds * 16000)
        frames = info.get_audio_num_frames(samples, 16000)
        vllm_count = info._compute_audio_embed_size(frames)
        assert expected_audio_tokens(samples) == vllm_count
        out = hf(text="<|audio_1|>", audios=[(_tone(seconds), 16000)], return_tensors="np")
        assert out["input_audio_embeds"].shape == (1, frames, 80)
        assert int(out["audio_embed_sizes"][0]) == vllm_count
        assert int((out["input_ids"] == AUDIO_PLACEHOLDER_ID).sum()) == vllm_count
    assert expected_audio_tokens(32000) == 25


# ---------------------------------------------------------------- generation


def _timed_generate(llm: Any, request: Any, params: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    (output,) = llm.generate(request, params, use_tqdm=False, **kwargs)
    return output, time.perf_counter() - started


@pytest.mark.engine
def test_generates_for_text_image_audio_and_both(
    tiny_llm: Any, tiny_tokenizer: Any, tinymodel_report: dict[str, str]
) -> None:
    from vllm import SamplingParams

    first_token = SamplingParams(temperature=0, max_tokens=1)
    few_tokens = SamplingParams(temperature=0, max_tokens=4)

    def text_tokens(prompt: str) -> int:
        # Each placeholder counted as one token: the processor replaces it by special
        # tokens, apart from the text around it (it is several tokens of plain text).
        marked = re.sub(r"<\|(image|audio)_\d+\|>", "<|endoftext10|>", prompt)
        return len(tiny_tokenizer.encode(marked, add_special_tokens=False))

    prompt = _prompt("", "Hello!")
    out, _ = _timed_generate(tiny_llm, prompt, few_tokens)
    assert len(out.prompt_token_ids) == text_tokens(prompt)
    assert 1 <= len(out.outputs[0].token_ids) <= 4

    prompt = _prompt("<|image_1|>")
    image = _noise_image(640, 480, seed=1)
    out, elapsed = _timed_generate(
        tiny_llm, {"prompt": prompt, "multi_modal_data": {"image": [image]}}, first_token
    )
    tinymodel_report["first token, new 640x480 image (dynamic_hd 1)"] = f"{elapsed:.2f} s"
    assert len(out.prompt_token_ids) == text_tokens(prompt) - 1 + 477
    assert out.prompt_token_ids.count(IMAGE_PLACEHOLDER_ID) == 477
    assert len(out.outputs[0].token_ids) == 1

    out, elapsed = _timed_generate(
        tiny_llm, {"prompt": prompt, "multi_modal_data": {"image": [image]}}, first_token
    )
    tinymodel_report["first token, same image again"] = f"{elapsed:.2f} s"

    prompt = _prompt("<|audio_1|>")
    out, elapsed = _timed_generate(
        tiny_llm,
        {"prompt": prompt, "multi_modal_data": {"audio": [(_tone(2.0), 16000)]}},
        first_token,
    )
    tinymodel_report["first token, new 2 s audio clip"] = f"{elapsed:.2f} s"
    assert len(out.prompt_token_ids) == text_tokens(prompt) - 1 + 25
    assert out.prompt_token_ids.count(AUDIO_PLACEHOLDER_ID) == 25

    # Image and audio together; the tall image and the per-request dynamic_hd
    # exercise the closest-grid path, the 44.1 kHz clip vLLM's resampling.
    prompt = _prompt("<|image_1|><|audio_1|>")
    tall = _noise_image(300, 900, seed=2)
    clip = _tone(1.37, rate=44100, freq=300.0)
    out, elapsed = _timed_generate(
        tiny_llm,
        {
            "prompt": prompt,
            "multi_modal_data": {"image": [tall], "audio": [(clip, 44100)]},
            "mm_processor_kwargs": {"dynamic_hd": 2},
        },
        few_tokens,
    )
    tinymodel_report["image (300x900, 3 crops) + audio request"] = f"{elapsed:.2f} s"
    image_tokens = expected_image_tokens(300, 900, 2)
    audio_tokens = expected_audio_tokens(len(clip), 44100)
    assert out.prompt_token_ids.count(IMAGE_PLACEHOLDER_ID) == image_tokens
    assert out.prompt_token_ids.count(AUDIO_PLACEHOLDER_ID) == audio_tokens
    assert len(out.prompt_token_ids) == text_tokens(prompt) - 2 + image_tokens + audio_tokens
    assert out.outputs[0].token_ids

    prompt = _prompt("<|audio_1|><|audio_2|>")
    clips = [(_tone(1.0), 16000), (_tone(3.3, rate=8000), 8000)]
    out, _ = _timed_generate(
        tiny_llm, {"prompt": prompt, "multi_modal_data": {"audio": clips}}, few_tokens
    )
    audio_tokens = expected_audio_tokens(16000) + expected_audio_tokens(len(clips[1][0]), 8000)
    assert out.prompt_token_ids.count(AUDIO_PLACEHOLDER_ID) == audio_tokens

    messages = [{"role": "user", "content": "Hi"}]
    (chat,) = tiny_llm.chat(messages, few_tokens, use_tqdm=False)
    rendered = tiny_tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<|user|>Hi<|end|><|assistant|>"
    assert list(chat.prompt_token_ids) == tiny_tokenizer.encode(rendered, add_special_tokens=False)


@pytest.mark.engine
def test_lora_adapters_load_and_change_logprobs(tiny_llm: Any, tiny_folder: Path) -> None:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    params = SamplingParams(temperature=0, logprobs=5, max_tokens=4)
    vision = LoRARequest("vision", 1, str(tiny_folder / "vision-lora"))
    speech = LoRARequest("speech", 2, str(tiny_folder / "speech-lora"))
    prompt = _prompt("", "Tell me a story.")

    def first_step(lora: Any) -> tuple[tuple[int, ...], dict[int, float]]:
        (out,) = tiny_llm.generate(prompt, params, lora_request=lora, use_tqdm=False)
        completion = out.outputs[0]
        top = {token: logprob.logprob for token, logprob in completion.logprobs[0].items()}
        return tuple(completion.token_ids), top

    base = first_step(None)
    with_vision = first_step(vision)
    with_speech = first_step(speech)
    assert first_step(None) == base, "greedy decoding must be repeatable"
    assert first_step(vision) == with_vision
    # Dummy base weights make all logits tiny, so the logprob values barely move;
    # which tokens make the top 5 is what the adapters visibly change.
    for one, other in [(base, with_vision), (base, with_speech), (with_vision, with_speech)]:
        assert set(one[1]) != set(other[1])
    assert with_vision[0] != base[0]
    assert with_speech[0] != base[0]

    image = {"image": [_noise_image(640, 480, seed=1)]}
    mm_prompt = {"prompt": _prompt("<|image_1|>"), "multi_modal_data": image}
    (plain,) = tiny_llm.generate(mm_prompt, params, use_tqdm=False)
    (adapted,) = tiny_llm.generate(mm_prompt, params, lora_request=vision, use_tqdm=False)
    assert plain.outputs[0].token_ids != adapted.outputs[0].token_ids


@pytest.mark.parametrize(("size", "accepted"),
                         [((1000, 6), False), ((5, 2000), False), ((1000, 8), True),
                          ((9, 2000), True)])
def test_processor_refuses_what_the_real_one_refuses(size: tuple[int, int],
                                                     accepted: bool) -> None:
    # The real processor raises "the aspect ratio is very extreme" when an image scaled to
    # its crop grid is under 10 pixels on a side; so does the tiny one.
    from phi4ui.tinymodel.remote.processing_phi4mm import Phi4MMImageProcessor

    processor = Phi4MMImageProcessor(dynamic_hd=16)
    image = Image.new("RGB", size, (200, 10, 10))
    if accepted:
        assert processor.preprocess([image])["num_img_tokens"][0] == expected_image_tokens(
            *size, dynamic_hd=16)
    else:
        with pytest.raises(ValueError, match="the aspect ratio is very extreme"):
            processor.preprocess([image])


@pytest.mark.parametrize("layers", [0, 28])
def test_shape_refuses_a_vision_tower_siglip_cannot_have(layers: int) -> None:
    with pytest.raises(ValueError, match="vision_layers"):
        dataclasses.replace(TINY, vision_layers=layers).validate()
