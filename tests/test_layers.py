"""Imports point down the tree: each top-level package of ``partonomy`` sits on a floor and
imports only from its own floor or the ones below (``docs/code-layout.md``). The few exceptions are
listed with the reason they are allowed."""

from __future__ import annotations

import ast
from pathlib import Path

import partonomy

ROOT = Path(partonomy.__file__).parent

FLOORS: dict[str, int] = {
    "errors": 0,
    "registry": 0,
    "__init__": 0,  # the version
    "registries": 0,  # the catalogue: lazy entries name their modules as strings
    "io": 1,
    "config": 2,
    "qa": 2,
    "viz": 2,
    "data": 3,
    "eval": 3,
    "tasks": 4,
    "models": 5,
    "training": 6,
    "cli": 7,
    "__main__": 8,
}
"""Floor of each top-level module or package (a higher floor may import a lower one)."""

ALLOWED_UP: dict[tuple[str, str], str] = {
    ("training/__main__.py", "partonomy.cli.train"): "`python -m partonomy.training` entry point",
    ("models/convert/writer.py", "partonomy.training.checkpoint"): "writes the checkpoint format",
    ("models/convert/writer.py", "partonomy.training.config"): "a converted checkpoint's config",
    ("models/core/loading.py", "partonomy.training.checkpoint"): "reads the checkpoint format",
}
"""(file under ``partonomy/``, imported module) -> why this upward import is allowed."""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n == "partonomy" or n.startswith("partonomy.")]


def _floor_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _upward(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """Imports under ``root`` that point up (not in :data:`ALLOWED_UP`), and the exceptions
    that were used."""
    upward, used = [], set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        own = _floor_of("partonomy." + rel.split("/")[0].removesuffix(".py"))
        for module in _imports(path):
            target = _floor_of(module)
            if FLOORS[target] <= FLOORS[own]:
                continue
            if (rel, module) in ALLOWED_UP:
                used.add((rel, module))
                continue
            upward.append(f"{rel} imports {module} ({own}: floor {FLOORS[own]}, {target}: "
                          f"floor {FLOORS[target]})")  # fmt: skip
    return upward, used


def test_every_top_level_package_has_a_floor() -> None:
    names = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    assert names <= set(FLOORS), f"give {sorted(names - set(FLOORS))} a floor in FLOORS"


def test_imports_point_down() -> None:
    upward, used = _upward(ROOT)
    assert not upward, "imports that point up the tree:\n" + "\n".join(upward)
    stale = sorted(set(ALLOWED_UP) - used)
    assert not stale, f"ALLOWED_UP lists imports that no longer exist: {stale}"


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "reader.py").write_text(
        "from partonomy.io.masks import encode\n"
        "from partonomy.errors import FormatError\n"
        "def f():\n    from partonomy.models.core import loading\n"
    )
    upward, _ = _upward(tmp_path)
    assert upward == ["io/reader.py imports partonomy.models.core (io: floor 1, models: floor 5)"]
