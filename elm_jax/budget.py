"""Exact parameter and FLOP accounting, and budget enumeration over (N, k_e, k_c) (SPEC §3).

Definitions (every count is of trainable parameters; the wiring and fixed time constants in the
``constants`` collection are never counted):

* ELM network: ``k_c`` = synaptic weights per neuron; ``k_e`` = every other per-neuron parameter
  = MLP ``(d_tree + d_m) d_mlp + d_mlp + (l_mlp - 1)(d_mlp^2 + d_mlp) + d_mlp d_m + d_m`` +
  readout ``d_m + 1`` + learnable tau_m ``d_m``. ``P_core = N (k_e + k_c)``.
* Baselines (LSTM, GRU, leaky): the core is the recurrent layer; per unit ``k_c`` = its weights
  from the pool (input and recurrent: ``4 (D_ext + N)`` LSTM, ``3 (D_ext + N)`` GRU,
  ``D_ext + N`` leaky) and ``k_e`` = its other parameters (4 LSTM and GRU biases; bias + tau for
  leaky), so ``P_core = N (k_e + k_c)`` holds for them too. ``d_m`` is 0 for baselines.
* ``P_io`` = encoder + decoder: ``N C + C`` for classification (identity encoder), plus the byte
  embedding ``input_dim * D_ext`` for the language model. ``P_total = P_core + P_io``.

FLOP convention: 2 FLOPs per multiply-accumulate of the model's linear maps, per sample and per
time step, counting each synapse once (the algorithmic sparse count, whatever the connectivity
implementation); embedding lookups, decays and elementwise nonlinearities count 0.
``flops_train_step`` = 3 x ``flops_per_step`` (forward + backward), per sample and time step:
multiply by batch x T x steps for a run's training FLOPs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from elm_jax.baselines import baseline_core_params, baseline_macs_per_step
from elm_jax.models import ModelConfig, neuron_config_of

TASK_SHAPES: dict[str, dict[str, Any]] = {
    "shd_adding": {"task": "classification", "input_dim": 700, "num_classes": 19},
    "shd": {"task": "classification", "input_dim": 700, "num_classes": 20},
    "enwik8": {"task": "lm", "input_dim": 256, "num_classes": 256},
}
BUDGET_KINDS = ("core", "total")
DEFAULT_D_M = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_K_C_MULTIPLES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class EmptyEnumerationError(ValueError):
    """No architecture point satisfies the request; the message names the constraint."""


@dataclasses.dataclass(frozen=True)
class Cost:
    """Analytic cost of one model configuration (see the module docstring for conventions)."""

    k_e: int
    k_c: int
    P_core: int
    P_io: int
    P_total: int
    flops_per_step: int
    flops_train_step: int


@dataclasses.dataclass(frozen=True)
class Point:
    """One architecture point of a sweep, with its exact cost.

    ``budget`` is the nominal budget it was enumerated for (None for axis sweeps); the remaining
    fields after ``flops_per_step`` are what `model_config` needs to build it.
    """

    N: int
    d_m: int
    k_c: int
    k_e: int
    P_core: int
    P_io: int
    P_total: int
    flops_per_step: int
    arch: str = "elm"
    task: str = "shd_adding"
    d_tree: int = 4
    mlp_num_layers: int = 1
    learn_memory_tau: bool = True
    embed_dim: int = 64
    budget: float | None = None
    budget_kind: str = "core"

    def model_config(self, **overrides: Any) -> ModelConfig:
        """The `ModelConfig` of this point (``overrides`` for the non-architecture fields)."""
        values = dict(
            arch=self.arch,
            num_neurons=self.N,
            num_memory=max(self.d_m, 1),
            synapses_per_neuron=self.k_c if self.arch == "elm" else 4,
            num_branches=self.d_tree,
            mlp_num_layers=self.mlp_num_layers,
            learn_memory_tau=self.learn_memory_tau,
            embed_dim=self.embed_dim,
            **TASK_SHAPES[self.task],
        )
        if self.arch != "elm":
            values["num_branches"] = 4
        values.update(overrides)
        return ModelConfig(**values)

    def summary(self) -> dict[str, int]:
        """Exactly the fields of the command line's JSON lines."""
        keys = ("N", "d_m", "k_c", "k_e", "P_core", "P_io", "P_total", "flops_per_step")
        return {k: getattr(self, k) for k in keys}


