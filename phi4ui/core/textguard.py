"""Text is text: control-token look-alikes in free text are neutralised before rendering.

vLLM tokenizes a prompt with special tokens recognised, so `<|end|><|assistant|>` typed by a
person (or found in a system prompt, a batch case, an earlier answer or a bundle) would
become the model's own control tokens, and a typed `<|image_1|>` a media placeholder. Every
piece of free text therefore goes through `TextGuard.neutralise` on its way into a prompt.

The rule: a zero-width joiner (U+200D) goes after the `<` of every span shaped like a control
token, `<|` + 1 to 40 characters other than `|`, `<`, `>` + `|>`. That shape covers every
Phi-4 special token and the `<|image_N|>` / `<|audio_N|>` placeholders, which the model's
processor finds by a regular expression rather than in its vocabulary, and it needs no
tokenizer, so it is also the default (`GENERIC`). A tokenizer's control tokens (its special
tokens, `control_tokens`) of any other shape extend it as literals (`TextGuard.for_tokens`),
and `checked_guard` checks the result with the tokenizer itself. Shape-matching spans cannot
overlap (their insides hold no `<` or `|`), so breaking each one leaves no control token to
find.

The text reads the same to a person and, as plain characters, to the model; the record keeps
the words as typed. The change can be undone exactly (`restore`): a joiner someone already
typed at that place gets one more, so no typed text is confused with a neutralised one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

JOINER = "\u200d"
MAX_INNER_CHARS = 40
CONTROL_SHAPE = re.compile(rf"<\|[^|<>]{{1,{MAX_INNER_CHARS}}}\|>")


@dataclass(frozen=True)
class TextGuard:
    """Neutralises the generic control-token shape plus `literals`, the tokenizer's added
    tokens of another shape."""

    literals: tuple[str, ...] = ()

    @classmethod
    def for_tokens(cls, tokens: Iterable[str]) -> TextGuard:
        """The guard for a tokenizer whose added (special) tokens are `tokens`."""
        missed = {token for token in tokens
                  if len(token) > 1 and not CONTROL_SHAPE.fullmatch(token)}
        # Longest first, so that a token holding a shorter one is matched whole.
        return cls(tuple(sorted(missed, key=lambda token: (-len(token), token))))

    def neutralise(self, text: str) -> str:
        if not text:
            return text
        # Literals first: one may sit inside a span of the generic shape.
        for pattern in self._found:
            text = pattern.sub(_insert_joiner, text)
        return text

    def restore(self, text: str) -> str:
        """The text as it was before `neutralise`."""
        if not text:
            return text
        for pattern in reversed(self._neutralised):
            text = pattern.sub(_remove_joiner, text)
        return text

    @cached_property
    def _found(self) -> tuple[re.Pattern[str], ...]:
        return _patterns(self.literals, joiners="*")

    @cached_property
    def _neutralised(self) -> tuple[re.Pattern[str], ...]:
        return _patterns(self.literals, joiners="+")


GENERIC = TextGuard()


def _patterns(literals: Sequence[str], *, joiners: str) -> tuple[re.Pattern[str], ...]:
    """The literals, then the shape, each with any number (`*`) or at least one (`+`)
    joiner after its first character."""
    shape = re.compile(rf"<{JOINER}{joiners}\|[^|<>]{{1,{MAX_INNER_CHARS}}}\|>")
    if not literals:
        return (shape,)
    spelled = "|".join(re.escape(token[0]) + JOINER + joiners + re.escape(token[1:])
                       for token in literals)
    return (re.compile(spelled), shape)


def _insert_joiner(match: re.Match[str]) -> str:
    found = match.group(0)
    return found[0] + JOINER + found[1:]


def _remove_joiner(match: re.Match[str]) -> str:
    found = match.group(0)
    return found[0] + found[2:]


def control_tokens(added: Iterable[tuple[int, str, bool]]) -> dict[int, str]:
    """Of a tokenizer's added tokens (id, text, special), those typed text must not form:
    the special ones and any of the control shape (such as media tags). Other added tokens
    (a run of spaces, say) are ordinary pieces of text."""
    return {token_id: text for token_id, text, special in added
            if special or CONTROL_SHAPE.fullmatch(text)}


def leaks(guard: TextGuard, encode: Callable[[str], Sequence[int]],
          tokens: Mapping[int, str]) -> list[str]:
    """The tokens whose neutralised form still encodes to one of their ids, alone or
    between words; empty when the guard holds for this tokenizer."""
    ids = set(tokens)
    return [token for token in tokens.values()
            if any(ids.intersection(encode(guard.neutralise(text)))
                   for text in (token, f"a{token}b", f" {token} "))]


def checked_guard(tokens: Mapping[int, str], encode: Callable[[str], Sequence[int]]
                  ) -> TextGuard:
    """The guard for a tokenizer's control tokens (id -> text, see `control_tokens`),
    checked with its `encode`; raises `ValueError` when typed text could still form one."""
    guard = TextGuard.for_tokens(tokens.values())
    leaked = leaks(guard, encode, tokens)
    if leaked:
        raise ValueError("typed text could still become these control tokens: "
                         + ", ".join(sorted(leaked)[:10]))
    return guard
