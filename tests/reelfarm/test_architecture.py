"""The shape of the code: no import cycles anywhere, and the layers import-linter enforces.

Every import counts, at module level or inside a function: a lazy import still ties two
modules together, it only hides the knot until run time.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("reelfarm", "analysis", "control_plane", "scheduler", "render_nodes")
SERVICES = ("control_plane", "scheduler", "render_nodes")
# The wiring: the one place allowed to import every service (it starts them).
WIRING = {"reelfarm.cli", "reelfarm.embedded"}


def _modules() -> dict[str, Path]:
    found = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        found[name] = Path(package.__file__)
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            spec = importlib.util.find_spec(info.name)
            if spec.origin.endswith("_pb2.py") or spec.origin.endswith("_pb2_grpc.py"):
                continue  # generated gRPC code
            found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (a `from x import y` names x.y when y is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_package(graph):
    assert {name.partition(".")[0] for name in graph} == set(PACKAGES)
    # It follows imports: the scheduler's core reaches the ground floor and the analysis.
    assert {"reelfarm.models", "reelfarm.states", "analysis.selection"} <= graph["scheduler.core"]


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_services_import_only_the_ground_floor_and_the_analysis(graph):
    crossings = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if module.partition(".")[0] in SERVICES
        and target.partition(".")[0] in SERVICES
        and target.partition(".")[0] != module.partition(".")[0]
    )
    assert crossings == []


def test_the_ground_floor_and_the_analysis_import_no_service(graph):
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if module.partition(".")[0] in ("reelfarm", "analysis") and module not in WIRING
        and target.partition(".")[0] in SERVICES
    )
    assert upward == []
    # The analysis sits above the ground floor, never below it.
    assert not any(t.startswith("analysis") for m, ts in graph.items() if m.startswith("reelfarm.")
                   and m not in WIRING for t in ts)  # fmt: skip


def test_import_linter_contracts_hold():
    """The same rules, as CI runs them (`lint-imports`, contracts in pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (it is in the test extra)")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
