"""Text of the page's fixed parts: the header with its model badge, the engine's state,
the random-weights banner and the engine panel. Pure functions of what the engine
reports; HTML is escaped here and nowhere else."""

from __future__ import annotations

import time
from html import escape

from phi4ui.core.engine import EngineInfo, Status
from phi4ui.core.stats import EngineSnapshot, snapshot_rows

TITLE = "phi4ui"
TAGLINE = "Chat with Phi-4-multimodal: text, images and speech in, text out."
RANDOM_BANNER = (
    '<div class="p4-banner" id="random-banner" role="note"><strong>Random weights.</strong> '
    "This demo runs a tiny random-weight Phi-4-multimodal because no GPU or model weights "
    "are available here. "
    "Answers are noise; the streaming, timings and statistics are real.</div>"
)


def header_html(info: EngineInfo, status: Status) -> str:
    """Title, badges (model, revision, engine, state) and, for random weights, the banner."""
    badges = [f'<span class="p4-badge p4-model" title="Model">{escape(info.model)}</span>']
    if info.revision:
        badges.append(f'<span class="p4-badge" title="Revision">'
                      f"{escape(_short_revision(info.revision))}</span>")
    where = f"{info.kind} engine" + (f" · {info.device}" if info.device else "")
    badges.append(f'<span class="p4-badge" title="Engine">{escape(where)}</span>')
    badges.append(f'<span class="p4-badge p4-state p4-state-{status.state}" '
                  f'title="Engine state">{_state_word(status)}</span>')
    banner = RANDOM_BANNER if info.random_weights else ""
    return (f'<header class="p4-header"><div class="p4-titles"><h1>{TITLE}</h1>'
            f'<span class="p4-tagline">{escape(TAGLINE)}</span></div>'
            f'<div class="p4-badges">{"".join(badges)}</div></header>{banner}')


def status_text(status: Status, now: float | None = None) -> str:
    """A sentence while the engine loads or after it failed; empty once it is ready."""
    waited = (now if now is not None else time.monotonic()) - status.since
    if status.state == "loading":
        return (f"**Loading the model** ({status.message}, {waited:.0f} s so far). The page "
                "works already; answers start once the model is ready.")
    if status.state == "restarting":
        return (f"**The engine stopped and is restarting** ({status.message}, {waited:.0f} s "
                "so far). Your conversation is kept; send again once it is ready.")
    if status.state == "failed":
        return (f"**The engine is unavailable:** {status.message}. Your conversation is "
                "kept; send again once it is back.")
    return ""


def live_markdown(snapshot: EngineSnapshot | None, rate: float | None) -> str:
    if snapshot is None:
        return "The engine's figures appear here once the model has loaded."
    rows = [("Generating now", "n/a" if rate is None else f"{rate:.1f} tok/s")]
    rows += snapshot_rows(snapshot)
    return _table(rows)


def engine_settings_markdown(info: EngineInfo) -> str:
    images = f"{info.max_images}"
    if info.max_images:
        images += f" (each up to {info.dynamic_hd} crops of 448 px)"
    rows = [
        ("Model", f"`{info.model}`"),
        ("Revision", f"`{info.revision}`" if info.revision else "n/a"),
        ("Engine", f"{info.kind}" + (f" on {info.device}" if info.device else "")),
        ("Context length", f"{info.max_model_len:,} tokens" if info.max_model_len else "n/a"),
        ("Images per prompt", images),
        ("Image crops (dynamic_hd)", f"{info.dynamic_hd}"
         + (f", {info.dynamic_hd_source}" if info.dynamic_hd_source else "")),
        ("Audio clips per prompt", str(info.max_audios)),
        ("Adapters", "<br>".join(f"{name}: `{path}`" for name, path in info.adapters.items())
         or "none"),
        ("Weights", "random (tiny test model)" if info.random_weights else "real"),
    ]
    text = _table(rows)
    if info.warnings:
        text += "\n\n**Warnings**\n\n" + "\n".join(f"- {w}" for w in info.warnings)
    return text


def _table(rows: list[tuple[str, str]]) -> str:
    return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def _short_revision(revision: str) -> str:
    is_commit = len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
    return revision[:12] if is_commit else revision


def _state_word(status: Status) -> str:
    return {"loading": "Loading…", "ready": "Ready", "restarting": "Restarting…",
            "failed": "Unavailable"}[status.state]
