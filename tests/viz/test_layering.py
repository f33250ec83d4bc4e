"""viz/ sits below eval/ and models/: none of its modules imports them (nor training/, cli/)."""

from __future__ import annotations

import ast
from pathlib import Path

import partonomy.viz

FORBIDDEN = ("partonomy.eval", "partonomy.models", "partonomy.training", "partonomy.cli")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_viz_imports_point_down() -> None:
    root = Path(partonomy.viz.__file__).parent
    bad = [
        f"{path.name}: {name}"
        for path in sorted(root.rglob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN)
    ]
    assert not bad, bad
