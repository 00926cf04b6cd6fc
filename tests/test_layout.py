"""The package's import rules and sizes (docs in README "Development"):

- no import cycles;
- click only in ``cli/``; no torch in ``prep/``;
- ``runtime/`` (a model directory -> predictions, what ships to production) reaches nothing of
  ``prep``, ``learn``, ``exporter``, ``stages``, the CLI or the pipeline, and no third-party
  package but numpy and onnxruntime. The batch engines are the one exception, inside functions
  only: ``runtime/spark.py`` imports pyspark (and pandas, which its UDF hands over),
  ``runtime/ray.py`` ray (and pandas), ``runtime/triton_backend.py`` the utilities Triton's python
  backend provides. Importing any runtime module loads none of them;
- ``exporter/`` (a run -> a model directory) may import the runtime: it opens what it wrote with
  it, and its parity gate pads batches as the runtime does. It reaches no CLI and no pipeline;
- every module is under ``MAX_LINES`` lines.

Imports are read from the source with ``ast`` (those inside functions too), so a rule holds for
every code path, not only the ones a test happens to run. Imports under ``if TYPE_CHECKING:``
never run: they count for every rule but the cycles (the exporter names the options class of the
export stage, whose function calls the exporter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "metaprep"
MAX_LINES = 400
# third-party packages a runtime module may import inside its functions, beyond numpy and
# onnxruntime: the engines' own, which their users have installed
ENGINE_PACKAGES = {
    "metaprep.runtime.spark": {"pyspark", "pandas"},
    "metaprep.runtime.ray": {"ray", "pandas"},
    "metaprep.runtime.triton_backend": {"triton_python_backend_utils"},
}
MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"):
           p for p in PACKAGE.rglob("*.py")}


def _type_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import,
                                                                          ast.ImportFrom)))
    return found


def _imports(*, types: bool = True, top_only: bool = False) -> dict[str, set[str]]:
    """module -> every module it imports (metaprep's own resolved to module names). ``types``:
    with the imports under ``if TYPE_CHECKING:``; ``top_only``: the module level's alone."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = set() if types else _type_only(tree)
        found: set[str] = set()
        for node in (tree.body if top_only else ast.walk(tree)):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for a in node.names:  # `from pkg import module` imports the module
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
        graph[name] = found
    return graph


GRAPH = _imports()
RUNNING = _imports(types=False)
TOP = _imports(top_only=True)
RUNTIME = sorted(m for m in MODULES if m == "metaprep.runtime" or
                 m.startswith("metaprep.runtime."))
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _own(targets: set[str]) -> set[str]:
    return {t for t in targets if t in MODULES}


def _closure(start: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_own(graph.get(m, set())))
        # importing metaprep.a.b runs metaprep/__init__ and metaprep/a/__init__ first
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts))
                    if ".".join(parts[:i]) in MODULES)
    return seen


def _third_party(targets: set[str]) -> set[str]:
    return {t.split(".")[0] for t in targets if t not in MODULES} - STDLIB - {"metaprep"}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(_own(RUNNING[m])):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(RUNNING):
        if m not in state:
            visit(m)
    assert cycles == []


def test_click_only_in_the_cli() -> None:
    users = {m for m, ts in GRAPH.items() if "click" in _third_party(ts)}
    assert {m for m in users if not m.startswith("metaprep.cli")} == set()


def test_prep_never_imports_torch() -> None:
    users = {m for m, ts in GRAPH.items() if m.startswith("metaprep.prep")
             and "torch" in _third_party(ts)}
    assert users == set()


def test_runtime_wall_in_the_source() -> None:
    """Every import a runtime module can reach, in any code path: nothing of the other sides,
    and no third-party package beyond numpy and onnxruntime but the engines' own."""
    reach = set().union(*(_closure(m) for m in RUNTIME))
    assert {m for m in reach if m.startswith(("metaprep.prep", "metaprep.learn",
                                              "metaprep.exporter", "metaprep.stages",
                                              "metaprep.cli", "metaprep.pipeline"))} == set()
    extra = {m: _third_party(GRAPH[m]) - {"numpy", "onnxruntime"} for m in reach}
    assert {m: e for m, e in extra.items() if e and not e <= ENGINE_PACKAGES.get(m, set())} == {}


def test_runtime_modules_import_numpy_and_onnxruntime_alone_at_module_level() -> None:
    """The engines' packages too only inside functions: every runtime module imports without
    them."""
    top = {m: _third_party(TOP[m]) - {"numpy", "onnxruntime"} for m in RUNTIME}
    assert {m: t for m, t in top.items() if t} == {}


