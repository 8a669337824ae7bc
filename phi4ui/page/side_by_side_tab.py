"""The side by side tab: one input, two configurations (engine, adapter, temperature), both
answers streaming with their statistics, and a vote stored as a rating on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.core.chat import Sampling
from phi4ui.core.conversation import checked_message
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import (
    DEFAULT_SYSTEM,
    NEW_TOKENS_STEP,
    SLIDER_STEP,
    TEMPERATURE_RANGE,
)
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import compare
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.eval_common import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_RANGE,
    RECORDING_OFF,
    Outputs,
    bind,
    text_of,
    warn,
)
from phi4ui.page.files import PageFiles, login_of
from phi4ui.page.gradio_workarounds import NO_PROGRESS

TWO_ENGINES = "Embedded vs remote"
PRESETS = {
    "Adapter on vs off": {"adapters": ("auto", "none"), "temperatures": (0.0, 0.0)},
    "Two temperatures": {"adapters": ("auto", "auto"), "temperatures": (0.0, 1.0)},
    TWO_ENGINES: {"adapters": ("auto", "auto"), "temperatures": (0.0, 0.0)},
}
WINNERS = {"left": "⬅️ Left is better", "tie": "Tie", "right": "Right is better ➡️"}
STORED = {"left": "Stored: left is better.", "right": "Stored: right is better.",
          "tie": "Stored: a tie."}
SEND_FIRST = "Send a message first."
SHOWN = Outputs("left_answer", "left_stats", "right_answer", "right_stats", "pair",
                "vote_status")


@dataclass
class Side:
    """One configuration's controls and its answer."""

    engine: gr.Dropdown
    adapter: gr.Radio
    temperature: gr.Slider
    answer: gr.Markdown
    stats: gr.Markdown


@dataclass
class SideBySideParts:
    """The components the events refer to."""

    preset: gr.Dropdown
    left: Side
    right: Side
    system: gr.Textbox
    max_tokens: gr.Slider
    textbox: gr.MultimodalTextbox
    votes: dict[str, gr.Button]  # winner -> its button
    vote_comment: gr.Textbox
    vote_status: gr.Markdown
    pair: gr.State  # the compare.Pair shown last

    def controls(self) -> list[Any]:
        return [c for side in (self.left, self.right)
                for c in (side.engine, side.adapter, side.temperature)]

    @property
    def left_answer(self) -> gr.Markdown:
        return self.left.answer

    @property
    def left_stats(self) -> gr.Markdown:
        return self.left.stats

    @property
    def right_answer(self) -> gr.Markdown:
        return self.right.answer

    @property
    def right_stats(self) -> gr.Markdown:
        return self.right.stats


def build_side_by_side_tab(engines: Mapping[str, Engine], store: Store | None,
                           files: PageFiles, *, system: str = DEFAULT_SYSTEM) -> None:
    """`engines`: name -> engine, e.g. {"embedded": e}."""
    names = list(engines)
    wire(render(names, system), SideBySideHandlers(engines, store, files))


def render(names: list[str], system: str) -> SideBySideParts:
    # A short label: four tabs must fit a phone's width.
    with gr.Tab("Compare", id="side-by-side", elem_id="tab-side-by-side"):
        gr.Markdown("Side by side: one message answered by two configurations at once, both "
                    "streaming with their statistics. Vote for the better answer; the vote is "
                    "stored as a rating on both.")
        presets = [p for p in PRESETS if p != TWO_ENGINES or len(names) > 1]
        preset = gr.Dropdown(presets, value=presets[0], label="Compare", elem_id="sbs-preset")
        with gr.Row(equal_height=False):
            with gr.Column():
                left = _render_side(0, "Left", names)
            with gr.Column():
                right = _render_side(1, "Right", names)
        with gr.Accordion("Settings for both", open=False, elem_id="sbs-settings"):
            system_box = gr.Textbox(system, label="System prompt", lines=2, elem_id="sbs-system")
            max_tokens = gr.Slider(*MAX_NEW_TOKENS_RANGE, value=DEFAULT_MAX_NEW_TOKENS,
                                   step=NEW_TOKENS_STEP, label="Max new tokens",
                                   elem_id="sbs-max-tokens")
        textbox = gr.MultimodalTextbox(
            elem_id="sbs-input", file_types=["image", "audio"], file_count="multiple",
            sources=["upload", "microphone"], show_label=False,
            placeholder="One message, answered by both configurations…")
        with gr.Row():
            votes = {winner: gr.Button(label, elem_id=f"sbs-vote-{winner}")
                     for winner, label in WINNERS.items()}
        vote_comment = gr.Textbox(label="Why (optional)", elem_id="sbs-vote-comment")
        vote_status = gr.Markdown(elem_id="sbs-vote-status")
        pair = gr.State(None)
    return SideBySideParts(preset=preset, left=left, right=right, system=system_box,
                           max_tokens=max_tokens, textbox=textbox, votes=votes,
                           vote_comment=vote_comment, vote_status=vote_status, pair=pair)


