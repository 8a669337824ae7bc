"""Counting tokens from many threads at once (the planning of several requests) on the
real tiny engine: the counts are the engine tokenizer's own, and counting does not borrow
from vLLM's tokenizer pool (which deep-copies the tokenizer for a thread that finds its
copies taken: 0.15-0.3 s holding Python's lock and about 57 MB kept for good, for Phi-4's
vocabulary)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytestmark = pytest.mark.engine

TEXTS = ["hello", " leading space", "<|image_1|>what is this<|endoftext|>",
         "<|user|>hi<|end|><|assistant|>", "emoji 🎙️ and ünïcode\n\n\tx", "",
         "\u2060<\u2060|end|>", "a long message, " * 2000]


def test_counts_are_the_engine_tokenizers_own(embedded_engine: Any) -> None:
    tokenizer = embedded_engine._tokenizer  # vLLM's, as the engine's prompts are encoded
    for text in TEXTS:
        assert embedded_engine.count_text_tokens(text) == len(
            tokenizer.encode(text, add_special_tokens=False)), text


def test_counting_from_many_threads_leaves_vllms_tokenizer_pool_alone(
        embedded_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting goes to the Rust tokenizer, never through the pool that vLLM's own threads
    borrow from (a count that found the pool's copy taken made a new one: seen in the
    soak's stacks, `_borrow_from_pool` -> `deepcopy` -> `get_vocab`)."""
    pool = type(embedded_engine._tokenizer)
    borrowed = []
    for method in ("encode", "__call__", "batch_encode"):
        pooled = getattr(pool, method)
        monkeypatch.setattr(pool, method, lambda self, *a, _m=pooled, **k: (
            borrowed.append(1), _m(self, *a, **k))[1])
    start = threading.Barrier(16)
    counts: list[int] = []

    def count() -> None:
        start.wait()
        for text in TEXTS:
            counts.append(embedded_engine.count_text_tokens(text))

    threads = [threading.Thread(target=count) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(counts) == 16 * len(TEXTS)
    assert borrowed == []
    assert embedded_engine._tokenizer.encode(TEXTS[2], add_special_tokens=False)
    assert borrowed == [1]  # the pool's method was watched
