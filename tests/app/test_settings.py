import pytest

from phi4ui.errors import SettingsError
from phi4ui.settings import DEFAULT_MODEL, load_settings


def test_defaults_need_nothing():
    settings = load_settings([], environ={})
    assert settings.engine == "embedded"
    assert settings.model == DEFAULT_MODEL
    assert len(settings.revision) == 40
    assert settings.port == 7860


def test_flag_beats_environment_which_beats_default():
    environ = {"PHI4UI_MAX_MODEL_LEN": "8192", "PHI4UI_PORT": "9000"}
    settings = load_settings(["--port", "9100"], environ=environ)
    assert settings.max_model_len == 8192
    assert settings.port == 9100


def test_boolean_flag_alone_means_true():
    assert load_settings(["--enforce-eager"], environ={}).enforce_eager is True
    assert load_settings([], environ={"PHI4UI_ENFORCE_EAGER": "no"}).enforce_eager is False


@pytest.mark.parametrize(
    ("argv", "environ", "names"),
    [
        (["--max-model-len", "abc"], {}, "--max-model-len"),
        (["--max-model-len", "12"], {}, "--max-model-len"),
        ([], {"PHI4UI_PORT": "70000"}, "PHI4UI_PORT"),
        (["--engine", "cloud"], {}, "--engine"),
        (["--gpu-memory-utilization", "1.5"], {}, "--gpu-memory-utilization"),
        (["--engine", "remote"], {}, "--base-url"),
        (["--audio-min-seconds", "5", "--audio-max-seconds", "2"], {}, "--audio-min-seconds"),
        (["--enforce-eager", "maybe"], {}, "--enforce-eager"),
    ],
)
def test_bad_value_names_its_flag_on_one_line(argv, environ, names):
    with pytest.raises(SettingsError) as caught:
        load_settings(argv, environ=environ)
    message = str(caught.value)
    assert message.startswith(names)
    assert "\n" not in message


def test_api_key_is_redacted():
    settings = load_settings(["--engine", "remote", "--base-url", "http://127.0.0.1:1/v1",
                              "--api-key", "sk-secret"], environ={})
    assert settings.api_key == "sk-secret"
    assert "sk-secret" not in str(settings.redacted())


def test_app_exits_with_one_line_on_a_bad_value(capsys):
    from app import main

    assert main(["--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["phi4ui: --port: must be a TCP port, 1 to 65535, got '0'"]
