from pathlib import Path

from phi4ui.settings import markdown_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_configuration_table_matches_the_settings():
    assert markdown_table() in README


def test_the_two_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make run" in README and "make test" in README
    assert "\nmake test\n" in ci
