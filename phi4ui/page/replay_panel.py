"""The review tab's replay of a bundle through the current engine, reported record by
record as `replay.replay_bundle` replays them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from phi4ui.core.conversation import NOT_YOURS
from phi4ui.core.engine import Engine
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import bundle, replay, staging
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.eval_common import internal, printable
from phi4ui.page.files import PageFiles, login_of

log = logging.getLogger(__name__)
UPLOAD_FIRST = "Upload a bundle first."


@dataclass
class ReplayParts:
    """The components the events refer to."""

    upload: gr.File
    start: gr.Button
    report: gr.Markdown


def build_replay_panel(engine: Engine, store: Store, files: PageFiles) -> None:
    wire(render(), ReplayHandlers(engine, store, files))


def render() -> ReplayParts:
    with gr.Accordion("Replay a bundle", open=False, elem_id="replay-panel"):
        upload = gr.File(file_types=[".zip"], label="Bundle (.zip)", elem_id="replay-file")
        start = gr.Button("Replay through the current engine", elem_id="replay-run")
        report = gr.Markdown(elem_id="replay-report")
    return ReplayParts(upload=upload, start=start, report=report)


def wire(p: ReplayParts, h: ReplayHandlers) -> None:
    p.start.click(h.on_replay, [p.upload], [p.report])


class ReplayHandlers:
    """What the replay button does, for one page's engine and store."""

    def __init__(self, engine: Engine, store: Store, files: PageFiles) -> None:
        self.engine = engine
        self.store = store
        self.files = files

    async def on_replay(self, path: Any, request: gr.Request) -> AsyncIterator[str]:
        if not path:
            yield eval_views.escape(UPLOAD_FIRST)
            return
        if not isinstance(path, str) or not self.files.checker(request)(path):
            yield eval_views.escape(NOT_YOURS)
            return
        with staging.job_folder("replay") as folder:  # its media go when the replay ends
            async for shown in replay_report(self.engine, self.store, Path(path), folder,
                                             user=login_of(request)):
                yield shown


async def replay_report(engine: Engine, store: Store, path: Path, folder: Path, *,
                        user: str = "") -> AsyncIterator[str]:
    """Replays the bundle at `path` (media extracted in `folder`), one line per record and
    a last line that sums them up, whatever happens to a record. `user`: the login name
    kept on the new records."""
    try:
        opened = await asyncio.to_thread(bundle.read_bundle, path, folder)
    except Phi4UIError as error:
        yield f"⚠️ {eval_views.escape(str(error))} Nothing was replayed."
        return
    except Exception as error:
        log.exception("reading the bundle %s failed", path.name)
        yield f"⚠️ {eval_views.escape(internal(error))} Nothing was replayed."
        return
    total = len(opened.records)
    yield f"Replaying {total} record(s)…"
    lines: list[str] = []
    results: list[replay.ReplayOutcome] = []
    try:
        async for result in replayed(engine, opened, store, user):
            results.append(result)
            lines.append(f"- {eval_views.escape(printable(replay.describe(result)))}")
            yield "\n".join(lines)
    except Exception as error:
        log.exception("replaying %s failed", path.name)
        lines.append(f"- ⚠️ Stopped after {len(results)} of {total} record(s): "
                     f"{eval_views.escape(internal(error))}")
    yield "\n".join([*lines, "", f"**{replay.replay_summary(results, total)}**"])


async def replayed(engine: Engine, opened: bundle.Bundle, store: Store | None,
                   user: str) -> AsyncIterator[replay.ReplayOutcome]:
    """Each outcome of `replay.replay_bundle` as soon as it is known; raises what stopped
    the replay. Closing this iterator (the page's Stop, a closed tab) cancels the replay."""
    outcomes: asyncio.Queue[replay.ReplayOutcome] = asyncio.Queue()
    run = asyncio.ensure_future(replay.replay_bundle(engine, opened, store=store, user=user,
                                                     on_result=outcomes.put_nowait))
    next_outcome: asyncio.Future[replay.ReplayOutcome] | None = None
    try:
        while True:
            next_outcome = asyncio.ensure_future(outcomes.get())
            await asyncio.wait({next_outcome, run}, return_when=asyncio.FIRST_COMPLETED)
            if not next_outcome.done():
                break
            yield next_outcome.result()
        while not outcomes.empty():  # those that came with the last one
            yield outcomes.get_nowait()
        run.result()
    finally:
        for pending in (next_outcome, run):
            if pending is not None:
                pending.cancel()
