"""The ground floor stays the ground floor: nothing under ``core/`` imports a business area,
and no import cycle spans two areas. Read from the source's syntax trees, every import
counted (inside functions and ``TYPE_CHECKING`` blocks too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import onebox

ROOT = Path(onebox.__file__).parent
# Modules beside app.py that wire the areas together; areas never import them, and core
# imports nothing above itself.
GROUND = "core"


def module_name(path: Path) -> str:
    parts = ["onebox", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imported(path: Path, name: str, known: dict[str, Path]) -> Iterator[str]:
    """The onebox modules ``path`` imports, resolved to the deepest existing module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import submodule`` imports the submodule itself.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(path, name, known)) for name, path in known.items()}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()) else ""


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_core_imports_no_business_area() -> None:
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        if area(module) == GROUND
        for target in targets
        if area(target) != GROUND
    )
    assert offending == [], "core/ must import only core/ and libraries:\n" + "\n".join(offending)


def test_no_import_cycle_crosses_areas() -> None:
    crossing = [
        sorted(component)
        for component in strongly_connected(graph())
        if len({area(module) or module for module in component}) > 1
    ]
    assert crossing == [], f"import cycles across areas: {crossing}"


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The walkers above must find what they look for, or the two tests prove nothing."""
    edges = {
        "onebox.core.a": {"onebox.chat.b"},
        "onebox.chat.b": {"onebox.documents.c"},
        "onebox.documents.c": {"onebox.chat.b"},
    }
    assert strongly_connected(edges) == [{"onebox.chat.b", "onebox.documents.c"}]
    module_graph = graph()
    assert "onebox.core.settings" in module_graph["onebox.app"]
    assert "onebox.chat.turn" in module_graph["onebox.gateway.asgi"]
