"""Prompt token counts for planning requests to a remote server.

The planner calls `count_text_tokens` synchronously, on the event loop, for
every request: an HTTP call there would stall every stream in the app. So the
remote engine loads the served model's own `tokenizer.json` once, at start
(from the folder the server names when this machine sees it, else from the
Hugging Face cache or hub), and checks it once against the server's
`/tokenize`. Counts are then exact: the planner's total equals the prompt
tokens the server reports. Without a tokenizer it estimates one token per
three UTF-8 bytes, above what a 200k-entry BPE needs for English (about four
bytes a token); a prompt that still turns out too long comes back as the
server's 400, shown as `PromptTooLong`.

The same tokenizer lists the model's added tokens, from which the remote engine makes
its `TextGuard` (typed text must not form them); without it the engine falls back to
`textguard.GENERIC`, the `<|...|>` shape every Phi-4 control token and placeholder has.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Chat markers, a placeholder, non-ASCII, digits and white space: where tokenizers differ.
PROBE = "<|user|><|image_1|>Hello, wörld! 3.14 tokens\n\tcount<|end|><|assistant|>"
ESTIMATE_BYTES_PER_TOKEN = 3
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


class TokenCounter:
    def __init__(self, tokenizer: Any = None) -> None:
        self._tokenizer = tokenizer

    @property
    def exact(self) -> bool:
        return self._tokenizer is not None

    def count(self, text: str) -> int:
        if self._tokenizer is None:
            return -(-len(text.encode("utf-8")) // ESTIMATE_BYTES_PER_TOKEN)
        return len(self.ids(text))

    def ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def added_tokens(self) -> list[tuple[int, str, bool]]:
        """The tokenizer's added tokens (control tokens among them): id, text, special."""
        return [(int(token_id), str(token.content), bool(token.special))
                for token_id, token in self._tokenizer.get_added_tokens_decoder().items()]


def load_tokenizer(root: str, revision: str | None) -> TokenCounter | None:
    """The exact counter of a served model, or None when its tokenizer is not at hand.

    `root` is where the server loaded the model from: a folder or a Hugging Face id.
    """
    from tokenizers import Tokenizer

    local = Path(root) / "tokenizer.json"
    try:
        if local.is_file():
            return TokenCounter(Tokenizer.from_file(str(local)))
        if HUB_ID.fullmatch(root):
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(root, "tokenizer.json", revision=revision)
            return TokenCounter(Tokenizer.from_file(path))
    except Exception as error:  # noqa: BLE001 - offline, missing or unreadable: all mean "none"
        log.info("Remote engine: no tokenizer for %s (%s)", root, error)
    return None
