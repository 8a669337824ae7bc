"""The example prompts and the files they ship with."""

from __future__ import annotations

from phi4ui.core.media import MediaLimits, kind_of, prepare
from phi4ui.page.examples import ASSETS, EXAMPLES, message_for


def test_every_example_file_is_shipped_readable_and_licensed() -> None:
    licence = (ASSETS / "LICENSE.md").read_text()
    for name in {name for example in EXAMPLES for name in example.files}:
        prepare(ASSETS / name, MediaLimits(dynamic_hd=4))  # raises if it cannot be used
        assert f"`{name}`" in licence, f"{name} has no licence line in assets/LICENSE.md"
    for path in ASSETS.iterdir():
        if path.suffix in (".png", ".wav", ".css", ".py"):
            assert f"`{path.name}`" in licence, f"{path.name} has no licence line"


def test_examples_cover_each_kind_of_input() -> None:
    kinds = [tuple(sorted(kind_of(f) for f in example.files)) for example in EXAMPLES]
    assert ("image",) in kinds and ("audio",) in kinds
    assert ("audio", "image") in kinds and () in kinds


def test_an_example_is_chosen_by_index_only() -> None:
    assert message_for(4) == {"text": EXAMPLES[4].text,
                              "files": [str(ASSETS / "house.png"), str(ASSETS / "windows_en.wav")]}
    for bad in (-1, len(EXAMPLES), "0", None, True, 1.0):
        assert message_for(bad) is None
    assert EXAMPLES[0].card()["icon"].endswith("house.png")
    assert "icon" not in EXAMPLES[-1].card()
