"""The package's import rules (docs in README "Development"): no import cycles, no click below the
CLI, no torch in ``prep``, and the runtime loads nothing of ``prep`` or ``learn``.

Imports are read from the source with ``ast`` (those inside functions too), so a rule holds for
every code path, not only the ones a test happens to run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "metaprep"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> every module it imports (metaprep's own resolved to module names)."""
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for a in node.names:  # `from pkg import module` imports the module
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        graph[name] = found
    return graph


GRAPH = _imports()
OWN = set(GRAPH)


def _own(targets: set[str]) -> set[str]:
    return {t for t in targets if t in OWN}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(_own(GRAPH[m])):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert cycles == []


def test_click_only_in_the_cli() -> None:
    users = {m for m, ts in GRAPH.items() if any(t.split(".")[0] == "click" for t in ts)}
    assert {m for m in users if not m.startswith("metaprep.cli")} == set()


def test_prep_never_imports_torch() -> None:
    users = {m for m, ts in GRAPH.items() if m.startswith("metaprep.prep")
             and any(t.split(".")[0] == "torch" for t in ts)}
    assert users == set()


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_own(GRAPH.get(m, set())))
        # importing metaprep.a.b runs metaprep/__init__ and metaprep/a/__init__ first
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in OWN)
    return seen


def test_runtime_wall_in_the_source() -> None:
    """Every import the runtime can reach, in any code path: nothing of prep, learn, the CLI or
    the pipeline, and no third-party package beyond numpy and onnxruntime."""
    reach = _closure("metaprep.runtime.model") | _closure("metaprep.runtime")
    assert {m for m in reach if m.startswith(("metaprep.prep", "metaprep.learn", "metaprep.cli",
                                              "metaprep.pipeline"))} == set()
    third = {t.split(".")[0] for m in reach for t in GRAPH[m] if t not in OWN}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert third - stdlib - {"metaprep"} <= {"numpy", "onnxruntime"}


def test_runtime_wall_at_run_time() -> None:
    code = ("import sys, metaprep.runtime, metaprep.runtime.model; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'gensim', 'h5py', 'click', 'polars') or m.startswith(('metaprep.prep', "
            "'metaprep.learn', 'metaprep.cli', 'metaprep.pipeline'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
