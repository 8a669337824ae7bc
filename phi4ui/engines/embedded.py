"""vLLM's AsyncLLM inside the app's process (its engine core runs in a child process)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from phi4ui.core.chat import ChatRequest, PromptLimits
from phi4ui.core.engine import EngineInfo, Event, Finished, Status, TextDelta
from phi4ui.core.media import MediaLimits
from phi4ui.core.memory import MemoryReadings, gpu_memory
from phi4ui.core.stats import EngineSnapshot, StatsRecorder
from phi4ui.core.textguard import GENERIC, TextGuard, checked_guard, control_tokens
from phi4ui.core.untracked import untrack_token_ids
from phi4ui.engines import shared_core, vllm_compat
from phi4ui.engines.cpu_allocator import tcmalloc_for_new_processes
from phi4ui.engines.cpu_primitive_cache import smaller_cache_for_new_processes
from phi4ui.engines.cpu_priority import ENGINE_NICE, lower_priority
from phi4ui.engines.model_source import ModelSource, resolve
from phi4ui.engines.shared_board import SharedBoard
from phi4ui.engines.shared_core import Attachment
from phi4ui.engines.vllm_inputs import vllm_prompt, vllm_sampling
from phi4ui.engines.vllm_stats import SchedulerSnapshotSink
from phi4ui.errors import BadInput, EngineUnavailable
from phi4ui.settings import REAL_DYNAMIC_HD, Settings

log = logging.getLogger(__name__)
ADAPTER_IDS = {"vision": 1, "speech": 2}
WATCH_INTERVAL_S = 0.5
# The pause before each restart in a row; after the last one, the engine stays failed.
RESTART_DELAYS_S = (0.0, 10.0, 30.0)
STABLE_AFTER_S = 300.0  # an engine that ran this long starts the count of restarts again
SHUTDOWN_TIMEOUT_S = 10.0  # for the engine-core process to exit before it is killed
ANSWER_GRACE_S = 2.0  # at shutdown, for answers in flight to finish before they are aborted
ABORTED_GRACE_S = 2.0  # for aborted answers' streams to end
DIED_WHILE_ANSWERING = ("The engine stopped while answering; it is restarting. Your "
                        "conversation is kept: press Retry in a moment.")
APP_STOPPING = "The app is stopping, so this answer was cut off."


class EmbeddedEngine:
    def __init__(self, settings: Settings, source: ModelSource | None = None,
                 attachment: Attachment | None = None) -> None:
        self.settings = settings
        self._attachment = attachment  # a client of a shared engine core, not its owner
        self.status = Status()
        self._source = source
        self._llm: Any = None
        self._tokenizer: Any = None
        self._encode_text: Callable[[str], list[int]] | None = None
        self._text_guard: TextGuard = GENERIC
        self._sink = SchedulerSnapshotSink()
        # What the panels read: this engine's sink, or the board of a shared core's clients.
        self._view: SchedulerSnapshotSink | SharedBoard = (
            self._sink if attachment is None else shared_core.board_for(attachment, self._sink))
        self._has_gpu = False
        self._memory = MemoryReadings(engine_pids=attachment.engine_pids if attachment else ())
        self.load_seconds: float | None = None
        self._active: set[str] = set()  # ids of the requests being answered
        self._death_noticed = asyncio.Event()
        self._ready_at = 0.0
        self._restarts = 0  # in a row, without a stable run between them
        self._closing = False
        self._shared_memory: set[Path] = set()
        vllm_compat.set_process_defaults(settings.cpu_kv_cache_gib)

    # ------------------------------------------------------------ description

    @property
    def info(self) -> EngineInfo:
        source = self._source
        return EngineInfo(
            kind="embedded",
            model=source.display_name if source else self.settings.model,
            revision=(source.revision or "local folder") if source else self.settings.revision,
            max_model_len=self.settings.max_model_len,
            max_images=self.settings.max_images, max_audios=self.settings.max_audios,
            dynamic_hd=self.media_limits.dynamic_hd,
            adapters={"vision": source.vision_lora, "speech": source.speech_lora} if source else {},
            random_weights=bool(source and source.random_weights),
            device=self._device_name(),
        )

    @property
    def vllm_engine(self) -> Any:
        """The AsyncLLM itself, for measuring vLLM without phi4ui around it."""
        return self._llm

    @property
    def media_limits(self) -> MediaLimits:
        dynamic_hd = (self._source.dynamic_hd if self._source
                      else self.settings.dynamic_hd or REAL_DYNAMIC_HD)
        return MediaLimits.from_settings(self.settings, dynamic_hd)

    @property
    def prompt_limits(self) -> PromptLimits:
        return PromptLimits(max_images=self.settings.max_images,
                            max_audios=self.settings.max_audios,
                            max_model_len=self.settings.max_model_len,
                            text_guard=self._text_guard)

    def _device_name(self) -> str:
        if self._has_gpu:
            gpu = gpu_memory()
            return gpu[2] if gpu else "GPU"
        return "CPU"

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        started = time.monotonic()
        try:
            self.status.set("loading", "preparing the checkpoint")
            self._has_gpu = await asyncio.to_thread(vllm_compat.has_cuda)
            if self._source is None:
                self._source = await asyncio.to_thread(resolve, self.settings,
                                                       has_gpu=self._has_gpu)
            self.status.set("loading", f"loading {self._source.display_name} into vLLM")
            log.info("Loading %s into vLLM %s (this takes a while; vLLM logs its steps)",
                     self._source.path, vllm_compat.vllm_version())
            await self._load()
        except Exception as error:
            log.exception("The engine failed to load")
            self.status.set("failed", f"the engine failed to load: {error}")
            return
        self.load_seconds = time.monotonic() - started
        log.info("Engine ready in %.1f s", self.load_seconds)
        self._ready()

    async def _load(self) -> None:
        # Construction blocks for the whole load; keep the page responsive meanwhile.
        # The engine's output handler starts on this loop at the first request.
        self._llm = await asyncio.to_thread(self._create_llm)
        self._shared_memory = vllm_compat.shared_memory_of(self._llm)
        if not self._has_gpu:
            lower_priority(vllm_compat.engine_pids(self._llm), ENGINE_NICE)
        self._tokenizer = vllm_compat.tokenizer_of(self._llm)
        self._encode_text = vllm_compat.text_encoder(self._tokenizer)
        control = control_tokens(vllm_compat.added_tokens(self._tokenizer))
        self._text_guard = checked_guard(control, self._encode)

    def _ready(self) -> None:
        self._ready_at = time.monotonic()
        self.status.set("ready", "ready")

    def _create_llm(self) -> Any:
        assert self._source is not None
        config = vllm_compat.engine_config(self.settings, self._source,
                                            has_gpu=self._has_gpu)
        if config.dtype != self.settings.dtype:
            log.info("This CPU has no native bfloat16: the model runs in %s (--dtype)",
                     config.dtype)
        args = vllm_compat.engine_args(config)
        if self._attachment is not None:
            return shared_core.attached_async_llm(args, self._sink, self._attachment)
        with contextlib.ExitStack() as cpu_environment:
            if not self._has_gpu:
                cpu_environment.enter_context(tcmalloc_for_new_processes())
                cpu_environment.enter_context(smaller_cache_for_new_processes())
            llm = vllm_compat.create_async_llm(args, self._sink)
        vllm_compat.on_request_added(llm, untrack_token_ids)  # queued answers' prompts too
        if self._closing:  # the app began stopping while this loaded
            vllm_compat.shutdown(llm, SHUTDOWN_TIMEOUT_S)
            raise EngineUnavailable(APP_STOPPING)
        return llm

    async def watch(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._death_noticed.wait(), WATCH_INTERVAL_S)
            self._death_noticed.clear()
            reason = vllm_compat.death_reason(self._llm) if self._llm is not None else None
            if reason is not None and not self._closing:
                await self._recover(reason)

    async def _recover(self, reason: str) -> None:
        """Starts the engine again, pausing longer after each failure in a row."""
        if self._attachment is not None:  # its owner stops the app; a client cannot restart it
            log.error("The shared engine core stopped: %s", reason)
            self.status.set("failed", f"the shared engine core stopped ({reason}); the app "
                            "is stopping")
            return
        log.error("The engine stopped: %s. Restarting it.", reason)
        if time.monotonic() - self._ready_at > STABLE_AFTER_S:
            self._restarts = 0
        while not self._closing:
            if self._restarts >= len(RESTART_DELAYS_S):
                self.status.set("failed", f"{reason}, and it was restarted {self._restarts} "
                                "times in a row already; restart the app")
                log.error("The engine is not restarted again: %s", reason)
                await self._discard_llm()
                return
            self._restarts += 1
            self.status.set("restarting",
                            f"{reason}; restart {self._restarts} of {len(RESTART_DELAYS_S)}")
            await self._discard_llm()
            await asyncio.sleep(RESTART_DELAYS_S[self._restarts - 1])
            try:
                await self._load()
            except Exception as error:
                log.exception("Restarting the engine failed")
                reason = f"restarting the engine failed: {error}"
                continue
            log.info("The engine is running again")
            self._ready()
            return

    def _notice_death(self) -> None:
        if self.status.state == "ready":
            self.status.set("restarting", "the engine stopped; restarting it")
        self._death_noticed.set()

    def stopping(self) -> None:
        # On Ctrl-C the engine-core process gets the signal too, and stops: not a death.
        self._closing = True

    async def close(self) -> None:
        self._closing = True
        if not await _settles(lambda: not self._active, ANSWER_GRACE_S):
            await self._abort_all()
        await self._discard_llm()

    async def _abort_all(self) -> None:
        """Aborts the answers in flight and gives their streams a moment to end."""
        if self._llm is None:
            return
        log.info("Stopping %d answer(s) in progress", len(self._active))
        with contextlib.suppress(Exception):
            await self._llm.abort(list(self._active))
        await _settles(lambda: not self._active, ABORTED_GRACE_S)

    async def _discard_llm(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        vllm_compat.stop_output_handler(llm)
        try:
            # It waits for the engine processes to exit; the pages stay served meanwhile.
            await asyncio.to_thread(vllm_compat.shutdown, llm, SHUTDOWN_TIMEOUT_S)
        except Exception:  # an engine that died half-way may fail to stop; it is gone anyway
            log.warning("Stopping the engine failed", exc_info=True)
        del llm
        gc.collect()  # let vLLM's finaliser run now, not at interpreter exit
        # A killed engine process cannot remove its shared memory itself.
        vllm_compat.remove_shared_memory(self._shared_memory)

    # ------------------------------------------------------------ requests

    def count_text_tokens(self, text: str) -> int:
        self._require_ready()
        return len(self._encode(text))

    def _encode(self, text: str) -> list[int]:
        if self._encode_text is None:
            raise EngineUnavailable("The model is not loaded yet.")
        return self._encode_text(text)

    def _require_ready(self) -> None:
        waited = time.monotonic() - self.status.since
        if self.status.state == "loading":
            raise EngineUnavailable(f"The model is still loading ({self.status.message}, "
                                    f"{waited:.0f} s so far). Send again in a moment.")
        if self.status.state == "restarting":
            raise EngineUnavailable(f"The engine stopped and is restarting "
                                    f"({self.status.message}, {waited:.0f} s so far). Your "
                                    "conversation is kept; send again in a moment.")
        if self._closing:
            raise EngineUnavailable(APP_STOPPING)
        if self.status.state == "failed" or self._llm is None:
            raise EngineUnavailable(f"The engine is not available: {self.status.message}.")

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        self._require_ready()
        llm = self._llm  # a restart replaces it; this answer stays with its own
        request_id = uuid.uuid4().hex
        recorder = StatsRecorder()
        final: Any = None
        live: EngineSnapshot | None = None
        self._active.add(request_id)
        self._sink.set_active(len(self._active))
        try:
            async for output in self._generate(llm, request, request_id):
                untrack_token_ids(output.prompt_token_ids)  # done on arrival where it can be
                completion = output.outputs[0]
                recorder.tokens(len(completion.token_ids))
                if output.finished:
                    final = output
                else:
                    live = self._scheduler_view()
                if completion.text or completion.token_ids:
                    yield TextDelta(completion.text, len(completion.token_ids),
                                    last=output.finished)
        except vllm_compat.engine_dead_error() as error:
            raise self._died_while_answering() from error
        except ValueError as error:
            raise BadInput(f"The engine refused this prompt: {error}") from error
        except Exception as error:
            if vllm_compat.death_reason(llm) is not None:
                raise self._died_while_answering() from error
            raise
        finally:
            self._active.discard(request_id)
            self._sink.set_active(len(self._active))
            if final is None:
                await self._abort(llm, request_id)
        if self._closing and final.outputs[0].finish_reason == "abort":
            raise EngineUnavailable(APP_STOPPING)
        yield Finished(await self._finish_stats(request, recorder, final, live),
                       prompt_token_ids=tuple(final.prompt_token_ids or ()))

    def _died_while_answering(self) -> EngineUnavailable:
        if self._closing:
            return EngineUnavailable(APP_STOPPING)
        self._notice_death()
        return EngineUnavailable(DIED_WHILE_ANSWERING)

    def _generate(self, llm: Any, request: ChatRequest, request_id: str) -> AsyncIterator[Any]:
        outputs: AsyncIterator[Any] = llm.generate(
            vllm_prompt(request), vllm_sampling(request), request_id,
            lora_request=self.lora_for(request.adapter))
        return outputs

    def lora_for(self, adapter: str | None) -> Any:
        if adapter is None or self._source is None:
            return None
        path = self._source.vision_lora if adapter == "vision" else self._source.speech_lora
        return vllm_compat.lora_request(adapter, ADAPTER_IDS[adapter], path)

    async def _abort(self, llm: Any, request_id: str) -> None:
        try:
            await asyncio.shield(llm.abort(request_id))
        except Exception:
            log.debug("abort of %s failed", request_id, exc_info=True)

    def _scheduler_view(self) -> EngineSnapshot:
        """The scheduler's latest report, cheap enough to take at every delta."""
        view = self._view
        return EngineSnapshot(kv_cache_usage=view.kv_cache_usage, running=view.running,
                              waiting=view.waiting,
                              running_adapters=tuple(view.running_adapters))

    async def _finish_stats(self, request: ChatRequest, recorder: StatsRecorder,
                            final: Any, live: EngineSnapshot | None) -> Any:
        timings = vllm_compat.engine_timings(final)
        snapshot = await self.snapshot()
        if live is not None:
            # The engine as this request saw it while decoding, not after it left.
            snapshot = replace(snapshot, kv_cache_usage=live.kv_cache_usage,
                               running=live.running, waiting=live.waiting,
                               running_adapters=live.running_adapters)
        return recorder.finish(
            engine="embedded", adapter=request.adapter,
            finish_reason=final.outputs[0].finish_reason or "stop",
            prompt_tokens=timings.prompt_tokens or request.tokens.total,
            **request.tokens.split(), timings=timings, snapshot=snapshot,
        )

    def _engine_idle(self) -> bool:
        if isinstance(self._view, SharedBoard):  # the other pages' requests count too
            return self._view.idle()
        return vllm_compat.unfinished_requests(self._llm) == 0

    def adapter_steps(self) -> dict[str, int]:
        """Scheduler steps that ran each LoRA adapter since start, as vLLM reports them."""
        return dict(self._view.adapter_steps)

    async def snapshot(self) -> EngineSnapshot:
        view = self._view
        running, waiting = view.running, view.waiting
        adapters = tuple(view.running_adapters)
        if self._llm is not None and self._engine_idle():
            # The scheduler reports only while it steps; an idle engine runs nothing.
            running, waiting, adapters = 0, 0, ()
        used, total, name, own = self._memory.read(self._has_gpu)
        return EngineSnapshot(kv_cache_usage=view.kv_cache_usage, running=running,
                              waiting=waiting, running_adapters=adapters,
                              generation_tokens_total=view.generation_tokens_total,
                              device_memory_used=used,
                              device_memory_total=total, device_name=name,
                              process_memory=own)


async def _settles(condition: Callable[[], bool], within_s: float) -> bool:
    """Waits until `condition` holds, at most `within_s`; returns whether it did."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
