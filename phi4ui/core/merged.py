"""Several async streams read as one: each item as soon as its stream gives it, as the batch
runner's workers and the two sides of a side-by-side answer need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class _Ended(Generic[T]):
    """One stream has no more items; `error` is what ended it, if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def merged(streams: Sequence[AsyncIterator[T]]) -> AsyncGenerator[T, None]:
    """Items of every stream in the order they arrive. A stream that fails ends the merge
    with its error; closing the merge (read it inside `contextlib.aclosing`, so that a
    reader that stops early closes it at once) cancels the streams still running."""
    arrivals: asyncio.Queue[tuple[T] | _Ended[T]] = asyncio.Queue()

    async def drain(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                arrivals.put_nowait((item,))
        except Exception as error:  # noqa: BLE001 - handed to the reader, who raises it
            arrivals.put_nowait(_Ended(error))
        else:
            arrivals.put_nowait(_Ended())

    tasks = [asyncio.ensure_future(drain(stream)) for stream in streams]
    try:
        running = len(tasks)
        while running:
            arrival = await arrivals.get()
            if isinstance(arrival, _Ended):
                if arrival.error is not None:
                    raise arrival.error
                running -= 1
            else:
                yield arrival[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
