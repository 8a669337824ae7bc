"""The evaluation parts of the page: rating and exporting chat answers, and the side by
side, batch and review tabs. Layout and event wiring only; the work is done in
`recording`, `bundle`, `batch`, `compare`, `store`, and the text in `evalview`.

Each `build_*` function adds its components to the Blocks being built, so the
page calls them inside its own layout (see the README's evaluation section).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from html import escape as escape_html
from pathlib import Path
from typing import Any

import gradio as gr

from phi4ui.core import history as chat_history
from phi4ui.core.chat import Sampling
from phi4ui.core.conversation import (
    NOT_YOURS,
    Conversation,
    checked_files,
    checked_message,
    checked_text,
)
from phi4ui.core.engine import Engine
from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation import batch, bundle, compare, replay, staging
from phi4ui.evaluation.cases import PAGE_MAX_CASES, CaseFile, read_cases, stage_upload
from phi4ui.evaluation.review_query import ReviewFilter
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.files import PageFiles, login_of

log = logging.getLogger(__name__)
DEFAULT_SYSTEM = "You are a helpful assistant."
DEFAULT_TAGS = ["wrong", "unsafe", "slow", "incomplete", "great"]
RECORDING_OFF = ("Recording is off (`--record false`), so answers cannot be rated, exported "
                 "or reviewed here.")
REVIEW_NEEDS_LOGIN = ("Review lists every recorded answer of everyone, so on a public address "
                      "it needs a login: start the app with `PHI4UI_AUTH` or `--auth-file`.")
TABLE_EVERY_S = 0.5  # how often a running batch refreshes its table
PRESETS = {
    "Adapter on vs off": {"adapters": ("auto", "none"), "temperatures": (0.0, 0.0)},
    "Two temperatures": {"adapters": ("auto", "auto"), "temperatures": (0.0, 1.0)},
    "Embedded vs remote": {"adapters": ("auto", "auto"), "temperatures": (0.0, 0.0)},
}
SKIP = gr.skip


def _bind(handler: Callable[..., Awaitable[Any]], **fixed: Any) -> Callable[..., Awaitable[Any]]:
    """`handler` with some keyword arguments fixed, still a coroutine function to Gradio."""
    async def bound(*inputs: Any) -> Any:
        return await handler(*inputs, **fixed)

    return bound


def _export_folder() -> Path:
    # Under the system temp folder, which Gradio serves downloads from. Gradio copies the
    # file after the handler returns, so the folder is left to `staging.sweep`.
    return staging.new_folder("export")


async def _export_download(store: Store, ids: list[str], kind: str, detail: str,
                           files: PageFiles, request: gr.Request) -> Any:
    """A reproducibility bundle of the answers `ids`, as the download button's new state;
    only the visitor who asked for it may fetch it."""
    name = time.strftime(f"phi4ui-{kind}-%Y%m%d-%H%M%S.zip")
    try:
        path = await asyncio.to_thread(bundle.export_bundle, store, ids,
                                       _export_folder() / name)
        await asyncio.to_thread(files.grant, request, [path])
    except Phi4UIError as error:
        gr.Warning(escape_html(str(error)))
        return gr.DownloadButton(visible=False)
    return gr.DownloadButton(f"Download {name}{detail}", value=str(path), visible=True)


def _text(value: Any) -> str:
    """A text field's value as the browser sent it: text, or nothing."""
    return value if isinstance(value, str) else ""


def _split_tags(chosen: Any, more: Any) -> list[str]:
    picked = [tag for tag in chosen if isinstance(tag, str)] \
        if isinstance(chosen, list | tuple) else []
    return [*picked, *_text(more).split(",")]


def _tag_fields(tags: Sequence[str]) -> tuple[list[str], str]:
    return ([t for t in tags if t in DEFAULT_TAGS],
            ", ".join(t for t in tags if t not in DEFAULT_TAGS))


# ---------------------------------------------------------------- chat: rate and export

