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

# The real vocabulary has no tokens for the media placeholders `<|image_N|>` / `<|audio_N|>`:
# they are plain text, split into several ordinary tokens, and merge with a neighbouring
# character (".<|" is one piece). The processor replaces them by regular expression before
# tokenizing, and vLLM finds them in the prompt by their encoded text, falling back to the
# decoded text when the pieces merged. The generated vocabulary keeps it that way (see
# `tokenizer.py`), so that tests take the path the real model takes.
MAX_MEDIA_ITEMS = 100


def media_tags() -> list[str]:
    """Every placeholder vLLM looks for (N = 1..100); none is a token of its own."""
    return [f"<|{kind}_{n}|>" for kind in ("image", "audio") for n in range(1, MAX_MEDIA_ITEMS + 1)]
