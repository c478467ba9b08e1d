"""The packages' shape: layers point one way, and no import circle.

No circle of module-level imports anywhere, and none inside one package even through
imports made inside functions (a lazy import that only hides a circle).
"""

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


def cycles_of(edges: dict[str, set[str]]) -> list[list[str]]:
    """Circles in the import graph `edges`, each as [a, b, …, a]."""
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
    return cycles


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
    cycles = cycles_of(edges)
    assert not cycles, cycles[:3]


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def test_no_import_circle_inside_a_package_even_through_functions():
    known = modules()
    edges = {
        name: {
            t
            for t in imports(name, path, top_level_only=False, known=known)
            if t in known
            and t != name
            and known[t].name != "__init__.py"
            and package_of(t, known[t]) == package_of(name, path)
        }
        for name, path in known.items()
        if path.name != "__init__.py"
    }
    cycles = cycles_of(edges)
    assert not cycles, cycles[:3]


def test_the_circle_check_sees_imports_inside_functions(tmp_path):
    # Both directions: a lazy import either way closes the circle.
    for lazy_in in ("a", "b"):
        pkg = tmp_path / lazy_in / "pkg"
        pkg.mkdir(parents=True)
        top, inner = "from . import {}\n", "def f():\n    from . import {}\n"
        (pkg / "a.py").write_text((inner if lazy_in == "a" else top).format("b"))
        (pkg / "b.py").write_text((inner if lazy_in == "b" else top).format("a"))
        known = {"pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
        edges = {
            n: imports(n, p, top_level_only=False, known=known) & set(known)
            for n, p in known.items()
        }
        assert cycles_of(edges) == [["pkg.a", "pkg.b", "pkg.a"]]