def build_chat_evaluation(chatbot: gr.Chatbot, conversation: gr.State, store: Store | None,
                          files: PageFiles) -> None:
    """Ratings (👍/👎 on the chatbot's answers, then a comment and tags) and the export of
    the conversation as a bundle. Put it under the chatbot. Both read the server's copy of
    the conversation (`conversation`, a `Conversation`), so a person rates and exports only
    the answers of their own session."""
    if store is None:
        gr.Markdown(RECORDING_OFF, elem_id="rating-off")
        return
    rated = gr.State(None)
    with gr.Accordion("Rate and export", open=False, elem_id="rate-panel"):
        status = gr.Markdown("Rate an answer with 👍 or 👎 under it; then add a comment or "
                             "tags here.", elem_id="rating-status")
        comment = gr.Textbox(label="Comment", lines=2, elem_id="rating-comment")
        tags = gr.CheckboxGroup(DEFAULT_TAGS, label="Tags", elem_id="rating-tags")
        more = gr.Textbox(label="More tags (comma-separated)", elem_id="rating-more-tags")
        save = gr.Button("Save comment and tags", elem_id="rating-save")
        with gr.Row():
            export = gr.Button("Export conversation", elem_id="export-conversation")
            download = gr.DownloadButton("Download bundle", visible=False,
                                         elem_id="export-download")

    async def on_like(chat: Conversation, like: gr.LikeData) -> tuple[Any, ...]:
        answer_id = chat_history.answer_id_at(chat.messages, like.index) \
            if isinstance(like.index, int | list | tuple) else None
        if answer_id is None:
            gr.Warning("This answer was not recorded, so it cannot be rated.")
            return SKIP(), SKIP(), SKIP(), SKIP(), SKIP()
        score = 1 if like.liked is True else -1 if like.liked is False else 0
        try:
            rating = await asyncio.to_thread(store.rate, answer_id, score)
        except Phi4UIError as error:
            gr.Warning(escape_html(str(error)))
            return SKIP(), SKIP(), SKIP(), SKIP(), SKIP()
        chosen, other = _tag_fields(rating.tags)
        return (answer_id, f"Rated answer `{answer_id[:8]}` "
                f"**{eval_views.RATING_WORDS[rating.score]}**. Add a comment or tags and save.",
                rating.comment, chosen, other)

    async def on_save(answer_id: str | None, text: Any, chosen: Any, other: Any) -> str:
        if answer_id is None:
            gr.Warning("Rate an answer with 👍 or 👎 first.")
            return SKIP()
        try:
            rating = await asyncio.to_thread(store.rate, answer_id, None, comment=_text(text),
                                             tags=_split_tags(chosen, other))
        except Phi4UIError as error:
            gr.Warning(escape_html(str(error)))
            return SKIP()
        tags_note = ": " + eval_views.escape(", ".join(rating.tags)) if rating.tags else ""
        return (f"Saved for answer `{answer_id[:8]}` (rated "
                f"**{eval_views.RATING_WORDS[rating.score]}**){tags_note}.")

    async def on_export(chat: Conversation, request: gr.Request) -> Any:
        return await _export_download(store, chat.answer_ids(), "conversation", "", files,
                                      request)

    chatbot.like(on_like, [conversation], [rated, status, comment, tags, more],
                 show_progress="hidden")
    save.click(on_save, [rated, comment, tags, more], [status], show_progress="hidden")
    export.click(on_export, [conversation], [download])


# ---------------------------------------------------------------- side by side

