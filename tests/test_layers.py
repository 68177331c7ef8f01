"""The packages import one way: contracts <- GitHub client and state store <- agents <-
orchestration and ingress <- composition root. Agents share contracts and their kit; a role never
imports another role. No module of ours imports itself back through others.

Read from the source with ``ast`` (every import, including those inside functions and under
``TYPE_CHECKING``), so an edge added anywhere fails here with the module and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "bot", "knowledge", "webhooks")

# Layer of each module, by the longest matching prefix; a module may import its own layer or
# those ranked below it. Peers (orchestration and ingress) do not import each other.
LAYERS: dict[str, tuple[int, str]] = {
    "bot.contracts": (0, "contracts"),
    "bot.github": (1, "clients and store"),
    "bot.db": (1, "clients and store"),
    "bot.migrations": (1, "clients and store"),
    "bot.store": (1, "clients and store"),
    "bot.permissions": (1, "clients and store"),
    "bot.settings": (1, "clients and store"),
    "bot.private_key": (1, "clients and store"),
    "bot.logging": (1, "clients and store"),
    "bot.queue": (1, "clients and store"),
    "bot.embedded_redis": (1, "clients and store"),
    "knowledge": (1, "clients and store"),
    "agents": (2, "agents"),
    "bot.orchestration": (3, "orchestration"),
    "webhooks": (3, "ingress"),
    "bot": (4, "composition root"),
}

# The agents' roles: a role's modules import the kit and the layers below, never another role.
ROLES: dict[str, str] = {
    "agents.planner": "planner",
    "agents.plan_stage": "planner",
    "agents.coder": "coder",
    "agents.coding_tools": "coder",
    "agents.code_stage": "coder",
    "agents.reviewer": "reviewer",
    "agents.review_stage": "reviewer",
    "agents.testing_stage": "tester",
    "agents.deploy_stage": "deployer",
}

# Edges waiting on a module this change does not own; each names what removes it.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        path = self.importer.replace(".", "/")
        return f"{path}.py:{self.line}: {self.importer} imports {self.imported}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours ``name`` refers to (a module, or a name inside one), if any."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for target in targets:
            imported = _resolve(target, known)
            if imported is not None and imported != module:
                yield Edge(module, imported, node.lineno)


def _edges() -> list[Edge]:
    known = _modules()
    return [edge for module, path in known.items() for edge in _imports(module, path, known)]


def layer_of(module: str) -> tuple[int, str]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        layer_of(module)


def test_imports_go_one_way() -> None:
    wrong = []
    for edge in _edges():
        (rank, name), (their_rank, theirs) = layer_of(edge.importer), layer_of(edge.imported)
        if their_rank > rank or (their_rank == rank and name != theirs):
            wrong.append(f"{edge} ({name} may not import {theirs})")
    assert wrong == []


def test_contracts_import_nothing_of_ours_but_contracts() -> None:
    wrong = [
        str(edge)
        for edge in _edges()
        if layer_of(edge.importer)[0] == 0 and layer_of(edge.imported)[0] != 0
    ]
    assert wrong == []


def test_agents_never_import_each_other() -> None:
    wrong = []
    for edge in _edges():
        if (edge.importer, edge.imported) in KNOWN:
            continue
        mine, theirs = ROLES.get(edge.importer), ROLES.get(edge.imported)
        if theirs is None or not edge.importer.startswith("agents."):
            continue
        if mine != theirs:
            wrong.append(f"{edge} (the {mine or 'kit'} may not import the {theirs})")
    assert wrong == []


def test_known_exceptions_still_exist() -> None:
    """An exception that is gone is removed from KNOWN, so it cannot hide a new edge."""
    present = {(edge.importer, edge.imported) for edge in _edges()}
    assert [pair for pair in KNOWN if pair not in present] == []


def test_no_module_imports_itself_back() -> None:
    graph: dict[str, set[str]] = {}
    for edge in _edges():
        graph.setdefault(edge.importer, set()).add(edge.imported)
    cycles = [component for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("bot.contracts.jobs", "bot.db.models", False),
        ("bot.store.runs", "agents.stages", False),
        ("agents.coder", "bot.orchestration.coordinator", False),
        ("webhooks.handlers", "bot.orchestration.context", False),
        ("bot.orchestration.steps", "agents.stages", True),
        ("bot.composition", "bot.orchestration.coordinator", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    (rank, name), (their_rank, theirs) = layer_of(importer), layer_of(imported)
    assert (their_rank < rank or (their_rank == rank and name == theirs)) == allowed
