"""Frozen sweep points, trials and their stable identities.

A *point* is one architecture (arch + model configuration) placed in one slice of a sweep
(`budget`, `axis_N`, `axis_k_e`, `axis_k_c`, `random`). A *trial* is (point, seed, training
configuration). A *trial group* is every trial that shares one architecture and one training
configuration: the trainer trains its seeds together (vmapped) in one call with one workdir.

Identities are SHA-256 digests of canonical JSON (sorted keys, no whitespace, NaN → null,
tuples → lists), so they do not depend on dict order, on the process, or on the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SLICES = ("budget", "axis_N", "axis_k_e", "axis_k_c", "random", "length")
BUDGET_KINDS = ("core", "total")
ID_LENGTH = 16


def _plain(value: Any) -> Any:
    """Converts configs, dataclasses, numpy scalars and tuples into JSON-ready plain values."""
    if hasattr(value, "to_dict") and callable(value.to_dict):  # ml_collections.ConfigDict
        value = value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalar
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    raise TypeError(f"cannot hash value {value!r} of type {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Returns the canonical JSON text of `value` (sorted keys, compact, NaN → null)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(value: Any, length: int = ID_LENGTH) -> str:
    """Returns the first `length` hex digits of sha256(canonical_json(value))."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One architecture in one slice of a sweep.

    `model` holds the ModelConfig fields this point sets on top of the sweep's base training
    config (as sorted (name, value) pairs so the point stays hashable and frozen); the other
    fields are the budget accounting the results table reports. `train` holds further trainer
    config fields this point sets, by dotted name (`("num_train_steps", 2000)`), and `seeds`
    the seeds it trains when not the sweep's (both empty by default): the `length` slice of
    the training-length check trains points again this way.
    """

    slice: str
    budget: float
    budget_kind: str
    arch: str
    N: int
    d_m: int
    k_c: int
    k_e: int
    d_tree: int
    P_core: int
    P_io: int
    P_total: int
    flops_per_step: float
    model: tuple[tuple[str, Any], ...]
    train: tuple[tuple[str, Any], ...] = ()
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.slice not in SLICES:
            raise ValueError(f"SweepPoint.slice={self.slice!r}; valid: {SLICES}")
        if self.budget_kind not in BUDGET_KINDS:
            raise ValueError(f"SweepPoint.budget_kind={self.budget_kind!r}; valid: {BUDGET_KINDS}")
        if self.N < 1:
            raise ValueError(f"SweepPoint.N={self.N}; must be >= 1")
        object.__setattr__(self, "budget", float(self.budget))
        object.__setattr__(self, "model", tuple(sorted((str(k), v) for k, v in self.model)))
        object.__setattr__(self, "train", tuple(sorted((str(k), v) for k, v in self.train)))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def model_dict(self) -> dict[str, Any]:
        """The ModelConfig overrides as a dict."""
        return dict(self.model)

    def describe(self) -> str:
        """A short human-readable label, e.g. `budget 1000 elm N=12 d_m=4 k_c=8`."""
        budget = "" if math.isnan(self.budget) else f" {self.budget:g}"
        train = "".join(f" {k}={v}" for k, v in self.train)
        return f"{self.slice}{budget} {self.arch} N={self.N} d_m={self.d_m} k_c={self.k_c}{train}"


# The ModelConfig fields that make up an architecture point (the rest come from the base config).
ARCH_FIELDS = (
    "arch",
    "num_neurons",
    "num_memory",
    "synapses_per_neuron",
    "num_branches",
    "mlp_num_layers",
    "learn_memory_tau",
    "embed_dim",
)


def point_from_budget(budget_point: Any, *, slice: str, budget: float | None = None) -> SweepPoint:
    """Makes a SweepPoint from an `elm_jax.budget.enumeration.Point`.

    The model overrides are the point's architecture fields (ARCH_FIELDS) of
    `budget_point.model_config()`, so the trainer builds exactly the model that was counted.
    `budget` defaults to the point's own nominal budget (NaN when it has none: axis sweeps).
    """
    model_config = budget_point.model_config()
    model = {name: getattr(model_config, name) for name in ARCH_FIELDS}
    if budget is None:
        budget = math.nan if budget_point.budget is None else float(budget_point.budget)
    return SweepPoint(
        slice=slice,
        budget=float(budget),
        budget_kind=str(budget_point.budget_kind),
        arch=str(budget_point.arch),
        N=int(budget_point.N),
        d_m=int(budget_point.d_m),
        k_c=int(budget_point.k_c),
        k_e=int(budget_point.k_e),
        d_tree=int(budget_point.d_tree) if budget_point.arch == "elm" else 0,
        P_core=int(budget_point.P_core),
        P_io=int(budget_point.P_io),
        P_total=int(budget_point.P_total),
        flops_per_step=float(budget_point.flops_per_step),
        model=tuple(model.items()),
    )


@dataclasses.dataclass(frozen=True)
class Trial:
    """(point, seed, training configuration) with its stable ids."""

    trial_id: str
    point_id: str
    group_key: str
    point: SweepPoint
    seed: int


# Model fields added after sweep ids were first written, with their defaults: a field at its
# default is left out of a trial's identity, so the trials of sweeps run before it existed keep
# their ids (and resume); set to anything else, it enters the identity like every field.
LATE_MODEL_FIELDS = {"tau_s_value": 5.0}


def train_config_identity(train_config: Any) -> dict[str, Any]:
    """The part of a training config that defines a trial: everything but where things are.

    Left out: the seeds list (a trial has one seed) and `data.data_dir` (a location: moving
    the data must not orphan finished trials; the record's `dataset` column says what was
    actually read). Nor `logging` (where live curves are written, not what is trained). The
    model fields stay in (the point's overrides are applied first), except a field of
    `LATE_MODEL_FIELDS` at its default.
    """
    plain = _plain(train_config)
    model = plain.get("model")
    if isinstance(model, dict):
        for name, default in LATE_MODEL_FIELDS.items():
            if name in model and model[name] == default:
                model.pop(name)
    plain.pop("seeds", None)
    plain.pop("logging", None)
    if isinstance(plain.get("data"), dict):
        plain["data"].pop("data_dir", None)
    return plain


def apply_point(base_config: Any, point: SweepPoint, seeds: Sequence[int]) -> Any:
    """Returns a copy of the trainer config with the point's model and trainer fields and the
    given seeds."""
    config = base_config.copy_and_resolve_references()
    with config.unlocked():
        for name, value in point.model:
            config.model[name] = value
        for name, value in point.train:
            *groups, leaf = name.split(".")
            target = config
            for group in groups:
                target = target[group]
            if leaf not in target:
                raise ValueError(f"point {point.describe()}: trainer config has no field {name!r}")
            target[leaf] = value
        config.seeds = tuple(int(s) for s in seeds)
    return config


def make_trials(
    points: Iterable[SweepPoint], seeds: Sequence[int], base_config: Any, task: str
) -> list[Trial]:
    """Expands points × seeds into trials with their stable ids.

    `point_id` hashes the task and the full model config (the architecture, wherever it
    appears); `trial_id` adds the slice placement, the seed and the full training config (a
    point's own `train` fields included); a point with its own `seeds` trains those;
    `group_key` is the architecture + training config without the seed, so trials that
    differ only in seed (or only in slice) share one trainer call.
    """
    if not seeds:
        raise ValueError("seeds=[]; a sweep needs at least one seed")
    trials: dict[str, Trial] = {}
    for point in points:
        config = train_config_identity(apply_point(base_config, point, seeds))
        point_id = stable_hash({"task": task, "model": config.get("model")})
        group_key = stable_hash({"task": task, "config": config})
        for seed in point.seeds or seeds:
            trial_id = stable_hash(
                {
                    "point_id": point_id,
                    "slice": point.slice,
                    "budget": point.budget,
                    "budget_kind": point.budget_kind,
                    "seed": int(seed),
                    "config": config,
                }
            )
            trials[trial_id] = Trial(trial_id, point_id, group_key, point, int(seed))
    return list(trials.values())


def group_id(group_key: str, seeds: Sequence[int]) -> str:
    """The id (and workdir name) of one trainer call: an architecture with a set of seeds."""
    return stable_hash({"group_key": group_key, "seeds": sorted(int(s) for s in seeds)})