# ---------------------------------------------------------------------------- analytic counts


def elm_k_e(
    d_m: int, d_mlp: int | None = None, d_tree: int = 4, l_mlp: int = 1, learn_tau: bool = True
) -> int:
    """Per-neuron non-synaptic parameters k_e of an ELM neuron in the network (SPEC §3)."""
    h = d_mlp or 2 * d_m
    mlp = (d_tree + d_m) * h + h + (l_mlp - 1) * (h * h + h) + h * d_m + d_m
    return mlp + (d_m + 1) + (d_m if learn_tau else 0)


def elm_macs_per_neuron(
    d_m: int, k_c: int, d_mlp: int | None = None, d_tree: int = 4, l_mlp: int = 1
):
    """Multiply-accumulates of one neuron for one step: synapses, MLP and readout."""
    h = d_mlp or 2 * d_m
    return k_c + (d_tree + d_m) * h + (l_mlp - 1) * h * h + h * d_m + d_m


def io_params(cfg: ModelConfig) -> int:
    """Encoder + decoder parameters of ``cfg``."""
    decoder = cfg.num_neurons * cfg.num_classes + cfg.num_classes
    encoder = cfg.input_dim * cfg.embed_dim if cfg.task == "lm" else 0
    return encoder + decoder


def single_neuron_cost(cfg: ModelConfig) -> Cost:
    """`Cost` of ``arch="elm_neuron"``: all of it is the one neuron (its readout is the
    classifier, no encoder or decoder); k_c its synapse weights, k_e the rest (SPEC §2)."""
    neuron = neuron_config_of(cfg)
    k_c = neuron.num_synapses
    k_e = neuron.num_params - k_c
    mlp = sum(fan_in * fan_out for fan_in, fan_out in neuron.mlp_sizes)
    flops = 2 * (k_c + mlp + cfg.num_memory * cfg.num_classes)
    return Cost(k_e, k_c, k_e + k_c, 0, k_e + k_c, flops, 3 * flops)


def cost(cfg: ModelConfig) -> Cost:
    """The analytic `Cost` of ``cfg`` (every arch)."""
    if cfg.arch == "elm_neuron":
        return single_neuron_cost(cfg)
    n = cfg.num_neurons
    if cfg.arch == "elm":
        k_e = elm_k_e(
            cfg.num_memory, cfg.hidden_size, cfg.num_branches, cfg.mlp_num_layers,
            cfg.learn_memory_tau,
        )  # fmt: skip
        k_c = cfg.synapses_per_neuron
        core_macs = n * elm_macs_per_neuron(
            cfg.num_memory, k_c, cfg.hidden_size, cfg.num_branches, cfg.mlp_num_layers
        )
    else:
        k_e, k_c = baseline_core_params(cfg.arch, n, cfg.external_dim)
        core_macs = baseline_macs_per_step(cfg.arch, n, cfg.external_dim)
    p_core = n * (k_e + k_c)
    p_io = io_params(cfg)
    flops = 2 * (core_macs + n * cfg.num_classes)
    return Cost(k_e, k_c, p_core, p_io, p_core + p_io, flops, 3 * flops)


def _leaf_size(leaf: Any) -> int:
    return int(np.prod(np.shape(leaf), dtype=np.int64))


