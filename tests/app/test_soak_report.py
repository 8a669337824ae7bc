"""The soak's figures and report, from a made-up run (the soak itself takes minutes)."""

from bench.soak import (
    heap_census,
    logged_stalls,
    markdown,
    stall_places,
    stall_split,
    summary,
    worst_stacks,
)


def _sample(t_s: float, app_mib: int, engine_mib: int, stall_ms: float,
            running: int = 0) -> dict:
    collections = int(t_s // 10)  # one full collection of 80 ms every 10 s
    return {"t_s": t_s, "app_rss": app_mib << 20, "engine_rss": engine_mib << 20,
            "engine_processes": [], "load1": 1.0, "loop_stall_recent_ms": stall_ms,
            "loop_stall_max_ms": 900.0, "running": running, "waiting": 0, "people_cpu_pct": 20.0,
            "gc_full_count": collections, "gc_full_total_ms": 80.0 * collections,
            "gc_full_longest_ms": 95.0}


def _message(kind: str, outcome: str, ttft_s: float | None, error: str = "") -> dict:
    return {"person": 0, "kind": kind, "plan": "read", "sent_at": 1.0, "cleared_first": False,
            "outcome": outcome, "error": error, "ttft_s": ttft_s, "tokens": 32}


def _run() -> dict:
    return {
        "command": "python -m bench.soak --quick", "started": "2026-01-01 00:00:00",
        "commit": "abc1234", "uncommitted": [],
        "machine": {"cores": 2, "cpu": "x86_64", "memory_gib": 24, "gpu": None,
                    "python": "3.11"},
        "versions": {"vllm": "0"}, "app_args": ["--model", "tiny"],
        "settings": {"people": 2, "minutes": 1.0, "warmup_s": 15.0, "think_mean_s": 4.0,
                     "mix": "text=1", "max_tokens": "32", "stop_share": 0.1,
                     "close_share": 0.05, "clear_share": 0.1, "quiet_s": 5.0,
                     "sample_every_s": 5.0, "model": ""},
        "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 1.0, 1.0],
        "app_start": {"page_s": 5.0, "engine_ready_s": 50.0, "loop_stall_max_ms": 800.0},
        "first_use": {"messages": [_message("image", "completed", 30.0)],
                      "loop_stall_max_ms": 850.0},
        # Before warm-up's end the stall and memory do not count.
        "samples": [_sample(5, 900, 4000, 5000.0), _sample(20, 1000, 5000, 20.0),
                    _sample(40, 1010, 5000, 150.0), _sample(60, 1100, 5100, 30.0)],
        "after_quiet": _sample(66, 1100, 5100, 10.0, running=1),
        "people": {"messages": [_message("text", "completed", 0.2),
                                _message("text", "stopped", 0.4),
                                _message("image", "error", None, "refused: busy")],
                   "pages_opened": 3, "people_failed": [], "cpu_s": 6.0, "wall_s": 60.0,
                   "cpu_pct_of_one_core": 10.0},
    }


def test_the_summary_takes_memory_and_stalls_after_warm_up_only():
    s = summary(_run())
    assert (s["completed"], s["stopped"], s["errors"]) == (1, 1, 1)
    assert s["errors_by_kind"] == {"refused: busy": 1}
    assert s["memory"]["app_rss"]["growth_pct"] == 10.0
    assert s["memory"]["engine_rss"]["start"] == 5000 << 20
    assert s["loop_stall_worst_ms"] == 150.0
    assert s["leaked_running"] == 1
    assert s["ttft_by_kind_ms"] == {"text": [200.0, 400.0]}
    # Between the first sample after warm-up (20 s) and the last (60 s): 6 - 2.
    assert s["full_collections"] == {"count": 4, "mean_ms": 80.0,
                                     "longest_since_start_ms": 95.0}


def test_the_report_marks_each_missed_goal():
    run = _run()
    run["summary"] = summary(run)
    table = markdown(run)
    assert "| errors | 0 | 1 of 3 messages | **no** |" in table
    assert "+10.00% | **no** |" in table and "+2.00% | yes |" in table
    assert "| worst event-loop stall after warm-up | < 100 ms | 150.0 ms | **no** |" in table
    assert "image 30.00 s to first token" in table
    assert "800.0 ms when the engine was ready, 850.0 ms after the first uses" in table
    assert "python -m bench.soak --quick" in table and "[2.0, 1.0, 1.0]" in table
    assert ("Full garbage collections after warm-up: 4, 80.0 ms on average (the longest "
            "since the engine was ready: 95.0 ms)") in table


APP_LOG = """2026-01-01 00:00:01 INFO phi4ui: Settings: ...
2026-01-01 00:00:09 WARNING phi4ui.web.loopwatch: The event loop was held for 230 ms, in:
  File "/usr/lib/python3.11/asyncio/events.py", line 80, in _run
    self._context.run(self._callback, *self._args)
  File "/srv/app/phi4ui/core/answer_stream.py", line 120, in answer
    update = pacer.next()
  File "/srv/app/.venv/lib/python3.11/site-packages/gradio/utils.py", line 9, in helper
    return thing()
busy threads: asyncio_0 at tokenizer.py:12 encode
2026-01-01 00:00:10 WARNING phi4ui.web.loopwatch: The event loop was held for 120 ms, in:
  File "/srv/app/phi4ui/core/answer_stream.py", line 120, in answer
    update = pacer.next()
2026-01-01 00:00:12 WARNING phi4ui.web.loopwatch: The event loop was held for 400 ms
loop thread: 390 ms on a CPU, 5 ms waiting for one
garbage collection: 380 ms (generation 2)
2026-01-01 00:00:13 WARNING phi4ui.web.loopwatch: {census}
2026-01-01 00:00:13 INFO phi4ui: Stopped
""".format(census="The longest full garbage collection took 120 ms; it walks the 900,000 "
                  "objects made since start, most numerous: builtins.dict 500,000, "
                  "builtins.list 100")


def test_the_stalls_the_app_logged_are_placed_in_its_own_code():
    stalls = logged_stalls(APP_LOG)
    assert [(s["ms"], s["where"]) for s in stalls] == [
        (230, "utils.py:9 helper (in answer_stream.py:120 answer)"),
        (120, "answer_stream.py:120 answer"), (400, "unknown")]
    assert "update = pacer.next()" in stalls[0]["stack"]
    assert stalls[0]["busy_threads"] == "asyncio_0 at tokenizer.py:12 encode"
    assert stalls[1]["busy_threads"] == ""
    assert stall_places(stalls) == (
        "`unknown` 1x, worst 400 ms; `utils.py:9 helper (in answer_stream.py:120 answer)` 1x, "
        "worst 230 ms; `answer_stream.py:120 answer` 1x, worst 120 ms")
    assert stall_places([]) == "none logged"
    assert (stalls[2]["on_cpu_ms"], stalls[2]["collecting_ms"]) == (390, 380)
    assert stalls[0]["collecting_ms"] == 0


def test_the_stalls_time_names_the_garbage_collector_s_share():
    split = stall_split(logged_stalls(APP_LOG))
    assert split.startswith("of 400 ms in 1 stalls, the loop thread ran 98%")
    assert split.endswith("Python's garbage collector ran 95% of that time, in 1 of the 1 stalls")


def test_the_report_names_where_the_loop_was_held():
    run = _run()
    run["stalls_logged"] = logged_stalls(APP_LOG)
    run["heap_census"] = heap_census(APP_LOG)
    run["summary"] = summary(run)
    assert "logged with where the loop was held" in markdown(run)
    assert ("- Python's heap at the app's end: The longest full garbage collection took 120 ms;"
            " it walks the 900,000 objects made since start, most numerous: builtins.dict "
            "500,000, builtins.list 100.") in markdown(run)
    assert "`answer_stream.py:120 answer` 1x, worst 120 ms" in markdown(run)


def test_only_the_worst_stalls_keep_their_stacks():
    stalls = [{"ms": ms, "where": "x", "stack": "s"} for ms in range(101, 131)]
    kept = worst_stacks(stalls, count=3)
    assert [s["ms"] for s in kept if "stack" in s] == [130, 129, 128]
    assert len(kept) == 30
