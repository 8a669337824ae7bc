"""Several streams read as one: arrival order, errors, and cancelling what still runs."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from phi4ui.core.merged import merged


async def ticks(name: str, delays: list[float]) -> AsyncIterator[str]:
    for index, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield f"{name}{index}"


async def read_all(streams: list[AsyncIterator[str]]) -> list[str]:
    return [item async for item in merged(streams)]


def test_items_come_in_the_order_they_arrive_across_streams():
    found = asyncio.run(read_all([ticks("a", [0.00, 0.05]), ticks("b", [0.02, 0.05])]))
    assert found == ["a0", "b0", "a1", "b1"]


def test_no_streams_is_an_empty_merge():
    assert asyncio.run(read_all([])) == []


def test_a_failing_stream_ends_the_merge_with_its_error_and_cancels_the_others():
    cancelled = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield "tick"
        finally:
            cancelled.set()

    async def failing() -> AsyncIterator[str]:
        await asyncio.sleep(0.03)
        yield "last"
        raise ValueError("broken stream")

    async def main() -> bool:
        with pytest.raises(ValueError, match="broken stream"):
            await read_all([endless(), failing()])
        return cancelled.is_set()

    assert asyncio.run(main())


def test_stopping_the_iteration_cancels_every_stream_still_running():
    stopped: list[str] = []

    async def slow(name: str) -> AsyncIterator[str]:
        try:
            yield f"{name} first"
            await asyncio.sleep(60)
            yield f"{name} never"
        finally:
            stopped.append(name)

    async def main() -> str:
        reader = merged([slow("a"), slow("b")])
        first = await anext(reader)
        await reader.aclose()
        return first

    assert asyncio.run(main()) == "a first"
    assert sorted(stopped) == ["a", "b"]