def build_side_by_side_tab(engines: Mapping[str, Engine], store: Store | None,
                           files: PageFiles, *, system: str = DEFAULT_SYSTEM) -> None:
    """One input, two configurations (engine, adapter, temperature), both answers streaming
    with their statistics, and a vote. `engines`: name -> engine, e.g. {"embedded": e}."""
    names = list(engines)
    # A short label: four tabs must fit a phone's width.
    with gr.Tab("Compare", id="side-by-side", elem_id="tab-side-by-side"):
        gr.Markdown("Side by side: one message answered by two configurations at once, both "
                    "streaming with their statistics. Vote for the better answer; the vote is "
                    "stored as a rating on both.")
        presets = [p for p in PRESETS if p != "Embedded vs remote" or len(names) > 1]
        preset = gr.Dropdown(presets, value=presets[0], label="Compare", elem_id="sbs-preset")
        sides: list[dict[str, Any]] = []
        with gr.Row(equal_height=False):
            for index, title in enumerate(("Left", "Right")):
                with gr.Column():
                    sides.append(_side_controls(index, title, names))
        with gr.Accordion("Settings for both", open=False, elem_id="sbs-settings"):
            system_box = gr.Textbox(system, label="System prompt", lines=2, elem_id="sbs-system")
            max_tokens = gr.Slider(16, 4096, value=256, step=16, label="Max new tokens",
                                   elem_id="sbs-max-tokens")
        textbox = gr.MultimodalTextbox(
            elem_id="sbs-input", file_types=["image", "audio"], file_count="multiple",
            sources=["upload", "microphone"], show_label=False,
            placeholder="One message, answered by both configurations…")
        with gr.Row():
            votes = [gr.Button(label, elem_id=f"sbs-vote-{winner}")
                     for winner, label in (("left", "⬅️ Left is better"), ("tie", "Tie"),
                                           ("right", "Right is better ➡️"))]
        vote_comment = gr.Textbox(label="Why (optional)", elem_id="sbs-vote-comment")
        vote_status = gr.Markdown(elem_id="sbs-vote-status")
        pair = gr.State(None)

    controls = [c for side in sides for c in (side["engine"], side["adapter"],
                                              side["temperature"])]

    def on_preset(name: str) -> list[Any]:
        chosen = PRESETS[name]
        engines_now = names[:2] if name == "Embedded vs remote" else [names[0], names[0]]
        return [value for i in range(2) for value in (engines_now[i], chosen["adapters"][i],
                                                      chosen["temperatures"][i])]

    async def on_submit(message: Any, system_text: Any, tokens: float, left_engine: str,
                        left_adapter: compare.AdapterChoice, left_temperature: float,
                        right_engine: str, right_adapter: compare.AdapterChoice,
                        right_temperature: float, request: gr.Request
                        ) -> AsyncIterator[tuple[Any, ...]]:
        def configuration(engine_name: str, adapter: compare.AdapterChoice,
                          temperature: float) -> compare.Configuration:
            return compare.Configuration(
                f"{engine_name} · adapter {adapter} · temperature {temperature:g}",
                engines[engine_name], Sampling(temperature=float(temperature), top_p=1.0,
                                               max_tokens=int(tokens)), adapter)

        try:
            checked = checked_message(message, files.checker(request))
        except Phi4UIError as error:
            gr.Warning(escape_html(str(error)))
            return
        both = (configuration(left_engine, left_adapter, left_temperature),
                configuration(right_engine, right_adapter, right_temperature))
        async for shown in compare.compare(both, [], checked, _text(system_text), store=store,
                                           user=login_of(request)):
            yield (*_pair_view(shown), shown, "")

    async def on_vote(current: compare.Pair | None, comment: str, *, winner: str) -> str:
        if store is None:
            return RECORDING_OFF
        if current is None:
            return "Send a message first."
        try:
            await compare.vote(store, current, winner, comment or "")  # type: ignore[arg-type]
        except Phi4UIError as error:
            gr.Warning(escape_html(str(error)))
            return SKIP()
        return {"left": "Stored: left is better.", "right": "Stored: right is better.",
                "tie": "Stored: a tie."}[winner]

    preset.change(on_preset, [preset], controls, show_progress="hidden")
    views = [c for side in sides for c in (side["answer"], side["stats"])]
    run = textbox.submit(on_submit, [textbox, system_box, max_tokens, *controls],
                         [*views, pair, vote_status], show_progress="hidden")
    textbox.stop(None, None, None, cancels=[run])
    for button, winner in zip(votes, ("left", "tie", "right"), strict=True):
        button.click(_bind(on_vote, winner=winner), [pair, vote_comment], [vote_status],
                     show_progress="hidden")


