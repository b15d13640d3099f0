"""The layer rules of docs/architecture.md, checked on every import (inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "echossl"

# layer -> layers it must never import
FORBIDDEN = {
    "data": {"methods", "models", "pipelines", "cli"},
    "models": {"data", "pipelines", "cli"},
    "simulate": {"methods", "models", "pipelines", "cli"},
    "evaluation": {"pipelines", "methods", "cli"},
    "methods": {"pipelines", "cli"},
    "engine": {"pipelines", "methods", "cli"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``echossl.*`` module a file imports, with its line, wherever the statement sits.

    The package uses absolute imports only; a relative one is reported as ``echossl.<relative>``
    so that it cannot slip past the rules.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, f"echossl.relative-import-{node.module}"))
            elif node.module == "echossl":
                found += [(node.lineno, f"echossl.{alias.name}") for alias in node.names]
            elif node.module:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("echossl.")]


def violations(root: Path = SRC) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        layer = rel[0] if len(rel) > 1 else None
        if layer not in FORBIDDEN:
            continue
        for line, name in _imports(path):
            target = name.split(".")[1]
            if target in FORBIDDEN[layer]:
                out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


def test_layer_rules_hold():
    found = violations()
    assert not found, "layer rule broken:\n" + "\n".join(found)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    fake = tmp_path / "echossl" / "data"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("import os\n\ndef f():\n    from echossl.methods import css\n")
    (fake / "y.py").write_text("def g():\n    import echossl.models.video\n")
    assert violations(tmp_path / "echossl") == ["data/x.py:4 imports echossl.methods",
                                                "data/y.py:2 imports echossl.models.video"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_every_layer_exists(layer):
    assert (SRC / layer).is_dir() or layer == "engine"