def count_params(variables_or_params: Mapping[str, Any], cfg: ModelConfig) -> dict[str, int]:
    """Counts a real (or `jax.eval_shape`) variables tree into ``{"core", "io", "total"}``.

    Accepts the full variables (only ``params`` is counted) or the params alone; ``core`` is the
    subtree ``core``, ``io`` everything else (encoder, decoder). One replica's tree.
    """
    import jax

    params = variables_or_params.get("params", variables_or_params)
    if "core" not in params:
        raise ValueError(
            f"params tree with top-level keys {sorted(params)} is invalid: expected a task model's "
            f"params with a 'core' subtree (arch={cfg.arch!r})"
        )
    core = sum(_leaf_size(x) for x in jax.tree_util.tree_leaves(params["core"]))
    io = sum(
        _leaf_size(x)
        for k, v in params.items()
        if k != "core"
        for x in jax.tree_util.tree_leaves(v)
    )
    return {"core": core, "io": io, "total": core + io}


# ------------------------------------------------------------------------------- enumeration


def _task_shapes(task: str) -> dict[str, Any]:
    if task not in TASK_SHAPES:
        raise ValueError(f"task={task!r} is invalid: must be one of {sorted(TASK_SHAPES)}")
    return TASK_SHAPES[task]


def _point(cfg: ModelConfig, task: str, budget: float | None, budget_kind: str) -> Point:
    c = cost(cfg)
    return Point(
        N=cfg.num_neurons,
        d_m=cfg.num_memory if cfg.arch == "elm" else 0,
        k_c=c.k_c,
        k_e=c.k_e,
        P_core=c.P_core,
        P_io=c.P_io,
        P_total=c.P_total,
        flops_per_step=c.flops_per_step,
        arch=cfg.arch,
        task=task,
        d_tree=cfg.num_branches,
        mlp_num_layers=cfg.mlp_num_layers,
        learn_memory_tau=cfg.learn_memory_tau,
        embed_dim=cfg.embed_dim,
        budget=budget,
        budget_kind=budget_kind,
    )


def _grid(name: str, values: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    values = default if values is None else values
    out = []
    for v in values:
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name}={v!r} in the grid is invalid: must be an integer >= 1")
        out.append(int(v))
    if not out:
        raise EmptyEnumerationError(f"the {name} grid is empty: give at least one value")
    return sorted(set(out))


def _make_cfg(arch, task, n, d_m, k_c, d_tree, l_mlp, learn_tau, embed_dim) -> ModelConfig:
    return ModelConfig(
        arch=arch,
        num_neurons=n,
        num_memory=d_m,
        synapses_per_neuron=k_c,
        num_branches=d_tree,
        mlp_num_layers=l_mlp,
        learn_memory_tau=learn_tau,
        embed_dim=embed_dim,
        **_task_shapes(task),
    )


def _best_n(n_real: float, size_of) -> tuple[int, int]:
    """The N >= 1 among floor/ceil of ``n_real`` whose size is closest to the target."""
    cands = {max(1, math.floor(n_real)), max(1, math.ceil(n_real))}
    return min(((size_of(n), n) for n in sorted(cands)), key=lambda p: (abs(p[0]), p[1]))


