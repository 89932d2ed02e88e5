"""Arrows point down only: the service imports none of its clients nor the command above them, the clients reach
the service through `core` only, and the bot's modules import each other without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "core": "core",
    "api": "api",
    "ui_gradio": "ui_gradio",
    "bot": "bot",
    "notebook_ext": "notebook_ext",
}


def _imports(path: Path, package: str) -> set[str]:
    """Every module `path` imports (at the top or inside functions, but not under `if TYPE_CHECKING:`), as
    absolute names."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    here = f"image2model.{package}." + ".".join(
        path.relative_to(ROOT / PACKAGES[package]).with_suffix("").parts
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level)[0]
                module = f"{base}.{node.module}" if node.module else base
                found |= {f"{module}.{a.name}" if not node.module else module for a in node.names}
            elif node.module:
                found.add(node.module)
    return found


def _package_imports(package: str) -> dict[str, set[str]]:
    folder = ROOT / PACKAGES[package]
    return {str(p.relative_to(ROOT)): _imports(p, package) for p in folder.rglob("*.py")}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("core", ("image2model.api", "image2model.ui_gradio", "image2model.bot", "image2model.notebook_ext", "image2model.cli")),
        ("api", ("image2model.ui_gradio", "image2model.bot", "image2model.notebook_ext", "image2model.cli")),
        ("ui_gradio", ("image2model.api", "image2model.bot", "image2model.notebook_ext", "image2model.cli")),
        ("bot", ("image2model.api", "image2model.ui_gradio", "image2model.notebook_ext", "image2model.cli")),
        ("notebook_ext", ("image2model.api", "image2model.ui_gradio", "image2model.bot", "image2model.cli")),
    ],
)  # fmt: skip
def test_no_package_imports_one_beside_or_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        module: sorted(name for name in names if name.startswith(forbidden))
        for module, names in _package_imports(package).items()
    }
    assert {m: names for m, names in wrong.items() if names} == {}


def test_the_bots_modules_import_each_other_without_a_circle() -> None:
    graph = {
        module.removesuffix(".py").replace("/", "."): {
            n.removeprefix("image2model.") for n in names if n.startswith("image2model.bot.")
        }
        for module, names in _package_imports("bot").items()
    }
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        assert module not in visiting, f"import circle: {' -> '.join([*visiting, module])}"
        if module in done:
            return
        visiting.append(module)
        for dep in graph[module]:
            visit(dep)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert "bot.runner" in graph["bot.bot"] and "bot.views" in graph["bot.runner"]