def _side_controls(index: int, title: str, names: list[str]) -> dict[str, Any]:
    return {
        "engine": gr.Dropdown(names, value=names[0], label=f"{title} engine",
                              visible=len(names) > 1, elem_id=f"sbs-{index}-engine"),
        "adapter": gr.Radio(list(compare.ADAPTER_CHOICES), value="auto" if index == 0 else "none",
                            label=f"{title} adapter (auto: the planner's choice)",
                            elem_id=f"sbs-{index}-adapter"),
        "temperature": gr.Slider(0.0, 2.0, value=0.0, step=0.05, label=f"{title} temperature",
                                 elem_id=f"sbs-{index}-temperature"),
        "answer": gr.Markdown(elem_id=f"sbs-{index}-answer", min_height=120),
        "stats": gr.Markdown(elem_id=f"sbs-{index}-stats"),
    }


def _pair_view(pair: compare.Pair) -> tuple[str, str, str, str]:
    return (eval_views.side_answer(pair.left), eval_views.side_stats(pair.left),
            eval_views.side_answer(pair.right), eval_views.side_stats(pair.right))


# ---------------------------------------------------------------- batch

def build_batch_tab(engine: Engine, store: Store | None, files: PageFiles, *,
                    max_cases: int = PAGE_MAX_CASES) -> None:
    """Upload cases, run them with a progress bar, see the table and summary, download."""
    with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
        gr.Markdown(
            "Upload a **.jsonl** or **.csv** of cases (`prompt`, optional `image`, `audio`, "
            "`expected`, `tags`, `id`) together with the files it names, or one **.zip** "
            f"holding them. The page runs up to {max_cases:,} cases; for more, use "
            "`python -m phi4ui batch cases.jsonl --out results/`."
            + ("" if store else " Recording is off: results are not kept in the database."))
        case_files = gr.File(file_count="multiple", label="Cases and media",
                             elem_id="batch-files")
        with gr.Row():
            concurrency = gr.Slider(1, 64, value=8, step=1, label="Cases at once",
                                    elem_id="batch-concurrency")
            max_tokens = gr.Slider(16, 4096, value=256, step=16, label="Max new tokens",
                                   elem_id="batch-max-tokens")
            temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature",
                                    elem_id="batch-temperature")
        system_box = gr.Textbox(DEFAULT_SYSTEM, label="System prompt", elem_id="batch-system")
        with gr.Row():
            run_button = gr.Button("Run batch", variant="primary", elem_id="batch-run")
            stop_button = gr.Button("Stop", elem_id="batch-stop")
        status = gr.Markdown(elem_id="batch-status")
        table = gr.Dataframe(headers=eval_views.BATCH_COLUMNS, type="array", interactive=False,
                             wrap=True, elem_id="batch-table")
        with gr.Row():
            csv_download = gr.DownloadButton("Download CSV", visible=False,
                                             elem_id="batch-csv")
            json_download = gr.DownloadButton("Download JSON", visible=False,
                                              elem_id="batch-json")

    async def on_run(uploads: list[str] | None, workers: float, tokens: float, heat: float,
                     system_text: str, request: gr.Request,
                     progress: gr.Progress = gr.Progress()  # noqa: B008
                     ) -> AsyncIterator[tuple[Any, ...]]:
        hidden = gr.DownloadButton(visible=False)
        # The staged uploads go when the run ends, fails or is stopped.
        with staging.job_folder("batch") as folder:
            try:
                uploads = checked_files(uploads or [], files.checker(request))
                case_file = await asyncio.to_thread(_load_cases, uploads, max_cases,
                                                    folder)
                options = batch.BatchOptions(checked_text(_text(system_text)), Sampling(
                    temperature=float(heat), top_p=1.0, max_tokens=int(tokens)),
                    int(workers), user=login_of(request))
            except Phi4UIError as error:
                gr.Warning(escape_html(str(error)))
                yield f"⚠️ {eval_views.escape(str(error))}", [], hidden, hidden
                return
            except Exception as error:
                log.exception("reading uploaded cases failed")
                yield f"⚠️ {eval_views.escape(_internal(error))}", [], hidden, hidden
                return
            results: list[batch.CaseResult] = []
            try:
                async for shown in _batch_updates(engine, store, files, request, case_file,
                                                  options, results, progress):
                    yield shown
            except Exception as error:
                log.exception("the batch run failed")
                yield (_batch_failed(results, len(case_file.cases), error, store is not None),
                       _shown_rows(results), hidden, hidden)

    run = run_button.click(on_run, [case_files, concurrency, max_tokens, temperature,
                                    system_box],
                           [status, table, csv_download, json_download], concurrency_limit=1)
    stop_button.click(lambda: _batch_stopped(store is not None), None, [status],
                      cancels=[run], show_progress="hidden")