def enumerate_points(
    budget: float,
    task: str,
    *,
    arch: str = "elm",
    budget_kind: str = "core",
    d_m: Sequence[int] | None = None,
    k_c: Sequence[int] | None = None,
    tolerance: float = 0.05,
    d_tree: int = 4,
    mlp_num_layers: int = 1,
    learn_memory_tau: bool = True,
    embed_dim: int = 64,
) -> list[Point]:
    """All points whose ``P_core`` (or ``P_total``) is within ``tolerance`` of ``budget``.

    ELM: one point per ``(d_m, k_c)`` of the grids (``k_c`` multiples of ``d_tree`` and at most
    the pool ``D_ext + N``), with the N that brings the cost closest to the budget; ordered by
    ``(d_m, k_c)``, so deterministic and without duplicates. Baselines (``lstm``, ``gru``,
    ``leaky``): the free knob is N, so one point. ``d_m`` and ``k_c`` accept any sequence
    (``range(4, 65, 4)`` for a range). Raises ValueError on invalid input and
    `EmptyEnumerationError` naming the constraint that left nothing.
    """
    shape = _task_shapes(task)
    if budget_kind not in BUDGET_KINDS:
        raise ValueError(f"budget_kind={budget_kind!r} is invalid: must be one of {BUDGET_KINDS}")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance={tolerance!r} is invalid: must be a number in [0, 1)")
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget={budget!r} is invalid: must be a finite number > 0")
    if arch not in ("elm", "lstm", "gru", "leaky"):
        raise ValueError(f"arch={arch!r} is invalid: must be one of elm, lstm, gru, leaky")
    if isinstance(d_tree, bool) or int(d_tree) != d_tree or d_tree < 1:
        raise ValueError(f"d_tree={d_tree!r} is invalid: must be an integer >= 1")
    d_ext = shape["input_dim"] if shape["task"] == "classification" else embed_dim
    key = "P_core" if budget_kind == "core" else "P_total"
    make = lambda n, dm, kc: _make_cfg(  # noqa: E731
        arch, task, n, dm, kc, d_tree, mlp_num_layers, learn_memory_tau, embed_dim
    )
    size = lambda cfg: getattr(cost(cfg), key)  # noqa: E731

    if arch != "elm":
        # P(N) is quadratic in N; solve, then take the closer integer neighbour.
        n_grid = _baseline_n(budget, lambda n: size(make(n, 1, d_tree)))
        err, n = _best_n(n_grid, lambda n: size(make(n, 1, d_tree)) - budget)
        smallest = size(make(1, 1, d_tree))
        _check_reachable(budget, tolerance, smallest, key, f"{arch} with N=1")
        if abs(err) > tolerance * budget:
            raise EmptyEnumerationError(
                f"no {arch} point within tolerance={tolerance} of budget={budget:g} ({key}): the "
                f"nearest is N={n} with {key}={budget + err:.0f}; widen the tolerance"
            )
        return [_point(make(n, 1, d_tree), task, budget, budget_kind)]

    d_ms = _grid("d_m", d_m, DEFAULT_D_M)
    default_kc = tuple(d_tree * m for m in _K_C_MULTIPLES)
    k_cs = _grid("k_c", k_c, default_kc)
    for kc in k_cs:
        if kc % d_tree:
            raise ValueError(
                f"k_c={kc} in the grid is invalid: must be a multiple of d_tree={d_tree}"
            )
    # ELM cost is affine in N: size(N) = fixed + N * (k_e + k_c + per-neuron io).
    n_cls = shape["num_classes"]
    enc = shape["input_dim"] * embed_dim if shape["task"] == "lm" else 0
    fixed = 0 if budget_kind == "core" else n_cls + enc
    io_per_neuron = 0 if budget_kind == "core" else n_cls

    def size_of(n: int, dm: int, kc: int) -> int:
        k_e = elm_k_e(dm, None, d_tree, mlp_num_layers, learn_memory_tau)
        return fixed + n * (k_e + kc + io_per_neuron)

    smallest = size_of(1, d_ms[0], k_cs[0])
    _check_reachable(budget, tolerance, smallest, key, f"N=1, d_m={d_ms[0]}, k_c={k_cs[0]}")
    points, nearest, pool_rejects = [], None, 0
    for dm in d_ms:
        for kc in k_cs:
            per = size_of(1, dm, kc) - fixed
            err, n = _best_n(
                (budget - fixed) / per, lambda n, dm=dm, kc=kc: size_of(n, dm, kc) - budget
            )
            if kc > d_ext + n:
                pool_rejects += 1
                continue
            if nearest is None or abs(err) < abs(nearest[0]):
                nearest = (err, n, dm, kc)
            if abs(err) <= tolerance * budget:
                points.append(_point(make(n, dm, kc), task, budget, budget_kind))
    if not points:
        if nearest is None:
            raise EmptyEnumerationError(
                f"every k_c in {k_cs} exceeds the pool D_ext + N (D_ext={d_ext}) at budget="
                f"{budget:g}: use smaller k_c or a larger budget"
            )
        err, n, dm, kc = nearest
        raise EmptyEnumerationError(
            f"no point within tolerance={tolerance} of budget={budget:g} ({key}); the nearest is "
            f"N={n}, d_m={dm}, k_c={kc} with {key}={budget + err:.0f} ({pool_rejects} (d_m, k_c) "
            "pairs exceeded the pool): widen the tolerance or the d_m / k_c grids"
        )
    return points


