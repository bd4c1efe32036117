"""The arrows point one way: edges -> engine -> stores -> presence -> core -> time.

Every import between tallyboard's own modules (module level, inside functions and under
TYPE_CHECKING alike) is read from the source and checked against the layer it may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tallyboard"

# a layer may import its own modules and those of the layers after it, never before
LAYERS: list[tuple[str, set[str]]] = [
    ("edges", {"api", "cli", "bots", "bench", "standins", "client", "simulate", "settings", "queue",
               "__init__"}),
    ("engine", {"engine", "presence_engine", "checkpoint", "heap"}),  # presence is mixed in
    ("stores", {"stores"}),
    ("presence", {"presence"}),
    ("core", {"core", "bounds"}),
    ("time", {"windows", "calendar", "errors", "redact"}),
]


def _layer(top: str) -> int:
    for i, (_, tops) in enumerate(LAYERS):
        if top in tops:
            return i
    raise AssertionError(f"module {top!r} belongs to no layer: add it to LAYERS")


def _top(module: Path) -> str:
    return module.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level tallyboard module) of every tallyboard import in `path`."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                parts = [*base, *(node.module.split(".") if node.module else [])]
            else:
                parts = (node.module or "").split(".")
            if parts[0] != "tallyboard":
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # from tallyboard import open: the package's curated API, an edge
                found.append((node.lineno, "__init__"))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name.split(".")[1]) for a in node.names
                         if a.name.startswith("tallyboard."))
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    own = _layer(_top(path))
    for line, top in _imports(path):
        if top == "__main__":
            continue
        assert _layer(top) >= own, (
            f"{path.relative_to(SRC)}:{line} ({LAYERS[own][0]}) imports {top} "
            f"({LAYERS[_layer(top)][0]}): the arrows point edges -> engine -> stores -> "
            "presence -> core -> time")


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the tallyboard modules it imports (names resolved to modules)."""
    modules = {_module_of(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:  # `from .core import metric` names a module
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_module_below_the_edges_imports_itself_back() -> None:
    """No cycles from the engine down, not even through imports inside functions
    (engine.py and presence_engine.py used to import each other). The CLI's commands
    importing the group they register on (click's way) is the edges' own business."""
    graph = {m: deps for m, deps in _graph().items()
             if m.count(".") == 0 or _layer(m.split(".")[1]) > 0}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for dep in sorted(graph[name]):
            if dep in graph and dep != "tallyboard":  # the curated API: edges only
                visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