async def _batch_updates(engine: Engine, store: Store | None, files: PageFiles,
                         request: gr.Request, case_file: CaseFile,
                         options: batch.BatchOptions, results: list[batch.CaseResult],
                         progress: gr.Progress) -> AsyncIterator[tuple[Any, ...]]:
    """The page's updates while the batch runs, then its summary and downloads. `results`
    gathers the finished cases, so that a run that fails can still show them."""
    hidden = gr.DownloadButton(visible=False)
    shown_at = 0.0
    async for step in batch.iter_batch(engine, case_file, options, store=store):
        if step.run is not None:
            yield await _batch_end(step.run, files, request)
            return
        assert step.result is not None
        results.append(step.result)
        progress((step.done, step.total), desc="cases", unit="cases")
        if time.monotonic() - shown_at >= TABLE_EVERY_S or step.done == step.total:
            shown_at = time.monotonic()
            errors = sum(r.error is not None for r in results)
            yield eval_views.batch_progress(step, errors), _shown_rows(results), hidden, hidden


async def _batch_end(run: batch.BatchRun, files: PageFiles,
                     request: gr.Request) -> tuple[Any, ...]:
    """The summary, the table and the downloads; without downloads when they could not be
    written, and then the summary says why."""
    hidden = gr.DownloadButton(visible=False)
    summary = eval_views.batch_summary(run.summary, run.notes)
    try:
        csv_path, json_path = await asyncio.to_thread(batch.write_results, run,
                                                      _export_folder())
        await asyncio.to_thread(files.grant, request, [csv_path, json_path])
    except Exception as error:
        log.exception("writing the results of batch %s failed", run.batch_id)
        return (f"{summary}\n\n⚠️ The CSV and JSON could not be written "
                f"({eval_views.escape(_printable(str(error)))}).",
                _shown_rows(run.results), hidden, hidden)
    return (summary, _shown_rows(run.results),
            gr.DownloadButton(value=str(csv_path), visible=True),
            gr.DownloadButton(value=str(json_path), visible=True))


def _shown_rows(results: Sequence[batch.CaseResult]) -> list[list[Any]]:
    """The table's rows, any text that cannot be encoded (a lone surrogate) made
    printable: the page could not send it."""
    return [[_printable(cell) if isinstance(cell, str) else cell for cell in row]
            for row in eval_views.batch_rows(results)]


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _internal(error: BaseException) -> str:
    return _printable(f"Internal error ({type(error).__name__}: {error}); see the app's log.")


def _batch_failed(results: Sequence[batch.CaseResult], total: int, error: BaseException,
                  recording: bool) -> str:
    kept = " and recorded" if recording and results else ""
    return (f"**Failed** after {len(results)} of {total} cases: "
            f"{eval_views.escape(_internal(error))} The cases finished are in the table{kept}.")


def _batch_stopped(recording: bool) -> str:
    kept = "; they are recorded" if recording else ""
    return f"**Stopped.** The cases finished before Stop are in the table{kept}."


