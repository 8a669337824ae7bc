"""Containers that cannot hold a cycle are left out of the garbage collector's walks.

A full collection walks every reference of every tracked container; under load that walk
stalls the event loop (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from phi4ui.core.untracked import untrack_table, untrack_token_ids


def test_a_list_of_ints_is_no_longer_tracked() -> None:
    ids = list(range(1_000, 4_000))
    assert gc.is_tracked(ids)
    assert untrack_token_ids(ids)
    assert not gc.is_tracked(ids)
    assert not untrack_token_ids(ids), "a second call finds nothing to do"
    ids.extend(range(10))  # still an ordinary list
    assert len(ids) == 3_010 and ids[-1] == 9


@pytest.mark.parametrize("value", [[1, 2, {"a": []}], [[1]], (1, 2, 3), None, "abc"])
def test_anything_that_could_hold_a_cycle_is_left_alone(value: Any) -> None:
    tracked = gc.is_tracked(value)
    assert not untrack_token_ids(value)
    assert gc.is_tracked(value) == tracked


def test_a_cycle_through_a_tracked_list_is_still_collected() -> None:
    class Node:
        pass

    node = Node()
    node.ids = [node]  # the list holds a container, so it is kept in the walks
    assert not untrack_token_ids(node.ids)
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        del node
        assert gc.collect() >= 2
        assert len(gc.get_objects()) < before
    finally:
        gc.enable()


class _Block:
    pass


def test_a_table_of_blocks_is_no_longer_tracked_until_a_container_is_stored() -> None:
    blocks = [_Block() for _ in range(3)]
    table = dict(enumerate(blocks))
    assert gc.is_tracked(table)
    assert untrack_table(table)
    assert not gc.is_tracked(table)
    assert table[1] is blocks[1] and len(table) == 3  # still an ordinary dict

    table[7] = 7
    assert not gc.is_tracked(table), "an int is nothing to walk"
    table[8] = _Block()
    assert gc.is_tracked(table), "CPython walks it again once it holds something new"


@pytest.mark.parametrize("value", [[_Block()], (_Block(),), None, "abc"])
def test_only_dicts_are_taken_as_tables(value: Any) -> None:
    tracked = gc.is_tracked(value)
    assert not untrack_table(value)
    assert gc.is_tracked(value) == tracked


def test_a_cycle_stored_in_an_untracked_table_later_is_still_collected() -> None:
    table = {1: _Block()}
    assert untrack_table(table)
    node = _Block()
    node.me = [node]
    table[2] = node
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        del table[2], node
        assert gc.collect() >= 2
        assert len(gc.get_objects()) < before
    finally:
        gc.enable()
