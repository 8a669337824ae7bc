"""A small byte-level BPE tokenizer laid out like Phi-4-multimodal's 200k vocabulary.

A few hundred merges are trained on a built-in text (same result on every
machine); every other id up to the model's vocabulary size is filled with a
pronounceable pseudo-word, so that any id a random-weight model samples
decodes to visible text. Special tokens sit at the real model's ids; the media
placeholders `<|image_N|>` / `<|audio_N|>` are plain text, as in the real vocabulary.
"""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .vocab import EOS_ID, SPECIAL_TOKENS

TRAINED_VOCAB_SIZE = 1024

CORPUS = """\
The assistant looks at the picture and describes what it sees: a red bicycle leaning
against a stone wall, two cats asleep on a blue chair, a mountain lake at sunrise.
Listen to the recording and write down every word that the speaker says. Then translate
the transcript into French, German, Spanish, Italian, Portuguese, Chinese and Japanese.
What is the total amount on this receipt? How many people are in the photo? Which
instrument is playing in the audio clip, and is the music fast or slow?
Summarise the meeting in three short bullet points, and list the action items with
their owners and due dates. Answer the question using only the information in the image.
Hello! How can I help you today? I can read charts, tables, handwritten notes, screenshots
of code, menus, road signs and scanned documents, and I can answer questions about speech.
The weather today is sunny with a light breeze; tomorrow there may be rain in the evening.
Numbers such as 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100, 2024 and 3.14 appear in text,
together with punctuation: commas, full stops, question marks, quotes "like this", (brackets),
[lists], {braces}, dashes - and colons. def main(): return print("hello world") # code too.
A streaming chat shows each token as soon as the model produces it, measures the time to the
first token and the number of tokens per second, and lets the user stop a long answer.
Markup pieces such as <|, |>, .<|, ?<|, :<|, "<| and |>. occur in text and in templates, so
that a placeholder written into text merges with the character before it, as it does in the
real vocabulary: see.<|a|> look?<|b|> here:<|c|> "<|d|>" end.<|e|>. <|f|>.
"""


def _train_merges() -> dict[str, Any]:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TRAINED_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer)
    return json.loads(tokenizer.to_str())


def _pseudo_words() -> list[str]:
    syllables = [c + v for c, v in product("bdfgklmnprstvz", "aeiou")]
    # "\u0120" is the byte-level symbol for a leading space.
    return ["\u0120" + a + b + c for a, b, c in product(syllables, repeat=3)]


def _full_vocab(trained: dict[str, int], vocab_size: int) -> tuple[dict[str, int], dict[int, str]]:
    fixed = dict(SPECIAL_TOKENS)
    vocab = dict(trained)
    taken = set(vocab)
    words = iter(word for word in _pseudo_words() if word not in taken)
    for token_id in range(len(trained), vocab_size):
        content = fixed.get(token_id)
        if content is None:
            content = next(words, f"<|reserved_{token_id}|>")
        vocab[content] = token_id
    return vocab, fixed


def _added_token(token_id: int, content: str, special: bool) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def build_tokenizer_json(vocab_size: int) -> dict[str, Any]:
    data = _train_merges()
    trained_vocab: dict[str, int] = data["model"]["vocab"]
    if max(trained_vocab.values()) >= min(SPECIAL_TOKENS):
        raise RuntimeError("trained vocabulary overlaps the special-token ids")
    vocab, fixed = _full_vocab(trained_vocab, vocab_size)
    data["model"]["vocab"] = vocab
    data["added_tokens"] = [
        _added_token(token_id, content, special=token_id in SPECIAL_TOKENS)
        for token_id, content in sorted(fixed.items())
    ]
    data["post_processor"] = None
    return data


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def tokenizer_config(model_max_length: int) -> dict[str, Any]:
    eos = SPECIAL_TOKENS[EOS_ID]
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": eos,
        "eos_token": eos,
        "pad_token": eos,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHAT_TEMPLATE,
    }


def write_tokenizer(folder: Path, vocab_size: int, model_max_length: int) -> None:
    data = build_tokenizer_json(vocab_size)
    text = json.dumps(data, ensure_ascii=False)
    Tokenizer.from_str(text)  # fail here, not at load time, if the JSON is inconsistent
    (folder / "tokenizer.json").write_text(text, encoding="utf-8")
    config = tokenizer_config(model_max_length)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    eos = SPECIAL_TOKENS[EOS_ID]
    special_map = {"bos_token": eos, "eos_token": eos, "pad_token": eos}
    (folder / "special_tokens_map.json").write_text(
        json.dumps(special_map, indent=2), encoding="utf-8"
    )
