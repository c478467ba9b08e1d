"""The packages' shape: layers point one way, and no module-level import circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("store", "projections", "receiver")
# What each layer may import (STYLE.md: store <- projections <- receiver).
ALLOWED = {"store": {"store"}, "projections": {"store", "projections"}}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, *, top_level_only: bool, known=frozenset()) -> set[str]:
    """Absolute names of what `name` imports (module-level statements only, if asked).

    `from package import module` counts as importing the module (of `known`), not the
    package that is already being initialised.
    """
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                module = f"{target}.{alias.name}"
                found.add(module if module in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_layers_point_one_way():
    wrong = []
    for name, path in modules().items():
        layer = name.split(".")[0]
        if layer not in ALLOWED:
            continue
        for target in imports(name, path, top_level_only=False):
            top = target.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[layer]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_module_level_import_circle():
    known = modules()
    edges = {
        name: {
            t
            for t in imports(name, path, top_level_only=True, known=known)
            if t in known and t != name
        }
        for name, path in known.items()
    }
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(trail[trail.index(node) :] + [node])
            return
        if node in done:
            return
        for nxt in sorted(edges[node]):
            visit(nxt, [*trail, node])
        done.add(node)

    for name in sorted(edges):
        visit(name, [])
    assert not cycles, cycles[:3]
