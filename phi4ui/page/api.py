"""The public API: what scripts call through `gradio_client` and agents through MCP, on the
same path as the page (the caller's own files, media checks, limits, token budget,
recording) and with the page's refusals as errors.

- `/chat` streams an answer: partial texts, then the answer with its statistics.
- `/ask`: a question, optional images and audio, the answer and its statistics in one
  result; also the one tool of the MCP server (`phi4ui.web.mcp_tool`).
- `/rate` rates a recorded answer by the record id `/chat` or `/ask` returned.
- `/health` says whether the engine is ready and how busy it is.

Every other event of the page stays callable by the page but out of the API's
description (`publish_only`), so "Use via API" lists just these and the batch run.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import typing
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from phi4ui.core import answer_stream
from phi4ui.core.conversation import checked_text
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import GenerationSettings
from phi4ui.core.history import History, user_messages
from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation import recording
from phi4ui.evaluation.store import Store
from phi4ui.page.api_inputs import (
    MediaSources,
    checked_settings,
    earlier_conversation,
    uploaded_paths,
)
from phi4ui.page.chat_handlers import max_new_tokens
from phi4ui.page.files import PageFiles, login_of

log = logging.getLogger(__name__)
PUBLIC = ("/chat", "/ask", "/rate", "/health", "/batch")
SOMETHING_BROKE = "Something went wrong on our side and the answer stopped; try again."
NOT_RECORDED = "Answers are not recorded on this server (--record false), so none can be rated."

ASK_DESCRIPTION = (
    "Asks Phi-4-multimodal (Microsoft's small multimodal model) a question, optionally about "
    "images and audio, and returns {\"answer\": its answer, \"statistics\": the request's "
    "statistics (timings, token counts by kind, adapter, engine figures, record id)}. "
    "`question`: plain text. `images`: images to look at; `audio`: audio clips to listen to "
    "(wav, flac, mp3, ogg...); `max_new_tokens`: the longest answer (default 512). Each file "
    "is a data: URI (data:image/png;base64,..., up to "
    "about 3 MB), the path of a file uploaded to this server, or an http(s) URL on a host the "
    "server's operator allowed (none by default).")
CHAT_DESCRIPTION = (
    "Answers a message with Phi-4-multimodal, streaming: each partial result is the answer so "
    "far and null; the last is the whole answer and its statistics (time to first token, end "
    "to end, tokens per second, inter-token latency, prompt tokens by kind, completion tokens, "
    "finish reason, adapter, the engine's queue/prefill/decode times, KV cache, memory, and "
    "the record id for /rate). `files`: images and audio, each as "
    "`gradio_client.handle_file(path)`. `history`: the earlier conversation, a list of "
    "{\"role\": \"user\"|\"assistant\", \"content\": text or an uploaded file}. Settings "
    "left out take the page's defaults. A refused message raises the page's message.")


class PublicApi:
    """The API's handlers, bound to the page's engine, store and files."""

    def __init__(self, engine: Engine, store: Store | None, files: PageFiles,
                 media: MediaSources) -> None:
        self.engine = engine
        self.store = store
        self.files = files
        self.media = media

    async def chat(self, message: str, files: list[FileData] | None = None,
                   history: list[dict[str, Any]] | None = None,
                   system_prompt: str | None = None, temperature: float | None = None,
                   top_p: float | None = None, max_new_tokens: int | None = None,
                   seed: int | None = None, request: gr.Request = None,  # type: ignore[assignment]
                   ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        may_use = self.files.checker(request)
        with _refusals():
            earlier = earlier_conversation(history, may_use)
            paths = uploaded_paths(files, may_use)
        settings = self._settings(system_prompt, temperature, top_p, max_new_tokens, seed)
        async for text, stats in self._answer(earlier, checked_text_of(message), paths,
                                              settings, request):
            yield text, stats

    async def ask(self, question: str, images: list[str] | None = None,
                  audio: list[str] | None = None, max_new_tokens: int | None = None,
                  request: gr.Request = None,  # type: ignore[assignment]
                  ) -> dict[str, Any]:
        may_use = self.files.checker(request)
        with _refusals():
            paths = [*await self.media.paths(images, may_use),
                     *await self.media.paths(audio, may_use)]
        settings = self._settings(None, None, None, max_new_tokens, None)
        final: tuple[str, dict[str, Any] | None] = ("", None)
        async for final in self._answer([], checked_text_of(question), paths, settings,  # noqa: B007
                                        request, paced=False):
            pass  # only the last update, the whole answer with its statistics, is returned
        return {"answer": final[0], "statistics": final[1]}

    async def rate(self, record_id: str, rating: int, comment: str | None = None,
                   request: gr.Request = None,  # type: ignore[assignment]
                   ) -> dict[str, Any]:
        """Rates a recorded answer by the record id that /chat or /ask returned in its
        statistics: 1 (good), -1 (bad) or 0 (no rating), with an optional comment. Only the
        person who asked (the same login) may rate an answer."""
        with _refusals():
            if self.store is None:
                raise BadInput(NOT_RECORDED)
            self._check_owner(record_id, login_of(request))
            score = rating if isinstance(rating, int) and not isinstance(rating, bool) else 2
            saved = self.store.rate(record_id, score, comment=None if comment is None
                                    else checked_text(comment, 10_000))
        return {"record_id": record_id, "rating": saved.score, "comment": saved.comment}

    async def health(self) -> dict[str, Any]:
        """Whether the engine is ready, what it serves, and how many answers it is writing
        (`running`) and has waiting (`waiting`)."""
        status, info = self.engine.status, self.engine.info
        body: dict[str, Any] = {"state": status.state, "message": status.message,
                                "engine": info.kind, "model": info.model,
                                "random_weights": info.random_weights}
        if status.state == "ready":
            with contextlib.suppress(Exception):  # the state is the answer; figures are extra
                snapshot = await self.engine.snapshot()
                body.update(running=snapshot.running, waiting=snapshot.waiting)
        return body

    # ------------------------------------------------------------ shared steps

    def _settings(self, system: Any, temperature: Any, top_p: Any, max_tokens: Any,
                  seed: Any) -> GenerationSettings:
        with _refusals():
            return checked_settings(system, temperature, top_p, max_tokens, seed,
                                    max_new_tokens(self.engine))

    async def _answer(self, earlier: History, text: str, paths: Sequence[str],
                      settings: GenerationSettings, request: gr.Request, paced: bool = True,
                      ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """The page's path for one answer: plan (media, limits, budget), stream, record.
        Closing this iterator (a stop, a client gone) aborts the engine request."""
        message = {"text": text, "files": list(paths)}
        if not user_messages(message):
            raise gr.Error("The message is empty: send some text, a file, or both.")
        with _refusals():
            planned = await answer_stream.plan(self.engine, earlier, message, settings.system,
                                               settings.sampling())
        updates = answer_stream.answer(self.engine, planned,
                                       interval_s=None if paced else float("inf"))
        try:
            async with contextlib.aclosing(updates):
                async for update in updates:
                    if update.stats is None:
                        yield update.text, None
                        continue
                    record_id = await self._record(update, login_of(request))
                    yield update.text, {**update.stats.as_dict(), "notes": list(update.notes),
                                        "record_id": record_id}
        except Phi4UIError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("answering through the API failed")
            raise gr.Error(SOMETHING_BROKE, print_exception=False) from None

    async def _record(self, update: answer_stream.AnswerUpdate, user: str) -> str | None:
        if self.store is None:
            return None
        try:
            recorded = await recording.record_update(self.store, self.engine.info, update,
                                                     origin="api", user=user)
        except Phi4UIError:
            log.warning("an API answer could not be recorded", exc_info=True)
            return None
        return recorded.answer_id

    def _check_owner(self, record_id: Any, user: str) -> None:
        unknown = BadInput("No recorded answer of yours has this record id.")
        if not isinstance(record_id, str) or not record_id.isalnum() or len(record_id) > 64:
            raise unknown
        try:
            answer = self.store.answer(record_id) if self.store is not None else None
        except Phi4UIError:
            raise unknown from None
        if answer is None or answer.user != user:
            raise unknown


def checked_text_of(message: Any) -> str:
    with _refusals():
        return checked_text(message)


@contextlib.contextmanager
def _refusals() -> Any:
    """A refusal of ours becomes the client's error, with the page's message."""
    try:
        yield
    except Phi4UIError as error:
        raise gr.Error(str(error), print_exception=False) from None


def add_public_api(page: gr.Blocks, engine: Engine, store: Store | None, files: PageFiles,
                   media: MediaSources) -> PublicApi:
    """Adds the API's endpoints to `page` and takes every other event out of its
    description. Call before the page is mounted."""
    api = PublicApi(engine, store, files, media)
    answer_and_stats = tuple[str, dict[str, Any] | None]
    with page:
        gr.api(endpoint(api.chat, answer_and_stats), api_name="chat",
               api_description=CHAT_DESCRIPTION, concurrency_limit=None)
        gr.api(endpoint(api.ask, dict[str, Any]), api_name="ask",
               api_description=ASK_DESCRIPTION, concurrency_limit=None)
        gr.api(endpoint(api.rate, dict[str, Any]), api_name="rate", queue=False)
        gr.api(endpoint(api.health, dict[str, Any]), api_name="health", queue=False)
    publish_only(page, PUBLIC)
    return api


def endpoint(handler: Callable[..., Any], returns: Any) -> Callable[..., Any]:
    """`handler` as `gr.api` reads it: its parameters' types resolved (this module's
    annotations are strings) and the type of what it returns, or, for a stream, of each
    update, so that the API's description shows the answer and its statistics apart."""
    if inspect.isasyncgenfunction(handler):
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for update in handler(*args, **kwargs):
                yield update
        wrapper: Callable[..., Any] = stream
    else:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await handler(*args, **kwargs)
        wrapper = call
    hints = typing.get_type_hints(handler)
    signature = inspect.signature(handler)
    wrapper.__name__, wrapper.__doc__ = handler.__name__, handler.__doc__
    wrapper.__annotations__ = {**hints, "return": returns}
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(name, p.annotation))
                    for name, p in signature.parameters.items()],
        return_annotation=returns)
    return wrapper


def publish_only(page: gr.Blocks, public: Sequence[str]) -> None:
    """Every event not named in `public` stays callable (the page calls it) but leaves the
    API's description."""
    for fn in page.fns.values():
        if f"/{fn.api_name}" not in public and fn.api_visibility == "public":
            fn.api_visibility = "undocumented"
