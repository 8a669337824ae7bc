"""The conversation, and the request it becomes: pure functions, no I/O.

A conversation is a list of turns; a turn is a role and parts (text, media).
`plan_request` turns prepared turns into a `ChatRequest`: it applies the
per-prompt media limits and the context length, leaving the oldest media (then
the oldest turns) out with a note the person sees, chooses the LoRA adapter,
and counts tokens the way the model will. Engines render a request with
`render_phi4_prompt` (embedded) or `render_openai_messages` (remote); both pass
every piece of free text through the engine's `TextGuard`, so that typed text
never becomes a control token (see `phi4ui.core.textguard`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any, Literal, TypedDict

from phi4ui.core.audio import PreparedAudio
from phi4ui.core.images import PreparedImage
from phi4ui.core.media import kind_of
from phi4ui.core.textguard import GENERIC, TextGuard
from phi4ui.errors import BadInput, PromptTooLong

Role = Literal["user", "assistant"]
Adapter = Literal["vision", "speech"]
MIN_ANSWER_TOKENS = 16
# A special token of Phi-4's vocabulary (the image placeholder id), which tokenizers keep
# apart from the text around it; it stands for a medium when the text is counted.
MEDIA_MARKER = "<|endoftext10|>"


@dataclass(frozen=True)
class MediaRef:
    """An uploaded file not decoded yet."""

    path: str

    @property
    def kind(self) -> str:
        return kind_of(self.path)


Part = str | MediaRef | PreparedImage | PreparedAudio


@dataclass(frozen=True)
class Turn:
    role: Role
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "\n".join(part for part in self.parts if isinstance(part, str))

    @property
    def media(self) -> tuple[PreparedImage | PreparedAudio, ...]:
        return tuple(p for p in self.parts if isinstance(p, PreparedImage | PreparedAudio))


@dataclass(frozen=True)
class Sampling:
    """Defaults are Phi-4-MM's, as in Microsoft's examples for the model: greedy decoding and
    512 new tokens. The page, the batch tool and replays all start from them."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    ignore_eos: bool = False


class PromptTokenSplit(TypedDict):
    prompt_text_tokens: int
    prompt_image_tokens: int
    prompt_audio_tokens: int


@dataclass(frozen=True)
class TokenCount:
    text: int = 0
    image: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        return self.text + self.image + self.audio

    def split(self) -> PromptTokenSplit:
        """The prompt's parts as `StatsRecorder.finish` takes them."""
        return {"prompt_text_tokens": self.text, "prompt_image_tokens": self.image,
                "prompt_audio_tokens": self.audio}


@dataclass(frozen=True)
class PromptLimits:
    """What a prompt for an engine must respect: media counts, context length, and the
    control tokens of its tokenizer, which typed text must not form."""

    max_images: int
    max_audios: int
    max_model_len: int
    text_guard: TextGuard = GENERIC


@dataclass(frozen=True)
class ChatRequest:
    system: str
    turns: tuple[Turn, ...]
    sampling: Sampling
    adapter: Adapter | None
    tokens: TokenCount
    notes: tuple[str, ...] = ()
    # (sha256, path) of the file each medium was read from, so a record can keep it.
    media_files: tuple[tuple[str, str], ...] = ()
    # The turns keep the text as typed; this neutralises it on the way into the prompt.
    text_guard: TextGuard = GENERIC

    @property
    def images(self) -> list[PreparedImage]:
        return [m for t in self.turns for m in t.media if isinstance(m, PreparedImage)]

    @property
    def audios(self) -> list[PreparedAudio]:
        return [m for t in self.turns for m in t.media if isinstance(m, PreparedAudio)]


@dataclass(frozen=True)
class _Draft:
    turns: list[Turn]
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- planning

def choose_adapter(turns: Iterable[Turn]) -> Adapter | None:
    """Vision when the request holds any image; speech when it holds audio only."""
    media = [m for turn in turns for m in turn.media]
    if any(isinstance(m, PreparedImage) for m in media):
        return "vision"
    if media:
        return "speech"
    return None


