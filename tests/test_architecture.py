"""The package's shape: imports flow one way, no cycles, light entry points.

The import graph is read from the source (``ast``), imports inside functions included:
a cycle that only an import-order accident or a lazy import keeps working is still a
cycle a newcomer trips over. A new cycle makes ``test_no_import_cycles`` fail with the
modules involved.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bento_nb"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, int]]:
    """(imported bento_nb module, line) pairs of module ``name``, nested imports included."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add((submodule if submodule in modules else target, node.lineno))
        elif isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
    return {(m, line) for m, line in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m, _ in _imports(name, path, modules)} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (imports inside functions count): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_no_module_imports_the_package_root():
    modules = _modules()
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}"
                 for name, path in modules.items() if name != "bento_nb"
                 for target, line in _imports(name, path, modules) if target == "bento_nb"]
    assert not offenders, f"modules importing the package root: {offenders}"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return set(out.split())


@pytest.mark.parametrize("statement", ["import bento_nb.jupyter",
                                       "from bento_nb.jupyter import proxy_url_for"])
def test_the_jupyter_extension_imports_nothing_heavy(statement):
    """Jupyter imports the server extension at start-up: no numpy, pandas, pickling or the
    service layer then (they load when a request needs them)."""
    heavy = {"numpy", "pandas", "yaml", "cloudpickle", "sklearn", "bento_nb.service"}
    loaded = heavy & _loaded_after(statement)
    assert not loaded, f"{statement!r} loads {sorted(loaded)}"


def test_import_bento_nb_loads_no_framework():
    frameworks = {"torch", "tensorflow", "keras", "xgboost", "lightgbm", "catboost",
                  "onnxruntime", "transformers", "sklearn", "IPython"}
    loaded = frameworks & _loaded_after("import bento_nb")
    assert not loaded, f"`import bento_nb` loads {sorted(loaded)}"
