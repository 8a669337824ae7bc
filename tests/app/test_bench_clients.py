"""The benchmark's load generator on its own, no engine: the simulated people spread over
client processes against the zero-cost stand-in server on 127.0.0.1, merged exactly, with
their CPU recorded; answers cut short count as errors; the headroom verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.calibrate import calibrate, headroom, standins
from bench.paths import Target, run_clients
from bench.realistic import serves_well
from bench.report_tables import answer_gaps
from bench.workload import RequestTiming, Scenario, ScenarioResult

TOKENS = 12
JOB: dict[str, Any] = {"media": {}, "questions": {"text": "Request {i}: a question."},
                       "client_procs": 2, "calibration_requests": 2}


def test_calibration_merges_the_client_processes_exactly(tmp_path: Path) -> None:
    rows = calibrate(JOB, tmp_path, [1, 3], TOKENS)
    assert [(r["path"], r["users"]) for r in rows] == [
        ("standin_openai", 1), ("standin_openai", 3), ("standin_app", 1), ("standin_app", 3)]
    for row in rows:
        assert row["errors"] == 0, row["first_error"]
        assert row["requests"] == row["users"] * 2
        assert row["total_output_tokens"] == row["users"] * 2 * TOKENS
        assert row["aggregate_tok_s"] > 0 and row["ttft_p50_ms"] > 0
        assert len(row["client_cpu"]) == 2  # one figure per client process
        assert 0 < max(row["client_cpu"]) <= 2  # CPU time over wall time (threads may add)
    # With one person, the second process has nobody to play and stays idle.
    one = rows[0]["client_cpu"]
    assert one[0] > one[1]


@pytest.mark.parametrize("client", ["openai", "app"])
def test_an_answer_cut_short_is_an_error(tmp_path: Path, client: str) -> None:
    scenario = {"kind": "text", "users": 3, "requests_per_user": 2, "output_tokens": TOKENS}
    with standins(1, tmp_path, cut_every=3) as urls:
        found = run_clients({**JOB, "client_procs": 1, "no_warmup": True},
                            Target(client, urls[0], "standin"), "standin", tmp_path,
                            [scenario])
    (result,) = found["results"]
    assert result["requests"] == 6 and result["errors"] == 2  # the 3rd and 6th answers
    assert result["total_output_tokens"] == 4 * TOKENS  # errors' tokens are not counted
    expected = ("6 of 12 tokens" if client == "openai"
                else "the answer ended without its statistics")
    assert expected in result["first_error"]


def test_realistic_people_arrive_and_think(tmp_path: Path) -> None:
    scenario = {"kind": "text", "users": 4, "requests_per_user": 2, "output_tokens": TOKENS,
                "arrival_s": 0.05, "think_s": 0.05}
    with standins(2, tmp_path) as urls:
        found = run_clients({**JOB, "urls": urls, "no_warmup": True},
                            Target("app", urls[0], "standin"), "app", tmp_path, [scenario])
    (step,) = found["results"]
    assert step["requests"] == 8 and step["errors"] == 0
    assert step["ttft_p99_ms"] > 0 and step["largest_gap_max_ms"] >= step["largest_gap_p50_ms"]
    assert found["client_procs"] == 2 and found["host_cpus"] >= 1


def test_headroom_compares_the_ceiling_with_the_fastest_path() -> None:
    calibration = [{"path": "standin_app", "users": 16, "aggregate_tok_s": 9000.0,
                    "client_cpu": [0.5, 0.6]}]
    results = [{"path": "raw", "kind": "text", "users": 16, "aggregate_tok_s": 3000.0},
               {"path": "app", "kind": "audio", "users": 16, "aggregate_tok_s": 5000.0},
               {"path": "app", "kind": "text", "users": 64, "aggregate_tok_s": 8000.0}]
    (row,) = headroom(calibration, results)
    assert (row["fastest_path"], row["fastest_kind"], row["headroom"]) == ("app", "audio", 1.8)
    assert row["enough"] is False and row["client_cpu_max"] == 0.6


def test_answers_in_the_engine_count_from_the_engine_request_to_the_last_token() -> None:
    # Two people over 2 s: one answer each, the first 0.5 s at the engine by the page's own
    # first token time (the client waited longer), the second 1.5 s by the client's.
    result = ScenarioResult("app", Scenario("text", 2, 1, 16))
    result.requests = [
        RequestTiming(ttft=0.4, token_gaps=[], tokens=16, started=0.0, ended=1.0,
                      app_ttft=0.1, streaming_s=0.4),
        RequestTiming(ttft=0.5, token_gaps=[], tokens=16, started=0.0, ended=2.0,
                      streaming_s=1.0),
        RequestTiming(ttft=None, token_gaps=[], tokens=0, started=0.0, ended=0.5,
                      error="refused")]
    assert result.summary()["in_engine_mean"] == 1.0  # (0.5 + 1.5) / 2 s


def test_an_answer_delivered_in_one_burst_is_flagged_and_a_misread_engine_clock_counted() -> None:
    # Both answers waited 1 s. The first reached the client in one burst after the engine took
    # 0.15 s over its 16 tokens; the second's engine span (3 s) is longer than the wait.
    result = ScenarioResult("raw", Scenario("text", 2, 1, 16))
    result.requests = [
        RequestTiming(ttft=0.9, token_gaps=[], tokens=16, started=0.0, ended=1.0,
                      streaming_s=0.0, engine_gap=0.01),
        RequestTiming(ttft=0.1, token_gaps=[], tokens=16, started=0.0, ended=1.0,
                      streaming_s=0.0, engine_gap=0.2)]
    summary = result.summary()
    assert summary["engine_spans_past_wait"] == 1
    assert summary["answer_gap_client_p50_ms"] == 0.0
    note = "\n".join(answer_gaps({"results": [summary]}))
    assert "For raw at 2 the client's figure is below the engine's" in note
    summary["answer_gap_client_p50_ms"] = summary["answer_gap_engine_p50_ms"]
    assert "below the engine's" not in "\n".join(answer_gaps({"results": [summary]}))


def test_people_served_well_is_the_largest_step_within_the_limit() -> None:
    def step(path: str, people: int, p95: float | None, errors: int = 0) -> dict[str, Any]:
        return {"path": path, "users": people, "ttft_p95_ms": p95, "errors": errors}

    steps = [step("app", 8, 200), step("app", 16, 900), step("app", 32, 1400),
             step("server", 8, 100), step("server", 16, 300, errors=1),
             step("app_scaled", 8, None)]
    assert serves_well(steps) == {"app": 16, "server": 8, "app_scaled": 0}


def test_the_chat_diff_is_applied_as_gradio_client_applies_it() -> None:
    import copy

    from gradio_client.utils import apply_diff as gradio_apply_diff

    from bench.sse_client import apply_diff

    chat: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                       {"role": "assistant", "content": [{"type": "text", "text": "a"}]}]
    ours, theirs = copy.deepcopy(chat), copy.deepcopy(chat)
    for diff in ([["append", [1, "content", 0, "text"], "bc"]],
                 [["add", [2], {"role": "assistant", "metadata": {"title": "Statistics"}}]],
                 [["replace", [0, "role"], "user"], ["delete", [2], None]],
                 [["add", [1, "metadata"], {"title": None}]]):
        ours, theirs = apply_diff(ours, diff), gradio_apply_diff(theirs, diff)
        assert ours == theirs


@pytest.mark.parametrize(("shown", "seconds"), [("first token 58 ms", 0.058),
                                                ("first token 1.25 s", 1.25)])
def test_the_page_s_own_first_token_is_read_from_its_statistics(shown: str,
                                                                seconds: float) -> None:
    from bench.sse_client import Reply, _on_output

    reply = Reply(started=0.0)
    stats = {"role": "assistant", "metadata": {"title": "Statistics"},
             "content": [{"type": "text", "text": f"{shown} · 118.8 tok/s · 64 tokens in 0.5 s"}]}
    _on_output([[{"role": "assistant", "content": [{"type": "text", "text": "a"}]}, stats]],
               reply)
    assert reply.completion_tokens == 64 and reply.app_ttft == pytest.approx(seconds)


@pytest.mark.parametrize(("decode_s", "engine_gap"), [(0.508, 0.004), (2.54, 0.02)])
def test_each_clock_s_time_per_token_is_read_from_the_page_s_statistics(
        decode_s: float, engine_gap: float) -> None:
    """The engine's decode time and the page process's rate, as the page's own statistics
    details show them (both of the page's time formats), become each answer's time per
    token on those clocks."""
    from bench.clients import engine_gap as gap_of
    from bench.sse_client import Reply, _on_output
    from phi4ui.core.history import answer_annotations
    from phi4ui.core.stats import RequestStats

    stats = RequestStats(engine="embedded", adapter=None, finish_reason="length", ttft_s=0.05,
                         e2e_s=decode_s + 0.05, completion_tokens=128, prompt_tokens=40,
                         prompt_text_tokens=40, prompt_image_tokens=0, prompt_audio_tokens=0,
                         decode_tokens_per_s=240.5, itl_p50_s=0.004, itl_p95_s=0.005,
                         queue_s=0.001, prefill_s=0.02, decode_s=decode_s)
    reply = Reply(started=0.0)
    _on_output([answer_annotations(stats, [])], reply)
    assert reply.page_rate == 240.5
    assert gap_of(reply.engine_decode_s, 128) == pytest.approx(engine_gap, rel=0.01)
