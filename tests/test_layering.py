"""The package layering: no module imports from a layer above its own, and no import cycles (run by
`make lint` too).

Layers, lowest first (CONTRIBUTING.md habit 1): shared infrastructure → pure math (`ops`) → the
neuron and network math (no Flax) → Flax modules → task kinds → task models and the converter →
data (the interface and shared helpers → one package per benchmark → the dataset table → data
commands) → budgets → configs → jitted train steps → the run loop → command lines → sweeps →
analysis (loading → shared statistics → the information model → the claims → planted surfaces →
the report and the explorer) → the sweep drivers (`sweeps.run`, `sweeps.sequential`: a
sequential sweep reads the analysis). Every import counts, including those inside functions. A
module may import from its own layer or below, and no chain of imports may lead back to where it
started (a cycle within a layer is a missing layer). A new top-level module must be given a
layer here.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("elm_jax", "sweeps", "analysis")
# (layer name, modules); a name ending in ".*" also covers everything below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "infrastructure",
        (
            "elm_jax",
            "elm_jax.cli",
            "elm_jax.runtime",
            "elm_jax.provenance",
            "elm_jax.files",
            "elm_jax.metrics",
            "elm_jax.parallel",
            "elm_jax.checkpoint",
            "elm_jax.writers",
            "elm_jax.optim",
            "elm_jax.configs.variant",
        ),
    ),
    ("pure math", ("elm_jax.ops",)),
    (
        "neuron and network math",
        (
            "elm_jax.neuron",
            "elm_jax.neuron.config",
            "elm_jax.neuron.fused",
            "elm_jax.neuron.dynamics",
            "elm_jax.network",
            "elm_jax.network.wiring",
            "elm_jax.network.scan",
            "elm_jax.network.fused_build",
            "elm_jax.network.fused",
            "elm_jax.network.pallas_gpu_kernel",
            "elm_jax.network.pallas_gpu",
            "elm_jax.network.dynamics",
            "elm_jax.network.config",
        ),
    ),
    ("flax modules", ("elm_jax.neuron.layers", "elm_jax.network.layers", "elm_jax.baselines")),
    ("task kinds", ("elm_jax.tasks.*",)),
    ("models", ("elm_jax.models", "elm_jax.neuron.convert")),
    ("data core", ("elm_jax.data.core", "elm_jax.data.common", "elm_jax.data.cochlea")),
    (
        "data benchmarks",
        (
            "elm_jax.data.sequences",
            "elm_jax.data.shd.*",
            "elm_jax.data.neuronio.*",
            "elm_jax.data.listops.*",
            "elm_jax.data.pathfinder.*",
            "elm_jax.data.seq_images.*",
            "elm_jax.data.enwik8.*",
        ),
    ),
    ("data table", ("elm_jax.data", "elm_jax.data.registry", "elm_jax.data.builtin")),
    ("data commands", ("elm_jax.data.*",)),  # prepare, baselines, audio_to_shd, tfds_builders
    ("budgets", ("elm_jax.budget", "elm_jax.budget.cost", "elm_jax.budget.enumeration")),
    ("configs", ("elm_jax.configs.*", "elm_jax.config_check")),
    ("train steps", ("elm_jax.train", "elm_jax.train.steps")),
    ("run loop", ("elm_jax.train.loop",)),
    (
        "command lines",
        ("elm_jax.main", "elm_jax.budget.cli", "elm_jax.budget.__main__", "elm_jax.neuronio_eval"),
    ),
    ("sweeps", ("sweeps.*",)),
    ("analysis: loading", ("analysis", "analysis.load")),
    ("analysis: statistics", ("analysis.stats", "analysis.stats.*")),
    ("analysis: information model", ("analysis.info", "analysis.info.*")),
    ("analysis: claims", ("analysis.claims", "analysis.claims.*")),
    ("analysis: planted surfaces", ("analysis.synthetic", "analysis.synthetic.*")),
    (
        "analysis: report and explorer",
        ("analysis.report", "analysis.report.*", "analysis.explore", "analysis.explore.*"),
    ),
    # A sequential sweep places each budget from the analysis of the budgets before it.
    ("sweep drivers", ("sweeps.run", "sweeps.sequential")),
)


def layer_of(module: str) -> int | None:
    """Index of `module`'s layer in LAYERS (the most specific entry wins), None if unmapped."""
    best, best_len = None, -1
    for rank, (_, names) in enumerate(LAYERS):
        for name in names:
            base = name.removesuffix(".*")
            covers = module == base or (name.endswith(".*") and module.startswith(base + "."))
            if covers and len(base) > best_len:
                best, best_len = rank, len(base)
    return best


def module_files() -> dict[str, pathlib.Path]:
    """Every module of the packages, by dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported_modules(source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import of the packages in `source`, anywhere in the file.

    `from a import b` counts as an import of `a.b` when that is a module, else of `a`.
    """
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((node.lineno, sub if sub in known else node.module))
    return [(line, m) for line, m in out if m.split(".")[0] in PACKAGES]


def upward_imports(module: str, source: str, known: set[str]) -> list[str]:
    """One line per import in `source` (of `module`) that reaches a higher layer."""
    own = layer_of(module)
    problems = []
    for line, target in imported_modules(source, known):
        rank = layer_of(target)
        if rank is not None and own is not None and rank > own:
            problems.append(
                f"{module}:{line} imports {target} ({LAYERS[rank][0]}) from the lower layer "
                f"{LAYERS[own][0]}: move the shared code down or the importer up"
            )
    return problems


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in the file, itself excluded)."""
    files = module_files()
    known = set(files)
    return {
        module: {m for _, m in imported_modules(path.read_text(encoding="utf-8"), known)
                 if m in known and m != module}
        for module, path in files.items()
    }  # fmt: skip


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, the first repeated at the end) per strongly connected
    group of `graph` with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(group, graph) for group in groups]


def _cycle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from the group's first module back to itself, within the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ()) & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return group  # unreachable for a strongly connected group


def test_every_module_has_a_layer():
    unmapped = [m for m in module_files() if layer_of(m) is None]
    assert not unmapped, f"modules without a layer (add them to LAYERS in {__file__}): {unmapped}"


def test_no_module_imports_from_a_higher_layer():
    files = module_files()
    known = set(files)
    problems = []
    for module, path in files.items():
        problems += upward_imports(module, path.read_text(encoding="utf-8"), known)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_the_import_graph_has_no_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles (move the shared code down a layer):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_a_cycle_is_reported_as_the_path_back_to_its_start():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"x": {"y"}, "y": {"x"}}) == [["x", "y", "x"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []


@pytest.mark.parametrize(
    "module, source, reported",
    [
        ("elm_jax.ops", "from elm_jax.train.loop import Run\n", "elm_jax.train.loop (run loop)"),
        ("elm_jax.network.dynamics", "def f():\n    import flax\n    from elm_jax import models\n",
         "elm_jax.models (models)"),
        ("elm_jax.train.steps", "import sweeps.engine as e\n", "sweeps.engine (sweeps)"),
    ],
)  # fmt: skip
def test_an_upward_import_is_reported_with_module_line_and_layers(module, source, reported):
    problems = upward_imports(module, source, set(module_files()))
    assert len(problems) == 1 and reported in problems[0] and problems[0].startswith(module + ":")


def test_imports_from_the_same_or_a_lower_layer_pass():
    source = "from elm_jax.ops import decay\nfrom elm_jax.network import wiring\nimport numpy\n"
    assert upward_imports("elm_jax.network.layers", source, set(module_files())) == []
