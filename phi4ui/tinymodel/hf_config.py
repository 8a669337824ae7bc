"""The JSON configuration files of a generated checkpoint."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from .shapes import CheckpointShape
from .vocab import BOS_ID, END_ID, EOS_ID, PAD_ID

MARKER_KEY = "phi4ui_random_weights"
CONFIG_MODULE = "configuration_phi4mm"
PROCESSING_MODULE = "processing_phi4mm"
SIGLIP_NAME = "siglip-so400m-patch14-448"


def _long_rope_factors(count: int) -> list[float]:
    # A smooth ramp from 1 to 32, the shape (not the values) of the real model's long factors.
    return [round(32.0 ** (i / max(count - 1, 1)), 4) for i in range(count)]


def _embedding_layers() -> dict[str, Any]:
    return {
        "embedding_cls": "image_audio",
        "image_embd_layer": {
            "embedding_cls": "tune_image",
            "crop_size": 448,
            "use_hd_transform": True,
            "with_learnable_separator": True,
            "hd_transform_order": "sub_glb",
            "image_token_compression_cls": "avg_pool_2d",
            "projection_cls": "mlp",
        },
        "audio_embd_layer": {
            "embedding_cls": "audio",
            "compression_rate": 8,
            "downsample_rate": 1,
            "projection_cls": "mlp",
            "use_conv_downsample": False,
            "use_qformer": False,
        },
    }


def _vision_tower(shape: CheckpointShape) -> dict[str, Any] | None:
    # vLLM reads the depth from "layer_idx": the output of that layer (0-based; the real
    # model's null section means -2, the 26th of 27). The config class turns this dict into
    # one that also serves as the tower's name, the key of vLLM's preprocessing table.
    if shape.vision_layers is None:
        return None
    return {"name": SIGLIP_NAME, "layer_idx": shape.vision_layers - 1}


def _audio_encoder(shape: CheckpointShape) -> dict[str, Any]:
    dim = shape.audio_attention_dim
    return {
        "name": "cascades",
        "config": {
            "input_size": 80,
            "encoder_embedding_config": {"input_size": 80},
            "attention_dim": dim,
            "attention_heads": shape.audio_attention_heads,
            "num_blocks": shape.audio_num_blocks,
            "linear_units": shape.audio_linear_units,
            "time_reduction": shape.audio_time_reduction,
            "input_layer": "nemo_conv",
            "nemo_conv_settings": {"conv_channels": shape.audio_conv_channels or dim},
            "chunk_size": -1,
            "left_chunk": 18,
            "causal": True,
            "batch_norm": False,
            "cnn_layer_norm": True,
            "kernel_size": 3,
            "ext_pw_kernel_size": 1,
            "ext_pw_out_channel": dim,
            "depthwise_seperable_out_channel": dim,
            "depthwise_multiplier": 1,
            "activation": "swish",
            "conv_activation": "swish",
            "conv_glu_type": "swish",
            "bias_in_glu": True,
            "dropout_rate": 0.0,
            "relative_attention_bias_args": {"type": "t5", "t5_bias_max_distance": 500},
        },
    }


def _lora_section(rank: int) -> dict[str, Any]:
    return {
        "r": rank,
        "lora_alpha": 2 * rank,
        "dp": 0.0,
        "layer": r"layers.*((self_attn\.(qkv_proj|o_proj))|(mlp\.(gate_up|down)_proj))",
    }


def _transformers_version() -> str:
    # Without this key, transformers 5 assumes an old Mistral tokenizer and warns on every load.
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "5.0.0"


def model_config(shape: CheckpointShape, marker: dict[str, Any]) -> dict[str, Any]:
    """config.json: a Phi-3 text model with Phi4MM's multimodal sections."""
    rope_factor_count = shape.rotary_dim // 2
    return {
        "architectures": ["Phi4MMForCausalLM"],
        "model_type": "phi4mm",
        "auto_map": {"AutoConfig": f"{CONFIG_MODULE}.Phi4MMConfig"},
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "attention_bias": False,
        "mlp_bias": False,
        "lm_head_bias": False,
        "tie_word_embeddings": True,
        "max_position_embeddings": shape.max_position_embeddings,
        "original_max_position_embeddings": shape.original_max_position_embeddings,
        # transformers 5 layout; the real checkpoint's legacy "rope_scaling" form makes
        # the generic config class (trust_remote_code=False) fail to load.
        "rope_parameters": {
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": shape.partial_rotary_factor,
            "factor": shape.max_position_embeddings / shape.original_max_position_embeddings,
            "original_max_position_embeddings": shape.original_max_position_embeddings,
            "short_factor": [1.0] * rope_factor_count,
            "long_factor": _long_rope_factors(rope_factor_count),
        },
        "sliding_window": None,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "transformers_version": _transformers_version(),
        "img_processor": _vision_tower(shape),
        "embd_layer": _embedding_layers(),
        "audio_processor": _audio_encoder(shape),
        "vision_lora": _lora_section(shape.lora_rank),
        "speech_lora": _lora_section(shape.lora_rank),
        MARKER_KEY: marker,
    }


def generation_config() -> dict[str, Any]:
    return {
        "bos_token_id": BOS_ID,
        "eos_token_id": [END_ID, EOS_ID],
        "pad_token_id": PAD_ID,
    }


def _processor_auto_map() -> dict[str, str]:
    return {
        "AutoProcessor": f"{PROCESSING_MODULE}.Phi4MMProcessor",
        "AutoImageProcessor": f"{PROCESSING_MODULE}.Phi4MMImageProcessor",
        "AutoFeatureExtractor": f"{PROCESSING_MODULE}.Phi4MMAudioFeatureExtractor",
    }


def preprocessor_config(dynamic_hd: int) -> dict[str, Any]:
    """preprocessor_config.json, read by both the image and the audio processor."""
    return {
        "auto_map": _processor_auto_map(),
        "processor_class": "Phi4MMProcessor",
        "image_processor_type": "Phi4MMImageProcessor",
        "feature_extractor_type": "Phi4MMAudioFeatureExtractor",
        "dynamic_hd": dynamic_hd,
        "crop_size": 448,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "feature_size": 80,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "audio_compression_rate": 8,
    }


def processor_config() -> dict[str, Any]:
    return {
        "auto_map": {"AutoProcessor": f"{PROCESSING_MODULE}.Phi4MMProcessor"},
        "processor_class": "Phi4MMProcessor",
    }