def _load_cases(uploads: list[str] | None, max_cases: int, folder: Path) -> CaseFile:
    """The uploaded cases, staged in `folder`; their media may only be files uploaded with
    them, never other files of the server."""
    if not uploads:
        raise BadInput("Upload a .jsonl or .csv case file first.")
    return read_cases(stage_upload(uploads, folder), max_cases=max_cases, loose_media=True,
                      confine_to=folder)


# ---------------------------------------------------------------- review

def build_review_tab(store: Store | None, engine: Engine | None, files: PageFiles, *,
                     everyone_may_review: bool = True) -> None:
    """Recorded answers with filters, their details, rating, export of the filtered set,
    and (given an engine) the replay of a bundle. Review shows every recorded answer, so
    it is built only where everyone who reaches the page may see them all
    (`everyone_may_review`: a login is required, or only this machine can connect)."""
    with gr.Tab("Review", id="review", elem_id="tab-review") as tab:
        if store is None:
            gr.Markdown(RECORDING_OFF)
            return
        if not everyone_may_review:
            gr.Markdown(REVIEW_NEEDS_LOGIN, elem_id="review-needs-login")
            return
        with gr.Row():
            rating = gr.Dropdown(["any", "up", "down", "unrated", "voted"], value="any",
                                 label="Rating", elem_id="review-rating")
            tag = gr.Dropdown([""], value="", allow_custom_value=True, label="Tag",
                              elem_id="review-tag")
            origin = gr.Dropdown(["", "chat", "batch", "side-by-side", "replay"], value="",
                                 label="Origin", elem_id="review-origin")
            since = gr.Textbox(label="From (YYYY-MM-DD, UTC)", elem_id="review-since")
            until = gr.Textbox(label="To (YYYY-MM-DD, UTC)", elem_id="review-until")
            text = gr.Textbox(label="Text in prompt or answer", elem_id="review-text")
        search = gr.Button("Search", variant="primary", elem_id="review-search")
        table = gr.Dataframe(headers=eval_views.REVIEW_COLUMNS, type="array", interactive=False,
                             wrap=True, elem_id="review-table")
        found = gr.State([])
        selected = gr.State(None)
        details = gr.Markdown("Select an answer to see it in full.", elem_id="review-details")
        with gr.Row():
            up = gr.Button("👍 Up", elem_id="review-up")
            down = gr.Button("👎 Down", elem_id="review-down")
            comment = gr.Textbox(label="Comment", elem_id="review-comment", scale=3)
            tags = gr.CheckboxGroup(DEFAULT_TAGS, label="Tags", elem_id="review-tags", scale=3)
            more = gr.Textbox(label="More tags", elem_id="review-more-tags")
            save = gr.Button("Save", elem_id="review-save")
        with gr.Row():
            export = gr.Button("Export the filtered set", elem_id="review-export")
            download = gr.DownloadButton("Download", visible=False, elem_id="review-download")
        if engine is not None:
            _replay_section(engine, store, files)

    filters = [rating, tag, origin, since, until, text]

    async def on_search(*values: str) -> tuple[Any, ...]:
        rating_value, tag_value, origin_value, since_value, until_value, text_value = values
        query = ReviewFilter(rating=rating_value or "any",  # type: ignore[arg-type]
                             tag=tag_value or "", origin=origin_value or "",
                             since=since_value or "", until=until_value or "",
                             text=text_value or "")
        try:
            rows = await asyncio.to_thread(store.search, query)
            known = await asyncio.to_thread(store.tags_in_use)
        except Phi4UIError as error:
            gr.Warning(escape_html(str(error)))
            return SKIP(), SKIP(), SKIP()
        return (eval_views.review_rows(rows), [r["id"] for r in rows],
                gr.Dropdown(choices=["", *known]))

    async def on_select(ids: list[str], event: gr.SelectData) -> tuple[Any, ...]:
        # The row's own id cell, not its position: the table may have been sorted.
        shown = str((event.row_value or [""])[0])
        answer_id = next((i for i in ids if shown and i.startswith(shown)), None)
        if answer_id is None:
            return SKIP(), SKIP(), SKIP(), SKIP(), SKIP()
        return (answer_id, *await asyncio.to_thread(_details, store, answer_id))

    async def on_thumbs(answer_id: str | None, *, score: int) -> tuple[Any, ...]:
        if answer_id is None:
            gr.Warning("Select an answer first.")
            return SKIP(), SKIP(), SKIP(), SKIP()
        await asyncio.to_thread(store.rate, answer_id, score)
        return await asyncio.to_thread(_details, store, answer_id)

    async def on_annotate(answer_id: str | None, text_value: str | None,
                          chosen: list[str] | None, other: str | None) -> tuple[Any, ...]:
        if answer_id is None:
            gr.Warning("Select an answer first.")
            return SKIP(), SKIP(), SKIP(), SKIP()
        await asyncio.to_thread(store.rate, answer_id, None, comment=text_value or "",
                                tags=_split_tags(chosen, other))
        return await asyncio.to_thread(_details, store, answer_id)

    async def on_export(ids: list[str], request: gr.Request) -> Any:
        return await _export_download(store, ids, "review", f" ({len(ids)} answers)", files,
                                      request)

    for trigger in (search.click, tab.select):
        trigger(on_search, filters, [table, found, tag], show_progress="hidden")
    table.select(on_select, [found], [selected, details, comment, tags, more])
    rating_outputs = [details, comment, tags, more]
    up.click(_bind(on_thumbs, score=1), [selected], rating_outputs)
    down.click(_bind(on_thumbs, score=-1), [selected], rating_outputs)
    save.click(on_annotate, [selected, comment, tags, more], rating_outputs)
    export.click(on_export, [found], [download])


