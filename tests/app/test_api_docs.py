"""The README's API examples are the files the tests run, quoted whole."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("example", ["examples/api_chat.py", "examples/mcp_client.py"])
def test_the_readme_quotes_the_example_verbatim(example):
    assert f"```python\n{(ROOT / example).read_text()}```" in README
    assert f"`{example}`, run by the tests" in README
