"""The pooled view of a shared engine core: the core reports each scheduler step to one of
its client pages, and each page counts only its own answers' tokens; through the board every
page reads the newest report and all the pages' tokens. Two pages map one real file, as two
page processes do; vLLM's own report objects feed their sinks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from vllm.v1.metrics.stats import IterationStats

from phi4ui.engines.shared_board import SharedBoard, create_board, forget_requests
from phi4ui.engines.vllm_stats import SchedulerSnapshotSink
from tests.engines.test_scheduler_sink import stats


def page(path: Path, index: int) -> tuple[SchedulerSnapshotSink, SharedBoard]:
    sink = SchedulerSnapshotSink()
    board = SharedBoard(str(path), slots=3, index=index, own=sink)
    sink.listener = board.publish
    return sink, board


def tokens(count: int) -> IterationStats:
    iteration = IterationStats()
    iteration.num_generation_tokens = count
    return iteration


def test_nothing_is_known_before_any_page_is_told(tmp_path: Path) -> None:
    create_board(tmp_path / "board", 3)
    _, board = page(tmp_path / "board", 0)
    assert (board.running, board.waiting, board.kv_cache_usage) == (None, None, None)
    assert board.generation_tokens_total == 0 and board.running_adapters == {}


def test_every_page_reads_the_newest_report_and_all_the_pages_tokens(tmp_path: Path) -> None:
    create_board(tmp_path / "board", 3)
    (first, first_board), (second, second_board), (_, idle_board) = (
        page(tmp_path / "board", index) for index in range(3))
    first.record(stats(5, 2, 0.3, {"vision": 3}), tokens(40))
    second.record(None, tokens(25))  # this step's report went to the first page
    second.record(stats(4, 0, 0.25, {"speech": 1}), tokens(7))  # the newest report
    first.record(None, tokens(10))
    for board in (first_board, second_board, idle_board):
        assert (board.running, board.waiting, board.kv_cache_usage) == (4, 0, 0.25)
        assert board.running_adapters == {"speech": 1}
        assert board.generation_tokens_total == 82


def test_the_engine_is_idle_only_when_no_page_has_a_request_in_it(tmp_path: Path) -> None:
    create_board(tmp_path / "board", 3)
    (first, first_board), (_, second_board), _ = (page(tmp_path / "board", i) for i in range(3))
    first.record(stats(1, 0, 0.1, {}), tokens(5))  # the last step's report still counts it
    assert first_board.idle() and second_board.idle()
    first.set_active(2)
    assert not first_board.idle() and not second_board.idle()
    first.set_active(0)
    assert second_board.idle()


def test_a_dead_page_s_requests_are_forgotten_and_its_tokens_kept(tmp_path: Path) -> None:
    create_board(tmp_path / "board", 3)
    (first, first_board), (second, second_board), _ = (page(tmp_path / "board", i)
                                                       for i in range(3))
    second.record(stats(3, 1, 0.2, {"vision": 1}), tokens(30))
    second.set_active(3)
    first.record(None, tokens(4))
    assert not first_board.idle()
    forget_requests(str(tmp_path / "board"), slots=3, index=1)  # as the supervisor does
    assert first_board.idle()
    assert first_board.generation_tokens_total == 34
    assert (first_board.running, first_board.waiting) == (3, 1)  # its last report stays
    second_board.close()


def _write_from_another_process(path: str) -> None:
    sink = SchedulerSnapshotSink()
    sink.listener = SharedBoard(path, slots=3, index=2, own=sink).publish
    for step in range(1, 3001):  # each report differs from the one before in every figure
        sink.record(stats(step, step, step / 4000, {"vision": step}), tokens(1))


def test_a_report_written_in_another_process_is_read_whole(tmp_path: Path) -> None:
    create_board(tmp_path / "board", 3)
    _, board = page(tmp_path / "board", 0)
    writer = multiprocessing.get_context("spawn").Process(
        target=_write_from_another_process, args=(str(tmp_path / "board"),))
    writer.start()
    reads = []
    while writer.is_alive():
        if (report := board.latest_report()) is not None:
            reads.append(report)
    writer.join()
    assert reads, "the writer's reports were never seen"
    torn = [r for r in reads
            if not r.running == r.waiting == r.vision == round(r.kv_cache_usage * 4000)]
    assert not torn, torn[:3]  # never parts of two reports
    assert board.generation_tokens_total == 3000
