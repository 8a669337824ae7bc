from __future__ import annotations

from phi4ui.core.engine import EngineInfo, Status
from phi4ui.core.stats import EngineSnapshot
from phi4ui.page import panels

INFO = EngineInfo(kind="embedded", model="microsoft/Phi-4-multimodal-instruct",
                  revision="0ae13bd0f508a906f8b8288fc5e36b01b903c132", max_model_len=16384,
                  max_images=2, max_audios=1, dynamic_hd=16,
                  adapters={"vision": "/m/vision-lora", "speech": "/m/speech-lora"},
                  device="NVIDIA H100")


def test_header_shows_the_model_badge_and_the_state() -> None:
    html = panels.header_html(INFO, Status("ready", "ready"))
    assert "microsoft/Phi-4-multimodal-instruct" in html
    assert "0ae13bd0f508<" in html  # a commit is shortened
    assert "embedded engine · NVIDIA H100" in html and "p4-state-ready" in html
    assert "random-banner" not in html


def test_header_warns_of_random_weights_and_escapes() -> None:
    info = EngineInfo(kind="remote", model="<b>odd</b>", random_weights=True)
    html = panels.header_html(info, Status("loading", "starting"))
    assert "&lt;b&gt;odd&lt;/b&gt;" in html and "<b>odd" not in html
    assert 'id="random-banner"' in html and "Loading…" in html


def test_status_is_a_sentence_only_when_not_ready() -> None:
    assert panels.status_text(Status("ready", "ready")) == ""
    loading = panels.status_text(Status("loading", "loading weights", since=10.0), now=42.0)
    assert "loading weights, 32 s so far" in loading
    assert "connection refused" in panels.status_text(Status("failed", "connection refused"))


def test_status_says_a_restart_is_under_way() -> None:
    restarting = Status("restarting", "the engine process was killed by SIGKILL; restart 1 of 3",
                        since=10.0)
    text = panels.status_text(restarting, now=25.0)
    assert text.startswith("**The engine stopped and is restarting** (the engine process was "
                           "killed by SIGKILL; restart 1 of 3, 15 s so far)")
    assert "conversation is kept" in text
    html = panels.header_html(INFO, restarting)
    assert "Restarting…" in html and "p4-state-restarting" in html


def test_live_table() -> None:
    assert "once the model has loaded" in panels.live_markdown(None, None)
    text = panels.live_markdown(EngineSnapshot(kv_cache_usage=0.25, running=1, waiting=2,
                                               process_memory=2**30), 12.34)
    assert "| Generating now | 12.3 tok/s |" in text
    assert "| KV cache in use | 25.0% |" in text
    assert "| Requests running / waiting | 1 / 2 |" in text


def test_engine_settings_table() -> None:
    text = panels.engine_settings_markdown(INFO)
    assert "| Context length | 16,384 tokens |" in text
    assert "| Images per prompt | 2 (each up to 16 crops of 448 px) |" in text
    assert "vision: `/m/vision-lora`" in text and "Warnings" not in text
    warned = EngineInfo(kind="remote", model="m", warnings=("no /metrics",))
    assert "- no /metrics" in panels.engine_settings_markdown(warned)
