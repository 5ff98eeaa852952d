"""The house flows one way: a module may import only its own layer and the layers below it.

Layers, bottom to top (modules in one layer may import each other):

0. ``errors``, ``_version``, ``progress``: nothing of ours, or only each other.
1. ``io``: atomic writes and one-line OS errors.
2. ``registry``, ``plugins``: name -> class, entry points.
3. ``parallel``: the local / Ray executors (used by memorization *and* the bench).
4. ``data``, 5. ``models``, 6. ``training`` (the one loop), 7. ``ensembles`` (M models in one loop).
8. ``runs``: run directories (a model + recipe + data spec on disk).
9. ``task``: what the toolkit needs from a model; ``Task.from_run`` reads a run, so it sits above runs.
10. ``metrics``: numbers in, numbers out (accuracy, ToW, MIA, ε, stats) plus evaluating saved runs.
    It needs no score, method or meta-method, while ``difficulty`` (sequence scores), ``meta``
    (RUM, tuning by ToW) and the bench all use it, so it sits right above runs, not above meta.
11. ``difficulty``: scores, memorization, ES, forget sets by difficulty.
12. ``methods``: the Method contract and one file per method.
13. ``meta``, ``testing``, ``model_first``: what *runs* methods (RUM, tuning, the instance analysis,
    plugin checks, the model-first evaluate/scores/rum over in-memory runs).
14. ``report``: tables, figures and pages rendered from a results table and a context dict.
    It needs nothing of the bench, and the bench writes its report at the end of a run, so it
    sits below ``experiments`` (the reverse would make ``run_bench(report=True)`` an upward call).
15. ``experiments``: the bench (config, plan, handlers, schedule, runner, store).
16. ``cli``: typer commands over everything.

The package root (``unlearnkit/__init__.py``) re-exports the public API from every layer, so
nothing inside the package may import it. Imports are found by parsing every file with
``ast``, function-level and ``TYPE_CHECKING`` imports included: a lazy import is still a
dependency, and a type-only one still says which layer knows about which.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import unlearnkit

PACKAGE = Path(unlearnkit.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("errors", "_version", "progress"),
    ("io",),
    ("registry", "plugins"),
    ("parallel",),
    ("data",),
    ("models",),
    ("training",),
    ("ensembles",),
    ("runs",),
    ("task",),
    ("metrics",),
    ("difficulty",),
    ("methods",),
    ("meta", "testing", "model_first"),
    ("report",),
    ("experiments",),
    ("cli",),
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top_level(path: Path, root: Path = PACKAGE) -> str:
    """The top-level module or subpackage of the package that ``path`` belongs to."""
    return path.relative_to(root).parts[0].removesuffix(".py")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ("unlearnkit", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every ``unlearnkit...`` name ``path`` imports (absolute), with line numbers. For
    ``from a.b import c`` that is ``a.b.c``: ``c`` may be a module or a name in ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from unlearnkit import x`` / ``from unlearnkit.pkg import sub``: the names may be modules.
            found += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
    return [(m, line) for m, line in found if m == "unlearnkit" or m.startswith("unlearnkit.")]


def sources(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """``file:line (layer) imports name (higher layer)`` for every import against the flow."""
    upward = []
    for path in sources(root):
        src = top_level(path, root)
        if src not in LEVEL:  # the package root, or an unknown module (caught by its own test)
            continue
        for mod, line in imported(path, root):
            parts = mod.split(".")
            if len(parts) < 2 or parts[1] not in LEVEL:
                continue  # ``from unlearnkit import name``: the package-root test catches it
            dst = parts[1]
            if LEVEL[dst] > LEVEL[src]:
                upward.append(f"{path.relative_to(root)}:{line} ({src}, layer {LEVEL[src]}) imports "
                              f"{mod} ({dst}, layer {LEVEL[dst]})")
    return upward


def test_every_top_level_module_has_a_layer():
    unknown = sorted({top_level(p) for p in sources()} - set(LEVEL) - {"__init__"})
    assert not unknown, f"add {unknown} to LAYERS in tests/test_layering.py (and say why there)"


def test_no_module_imports_a_higher_layer():
    upward = upward_imports()
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_nothing_inside_imports_the_package_root():
    bad = []
    for path in sources():
        if path == PACKAGE / "__init__.py":
            continue
        for mod, line in imported(path):
            parts = mod.split(".")
            # ``import unlearnkit`` or ``from unlearnkit import name`` where name is not a module.
            if mod == "unlearnkit" or (len(parts) == 2 and parts[1] not in LEVEL):
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {mod} from the package root")
    assert not bad, "\n".join(bad)


def _module_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (the longest prefix of each name that is a module)."""
    modules = {module_name(p) for p in sources()}
    graph: dict[str, set[str]] = {}
    for path in sources():
        here = module_name(path)
        for mod, _ in imported(path):
            while mod not in modules and "." in mod:
                mod = mod.rsplit(".", 1)[0]
            if mod != here and mod != "unlearnkit":
                graph.setdefault(here, set()).add(mod)
    return graph


def test_no_import_cycles_between_modules():
    """No two modules import each other, directly or through others (package ``__init__`` files,
    which only re-export, are left out: ``a.x`` -> ``a`` -> ``a.x`` is how packages work)."""
    inits = {module_name(p) for p in sources() if p.name == "__init__.py"}
    graph = {a: {b for b in bs if b not in inits} for a, bs in _module_graph().items() if a not in inits}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("source, expected", [
    ("from unlearnkit.experiments.units import WorkUnit\n", ["unlearnkit.experiments.units.WorkUnit"]),
    ("def f():\n    import unlearnkit.cli\n", ["unlearnkit.cli"]),
    ("from ..metrics import tow\n", ["unlearnkit.metrics.tow"]),
    ("from . import geometry\n", ["unlearnkit.difficulty.geometry"]),
    ("import numpy\nfrom typing import Any\n", []),
])
def test_import_finder(tmp_path, source, expected):
    """The finder sees function-level and relative imports, and nothing that is not ours."""
    f = tmp_path / "difficulty" / "x.py"
    f.parent.mkdir()
    f.write_text(source)
    assert [m for m, _ in imported(f, tmp_path)] == expected


def test_an_upward_import_is_caught(tmp_path):
    """A lazy import of the bench from data (layer 4 -> 15) fails the check; a downward one does not."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.py").write_text("from unlearnkit.errors import UnlearnkitError\n")
    (tmp_path / "data" / "bad.py").write_text("def f():\n    from unlearnkit.experiments import run_bench\n")
    found = upward_imports(tmp_path)
    assert len(found) == 1 and found[0].startswith("data/bad.py:2 (data, layer 4)") and "experiments" in found[0]


def test_nothing_points_outside_the_project():
    """What a user reads (src/, docs/, configs/, README.md) names no spec section or path outside
    the repository: what they need is in docs/, in the project's own words."""
    repo = PACKAGE.parents[1]
    texts = [*(repo / "src").rglob("*.py"), *(repo / "src").rglob("*.yaml"), *(repo / "docs").rglob("*.md"),
             *(repo / "configs").rglob("*.yaml"), repo / "README.md"]
    bad = []
    for path in texts:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "SPEC §" in line or "../shared" in line or "SPEC.md" in line:
                bad.append(f"{path.relative_to(repo)}:{n}: {line.strip()[:80]}")
    assert not bad, "\n".join(bad)
