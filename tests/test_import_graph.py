"""No import cycles between the package's modules, also inside a subpackage.

The graph is read from the source (``ast``): every ``import`` and ``from ...
import`` of a module of the package, at module level or inside a function (an
import moved into a function to dodge a cycle is still a cycle). ``from p import
name`` points at the submodule ``p.name`` when there is one, else at ``p``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "unlearning_challenge"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:  # a name imported from a module: the module
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_cycles() -> list[list[str]]:
    """Cycles as ``[a, b, ..., a]``, found by depth-first search: at least one when there is any."""
    modules = _modules()
    graph = {module: sorted(_imported(module, path, modules)) for module, path in modules.items()}
    cycles, state, stack = [], {}, []  # state: 1 on the current path, 2 done

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module)
    return cycles


def test_the_graph_sees_the_package():
    modules = _modules()
    assert "unlearning_challenge.scoring.program" in modules and "unlearning_challenge.metric" in modules
    program = modules["unlearning_challenge.scoring.program"]
    assert "unlearning_challenge.scoring.result" in _imported("unlearning_challenge.scoring.program", program, modules)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)