def _baseline_n(budget: float, size_of) -> float:
    """Real N solving ``size_of(N) = budget`` for a quadratic ``size_of`` (baselines)."""
    s1, s2, s3 = size_of(1), size_of(2), size_of(3)
    a = (s3 - 2 * s2 + s1) / 2.0
    b = s2 - s1 - 3 * a
    c = s1 - a - b - budget
    if a == 0:
        return -c / b
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def _check_reachable(budget: float, tolerance: float, smallest: int, key: str, what: str) -> None:
    if budget * (1 + tolerance) < smallest:
        raise ValueError(
            f"budget={budget:g} is below the smallest point ({what}: {key}={smallest}): must be "
            f">= {smallest / (1 + tolerance):.0f} at tolerance={tolerance}"
        )


AXES = ("N", "k_e", "k_c")


def axis_sweep(base: Point, axis: str, values: Sequence[int] | None = None) -> list[Point]:
    """Points that vary one axis of ``base`` and keep the other two fixed (ELM only).

    ``axis="N"``: values of N; ``axis="k_e"``: values of d_m (k_e is a function of d_m);
    ``axis="k_c"``: values of k_c (multiples of d_tree, at most the pool ``D_ext + N``). Default
    values: the base value times 2^j, j = -3..3, kept where valid. Ordered as ``values`` (sorted
    and deduplicated); ``budget`` is None on every point.
    """
    if base.arch != "elm":
        raise ValueError(f"base.arch={base.arch!r} is invalid for an axis sweep: must be 'elm'")
    if axis not in AXES:
        raise ValueError(f"axis={axis!r} is invalid: must be one of {AXES}")
    field = {"N": "N", "k_e": "d_m", "k_c": "k_c"}[axis]
    start = getattr(base, field)
    d_ext = base.model_config().external_dim
    explicit = values is not None
    if values is None:
        values = [start * 2.0**j for j in range(-3, 4)]
        if axis == "k_c":
            values = [base.d_tree * max(1, round(v / base.d_tree)) for v in values]
        values = [int(round(v)) for v in values if v >= 1]
    out = []
    for v in _grid(field, values, ()):
        if axis == "k_c" and v % base.d_tree:
            raise ValueError(f"k_c={v} is invalid: must be a multiple of d_tree={base.d_tree}")
        n = v if axis == "N" else base.N
        k_c = v if axis == "k_c" else base.k_c
        if k_c > d_ext + n:
            if explicit:
                raise ValueError(
                    f"k_c={k_c} is larger than the pool D_ext + N = {d_ext} + {n}: must be "
                    f"<= {d_ext + n}"
                )
            continue
        cfg = base.model_config(
            **{{"N": "num_neurons", "d_m": "num_memory", "k_c": "synapses_per_neuron"}[field]: v}
        )
        out.append(_point(cfg, base.task, None, base.budget_kind))
    return out


