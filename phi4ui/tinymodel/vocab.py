"""Token ids of the generated tokenizer, placed where the real Phi-4-multimodal has them."""

from __future__ import annotations

EOS_ID = 199999
BOS_ID = EOS_ID
PAD_ID = EOS_ID
IMAGE_PLACEHOLDER_ID = 200010  # <|endoftext10|>, hard-coded in vLLM
AUDIO_PLACEHOLDER_ID = 200011  # <|endoftext11|>, hard-coded in vLLM
ASSISTANT_ID = 200019
END_ID = 200020
USER_ID = 200021
SYSTEM_ID = 200022

SPECIAL_TOKENS: dict[int, str] = {
    EOS_ID: "<|endoftext|>",
    **{200000 + k: f"<|endoftext{k}|>" for k in range(18)},
    200018: "<|endofprompt|>",
    ASSISTANT_ID: "<|assistant|>",
    END_ID: "<|end|>",
    USER_ID: "<|user|>",
    SYSTEM_ID: "<|system|>",
    200023: "<|tool|>",
    200024: "<|/tool|>",
    200025: "<|tool_call|>",
    200026: "<|/tool_call|>",
    200027: "<|tool_response|>",
    200028: "<|tag|>",
}

# vLLM looks for <|image_N|> / <|audio_N|> (N = 1..100) by their token ids; as single
# tokens they can never merge with neighbouring text.
MAX_MEDIA_ITEMS = 100
IMAGE_TAG_FIRST_ID = 199700
AUDIO_TAG_FIRST_ID = 199800


def media_tags() -> dict[int, str]:
    tags: dict[int, str] = {}
    for n in range(1, MAX_MEDIA_ITEMS + 1):
        tags[IMAGE_TAG_FIRST_ID + n - 1] = f"<|image_{n}|>"
        tags[AUDIO_TAG_FIRST_ID + n - 1] = f"<|audio_{n}|>"
    return tags
