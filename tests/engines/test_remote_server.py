"""What the remote engine makes of a server's answers at start, without a server: the model
it picks from the list, the warnings a person reads, and the token counter and text guard
it plans prompts with (a real tokenizer, the tiny checkpoint's, written to a folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai.types import Model

from phi4ui.core.textguard import GENERIC
from phi4ui.engines import remote_server
from phi4ui.engines.calibration import Measured
from phi4ui.engines.remote_server import Server, StartFailed
from phi4ui.engines.remote_tokens import PROBE, TokenCounter, load_tokenizer
from phi4ui.settings import load_settings
from phi4ui.tinymodel.tokenizer import write_tokenizer

WHERE = "http://127.0.0.1:8000/v1"


def listed(model_id: str, **fields: Any) -> Model:
    """One entry of `GET /v1/models` as vLLM lists it (`root`, `parent` are vLLM's own)."""
    return Model.construct(id=model_id, created=0, object="model", owned_by="vllm", **fields)


BASE = listed("phi4", root="/models/phi4", max_model_len=4096)
ADAPTERS = [listed("vision", root="/models/phi4/vision-lora", parent="phi4"),
            listed("speech", root="/models/phi4/speech-lora", parent="phi4")]


def server(**changes: Any) -> Server:
    facts: dict[str, Any] = {
        "model": "phi4", "root": "/models/phi4", "max_model_len": 4096,
        "adapters": {"vision": "/v", "speech": "/s"}, "is_vllm": True, "has_metrics": True,
        "random_weights": False}
    return Server(**{**facts, **changes})


def settings(*flags: str) -> Any:
    return load_settings(["--engine", "remote", "--base-url", WHERE, *flags], environ={})


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder, vocab_size=1024, model_max_length=4096)
    return folder


# ---------------------------------------------------------------- the model to use

def test_the_first_base_model_is_used_and_the_adapters_are_not_bases():
    assert remote_server.choose_base([*ADAPTERS, BASE], "", WHERE) is BASE


def test_a_named_model_is_used_when_listed():
    other = listed("phi4-copy")
    assert remote_server.choose_base([BASE, other, *ADAPTERS], "phi4-copy", WHERE) is other


@pytest.mark.parametrize("wanted", ["missing", "vision"])
def test_a_named_model_that_is_not_a_listed_base_fails_with_the_list(wanted):
    with pytest.raises(StartFailed) as failure:
        remote_server.choose_base([BASE, *ADAPTERS], wanted, WHERE)
    assert str(failure.value) == (f"{WHERE} does not serve {wanted!r} (it lists phi4, vision, "
                                  "speech); check --remote-model")


def test_a_server_with_adapters_only_has_no_base_model():
    with pytest.raises(StartFailed, match=r"lists no base model \(only vision, speech\)"):
        remote_server.choose_base(ADAPTERS, "", WHERE)
    with pytest.raises(StartFailed, match=r"\(only nothing\)"):
        remote_server.choose_base([], "", WHERE)


# ---------------------------------------------------------------- warnings

def test_a_complete_server_measured_as_set_gets_no_warning():
    assert remote_server.warnings(server(), settings(), Measured(16)) == ()
    assert remote_server.warnings(server(), settings("--dynamic-hd", "16"), Measured(16)) == ()


def test_each_thing_a_server_lacks_has_its_warning():
    lacking = server(adapters={"vision": "/v"}, max_model_len=None, has_metrics=False,
                     is_vllm=False)
    found = remote_server.warnings(lacking, settings("--max-model-len", "2048"), None)
    assert len(found) == 4
    assert found[0].startswith("The server lists no 'speech' LoRA adapter: audio clips go to")
    assert found[1] == ("The server does not report its context length: prompts are planned "
                        "for --max-model-len 2048.")
    assert found[2] == ("The server's image tiling (dynamic_hd) could not be measured (it is "
                        "not vLLM): image costs are planned for 16 crops and may be off.")
    assert found[3] == ("The server has no vLLM /metrics: KV-cache use, running and waiting "
                        "requests, queue time, prefill time, decode time are not shown.")


def test_no_adapter_at_all_names_both_inputs():
    (warning,) = remote_server.adapter_warnings(server(adapters={}))
    assert warning.startswith("The server lists no 'vision' or 'speech' LoRA adapter: images "
                              "and audio clips go to the base model")


def test_the_server_s_dynamic_hd_wins_over_a_different_setting():
    assert remote_server.dynamic_hd_warnings(server(), settings("--dynamic-hd", "4"),
                                             Measured(44, at_least=True)) == [
        "--dynamic-hd 4 differs from the server's 44 or more: image costs are planned with "
        "the server's."]
    assert "planned for 4 crops" in remote_server.dynamic_hd_warnings(
        server(), settings("--dynamic-hd", "4"), None)[0]
    assert "(the measurement failed)" in remote_server.dynamic_hd_warnings(
        server(), settings(), None)[0]


# ---------------------------------------------------------------- tokens and the text guard

def test_without_a_tokenizer_a_token_is_estimated_per_three_bytes():
    counter = TokenCounter()
    assert not counter.exact
    assert [counter.count(text) for text in ("", "abc", "abcd", "wö")] == [0, 1, 2, 1]
    assert remote_server.text_guard(counter) is GENERIC


def test_a_served_folder_s_tokenizer_counts_exactly(tokenizer_folder):
    counter = load_tokenizer(str(tokenizer_folder), None)
    assert counter is not None
    assert counter.exact
    ids = counter.ids(PROBE)
    assert counter.count(PROBE) == len(ids) > 0
    assert counter.ids("<|user|>") == [ids[0]]  # a control token is one token
    added = {text: (token_id, special) for token_id, text, special in counter.added_tokens()}
    assert added["<|user|>"] == (ids[0], True)


def test_the_guard_of_an_exact_tokenizer_neutralises_its_control_tokens(tokenizer_folder):
    counter = load_tokenizer(str(tokenizer_folder), None)
    guard = remote_server.text_guard(counter)
    assert guard is not GENERIC
    typed = "<|user|> and <|endoftext|>"
    assert counter.ids("<|user|>")[0] not in counter.ids(guard.neutralise(typed))


def test_no_tokenizer_is_found_where_there_is_none(tmp_path):
    assert load_tokenizer(str(tmp_path), None) is None  # a folder without tokenizer.json
    assert load_tokenizer("not a hub id", None) is None


def test_a_random_weight_folder_is_told_from_a_model_name(tmp_path):
    assert not remote_server.is_random_weight_folder("microsoft/Phi-4-multimodal-instruct")
    assert not remote_server.is_random_weight_folder(str(tmp_path))
