"""The batch tab: upload cases, run them with a progress bar, see the table and the summary,
download the results as CSV and JSON."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from phi4ui.core.chat import Sampling
from phi4ui.core.conversation import checked_files, checked_text
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import (
    DEFAULT_SYSTEM,
    NEW_TOKENS_STEP,
    SLIDER_STEP,
    TEMPERATURE_RANGE,
)
from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation import batch, staging
from phi4ui.evaluation.cases import PAGE_MAX_CASES, CaseFile, read_cases, stage_upload
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.eval_common import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_RANGE,
    export_folder,
    internal,
    printable,
    text_of,
    warn,
)
from phi4ui.page.files import PageFiles, login_of
from phi4ui.page.gradio_workarounds import NO_PROGRESS

log = logging.getLogger(__name__)
TABLE_EVERY_S = 0.5  # how often a running batch refreshes its table
CONCURRENCY_RANGE = (1, 64)
DEFAULT_CONCURRENCY = 8


class BatchView(NamedTuple):
    """What the tab shows, in the order of its outputs."""

    status: str
    rows: list[list[Any]]
    csv: Any = None  # a download button's update; hidden unless given
    json: Any = None

    @classmethod
    def of(cls, status: str, rows: list[list[Any]], csv: Any = None,
           json: Any = None) -> BatchView:
        hidden = gr.DownloadButton(visible=False)
        return cls(status, rows, hidden if csv is None else csv, hidden if json is None else json)


@dataclass
class BatchParts:
    """The components the events refer to."""

    case_files: gr.File
    concurrency: gr.Slider
    max_tokens: gr.Slider
    temperature: gr.Slider
    system: gr.Textbox
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    table: gr.Dataframe
    csv: gr.DownloadButton
    json: gr.DownloadButton


def build_batch_tab(engine: Engine, store: Store | None, files: PageFiles, *,
                    max_cases: int = PAGE_MAX_CASES) -> None:
    wire(render(max_cases, recording=store is not None),
         BatchHandlers(engine, store, files, max_cases))


def render(max_cases: int, *, recording: bool) -> BatchParts:
    with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
        gr.Markdown(
            "Upload a **.jsonl** or **.csv** of cases (`prompt`, optional `image`, `audio`, "
            "`expected`, `tags`, `id`, `task`, `pattern`) together with the files it names, "
            "or one **.zip** "
            f"holding them. The page runs up to {max_cases:,} cases; for more, use "
            "`python -m phi4ui batch cases.jsonl --out results/`."
            + ("" if recording else " Recording is off: results are not kept in the database."))
        case_files = gr.File(file_count="multiple", label="Cases and media",
                             elem_id="batch-files")
        with gr.Row():
            concurrency = gr.Slider(*CONCURRENCY_RANGE, value=DEFAULT_CONCURRENCY, step=1,
                                    label="Cases at once", elem_id="batch-concurrency")
            max_tokens = gr.Slider(*MAX_NEW_TOKENS_RANGE, value=DEFAULT_MAX_NEW_TOKENS,
                                   step=NEW_TOKENS_STEP, label="Max new tokens",
                                   elem_id="batch-max-tokens")
            temperature = gr.Slider(*TEMPERATURE_RANGE, value=0.0, step=SLIDER_STEP,
                                    label="Temperature", elem_id="batch-temperature")
        system = gr.Textbox(DEFAULT_SYSTEM, label="System prompt", elem_id="batch-system")
        with gr.Row():
            run = gr.Button("Run batch", variant="primary", elem_id="batch-run")
            stop = gr.Button("Stop", elem_id="batch-stop")
        status = gr.Markdown(elem_id="batch-status")
        table = gr.Dataframe(headers=eval_views.BATCH_COLUMNS, type="array", interactive=False,
                             wrap=True, elem_id="batch-table")
        with gr.Row():
            csv = gr.DownloadButton("Download CSV", visible=False, elem_id="batch-csv")
            json = gr.DownloadButton("Download JSON", visible=False, elem_id="batch-json")
    return BatchParts(case_files=case_files, concurrency=concurrency, max_tokens=max_tokens,
                      temperature=temperature, system=system, run=run, stop=stop,
                      status=status, table=table, csv=csv, json=json)


BATCH_API_DESCRIPTION = (
    "Runs a batch of cases: `case_files` are JSONL/CSV case files (and the media they name), "
    "each as `gradio_client.handle_file(path)`; then the number of cases run at once, max new "
    "tokens, temperature and the system prompt. Returns a summary, the results table and the "
    "results as CSV and JSON files.")


def wire(p: BatchParts, h: BatchHandlers) -> None:
    run = p.run.click(h.on_run, [p.case_files, p.concurrency, p.max_tokens, p.temperature,
                                 p.system],
                      [p.status, p.table, p.csv, p.json], concurrency_limit=1,
                      api_name="batch", api_description=BATCH_API_DESCRIPTION)
    p.stop.click(h.on_stop, None, [p.status], cancels=[run], **NO_PROGRESS)


class BatchHandlers:
    """What each event does, for one page's engine and store."""

    def __init__(self, engine: Engine, store: Store | None, files: PageFiles,
                 max_cases: int) -> None:
        self.engine = engine
        self.store = store
        self.files = files
        self.max_cases = max_cases

    async def on_run(self, uploads: list[str] | None, workers: float, tokens: float,
                     heat: float, system_text: str, request: gr.Request,
                     progress: gr.Progress = gr.Progress()  # noqa: B008
                     ) -> AsyncIterator[BatchView]:
        # The staged uploads go when the run ends, fails or is stopped.
        with staging.job_folder("batch") as folder:
            try:
                uploads = checked_files(uploads or [], self.files.checker(request))
                case_file = await asyncio.to_thread(load_cases, uploads, self.max_cases,
                                                    folder)
                options = batch.BatchOptions(checked_text(text_of(system_text)), Sampling(
                    temperature=float(heat), top_p=1.0, max_tokens=int(tokens)),
                    int(workers), user=login_of(request))
            except Phi4UIError as error:
                warn(error)
                yield BatchView.of(f"⚠️ {eval_views.escape(str(error))}", [])
                return
            except Exception as error:
                log.exception("reading uploaded cases failed")
                yield BatchView.of(f"⚠️ {eval_views.escape(internal(error))}", [])
                return
            results: list[batch.CaseResult] = []
            try:
                async for shown in batch_updates(self.engine, self.store, self.files, request,
                                                 case_file, options, results, progress):
                    yield shown
            except Exception as error:
                log.exception("the batch run failed")
                yield BatchView.of(failed_text(results, len(case_file.cases), error,
                                               self.store is not None), shown_rows(results))

    async def on_stop(self) -> str:
        return stopped_text(self.store is not None)