def plan_request(system: str, turns: Sequence[Turn], sampling: Sampling, limits: PromptLimits,
                 count_text_tokens: Callable[[str], int]) -> ChatRequest:
    """Fits the conversation into the model's limits; raises `BadInput` / `PromptTooLong`."""
    if not turns or turns[-1].role != "user":
        raise BadInput("There is no question to answer: send a message first.")
    _check_newest_turn(turns[-1], limits)
    draft = _Draft(list(turns))
    _drop_oldest_media(draft, PreparedImage, limits.max_images, "image")
    _drop_oldest_media(draft, PreparedAudio, limits.max_audios, "audio clip")
    guard = limits.text_guard
    room = limits.max_model_len - MIN_ANSWER_TOKENS
    # Each turn is counted once, however many are left out; and no single call to the
    # tokenizer (which holds the interpreter while it runs) gets more than one turn.
    counts = _TurnCounts(system, count_text_tokens, guard)
    tokens = counts.of(draft.turns)
    while tokens.total > room and _drop_one_old_item(draft):
        tokens = counts.of(draft.turns)
    if tokens.total > room:
        raise PromptTooLong(_too_long_message(tokens, limits.max_model_len))
    max_tokens = min(sampling.max_tokens, limits.max_model_len - tokens.total)
    return ChatRequest(system=system, turns=tuple(draft.turns),
                       sampling=replace(sampling, max_tokens=max_tokens),
                       adapter=choose_adapter(draft.turns), tokens=tokens,
                       notes=tuple(draft.notes), text_guard=guard)


def _check_newest_turn(turn: Turn, limits: PromptLimits) -> None:
    images = sum(isinstance(m, PreparedImage) for m in turn.media)
    audios = sum(isinstance(m, PreparedAudio) for m in turn.media)
    if images > limits.max_images:
        raise BadInput(f"{images} images attached; this model takes at most "
                       f"{limits.max_images} per prompt. Remove some and send again.")
    if audios > limits.max_audios:
        raise BadInput(f"{audios} audio clips attached; this model takes at most "
                       f"{limits.max_audios} per prompt. Remove some and send again.")


def _drop_oldest_media(draft: _Draft, kind: type, limit: int, label: str) -> None:
    positions = [(t, i) for t, turn in enumerate(draft.turns)
                 for i, part in enumerate(turn.parts) if isinstance(part, kind)]
    for turn_index, part_index in positions[:max(0, len(positions) - limit)]:
        _remove_part(draft, turn_index, part_index, f"earlier {label} left out "
                     f"(at most {limit} per prompt)")


def _drop_one_old_item(draft: _Draft) -> bool:
    """Leaves out the oldest medium before the newest turn, else the oldest turn pair."""
    for turn_index, turn in enumerate(draft.turns[:-1]):
        for part_index, part in enumerate(turn.parts):
            if isinstance(part, PreparedImage | PreparedAudio):
                _remove_part(draft, turn_index, part_index, "earlier media left out to fit "
                             "the context")
                return True
    if len(draft.turns) > 1:
        dropped = 2 if len(draft.turns) > 2 else 1
        del draft.turns[:dropped]
        _note(draft, "oldest messages left out to fit the context")
        return True
    return False


def _remove_part(draft: _Draft, turn_index: int, part_index: int, reason: str) -> None:
    turn = draft.turns[turn_index]
    removed = turn.parts[part_index]
    name = getattr(removed, "name", "")
    draft.turns[turn_index] = Turn(turn.role, turn.parts[:part_index] + turn.parts[part_index + 1:])
    _note(draft, f"{name}: {reason}" if name else reason)


def _note(draft: _Draft, note: str) -> None:
    if note not in draft.notes:
        draft.notes.append(note)


class _TurnCounts:
    """Tokens of the text as sent (neutralised), plus the media's placeholder tokens, by
    adding up each turn's, each turn counted once. A turn's text sits between special
    tokens (`<|user|>` ... `<|end|>`), which tokenizers never merge across, so its count
    does not depend on its neighbours. Each medium is counted as one special token and
    taken off again: the model's processor replaces a placeholder by special tokens before
    tokenizing, so the text on either side of it is tokenized apart, with nothing between."""

    def __init__(self, system: str, count_text_tokens: Callable[[str], int],
                 guard: TextGuard) -> None:
        self.count, self.guard = count_text_tokens, guard
        self.fixed = count_text_tokens(render_phi4_prompt(system, [], guard=guard))
        self._known: dict[int, tuple[Turn, int]] = {}  # by id; the turn keeps the id unique

    def of(self, turns: Sequence[Turn]) -> TokenCount:
        media = [m for t in turns for m in t.media]
        return TokenCount(
            text=self.fixed + sum(self._turn(turn) for turn in turns),
            image=sum(m.tokens for m in media if isinstance(m, PreparedImage)),
            audio=sum(m.tokens for m in media if isinstance(m, PreparedAudio)))

    def _turn(self, turn: Turn) -> int:
        known = self._known.get(id(turn))
        if known is None or known[0] is not turn:
            body = _join(_segments(turn, {"image": 0, "audio": 0}, self.guard, MEDIA_MARKER))
            known = (turn, self.count(f"<|{turn.role}|>{body}<|end|>") - len(turn.media))
            self._known[id(turn)] = known
        return known[1]


