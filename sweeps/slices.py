"""Building blocks of sweep definitions: slices of points and the config variant parser.

A sweep config (`sweeps/configs/*.py`) has `get_config(arg)` returning a ConfigDict with at
least `name`, `task`, `seeds` and `train` (the trainer config), and `get_sweep(config)`
returning a list of frozen `SweepPoint`s built with the functions here:

* `budget_slice`   every ELM point of the (d_m, k_c) grid within tolerance of one budget,
                   plus the simple-unit baselines at the same budget (the tradeoff curves);
* `axis_slices`    N, k_e (through d_m) and k_c each varied alone around a centre point
                   (the monotonicity curves);
* `random_slice`   points drawn log-uniformly over a range of budgets (the scaling law).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from elm_jax.configs.variant import VariantError, coerce, parse_variant
from sweeps.points import SweepPoint, point_from_budget


def parse_arg(arg: str | None) -> dict[str, tuple[str, Any]]:
    """Parses a sweep variant string (`elm_jax.configs.variant.parse_variant`'s syntax).

    Lists go in brackets or as continuation items: `budgets=[1e3,1e4],seeds=[0,1,2]` and
    `budgets=1e3,1e4,seeds=0,1,2` are the same. Returns `key -> (text, value)` for
    `apply_options`.

    Raises:
      ValueError: a malformed item (VariantError).
    """
    return parse_variant(arg, what="sweep variant")


def apply_options(config: Any, options: dict[str, tuple[str, Any]], allowed: Sequence[str]) -> Any:
    """Sets each option on `config`, typed like the field it replaces.

    Raises:
      ValueError: an unknown key (the message lists `allowed`) or a value of the wrong type.
    """
    for key, (text, value) in options.items():
        if key not in allowed:
            raise VariantError(f"sweep variant key {key!r} is unknown; valid: {', '.join(allowed)}")
        config[key] = coerce(key, text, value, config[key], None, "sweep variant")
    return config


def budget_slice(
    budget: float,
    task: str,
    *,
    d_m: Sequence[int],
    k_c: Sequence[int],
    budget_kind: str = "core",
    tolerance: float = 0.05,
    d_tree: int = 4,
    baselines: Sequence[str] = (),
    max_points: int | None = None,
    embed_dim: int = 64,
    baseline_tolerance: float | None = None,
    baseline_train: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SweepPoint]:
    """The fixed-budget slice: ELM points of the grid at `budget` (+ `baseline_points` at it,
    within `baseline_tolerance` when given, each architecture with its `baseline_train`).

    `max_points` keeps that many ELM points spread evenly over the slice's order (from few
    complex neurons to many simple ones), always including both ends (1: the middle one).

    Raises:
      ValueError: no point of the grid fits the budget (the message names the nearest one).
    """
    # Loads jax and flax (through the models): only when a slice is enumerated.
    from elm_jax.budget import enumeration as budget_lib

    try:
        found = budget_lib.enumerate_points(
            budget,
            task,
            budget_kind=budget_kind,
            d_m=list(d_m),
            k_c=list(k_c),
            tolerance=tolerance,
            d_tree=d_tree,
            embed_dim=embed_dim,
        )
    except ValueError as e:
        raise ValueError(f"budget {budget:g} ({budget_kind}) of the {task} sweep: {e}") from e
    found = sorted(found, key=lambda p: (p.N, p.d_m, p.k_c))
    if max_points is not None and len(found) > max_points:
        if max_points < 1:
            raise ValueError(f"max_points={max_points}; must be >= 1")
        if max_points == 1:
            found = [found[len(found) // 2]]
        else:
            step = (len(found) - 1) / (max_points - 1)
            found = [found[round(i * step)] for i in range(max_points)]
    points = [point_from_budget(p, slice="budget", budget=budget) for p in found]
    return points + baseline_points(
        budget,
        task,
        baselines,
        budget_kind=budget_kind,
        tolerance=tolerance if baseline_tolerance is None else baseline_tolerance,
        embed_dim=embed_dim,
        train=baseline_train,
    )


def baseline_points(
    budget: float,
    task: str,
    archs: Sequence[str],
    *,
    budget_kind: str = "core",
    tolerance: float = 0.05,
    embed_dim: int = 64,
    train: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SweepPoint]:
    """The simple-unit baselines (``archs``: lstm, gru, leaky) within tolerance of ``budget``.

    ``train``: per architecture, trainer config fields by dotted name that its points set
    (``{"gru": {"optim.learning_rate": 1e-2}}``: each unit at its own checked learning rate).
    A baseline with no network within tolerance (N is coarse for dense units on 700 inputs) is
    left out of that budget with a warning, rather than failing the sweep.
    """
    from elm_jax.budget import enumeration as budget_lib

    train = dict(train or {})
    points: list[SweepPoint] = []
    for arch in archs:
        try:
            base = budget_lib.enumerate_points(
                budget, task, arch=arch, budget_kind=budget_kind, tolerance=tolerance,
                embed_dim=embed_dim,
            )  # fmt: skip
        except ValueError as e:
            if isinstance(e, budget_lib.EmptyEnumerationError) or "below the smallest" in str(e):
                # Dense baselines on 700 inputs are coarse in N (an LSTM unit is ~2.8k
                # parameters): small budgets may have no baseline point at all.
                logging.getLogger("sweeps").warning(
                    "no %s baseline at budget %g: %s", arch, budget, e
                )
                continue
            raise ValueError(f"baseline {arch} at budget {budget:g} ({budget_kind}): {e}") from e
        fields = tuple(sorted(dict(train.get(arch, {})).items()))
        points += [
            dataclasses.replace(point_from_budget(p, slice="budget", budget=budget), train=fields)
            for p in base
        ]
    return points


def axis_slices(
    task: str,
    *,
    center_budget: float,
    d_m: int,
    k_c: int,
    axes: Sequence[str] = ("N", "k_e", "k_c"),
    values: Mapping[str, Sequence[int]] | None = None,
    budget_kind: str = "core",
    tolerance: float = 0.05,
    d_tree: int = 4,
    embed_dim: int = 64,
) -> list[SweepPoint]:
    """One-axis sweeps (`axis_N`, `axis_k_e`, `axis_k_c`) around a centre point.

    The centre is the point with the given (d_m, k_c) at `center_budget`; each axis then
    takes `values[axis]` (N, d_m or k_c values) or by default the centre value times 2^j,
    j = -3..3 (where valid), the other two fixed (`elm_jax.budget.enumeration.axis_sweep`). Budgets are
    NaN: these points do not share a budget.
    """
    # Loads jax and flax (through the models): only when a slice is enumerated.
    from elm_jax.budget import enumeration as budget_lib

    try:
        (center,) = budget_lib.enumerate_points(
            center_budget,
            task,
            budget_kind=budget_kind,
            d_m=[d_m],
            k_c=[k_c],
            tolerance=tolerance,
            d_tree=d_tree,
            embed_dim=embed_dim,
        )
    except ValueError as e:
        raise ValueError(
            f"axis centre (d_m={d_m}, k_c={k_c}) at budget {center_budget:g}: {e}"
        ) from e
    points = []
    values = values.to_dict() if hasattr(values, "to_dict") else dict(values or {})
    unknown = sorted(set(values) - set(axes))
    if unknown:
        raise ValueError(f"axis values given for {unknown}, which are not among axes={tuple(axes)}")
    for axis in axes:
        chosen = values.get(axis)
        for p in budget_lib.axis_sweep(center, axis, None if chosen is None else list(chosen)):
            points.append(point_from_budget(p, slice=f"axis_{axis}", budget=math.nan))
    return points


def random_slice(
    task: str,
    num_points: int,
    *,
    budget_range: tuple[float, float],
    seed: int = 0,
    d_m: Sequence[int] | None = None,
    k_c: Sequence[int] | None = None,
    budget_kind: str = "core",
    tolerance: float = 0.05,
    d_tree: int = 4,
    embed_dim: int = 64,
) -> list[SweepPoint]:
    """`num_points` points at log-uniform random budgets over `budget_range` (the scaling law).

    Each point's `budget` is the budget it was drawn for (`elm_jax.budget.enumeration.random_sweep`).
    """
    # Loads jax and flax (through the models): only when a slice is enumerated.
    from elm_jax.budget import enumeration as budget_lib

    found = budget_lib.random_sweep(
        task,
        num_points,
        budget_range=tuple(budget_range),
        seed=seed,
        budget_kind=budget_kind,
        tolerance=tolerance,
        d_m=None if d_m is None else list(d_m),
        k_c=None if k_c is None else list(k_c),
        d_tree=d_tree,
        embed_dim=embed_dim,
    )
    return [point_from_budget(p, slice="random") for p in found]


def budgets_log_spaced(low: float, high: float, count: int) -> tuple[float, ...]:
    """`count` budgets log-spaced from `low` to `high`, rounded to 2 significant digits."""
    if count < 1 or not 0 < low <= high:
        raise ValueError(f"budgets ({low}, {high}, {count}) need 0 < low <= high and count >= 1")
    if count == 1:
        return (float(low),)
    ratio = (high / low) ** (1.0 / (count - 1))
    out = []
    for i in range(count):
        value = low * ratio**i
        digits = 1 - int(math.floor(math.log10(value)))
        out.append(float(round(value, digits)))
    return tuple(out)


def standard_sweep(config: Any) -> list[SweepPoint]:
    """The points of a sweep config with the standard fields (see sweeps/configs/shd_adding.py).

    `config.slices` names the parts to build: `budget` (config.budgets, config.d_m, config.k_c,
    config.max_points, config.baselines; for each of config.budget_kinds when given, else
    config.budget_kind), `axis` (config.axis: center_budget, d_m, k_c, axes)
    and `random` (config.random: num_points, budget_range, seed).
    """
    embed_dim = int(config.train.model.embed_dim)
    d_tree = int(config.train.model.num_branches)
    common = dict(budget_kind=config.budget_kind, tolerance=config.tolerance, d_tree=d_tree)
    # Budget slices may be counted on both kinds (docs/science.md §8: every claim also on P_total).
    kinds = tuple(config.get("budget_kinds", None) or (config.budget_kind,))
    bad = sorted(set(kinds) - {"core", "total"})
    if bad:
        raise ValueError(f"budget_kinds={kinds}: unknown {bad}; valid: core, total")
    unknown = set(config.slices) - {"budget", "axis", "random"}
    if unknown:
        raise ValueError(
            f"slices={tuple(config.slices)}: unknown {sorted(unknown)}; valid: budget, axis, random"
        )
    points: list[SweepPoint] = []
    if "budget" in config.slices:
        for kind in kinds:
            for budget in config.budgets:
                points += budget_slice(
                    float(budget),
                    config.task,
                    d_m=config.d_m,
                    k_c=config.k_c,
                    baselines=config.baselines,
                    max_points=config.max_points,
                    embed_dim=embed_dim,
                    baseline_tolerance=config.get("baseline_tolerance", None),
                    baseline_train=_baseline_train(config),
                    **{**common, "budget_kind": kind},
                )
    if "axis" in config.slices:
        points += axis_slices(
            config.task,
            center_budget=float(config.axis.center_budget),
            d_m=int(config.axis.d_m),
            k_c=int(config.axis.k_c),
            axes=tuple(config.axis.axes),
            values=config.axis.get("values", None),
            embed_dim=embed_dim,
            **common,
        )
    if "random" in config.slices:
        points += random_slice(
            config.task,
            int(config.random.num_points),
            budget_range=tuple(config.random.budget_range),
            seed=int(config.random.seed),
            d_m=config.d_m,
            k_c=config.k_c,
            embed_dim=embed_dim,
            **common,
        )
    return points


def _baseline_train(config: Any) -> dict[str, dict[str, Any]]:
    """``config.baseline_train`` (per architecture, (dotted trainer field, value) pairs: a
    ConfigDict takes no dotted keys) as dicts."""
    given = config.get("baseline_train", None) or {}
    return {str(arch): dict(fields) for arch, fields in dict(given).items()}


def length_point(point: SweepPoint, train_config: Any, factor: int, seeds: Sequence[int]):
    """The point trained again at ``factor`` x the steps with ``seeds`` (the ``length`` slice of
    the training-length check, docs/science.md §8): its evaluation, logging and checkpoint
    intervals scale with the steps, so it is evaluated as often."""
    train = [("num_train_steps", int(train_config.num_train_steps) * int(factor))]
    for name in ("eval_every", "log_every", "checkpoint_every"):
        if name in train_config:
            train.append((name, int(train_config[name]) * int(factor)))
    return dataclasses.replace(point, slice="length", train=tuple(train), seeds=tuple(seeds))


def axis_ends(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """The two ends (smallest and largest varied value) of every axis slice in ``points``."""
    field = {"axis_N": "N", "axis_k_e": "d_m", "axis_k_c": "k_c"}
    out = []
    for slice_, name in field.items():
        along = sorted((p for p in points if p.slice == slice_), key=lambda p: getattr(p, name))
        if len(along) >= 2:
            out += [along[0], along[-1]]
    return out


def fixed_grid_seeds(config: Any) -> tuple[int, ...]:
    """The seeds of a sequential sweep's fixed-grid budgets: ``sequential.fixed_seeds`` when
    given (more seeds where the smallest budgets' optima sit near the grid's end), else ()
    (the sweep's seeds)."""
    given = config.sequential.get("fixed_seeds", None)
    if given is None:
        return ()
    seeds = tuple(given) if isinstance(given, (list, tuple)) else (given,)
    if (
        not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(
            f"sequential.fixed_seeds={given!r}: must be distinct integers >= 0, at least one "
            "(the seeds of the fixed-grid budgets), or None for the sweep's seeds"
        )
    return seeds


def sequential_static_points(config: Any) -> list[SweepPoint]:
    """The points of a sequential sweep known before it starts (docs/sweeps.md): the fixed
    wide grid of its first ``config.sequential.fixed`` budgets (all of them when the sweep makes
    no predictions), the ``config.baselines`` at every budget, the axis slices, and, with
    ``config.sequential.length``, the axis slices' ends again at the longer training. The
    driver (sweeps/sequential.py) places the other budgets as results arrive."""
    seq = config.sequential
    budgets = [float(b) for b in seq.budgets]
    if budgets != sorted(budgets) or len(set(budgets)) != len(budgets):
        raise ValueError(f"sequential.budgets={tuple(seq.budgets)}: must be strictly ascending")
    predictions = bool(seq.get("predictions", True))
    top = len(budgets) - 1 if predictions else len(budgets)
    if not 1 <= int(seq.fixed) <= top:
        why = (
            "; with predictions the largest budget is placed and held out"
            if predictions and int(seq.fixed) == len(budgets)
            else ""
        )
        raise ValueError(
            f"sequential.fixed={seq.fixed}: must be in 1..{top} (the budgets on the fixed grid; "
            f"the others are placed){why}"
        )
    embed_dim = int(config.train.model.embed_dim)
    d_tree = int(config.train.model.num_branches)
    common = dict(
        budget_kind=config.budget_kind, tolerance=config.tolerance, d_tree=d_tree,
        embed_dim=embed_dim,
    )  # fmt: skip
    fixed_seeds = fixed_grid_seeds(config)
    points: list[SweepPoint] = []
    for budget in budgets[: int(seq.fixed)]:
        points += [
            dataclasses.replace(p, seeds=fixed_seeds)
            for p in budget_slice(
                budget, config.task, d_m=config.d_m, k_c=(int(seq.k_c),),
                max_points=config.max_points, **common,
            )
        ]  # fmt: skip
    for budget in budgets:
        points += baseline_points(
            budget, config.task, tuple(config.get("baselines", ()) or ()),
            budget_kind=config.budget_kind,
            tolerance=config.get("baseline_tolerance", None) or config.tolerance,
            embed_dim=embed_dim, train=_baseline_train(config),
        )  # fmt: skip
    axes: list[SweepPoint] = []
    if "axis" in config.slices:
        axes = axis_slices(
            config.task,
            center_budget=float(config.axis.center_budget),
            d_m=int(config.axis.d_m),
            k_c=int(config.axis.k_c),
            axes=tuple(config.axis.axes),
            values=config.axis.get("values", None),
            **common,
        )
    points += axes
    length = seq.get("length", None)
    if length is not None:
        points += [
            length_point(p, config.train, int(length.factor), tuple(length.seeds))
            for p in axis_ends(axes)
        ]
    return points