def test_runtime_wall_at_run_time() -> None:
    code = (f"import sys; import {', '.join(RUNTIME)}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnx', 'gensim', 'h5py', 'click', 'polars', 'pyspark', 'ray', 'pandas') "
            "or m.startswith(('metaprep.prep', 'metaprep.learn', 'metaprep.exporter', "
            "'metaprep.stages', 'metaprep.cli', 'metaprep.pipeline'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_exporter_builds_on_the_runtime_and_reaches_no_face() -> None:
    reach = set().union(*(_closure(m, RUNNING) for m in MODULES
                          if m.startswith("metaprep.exporter")))
    assert "metaprep.runtime.modeldir" in reach
    assert {m for m in reach if m.startswith(("metaprep.cli", "metaprep.pipeline"))} == set()


def test_every_module_is_small() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n >= MAX_LINES} == {}


def test_the_layouts_files_are_named_by_their_owners_alone() -> None:
    """A model directory's file names are written in runtime/modeldir.py, a run directory's in
    learn/rundir.py; everyone else goes through their constants. The modules that read other
    tools' folders (a BERT folder's config.json and vocab.txt, a matrix's vocab.txt) may name
    those files."""
    from metaprep.learn import rundir
    from metaprep.runtime import modeldir

    names = {v for owner in (modeldir, rundir) for k, v in vars(owner).items()
             if k.isupper() and isinstance(v, str) and "." in v}
    names |= set(modeldir.GRAPH_FILES.values())
    assert {"manifest.json", "model.onnx", "vocab.txt", "config.json", "best.safetensors",
            "checkpoint.pt"} <= names
    owners = {"metaprep.runtime.modeldir", "metaprep.learn.rundir"}
    foreign = {"metaprep.learn.bert", "metaprep.learn.bertfiles", "metaprep.learn.staticsource",
               "metaprep.prep.readers.matrix"}
    found = {}
    for name, path in MODULES.items():
        if name in owners | foreign:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hits = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                       and isinstance(n.value, str) and n.value in names})
        if hits:
            found[name] = hits
    assert found == {}


def test_no_module_is_shadowed_by_a_function() -> None:
    """``metaprep.stages.train`` is a function, so no ``stages/train.py`` may exist beside it: in
    every package, no function it hands out (lazy names included) bears a submodule's name."""
    import importlib
    import inspect

    packages = [name for name, path in MODULES.items() if path.name == "__init__.py"]
    shadowed = []
    for package in packages:
        module = importlib.import_module(package)
        names = set(vars(module)) | set(getattr(module, "__all__", ())) | \
            set(getattr(module, "_LAZY", {}))
        for name in names:
            if f"{package}.{name}" in MODULES and \
                    inspect.isroutine(getattr(module, name, None)):
                shadowed.append(f"{package}.{name}")
    assert shadowed == []


def test_torchrun_variables_are_read_in_one_module() -> None:
    """RANK, WORLD_SIZE and LOCAL_RANK are read by metaprep/distributed.py alone; every other
    module asks it (``world()``)."""
    variables = {"RANK", "WORLD_SIZE", "LOCAL_RANK"}
    found = {}
    for name, path in MODULES.items():
        if name == "metaprep.distributed":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hits = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                       and n.value in variables})
        if hits:
            found[name] = hits
    assert found == {}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def _outside(importer: str, module: str) -> bool:
    """Whether ``module`` is private (or inside a private one) to a package ``importer`` is not
    in."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            owner = ".".join(parts[:i])
            return importer != owner and not importer.startswith(owner + ".")
    return False


def test_no_module_takes_a_private_name_from_another() -> None:
    """A name with a leading underscore stays in its module: ``from metaprep.x import _y`` and
    ``x._y`` are refused, and a private module (``stages/_common.py``) serves its own package
    alone. What modules share is public and in their ``__all__``. Tests may reach private names
    (they check and patch the internals)."""
    found = []
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: dict[str, str] = {}  # local name -> the metaprep module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update({a.asname: a.name for a in node.names
                                if a.asname and a.name in MODULES})
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for a in node.names:
                target = f"{base}.{a.name}"
                if target in MODULES:
                    modules[a.asname or a.name] = target
                elif base in MODULES and base != name and _private(a.name):
                    found.append(f"{name}: from {base} import {a.name}")
                module = target if target in MODULES else base
                if _outside(name, module):
                    found.append(f"{name}: imports the private module {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and \
                    isinstance(node.value, ast.Name) and node.value.id in modules:
                found.append(f"{name}: {modules[node.value.id]}.{node.attr}")
    assert found == []
