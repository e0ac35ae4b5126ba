"""Budget enumeration over (N, k_e, k_c) (docs/science.md §3): the architecture points of a sweep.

`enumerate_points` finds every point within a tolerance of a budget (on P_core or P_total),
`axis_sweep` moves one of N, k_e, k_c from a centre point with the others fixed, and
`random_sweep` draws points over a budget range. Each `Point` carries its exact cost
(`elm_jax.budget.cost`) and builds its `ModelConfig`. Its fields use the paper's symbols (N, d_m,
k_c, k_e, d_tree): they are the results table's columns. A point's `task` is a dataset name,
whose sizes and task kind are its entry of `elm_jax.data.registry.DATASETS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from elm_jax.budget.cost import cost, count_params, elm_k_e
from elm_jax.data.registry import DATASETS, DatasetEntry
from elm_jax.models import ModelConfig, build_model

BUDGET_KINDS = ("core", "total")
DEFAULT_D_M = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_K_C_MULTIPLES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class EmptyEnumerationError(ValueError):
    """No architecture point satisfies the request; the message names the constraint."""


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
            **_dataset(self.task).static_info(),
        )
        if self.arch != "elm":
            values["num_branches"] = 4
        values.update(overrides)
        return ModelConfig(**values)

    def summary(self) -> dict[str, int]:
        """Exactly the fields of the command line's JSON lines."""
        keys = ("N", "d_m", "k_c", "k_e", "P_core", "P_io", "P_total", "flops_per_step")
        return {k: getattr(self, k) for k in keys}


def _dataset(task: str) -> DatasetEntry:
    """The registry entry of a budget's `task`: a dataset name (elm_jax.data.registry)."""
    if not isinstance(task, str) or task not in DATASETS:
        raise ValueError(f"task={task!r} is invalid: must be one of {sorted(DATASETS)}")
    return DATASETS[task]


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
        **_dataset(task).static_info(),
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
    dataset = _dataset(task)
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
    d_ext = dataset.kind.external_dim(dataset.input_dim, embed_dim)
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
    n_cls = dataset.num_classes
    enc = dataset.kind.encoder_params(dataset.input_dim, embed_dim)
    fixed = 0 if budget_kind == "core" else n_cls + enc
    io_per_neuron = 0 if budget_kind == "core" else n_cls

    def size_of(n: int, dm: int, kc: int) -> int:
        k_e = elm_k_e(
            num_memory=dm,
            num_branches=d_tree,
            mlp_num_layers=mlp_num_layers,
            learn_memory_tau=learn_memory_tau,
        )
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


def verify_point(point: Point) -> dict[str, int]:
    """Builds the point's model with shapes only (`jax.eval_shape`) and counts its leaves."""
    cfg = point.model_config()
    x = jax.ShapeDtypeStruct(*cfg.task_kind.input_spec(cfg.input_dim))
    shapes = jax.eval_shape(build_model(cfg).init, jax.random.PRNGKey(0), x)
    return count_params(shapes, cfg)
