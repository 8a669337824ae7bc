"""A remote OpenAI-compatible server (vLLM's `vllm serve`) behind the same `Engine`
interface as the embedded engine.

Answers stream through the official `openai` client with per-chunk usage, so the
app times them exactly as it times the embedded engine. The server's own view
(KV cache, queue, per-request queue/prefill/decode time) comes from its
Prometheus `/metrics`, read beside the stream and never in its way. `start()`
checks the server (reachable, model listed, context length, adapters, metrics);
when that fails, or the server goes away later, `watch()` checks again in the
background (and so does the next request), so a server that comes back is used
without restarting the app. The API key only ever goes into request
headers: no message, log line or `info` field carries it.

What the check learns is in `remote_server`; the server's view of each answer in
`remote_metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import httpx
import openai

from phi4ui.core.audio import audio_wav_base64
from phi4ui.core.chat import ChatRequest, PromptLimits, Sampling, render_openai_messages
from phi4ui.core.engine import EngineInfo, Event, Finished, Status, TextDelta
from phi4ui.core.images import image_data_url
from phi4ui.core.media import MediaLimits
from phi4ui.core.stats import EngineSnapshot, StatsRecorder
from phi4ui.core.textguard import GENERIC, TextGuard
from phi4ui.engines import calibration
from phi4ui.engines import openai_wire as wire
from phi4ui.engines.remote_metrics import ServerView
from phi4ui.engines.remote_server import (
    ADAPTERS,
    DEFAULT_DYNAMIC_HD,
    Server,
    StartFailed,
    check_server,
    text_guard,
    token_counter,
    warnings,
)
from phi4ui.engines.remote_tokens import TokenCounter
from phi4ui.errors import EngineUnavailable, Phi4UIError
from phi4ui.settings import Settings

log = logging.getLogger(__name__)

METRICS_TIMEOUT_S = 2.0
PROBE_EVERY_S = 10.0  # a server in use is asked whether it is still there
RECHECK_DELAYS_S = (2.0, 4.0, 8.0, 10.0)  # a server that went away, until it is back
APP_STOPPING = "The app is stopping, so this answer was cut off."
ANSWER_GRACE_S = 2.0  # at shutdown, for answers in flight to finish before they are cut


class RemoteEngine:
    def __init__(self, settings: Settings, *, report_prompt_token_ids: bool = False) -> None:
        """`report_prompt_token_ids` asks a vLLM server for the token ids of each prompt
        (its `return_token_ids`), reported in `Finished`; it makes the first chunk larger."""
        self.settings = settings
        self._report_prompt_token_ids = report_prompt_token_ids
        self.status = Status()
        self._url = settings.base_url.rstrip("/")
        self._shown_url = wire.display_url(self._url)
        timeout = openai.Timeout(settings.request_timeout, connect=settings.connect_timeout)
        self._client = openai.AsyncOpenAI(base_url=self._url, api_key=settings.api_key or "EMPTY",
                                          timeout=timeout, max_retries=0)
        # /metrics and /tokenize live at the server's root, beside /v1.
        key = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=wire.server_root(self._url), headers=key,
            timeout=httpx.Timeout(METRICS_TIMEOUT_S, connect=settings.connect_timeout))
        self._server: Server | None = None
        self._tokens = TokenCounter()
        self._text_guard: TextGuard = GENERIC
        self._warnings: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._stopping = False
        self._answering = 0  # answers streaming now
        self._count_mismatch_logged = False
        self._view = ServerView(self._http)
        self._measured_hd: calibration.Measured | None = None  # the server's dynamic_hd

    # ------------------------------------------------------------ description

    @property
    def info(self) -> EngineInfo:
        server = self._server
        return EngineInfo(
            kind="remote",
            model=server.model if server else (self.settings.remote_model or "not connected"),
            max_model_len=self._max_model_len,
            max_images=self.settings.max_images, max_audios=self.settings.max_audios,
            dynamic_hd=self.media_limits.dynamic_hd,
            dynamic_hd_source=self._dynamic_hd_source(),
            adapters=dict(server.adapters) if server else {},
            random_weights=bool(server and server.random_weights),
            device=f"server at {self._shown_url}",
            warnings=self._warnings,
        )

    @property
    def media_limits(self) -> MediaLimits:
        measured = self._measured_hd
        dynamic_hd = (measured.dynamic_hd if measured
                      else self.settings.dynamic_hd or DEFAULT_DYNAMIC_HD)
        return MediaLimits.from_settings(self.settings, dynamic_hd)

    def _dynamic_hd_source(self) -> str:
        if self._measured_hd is not None:
            return f"measured on the server ({self._measured_hd.text})"
        return "from --dynamic-hd" if self.settings.dynamic_hd else "assumed, not measured"

    @property
    def prompt_limits(self) -> PromptLimits:
        return PromptLimits(max_images=self.settings.max_images,
                            max_audios=self.settings.max_audios,
                            max_model_len=self._max_model_len,
                            text_guard=self._text_guard)

    @property
    def metrics_scrapes(self) -> int:
        """How many times the server's `/metrics` was fetched (answers share scrapes)."""
        return self._view.scrapes

    @property
    def _max_model_len(self) -> int:
        server = self._server
        return (server and server.max_model_len) or self.settings.max_model_len

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        async with self._lock:
            await self._connect()

    async def _ensure_ready(self) -> None:
        """Checks the server again when the last check or request failed."""
        if not self._ready():
            async with self._lock:
                if not self._ready():  # unless a request waiting on the lock just did
                    await self._connect()
        if not self._ready():
            raise EngineUnavailable(f"The server is not available: {self.status.message}. "
                                    "Your conversation is kept; send again once it is back.")

    def _ready(self) -> bool:
        return self.status.state == "ready"

    async def _connect(self, *, quietly: bool = False) -> None:
        """Checks the server and takes what it serves. `quietly`: a background re-check,
        which leaves the status alone until it has news."""
        if not quietly:
            self.status.set("loading", f"connecting to {self._shown_url}")
        try:
            server = await check_server(self._client, self._http, self.settings,
                                        self._shown_url)
            self._tokens, token_note = await self._token_counter(server)
            self._text_guard = text_guard(self._tokens)
            measured_hd = await self._measure_dynamic_hd(server)
        except StartFailed as failure:
            self._fail(str(failure))
            return
        except Exception as error:
            if not quietly:
                log.exception("Remote engine: checking %s failed", self._shown_url)
            self._fail(f"checking {self._shown_url} failed: {error}")
            return
        self._server = server
        self._measured_hd = measured_hd
        self._warnings = (*warnings(server, self.settings, measured_hd), *token_note)
        log.info("Remote engine: %s serves %s (context %s tokens, adapters: %s, metrics: %s)",
                 self._shown_url, server.model, server.max_model_len or "not reported",
                 ", ".join(server.adapters) or "none", "yes" if server.has_metrics else "no")
        for warning in self._warnings:
            log.warning("Remote engine: %s", warning)
        self.status.set("ready", "ready")

    def _fail(self, reason: str) -> None:
        if self.status.state == "failed" and self.status.message == reason:
            return  # a re-check that learned nothing new
        log.warning("Remote engine: %s", reason)
        self.status.set("failed", reason)

    async def watch(self) -> None:
        failures = 0
        while not self._stopping:
            if self._ready():
                failures = 0
                await asyncio.sleep(PROBE_EVERY_S)
                await self._probe()
                continue
            await asyncio.sleep(RECHECK_DELAYS_S[min(failures, len(RECHECK_DELAYS_S) - 1)])
            failures += 1
            if not self._stopping and not self._ready() and not self._lock.locked():
                async with self._lock:
                    await self._connect(quietly=True)
                if self._ready():
                    log.info("Remote engine: %s is back", self._shown_url)

    async def _probe(self) -> None:
        """Asks a server in use for its models: one that no longer answers is marked
        failed now, not when the next person sends a message."""
        client = self._client.with_options(timeout=openai.Timeout(
            METRICS_TIMEOUT_S + self.settings.connect_timeout,
            connect=self.settings.connect_timeout))
        try:
            await client.models.list()
        except openai.APITimeoutError:
            return  # busy rather than gone: requests say so if it lasts
        except openai.APIConnectionError as error:
            if self._ready() and not self._stopping:
                self._fail(f"lost the connection to {self._shown_url} "
                           f"({wire.connection_reason(error)})")
        except openai.OpenAIError:
            return  # it answered: whatever it said, a request will tell

    async def _measure_dynamic_hd(self, server: Server) -> calibration.Measured | None:
        """The server's image tiling, before any request is planned with it."""
        if not server.is_vllm:
            return None
        return await calibration.measure(self._http, self._client, server.model,
                                         self._tokens.count, exact=self._tokens.exact)

    async def _token_counter(self, server: Server) -> tuple[TokenCounter, tuple[str, ...]]:
        if self._tokens.exact and self._server is not None and self._server.root == server.root:
            return self._tokens, ()  # a reconnection to the same model
        return await token_counter(self._http, server, self.settings)

    def stopping(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        self._stopping = True
        deadline = asyncio.get_running_loop().time() + ANSWER_GRACE_S
        while self._answering and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await self._client.close()  # cuts the answers still streaming
        await self._http.aclose()

    # ------------------------------------------------------------ requests

    def count_text_tokens(self, text: str) -> int:
        return self._tokens.count(text)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        await self._ensure_ready()
        server = self._server
        assert server is not None
        model = self._model_for(request.adapter)
        # The person waits from here: encoding the media counts, as vLLM's own input
        # processing counts in the embedded engine.
        recorder = StatsRecorder()
        messages = await asyncio.to_thread(self._messages, request, server.is_vllm)
        before = self._view.before() if server.has_metrics else None
        progress = wire.StreamProgress()
        try:
            self._answering += 1
            try:
                async with contextlib.aclosing(self._deltas(
                        model, messages, request.sampling, progress, server.is_vllm)) as deltas:
                    async for delta in deltas:
                        recorder.tokens(delta.tokens)
                        if before is not None:
                            before.first_token(self._view)
                        yield delta
            finally:
                self._answering -= 1
            stats = recorder.finish(
                engine="remote", adapter=model if model in ADAPTERS else None,
                finish_reason=progress.finish_reason or "stop",
                prompt_tokens=progress.prompt_tokens or request.tokens.total,
                **request.tokens.split(), completion_tokens=progress.completion_tokens or None)
            self._check_prompt_count(request, progress.prompt_tokens)
            # The answer's timings are final; the server's view is added without touching them.
            stats = await self._view.with_server_view(stats, before, progress)
        finally:
            if before is not None:
                self._view.ended(before)
        yield Finished(stats, prompt_token_ids=progress.prompt_token_ids)

    def _model_for(self, adapter: str | None) -> str:
        server = self._server
        assert server is not None
        return adapter if adapter and adapter in server.adapters else server.model

    def _messages(self, request: ChatRequest, inline_placeholders: bool) -> list[dict[str, Any]]:
        messages = render_openai_messages(request.system, request.turns, image_data_url,
                                          audio_wav_base64, guard=request.text_guard)
        if inline_placeholders:
            wire.inline_placeholders(messages, request.turns, request.text_guard)
        return messages

    async def _deltas(self, model: str, messages: list[dict[str, Any]], sampling: Sampling,
                      progress: wire.StreamProgress, is_vllm: bool
                      ) -> AsyncGenerator[TextDelta, None]:
        body = wire.extra_body(sampling,
                               prompt_token_ids=self._report_prompt_token_ids and is_vllm)
        try:
            chunks = await self._client.chat.completions.create(
                model=model, messages=cast(Any, messages), stream=True,
                max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                top_p=sampling.top_p, seed=sampling.seed, extra_body=body)
        except openai.OpenAIError as error:
            raise self._failure(error, model) from error
        try:
            async for chunk in chunks:
                delta = progress.update(chunk)
                if delta is not None:
                    yield delta
        except openai.OpenAIError as error:
            raise self._failure(error, model) from error
        finally:
            # Closing the response mid-answer is what makes the server abort the request.
            await chunks.close()
        if not progress.completed:
            reason = progress.finish_reason or "the stream ended without a finish"
            raise EngineUnavailable(f"The server at {self._shown_url} cut this answer off "
                                    f"({reason}). Your conversation is kept; send again.")

    def _failure(self, error: openai.OpenAIError, model: str) -> Phi4UIError:
        if self._stopping:
            return EngineUnavailable(APP_STOPPING)
        reason = wire.reconnect_reason(error, where=self._shown_url, model=model)
        if reason is not None:
            self._fail(reason)
        return wire.failure(error, where=self._shown_url, model=model,
                            request_timeout=self.settings.request_timeout)

    def _check_prompt_count(self, request: ChatRequest, served: int | None) -> None:
        if (served is None or served == request.tokens.total or not self._tokens.exact
                or self._count_mismatch_logged):
            return
        self._count_mismatch_logged = True
        log.warning("Remote engine: the server counted %d prompt tokens where %d were planned; "
                    "check that --dynamic-hd matches the server's dynamic_hd", served,
                    request.tokens.total)

    # ------------------------------------------------------------ the server's view

    async def snapshot(self) -> EngineSnapshot:
        server = self._server
        return await self._view.snapshot(bool(server and server.has_metrics))