def _render_side(index: int, title: str, names: list[str]) -> Side:
    return Side(
        engine=gr.Dropdown(names, value=names[0], label=f"{title} engine",
                           visible=len(names) > 1, elem_id=f"sbs-{index}-engine"),
        adapter=gr.Radio(list(compare.ADAPTER_CHOICES), value="auto" if index == 0 else "none",
                         label=f"{title} adapter (auto: the planner's choice)",
                         elem_id=f"sbs-{index}-adapter"),
        temperature=gr.Slider(*TEMPERATURE_RANGE, value=0.0, step=SLIDER_STEP,
                              label=f"{title} temperature", elem_id=f"sbs-{index}-temperature"),
        answer=gr.Markdown(elem_id=f"sbs-{index}-answer", min_height=120),
        stats=gr.Markdown(elem_id=f"sbs-{index}-stats"),
    )


def wire(p: SideBySideParts, h: SideBySideHandlers) -> None:
    p.preset.change(h.on_preset, [p.preset], p.controls(), **NO_PROGRESS)
    run = p.textbox.submit(h.on_submit, [p.textbox, p.system, p.max_tokens, *p.controls()],
                           SHOWN.components(p), **NO_PROGRESS)
    p.textbox.stop(None, None, None, cancels=[run])
    for winner, button in p.votes.items():
        button.click(bind(h.on_vote, winner=winner), [p.pair, p.vote_comment],
                     [p.vote_status], **NO_PROGRESS)


class SideBySideHandlers:
    """What each event does, for one page's engines and store."""

    def __init__(self, engines: Mapping[str, Engine], store: Store | None,
                 files: PageFiles) -> None:
        self.engines = engines
        self.names = list(engines)
        self.store = store
        self.files = files

    def on_preset(self, name: str) -> list[Any]:
        """The six controls' values (engine, adapter, temperature; left, then right)."""
        chosen = PRESETS[name]
        engines_now = self.names[:2] if name == TWO_ENGINES else [self.names[0]] * 2
        return [value for i in range(2) for value in (engines_now[i], chosen["adapters"][i],
                                                      chosen["temperatures"][i])]

    async def on_submit(self, message: Any, system_text: Any, tokens: float,
                        left_engine: str, left_adapter: compare.AdapterChoice,
                        left_temperature: float, right_engine: str,
                        right_adapter: compare.AdapterChoice, right_temperature: float,
                        request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        try:
            checked = checked_message(message, self.files.checker(request))
        except Phi4UIError as error:
            warn(error)
            return
        both = (self.configuration(left_engine, left_adapter, left_temperature, tokens),
                self.configuration(right_engine, right_adapter, right_temperature, tokens))
        async for shown in compare.compare(both, [], checked, text_of(system_text),
                                           store=self.store, user=login_of(request)):
            yield shown_pair(shown)

    def configuration(self, engine_name: str, adapter: compare.AdapterChoice,
                      temperature: float, tokens: float) -> compare.Configuration:
        return compare.Configuration(
            f"{engine_name} · adapter {adapter} · temperature {temperature:g}",
            self.engines[engine_name], Sampling(temperature=float(temperature), top_p=1.0,
                                                max_tokens=int(tokens)), adapter)

    async def on_vote(self, current: compare.Pair | None, comment: str, *, winner: str) -> Any:
        if self.store is None:
            return RECORDING_OFF
        if current is None:
            return eval_views.escape(SEND_FIRST)
        try:
            await compare.vote(self.store, current, winner,  # type: ignore[arg-type]
                               comment or "")
        except Phi4UIError as error:
            warn(error)
            return gr.skip()
        return eval_views.escape(STORED[winner])


def shown_pair(pair: compare.Pair) -> tuple[Any, ...]:
    """Both answers with their statistics; the vote's status cleared for the new pair."""
    return SHOWN(left_answer=eval_views.side_answer(pair.left),
                 left_stats=eval_views.side_stats(pair.left),
                 right_answer=eval_views.side_answer(pair.right),
                 right_stats=eval_views.side_stats(pair.right), pair=pair, vote_status="")