def _details(store: Store, answer_id: str) -> tuple[str, str, list[str], str]:
    record = store.answer(answer_id)
    ratings = store.ratings(answer_id)
    thumbs = next((r for r in ratings if not r.versus_id), None)
    chosen, other = _tag_fields(thumbs.tags if thumbs else ())
    return (eval_views.record_details(record, ratings), thumbs.comment if thumbs else "",
            chosen, other)


def _replay_section(engine: Engine, store: Store, files: PageFiles) -> None:
    with gr.Accordion("Replay a bundle", open=False, elem_id="replay-panel"):
        upload = gr.File(file_types=[".zip"], label="Bundle (.zip)", elem_id="replay-file")
        start = gr.Button("Replay through the current engine", elem_id="replay-run")
        report = gr.Markdown(elem_id="replay-report")

    async def on_replay(path: Any, request: gr.Request) -> AsyncIterator[str]:
        if not path:
            yield "Upload a bundle first."
            return
        if not isinstance(path, str) or not files.checker(request)(path):
            yield NOT_YOURS
            return
        with staging.job_folder("replay") as folder:  # its media go when the replay ends
            async for shown in _replay_report(engine, store, Path(path), folder,
                                              user=login_of(request)):
                yield shown

    start.click(on_replay, [upload], [report])


async def _replay_report(engine: Engine, store: Store, path: Path, folder: Path, *,
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
        yield f"⚠️ {eval_views.escape(_internal(error))} Nothing was replayed."
        return
    total = len(opened.records)
    yield f"Replaying {total} record(s)…"
    lines: list[str] = []
    results: list[bundle.ReplayOutcome] = []
    try:
        async for result in bundle.iter_replay(engine, opened, store=store, user=user):
            results.append(result)
            lines.append(f"- {eval_views.escape(_printable(replay.describe(result)))}")
            yield "\n".join(lines)
    except Exception as error:
        log.exception("replaying %s failed", path.name)
        lines.append(f"- ⚠️ Stopped after {len(results)} of {total} record(s): "
                     f"{eval_views.escape(_internal(error))}")
    yield "\n".join([*lines, "", f"**{bundle.replay_summary(results, total)}**"])
