"""The package's folders are its layers: each may import only the ones below it, as its
docstring says. Read from the source with `ast`, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "phi4ui"
SHARED = {"phi4ui.errors", "phi4ui.settings"}
# What each part may import from phi4ui, besides itself and SHARED.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "tinymodel": set(),
    "engines": {"core", "tinymodel"},
    "evaluation": {"core"},
    "page": {"core", "evaluation"},
    "web": {"core", "evaluation", "page"},
    "scaleout": {"engines", "tinymodel"},
    "commands": {"core", "engines", "evaluation", "page", "scaleout", "tinymodel", "web"},
}
# Third-party packages a part must not import.
FORBIDDEN: dict[str, set[str]] = {
    "core": {"gradio", "vllm", "openai", "fastapi", "starlette", "torch", "transformers"},
    "engines": {"gradio", "fastapi", "starlette"},
    "evaluation": {"gradio", "vllm", "openai", "fastapi", "starlette"},
    "page": {"vllm", "openai", "torch", "transformers"},
    "web": {"vllm", "openai", "torch", "transformers"},
    "scaleout": {"gradio", "vllm", "fastapi", "starlette"},
}


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, relative imports made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.rsplit(".", node.level)[0]
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def part_of(module: str) -> str | None:
    """`phi4ui.core.chat` -> `core`; a top-level module of phi4ui -> None."""
    pieces = module.split(".")
    if pieces[0] != "phi4ui" or len(pieces) < 2:
        return None
    return pieces[1] if (PACKAGE / pieces[1]).is_dir() else None


def broken_rules(part: str) -> list[str]:
    broken = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        if "remote" in path.relative_to(PACKAGE / part).parts[:-1]:
            continue  # the tiny checkpoint's remote code is loaded by transformers, not us
        for module in sorted(imports_of(path)):
            top = module.split(".")[0]
            if top in FORBIDDEN.get(part, set()):
                broken.append(f"{path.relative_to(PACKAGE)} imports {module}")
            if top != "phi4ui" or module in SHARED or module == "phi4ui":
                continue
            other = part_of(module)
            if other is None and module.split(".")[1] not in {"errors", "settings"}:
                broken.append(f"{path.relative_to(PACKAGE)} imports the entry point {module}")
            elif other not in (None, part, *ALLOWED[part]):
                broken.append(f"{path.relative_to(PACKAGE)} imports {module}")
    return broken


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_what_its_layer_allows(part: str) -> None:
    assert broken_rules(part) == []


def test_every_module_belongs_to_a_part() -> None:
    loose = {path.name for path in PACKAGE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py", "errors.py", "settings.py"}
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir()
            and not path.name.startswith("__")} == set(ALLOWED)


def test_each_part_says_what_it_may_import() -> None:
    for part in ALLOWED:
        doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
        assert doc and "May import" in doc, part


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    sneaky = PACKAGE / "core" / "_sneaky_import_probe.py"
    sneaky.write_text("def later():\n    import gradio\n    from phi4ui.page import chat_tab\n")
    try:
        broken = broken_rules("core")
    finally:
        sneaky.unlink()
    assert broken == ["core/_sneaky_import_probe.py imports gradio",
                      "core/_sneaky_import_probe.py imports phi4ui.page",
                      "core/_sneaky_import_probe.py imports phi4ui.page.chat_tab"]