def _too_long_message(tokens: TokenCount, max_model_len: int) -> str:
    return (f"This message needs {tokens.total:,} tokens (text {tokens.text:,}, images "
            f"{tokens.image:,}, audio {tokens.audio:,}) plus at least {MIN_ANSWER_TOKENS} "
            f"for the answer, but the model's context holds {max_model_len:,}. Shorten the "
            "text, use a smaller image or a shorter recording, or clear the chat.")


# ---------------------------------------------------------------- rendering

def render_phi4_prompt(system: str, turns: Sequence[Turn], *, with_placeholders: bool = True,
                       guard: TextGuard = GENERIC, media_marker: str | None = None) -> str:
    """Phi-4's chat format; media placeholders numbered across the whole prompt, free text
    neutralised by `guard`. `media_marker` stands in for every medium instead (for
    counting); `with_placeholders=False` leaves media out."""
    counters = {"image": 0, "audio": 0}
    pieces = [f"<|system|>{guard.neutralise(system)}<|end|>"] if system.strip() else []
    marker = media_marker if media_marker is not None else with_placeholders
    for turn in turns:
        body = _join(_segments(turn, counters, guard, marker))
        pieces.append(f"<|{turn.role}|>{body}<|end|>")
    pieces.append("<|assistant|>")
    return "".join(pieces)


def prompt_as_sent(request: ChatRequest) -> str:
    """The Phi-4 prompt the engine is given for `request`."""
    return render_phi4_prompt(request.system, request.turns, guard=request.text_guard)


def _segments(turn: Turn, counters: dict[str, int], guard: TextGuard,
              placeholders: bool | str) -> list[tuple[str, bool]]:
    """A turn's body as (segment, is_text): each run of text parts between two media,
    neutralised as one piece, and the media's placeholders (`placeholders` True), a
    marker for each (a string), or nothing (False)."""
    segments: list[tuple[str, bool]] = []
    for is_text, group in groupby(turn.parts, key=lambda part: isinstance(part, str)):
        if is_text:
            text = "\n".join(part for part in group if isinstance(part, str))
            segments.append((guard.neutralise(text), True))
            continue
        for part in group:
            if isinstance(part, PreparedImage | PreparedAudio):
                kind = "image" if isinstance(part, PreparedImage) else "audio"
                counters[kind] += 1
                if isinstance(placeholders, str):
                    segments.append((placeholders, False))
                elif placeholders:
                    segments.append((f"<|{kind}_{counters[kind]}|>", False))
    return segments


def _join(segments: list[tuple[str, bool]]) -> str:
    # Placeholders sit directly before the text, as in the model card's examples.
    out = ""
    after_text = False
    for segment, is_text in segments:
        if is_text and after_text:
            out += "\n"
        out += segment
        after_text = is_text
    return out


def render_openai_messages(system: str, turns: Sequence[Turn],
                           encode_image: Callable[[PreparedImage], str],
                           encode_audio: Callable[[PreparedAudio], str], *,
                           guard: TextGuard = GENERIC) -> list[dict[str, Any]]:
    """OpenAI chat messages: images as data URLs, audio as base64 WAV `input_audio`, free
    text neutralised by `guard` (the server applies the chat template and tokenizes the
    result with special tokens recognised)."""
    messages: list[dict[str, Any]] = []
    if system.strip():
        messages.append({"role": "system", "content": guard.neutralise(system)})
    for turn in turns:
        if turn.role == "assistant":
            messages.append({"role": "assistant", "content": guard.neutralise(turn.text)})
            continue
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, PreparedImage):
                content.append({"type": "image_url", "image_url": {"url": encode_image(part)}})
            elif isinstance(part, PreparedAudio):
                content.append({"type": "input_audio",
                                "input_audio": {"data": encode_audio(part), "format": "wav"}})
        if turn.text:
            content.append({"type": "text", "text": guard.neutralise(turn.text)})
        messages.append({"role": "user", "content": content})
    return messages
