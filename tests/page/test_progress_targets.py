"""The real page's steps and where they show progress: a step whose progress is hidden names
no component, so that its outputs stay out of the status walk the browser makes on every
streamed update (see `gradio_workarounds.NO_PROGRESS`); the answer names the chat alone."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sse_client import GradioApp
from phi4ui.engines import build_engine
from phi4ui.settings import load_settings
from phi4ui.web.server import _gradio_app, build_server


@pytest.fixture(scope="module")
def page_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The configuration the browser gets, of the real page built (not started)."""
    db = tmp_path_factory.mktemp("db") / "phi4ui.db"
    settings = load_settings(["--engine", "remote", "--base-url", "http://127.0.0.1:9/v1",
                              "--db-path", str(db)], environ={})
    blocks = _gradio_app(build_server(settings, build_engine(settings))).state_holder.blocks
    config: dict[str, Any] = blocks.get_config_file()
    return config


def _elem_ids(config: dict[str, Any]) -> dict[int, str]:
    return {c["id"]: c.get("props", {}).get("elem_id") or "" for c in config["components"]}


def test_no_step_with_hidden_progress_names_a_component_but_the_answer(
        page_config: dict[str, Any]) -> None:
    names = _elem_ids(page_config)
    # The public API's endpoints are triggered by no component, so never run in a page.
    hidden = [d for d in page_config["dependencies"]
              if d.get("backend_fn") and d.get("show_progress") == "hidden" and d["targets"]]
    assert len(hidden) > 20  # the chat's steps, its panel's tick, the other tabs' hidden ones
    targeted = [d for d in hidden if d.get("show_progress_on") != []]
    assert [[names[i] for i in d["show_progress_on"]] for d in targeted] == [["chatbot"]] * 3
    # Those three are the answers to a sent, a retried and an edited message.
    assert all(d.get("trigger_only_on_success") and d.get("queue") is not False
               for d in targeted)


def test_the_chat_s_own_steps_leave_the_settings_and_the_engine_panel_out(
        page_config: dict[str, Any]) -> None:
    names = _elem_ids(page_config)
    panel = {"header", "engine-status", "engine-live", "throughput", "cost", "temperature"}
    for dependency in page_config["dependencies"]:
        if set(names[i] for i in dependency["outputs"]) & panel and dependency.get("backend_fn"):
            assert dependency.get("show_progress_on") == [], dependency


def test_the_benchmark_s_page_client_finds_every_step_the_page_sends(
        page_config: dict[str, Any]) -> None:
    app = GradioApp("http://127.0.0.1:9", client=None)  # type: ignore[arg-type]
    app.learn(page_config)
    # One step sends a message and streams its answer: no accept or finishing step.
    assert set(app.fn) == {"load", "clear", "answer", "stop", "preview", "tick"}
    assert app.queued["answer"] and not app.queued["stop"] and not app.queued["clear"]
    # the message, its id, two states, five settings; the last input, a state, is padded
    assert len(app.answer_data("hi", [], "Be brief.", 16)) == app.inputs["answer"] - 1 == 9
    assert app.tick_s > 0
