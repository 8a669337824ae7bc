"""Replaying recorded answers through the current engine, and what came of it.

Each record's request is rebuilt through the current engine's planner and checked,
before anything runs, to give exactly the recorded prompt and media hashes; then a new
answer is streamed. A record's sampling settings are checked when it is replayed
(`sampling_of`), so that one record with settings out of range is refused on its own,
and the others still run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from phi4ui.core import answer_stream
from phi4ui.core.chat import (
    Adapter,
    ChatRequest,
    MediaRef,
    Part,
    Sampling,
    Turn,
    plan_request,
    prompt_as_sent,
)
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import SEED_MAX, TEMPERATURE_RANGE, TOP_P_RANGE
from phi4ui.core.stats import RequestStats
from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation.bundle import Bundle, is_json_type
from phi4ui.evaluation.recording import record
from phi4ui.evaluation.store import AnswerRecord, Recorded, Store

log = logging.getLogger(__name__)


class ReplayRefused(BadInput):
    """One record cannot be replayed (its settings, the engine's answer); the others can."""


class ReplayMismatch(ReplayRefused):
    """The current engine would not send the recorded prompt or media."""


@dataclass(frozen=True)
class ReplayResult:
    original: AnswerRecord
    request: ChatRequest
    answer: str
    stats: RequestStats
    recorded: Recorded | None = None
    not_recorded: str | None = None  # why the new answer is not in the database

    @property
    def same_answer(self) -> bool:
        return self.answer == self.original.answer


ReplayOutcome = ReplayResult | ReplayRefused


def describe(result: ReplayOutcome) -> str:
    """A replayed record in one line, as the replay command and the page show it."""
    if isinstance(result, ReplayMismatch):
        return f"MISMATCH {result}"
    if not isinstance(result, ReplayResult):
        return f"REFUSED {result}"
    original, stats = result.original, result.stats
    media = len(original.media)
    same = "same answer" if result.same_answer else "different answer"
    not_recorded = f"; not recorded: {result.not_recorded}" if result.not_recorded else ""
    return (f"ok {original.id}: same prompt, same media ({media} file(s)); {same}; "
            f"{stats.summary()}{not_recorded}")


async def rebuild_request(engine: Engine, original: AnswerRecord) -> ChatRequest:
    """The recorded request, planned again by the current engine; raises `ReplayMismatch`
    unless the prompt and the media hashes are exactly the recorded ones."""
    files = {m.sha256: m.source for m in original.media}
    turns = [_turn(turn, files, original.id) for turn in original.turns]
    sources: dict[str, str] = {}
    sampling = sampling_of(original.sampling, engine.prompt_limits.max_model_len,
                           where=f"Record {original.id}: ")
    prepared, _ = await answer_stream.prepare_turns(turns, engine.media_limits, sources)
    request = plan_request(original.system, prepared, sampling, engine.prompt_limits,
                           engine.count_text_tokens)
    adapter = cast(Adapter | None, original.adapter)
    request = dataclasses.replace(request, adapter=adapter, media_files=tuple(sources.items()))
    check_same(original, request)
    return request


def check_same(original: AnswerRecord, request: ChatRequest) -> None:
    prompt = prompt_as_sent(request)
    if prompt != original.prompt:
        at = next((i for i, (a, b) in enumerate(zip(prompt, original.prompt, strict=False))
                   if a != b), min(len(prompt), len(original.prompt)))
        raise ReplayMismatch(
            f"Record {original.id}: the prompt differs from the recorded one at character {at} "
            f"(recorded {original.prompt[at:at + 40]!r}, now {prompt[at:at + 40]!r}). "
            + _mismatch_advice(original, request, prompt))
    hashes = [m.sha256 for m in request.images] + [m.sha256 for m in request.audios]
    recorded = [m.sha256 for m in original.media if m.kind == "image"] + \
               [m.sha256 for m in original.media if m.kind == "audio"]
    if hashes != recorded:
        raise ReplayMismatch(f"Record {original.id}: the media differ from the recorded ones "
                             f"(recorded {_short(recorded)}, now {_short(hashes)}).")


def _mismatch_advice(original: AnswerRecord, request: ChatRequest, prompt: str) -> str:
    if request.text_guard.restore(prompt) == original.prompt:
        return ("It was recorded by an older version that let typed control tokens act as "
                "such; they are now sent as plain text, so it cannot be replayed exactly.")
    return ("Start the engine with the recorded limits (context length, images and audio per "
            "prompt).")


async def replay(engine: Engine, original: AnswerRecord, *, store: Store | None = None,
                 user: str = "") -> ReplayResult:
    """Replays one record; raises `ReplayRefused` when it cannot be replayed, with the
    reason. `user`: the login name of whoever replays it, kept on the new record."""
    request = await rebuild_request(engine, original)
    try:
        final = await answer_stream.final_update(engine, request)
    except (BadInput, ValueError) as error:  # the engine's own check of the settings
        raise ReplayRefused(f"Record {original.id}: the engine refused it: {error}") from error
    if final is None or final.stats is None:
        raise ReplayRefused(f"Record {original.id}: the engine ended without an answer.")
    recorded, not_recorded = None, None
    if store is not None:
        try:
            recorded = await record(store, request, final.text, final.stats, engine.info,
                                    origin="replay", replay_of=original.id, user=user)
        except Exception as error:  # the answer is still worth reporting
            log.exception("recording the replay of %s failed", original.id)
            not_recorded = str(error)
    return ReplayResult(original, request, final.text, final.stats, recorded, not_recorded)


async def iter_replay(engine: Engine, bundle: Bundle, *, store: Store | None = None,
                      user: str = "") -> AsyncIterator[ReplayOutcome]:
    """Replays every record in turn, yielding each outcome; a record that cannot be
    replayed is yielded as its `ReplayRefused`, and the next one runs."""
    for original in bundle.records:
        yield await _replay_one(engine, original, store, user)


async def _replay_one(engine: Engine, original: AnswerRecord, store: Store | None,
                      user: str) -> ReplayOutcome:
    try:
        return await replay(engine, original, store=store, user=user)
    except ReplayRefused as refused:
        return refused
    except Phi4UIError as error:
        return ReplayRefused(f"Record {original.id}: {error}")
    except Exception as error:
        log.exception("replaying record %s failed", original.id)
        return ReplayRefused(f"Record {original.id}: internal error ({type(error).__name__}: "
                             f"{error}); see the app's log.")


async def replay_bundle(engine: Engine, bundle: Bundle, *, store: Store | None = None,
                        on_result: Callable[[ReplayOutcome], None] | None = None,
                        user: str = "") -> list[ReplayOutcome]:
    """Replays every record in turn; a record that cannot be replayed is reported, not run."""
    results: list[ReplayOutcome] = []
    async for result in iter_replay(engine, bundle, store=store, user=user):
        results.append(result)
        if on_result:
            on_result(result)
    return results


def replay_summary(results: Sequence[ReplayOutcome], total: int | None = None) -> str:
    """One line: how many records were replayed, gave the same answer, were refused."""
    replayed = [r for r in results if isinstance(r, ReplayResult)]
    same = sum(r.same_answer for r in replayed)
    count = len(results) if total is None else total
    return (f"{count} record(s): {len(replayed)} replayed, {same} with the same answer, "
            f"{len(results) - len(replayed)} refused.")


# ---------------------------------------------------------------- sampling

MIN_MAX_TOKENS = 1  # the page's slider starts higher, but batches may ask for fewer
_SAMPLING_NAMES = tuple(f.name for f in dataclasses.fields(Sampling))


def sampling_of(values: Mapping[str, Any], max_tokens_limit: int, *, where: str = "",
                named: Callable[[str], str] = lambda field: f"sampling '{field}'",
                ) -> Sampling:
    """Recorded (or typed) sampling settings, checked against the ranges the page allows
    (`phi4ui.core.generation_settings`); raises `ReplayRefused` naming the field, its value and what
    works. Nothing is clamped: a replay with other settings would not be a replay.
    A setting that is missing takes `Sampling`'s default. `where` begins each message;
    `named` names a field in it (a command line names its flag)."""
    unknown = sorted(str(key) for key in values if key not in _SAMPLING_NAMES)
    if unknown:
        raise ReplayRefused(f"{where}sampling has setting(s) this version does not know: "
                            f"{_shown_value(', '.join(unknown))} (known: "
                            f"{', '.join(_SAMPLING_NAMES)}).")
    default = Sampling()
    seed = values.get("seed", default.seed)

    def number(field: str, fallback: float, low: float, high: float, **kind: bool) -> float:
        return _in_range(values, field, fallback, low, high, f"{where}{named(field)}", **kind)

    return Sampling(
        temperature=number("temperature", default.temperature, *TEMPERATURE_RANGE),
        top_p=number("top_p", default.top_p, *TOP_P_RANGE),
        max_tokens=int(number("max_tokens", default.max_tokens, MIN_MAX_TOKENS,
                              max_tokens_limit, whole=True)),
        seed=None if seed is None else int(number("seed", 0, 0, SEED_MAX, whole=True,
                                                  nullable=True)),
        ignore_eos=_flag(values.get("ignore_eos", default.ignore_eos),
                         f"{where}{named('ignore_eos')}"),
    )


def _in_range(values: Mapping[str, Any], field: str, default: float, low: float,
              high: float, said: str, *, whole: bool = False, nullable: bool = False) -> float:
    value = values.get(field, default)
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if is_json_type(value, kinds) and low <= value <= high:  # NaN and infinities compare false
        return value
    kind = "a whole number" if whole else "a number"
    allowed = f"{kind} from {_number(low)} to {_number(high)}" + (" or null" if nullable
                                                                  else "")
    raise ReplayRefused(f"{said} is {_shown_value(value)}; it must be {allowed}.")


def _flag(value: Any, said: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ReplayRefused(f"{said} is {_shown_value(value)}; it must be true or false.")


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _shown_value(value: Any) -> str:
    try:
        shown = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:59] + "…"


def _turn(turn: dict[str, Any], files: dict[str, str], record_id: str) -> Turn:
    parts: list[Part] = []
    for part in turn["parts"]:
        if part["type"] == "text":
            parts.append(part["text"])
            continue
        path = files.get(part["sha256"])
        if not path:
            raise ReplayMismatch(f"Record {record_id}: {part.get('name') or part['sha256']} was "
                                 "not kept when it was recorded (the media store was full), so "
                                 "this answer cannot be replayed.")
        parts.append(MediaRef(path))
    return Turn(turn["role"], tuple(parts))


def _short(hashes: Sequence[str]) -> str:
    return ", ".join(h[:12] for h in hashes) or "none"
