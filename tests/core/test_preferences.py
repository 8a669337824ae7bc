from __future__ import annotations

from phi4ui.core.chat import Sampling
from phi4ui.core.generation_settings import DEFAULT_SYSTEM, GenerationSettings


def test_defaults_follow_microsofts_examples() -> None:
    settings = GenerationSettings()
    assert settings.temperature == 0.0 and settings.max_tokens == 512
    assert settings.sampling() == Sampling(temperature=0.0, top_p=1.0, max_tokens=512, seed=None)


def test_values_from_the_browser_are_checked() -> None:
    settings = GenerationSettings.checked("Be brief.", "9", -1, 100_000, "42", 4096)
    assert settings == GenerationSettings("Be brief.", 2.0, 0.05, 4096, 42)
    settings = GenerationSettings.checked(None, "hot", float("nan"), None, -3, 4096)
    assert settings == GenerationSettings()
    assert GenerationSettings.checked("", 0.5, 0.9, 12.7, 1.5, 4096).seed is None
    assert GenerationSettings.checked("", 0.5, 0.9, 1, True, 4096).max_tokens == 16


def test_stored_settings_round_trip_and_tolerate_garbage() -> None:
    settings = GenerationSettings("Answer in French.", 0.7, 0.9, 256, 7)
    assert GenerationSettings.from_stored(settings.stored(), 4096) == settings
    assert GenerationSettings.from_stored("not a dict", 4096) == GenerationSettings()
    assert GenerationSettings.from_stored({"temperature": 0.3}, 4096) == GenerationSettings(
        DEFAULT_SYSTEM, 0.3)
    assert GenerationSettings.from_stored({}, 256).max_tokens == 256


def test_the_model_card_preset_is_its_greedy_decoding() -> None:
    card = GenerationSettings.card_greedy(4096)
    assert (card.system, card.temperature, card.top_p, card.max_tokens, card.seed) == (
        "", 0.0, 1.0, 1000, None)
    assert card.sampling() == Sampling(temperature=0.0, top_p=1.0, max_tokens=1000, seed=None)
    # A short context caps the answer, as for any setting.
    assert GenerationSettings.card_greedy(600).max_tokens == 600
    assert card != GenerationSettings(), "the two presets differ"