def random_sweep(
    task: str,
    num_points: int,
    *,
    budget_range: tuple[float, float] = (1e3, 1e6),
    seed: int = 0,
    arch: str = "elm",
    budget_kind: str = "core",
    tolerance: float = 0.05,
    d_m: Sequence[int] | None = None,
    k_c: Sequence[int] | None = None,
    **options: Any,
) -> list[Point]:
    """``num_points`` distinct points at log-uniform random budgets (seeded NumPy RNG).

    Each draw takes a budget ``10**U(log10 lo, log10 hi)`` and one of its enumerated points
    uniformly; draws that repeat a point or find none are redrawn (at most 100 x num_points
    draws). ``options`` go to `enumerate_points` (d_tree, mlp_num_layers, ...).
    """
    lo, hi = budget_range
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"budget_range={budget_range!r} is invalid: must be 0 < low < high")
    if isinstance(num_points, bool) or int(num_points) != num_points or num_points < 1:
        raise ValueError(f"num_points={num_points!r} is invalid: must be an integer >= 1")
    rng = np.random.default_rng(seed)
    out: list[Point] = []
    seen = set()
    for _ in range(100 * num_points):
        if len(out) == num_points:
            break
        budget = float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))
        try:
            pts = enumerate_points(
                budget, task, arch=arch, budget_kind=budget_kind, d_m=d_m, k_c=k_c,
                tolerance=tolerance, **options,
            )  # fmt: skip
        except EmptyEnumerationError:
            continue
        except ValueError as err:
            if "below the smallest point" in str(err):
                continue
            raise
        p = pts[int(rng.integers(len(pts)))]
        ident = (p.arch, p.N, p.d_m, p.k_c)
        if ident not in seen:
            seen.add(ident)
            out.append(p)
    if len(out) < num_points:
        raise EmptyEnumerationError(
            f"only {len(out)} distinct points found for num_points={num_points} in budget_range="
            f"{budget_range}: widen the range, the grids or the tolerance"
        )
    return out


# ------------------------------------------------------------------------------ command line


def _int_list(text: str) -> list[int]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not v.is_integer() for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 1,2,4,8)"
        )
    return [int(v) for v in values]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m elm_jax.budget points --budget 1e4 --task shd_adding [--json] [--verify]``.

    Returns the exit code; failures print one line on stderr (docs/cli.md).
    """
    from elm_jax import cli

    return cli.run(_main, argv, prog="elm_jax.budget")


def _main(argv: list[str]) -> int:
    from elm_jax import cli

    parser = cli.ArgumentParser(prog="elm_jax.budget", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pts = sub.add_parser("points", help="enumerate the architecture points of one budget")
    pts.add_argument("--budget", type=float, required=True)
    pts.add_argument("--task", required=True, choices=sorted(TASK_SHAPES))
    pts.add_argument("--arch", default="elm", choices=["elm", "lstm", "gru", "leaky"])
    pts.add_argument("--budget-kind", default="core", choices=BUDGET_KINDS)
    pts.add_argument("--tolerance", type=float, default=0.05)
    pts.add_argument("--d-m", type=_int_list, default=None, help="comma-separated d_m grid")
    pts.add_argument("--k-c", type=_int_list, default=None, help="comma-separated k_c grid")
    pts.add_argument("--d-tree", type=int, default=4)
    pts.add_argument("--embed-dim", type=int, default=64)
    pts.add_argument("--verify", action="store_true", help="count each built model's leaves")
    pts.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    points = enumerate_points(
        args.budget, args.task, arch=args.arch, budget_kind=args.budget_kind,
        d_m=args.d_m, k_c=args.k_c, tolerance=args.tolerance, d_tree=args.d_tree,
        embed_dim=args.embed_dim,
    )  # fmt: skip
    rows = []
    for p in points:
        row = p.summary()
        if args.verify:
            row["P_counted"] = verify_point(p)["total"]
        rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        cols = list(rows[0])
        print(" ".join(f"{c:>14}" for c in cols))
        for row in rows:
            print(" ".join(f"{row[c]:>14}" for c in cols))
    return 0


def verify_point(point: Point) -> dict[str, int]:
    """Builds the point's model with shapes only (`jax.eval_shape`) and counts its leaves."""
    import jax
    import jax.numpy as jnp

    from elm_jax.models import build_model

    cfg = point.model_config()
    if cfg.task == "classification":
        x = jax.ShapeDtypeStruct((1, 1, cfg.input_dim), jnp.float32)
    else:
        x = jax.ShapeDtypeStruct((1, 1), jnp.int32)
    shapes = jax.eval_shape(build_model(cfg).init, jax.random.PRNGKey(0), x)
    return count_params(shapes, cfg)


if __name__ == "__main__":
    sys.exit(main())