async def batch_updates(engine: Engine, store: Store | None, files: PageFiles,
                        request: gr.Request, case_file: CaseFile,
                        options: batch.BatchOptions, results: list[batch.CaseResult],
                        progress: gr.Progress) -> AsyncIterator[BatchView]:
    """The page's updates while the batch runs, then its summary and downloads. `results`
    gathers the finished cases, so that a run that fails can still show them."""
    shown_at = 0.0
    async for step in batch.iter_batch(engine, case_file, options, store=store):
        if step.run is not None:
            yield await batch_end(step.run, files, request)
            return
        assert step.result is not None
        results.append(step.result)
        progress((step.done, step.total), desc="cases", unit="cases")
        if time.monotonic() - shown_at >= TABLE_EVERY_S or step.done == step.total:
            shown_at = time.monotonic()
            errors = sum(r.error is not None for r in results)
            yield BatchView.of(eval_views.batch_progress(step, errors), shown_rows(results))


async def batch_end(run: batch.BatchRun, files: PageFiles, request: gr.Request) -> BatchView:
    """The summary, the table and the downloads; without downloads when they could not be
    written, and then the summary says why."""
    summary = eval_views.batch_summary(run.summary, run.notes)
    try:
        csv_path, json_path = await asyncio.to_thread(batch.write_results, run,
                                                      export_folder())
        await asyncio.to_thread(files.grant, request, [csv_path, json_path])
    except Exception as error:
        log.exception("writing the results of batch %s failed", run.batch_id)
        return BatchView.of(f"{summary}\n\n⚠️ The CSV and JSON could not be written "
                            f"({eval_views.escape(printable(str(error)))}).",
                            shown_rows(run.results))
    return BatchView.of(summary, shown_rows(run.results),
                        gr.DownloadButton(value=str(csv_path), visible=True),
                        gr.DownloadButton(value=str(json_path), visible=True))


def shown_rows(results: Sequence[batch.CaseResult]) -> list[list[Any]]:
    """The table's rows, any text that cannot be encoded made printable."""
    return [[printable(cell) if isinstance(cell, str) else cell for cell in row]
            for row in eval_views.batch_rows(results)]


def failed_text(results: Sequence[batch.CaseResult], total: int, error: BaseException,
                recording: bool) -> str:
    kept = " and recorded" if recording and results else ""
    return (f"**Failed** after {len(results)} of {total} cases: "
            f"{eval_views.escape(internal(error))} The cases finished are in the table{kept}.")


def stopped_text(recording: bool) -> str:
    kept = "; they are recorded" if recording else ""
    return f"**Stopped.** The cases finished before Stop are in the table{kept}."


def load_cases(uploads: list[str] | None, max_cases: int, folder: Path) -> CaseFile:
    """The uploaded cases, staged in `folder`; their media may only be files uploaded with
    them, never other files of the server."""
    if not uploads:
        raise BadInput("Upload a .jsonl or .csv case file first.")
    return read_cases(stage_upload(uploads, folder), max_cases=max_cases, loose_media=True,
                      confine_to=folder)
