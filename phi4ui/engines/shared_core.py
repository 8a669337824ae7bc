"""One vLLM engine core shared by several page processes, each page a direct client of it:
the mechanism behind `vllm serve --api-server-count N`, without HTTP between the page and the
engine. The supervisor starts the core (`start_core`); each page process finds its
`Attachment` in its environment and makes its AsyncLLM a client of that core
(`attached_async_llm`). Requests go to the core over ZeroMQ; each page detokenizes its own
answers, as vLLM's API processes do.

Like `vllm_compat`, this module touches vLLM's internals (0.24 and 0.32 differ here); the
core's processes are vLLM's own, started and stopped by its own launcher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi4ui.engines.shared_board import SharedBoard, create_board
from phi4ui.engines.vllm_compat import engine_processes_exit
from phi4ui.engines.vllm_stats import SchedulerSnapshotSink, stat_loggers

log = logging.getLogger(__name__)
# Not a setting: the supervisor writes it for the page processes it starts.
ATTACHMENT_ENV = "PHI4UI_ENGINE_CORE"


@dataclass(frozen=True)
class Attachment:
    """What one page process needs to reach the shared core: its own pair of sockets (it
    binds them; the core connects) and its place among the clients."""

    input_address: str
    output_address: str
    client_count: int
    client_index: int
    stats_update_address: str | None = None
    board_path: str = ""  # the file the clients pool their views of the core in
    engine_pids: tuple[int, ...] = ()  # the core's processes, for their memory

    def as_env(self) -> dict[str, str]:
        return {ATTACHMENT_ENV: json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Attachment | None:
        text = environ.get(ATTACHMENT_ENV, "")
        if not text:
            return None
        fields = json.loads(text)
        return cls(**{**fields, "engine_pids": tuple(fields.get("engine_pids", ()))})


def board_for(attachment: Attachment, own: SchedulerSnapshotSink) -> SharedBoard:
    """The clients' pooled view of the core, fed by this page's own sink."""
    board = SharedBoard(attachment.board_path, slots=attachment.client_count,
                        index=attachment.client_index, own=own)
    own.listener = board.publish
    return board


def attached_async_llm(args: Any, sink: SchedulerSnapshotSink, attachment: Attachment) -> Any:
    """An AsyncLLM that starts no engine: a client of the shared core. Blocks until the core
    has loaded the model and connected."""
    from vllm.v1.engine.async_llm import AsyncLLM

    args._api_process_count = attachment.client_count
    args._api_process_rank = attachment.client_index
    addresses: dict[str, Any] = {"input_address": attachment.input_address,
                                 "output_address": attachment.output_address}
    if attachment.stats_update_address:
        addresses["stats_update_address"] = attachment.stats_update_address
    return AsyncLLM.from_vllm_config(
        args.create_engine_config(), stat_loggers=stat_loggers(sink),
        client_addresses=addresses, client_count=attachment.client_count,
        client_index=attachment.client_index)


@dataclass
class SharedCore:
    """The running core: vLLM's manager of its processes, and its DP coordinator if any."""

    manager: Any
    coordinator: Any

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in getattr(self.manager, "processes", ()) if p.pid is not None]

    def death_reason(self) -> str | None:
        return engine_processes_exit(list(getattr(self.manager, "processes", ())))

    def shutdown(self, timeout_s: float) -> None:
        for part in (self.manager, self.coordinator):
            if part is not None:
                try:
                    part.shutdown(timeout=timeout_s)
                except Exception:
                    log.warning("Stopping the engine core failed", exc_info=True)


def start_core(args: Any, clients: int, board: Path,
               start_clients: Callable[[list[Attachment]], None]) -> SharedCore:
    """Starts the engine core for `clients` page processes; `start_clients` is called with
    their attachments while the core loads, and this returns once the core is ready. The
    clients pool what the core tells each of them in `board`, a new file."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.executor import Executor

    args._api_process_count = clients
    args._api_process_rank = -1
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    inputs, outputs = _local_addresses(config, clients)
    create_board(board, clients)
    with _launch(config, Executor.get_class(config), inputs, outputs) as launched:
        manager, coordinator, addresses = launched
        stats = coordinator.get_stats_publish_address() if coordinator else None
        core = SharedCore(manager, coordinator)
        pids = tuple(core.pids)  # started already; the model loads after this
        start_clients([Attachment(i, o, clients, index, stats, str(board), pids)
                       for index, (i, o)
                       in enumerate(zip(addresses.inputs, addresses.outputs, strict=True))])
    return core  # the launcher's exit waited for the core's handshake


def _local_addresses(config: Any, clients: int) -> tuple[list[str], list[str]]:
    """A pair of IPC socket paths per client: each page binds its own, whenever it starts."""
    from vllm.v1.engine import utils

    planned: Any
    if hasattr(utils, "get_engine_zmq_bind_addresses"):  # 0.32
        planned = utils.get_engine_zmq_bind_addresses(config, clients)
    else:  # 0.24
        planned = getattr(utils, "get_engine_zmq_addresses")(  # noqa: B009
            config, clients, defer_api_server_ports=False)
    inputs, outputs = list(planned.inputs), list(planned.outputs)
    if not all(address.startswith("ipc://") for address in inputs + outputs):
        raise ValueError("the shared engine core serves page processes on this host only "
                         "(data parallel over several hosts needs --scale-out server)")
    return inputs, outputs


@contextlib.contextmanager
def _launch(config: Any, executor: Any, inputs: list[str], outputs: list[str]
            ) -> Iterator[tuple[Any, Any, Any]]:
    """vLLM's `launch_core_engines`, as (manager, coordinator, addresses) in either release;
    leaving it waits for the engines' handshake."""
    from vllm.v1.engine import utils

    addresses = utils.EngineZmqAddresses(inputs=inputs, outputs=outputs)
    launch: Any = utils.launch_core_engines  # its signature differs between releases
    if "num_api_servers" in inspect.signature(launch).parameters:  # 0.24
        with launch(config, executor, True, addresses, len(inputs)) as launched:
            manager, coordinator, addresses, _tensor_queue = launched
            yield manager, coordinator, addresses
    else:
        with launch(config, executor, True, addresses) as launched:
            yield launched.engine_manager, launched.coordinator, launched.addresses
