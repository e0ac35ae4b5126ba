"""Merging a (partial) config over the full schema, and the trainer's field checks.

`resolve_config(config)` is the config the trainer runs: `config` merged over `base_config()`
(unknown fields and wrong types raise), every trainer field range-checked, and the time unit
resolved (`model.time_unit="ms"` sets delta_t to the bin width).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from elm_jax.configs.common import base_config
from elm_jax.tasks import task_kind
from elm_jax.writers import check_wandb_mode


def merge_config(base: ml_collections.ConfigDict, given: Any, prefix: str = "") -> None:
    """Writes the fields of `given` (a mapping or ConfigDict, maybe partial) into `base` in place;
    raises ValueError on an unknown field, a group given a value, or a wrong type."""
    keys = given.keys() if hasattr(given, "keys") else []
    for key in keys:
        value = given[key]
        path = f"{prefix}{key}"
        if key not in base:
            raise ValueError(
                f"unknown config field {path!r}; valid fields here: {sorted(base.keys())}"
            )
        if isinstance(base[key], ml_collections.ConfigDict):
            if not hasattr(value, "keys"):
                raise ValueError(f"config field {path!r} must be a group, got {value!r}")
            merge_config(base[key], value, prefix=f"{path}.")
            continue
        if isinstance(value, list):
            value = tuple(value)
        try:
            base[key] = value
        except TypeError as err:
            raise ValueError(f"config field {path!r}={value!r} has the wrong type: {err}") from err


def field_problems(full: ml_collections.ConfigDict) -> list[str]:
    """Every out-of-range trainer field of a merged config (counts, seeds, batch sizes)."""
    problems = []
    for name in ("num_train_steps", "log_every", "eval_every", "checkpoint_every"):
        if not isinstance(full[name], int) or full[name] < 1:
            problems.append(f"config.{name}={full[name]!r} must be an integer >= 1")
    if full.keep_checkpoints < 1:
        problems.append(f"config.keep_checkpoints={full.keep_checkpoints!r} must be >= 1")
    seeds = list(full.seeds)
    if (
        not seeds
        or len(set(seeds)) != len(seeds)
        or any(not isinstance(s, int) or s < 0 for s in seeds)
    ):
        problems.append(f"config.seeds={seeds!r} must be a non-empty list of distinct ints >= 0")
    for name in ("batch_size", "eval_batch_size"):
        if full.data[name] < 1:
            problems.append(f"config.data.{name}={full.data[name]!r} must be >= 1")
    if full.parallel.sync_every < 1:
        problems.append(f"config.parallel.sync_every={full.parallel.sync_every!r} must be >= 1")
    return problems


def resolve_config(config: Any) -> ml_collections.ConfigDict:
    """`config` merged over the full schema (`base_config`) and checked; raises ValueError."""
    full = base_config()
    merge_config(full, config)
    problems = field_problems(full)
    if problems:
        raise ValueError("; ".join(problems))
    resolve_fields(full)
    return full


def resolve_fields(full: ml_collections.ConfigDict) -> None:
    """Resolves the derived fields of a merged, range-checked config in place (the time unit
    sets delta_t) and checks the logging fields; raises ValueError.

    In place, so that every object the trainer builds is built from this one resolved config.
    """
    _resolve_time_unit(full)
    if not isinstance(full.logging.tensorboard, bool):
        raise ValueError(f"config.logging.tensorboard={full.logging.tensorboard!r} must be a bool")
    check_wandb_mode(full.logging.wandb)


def _resolve_time_unit(cfg: ml_collections.ConfigDict) -> None:
    """model.time_unit = "ms": time constants in milliseconds, Δt = the bin width data.bin_ms
    (docs/science.md §4), so a change of bin size keeps the physical timescales."""
    if cfg.model.time_unit != "ms":
        return
    try:
        binned = task_kind(cfg.model.task).binned_inputs
    except ValueError:  # an unknown task: the model check names it
        binned = False
    if not binned:
        raise ValueError(
            "config.model.time_unit='ms' needs binned spike data (SHD, SHD-Adding) with "
            f"data.bin_ms; task {cfg.model.task!r} has no bin width: use time_unit='steps'"
        )
    bin_ms = float(cfg.data.bin_ms)
    if cfg.model.delta_t not in (1.0, bin_ms):
        raise ValueError(
            f"config.model.delta_t={cfg.model.delta_t!r} conflicts with time_unit='ms', where "
            f"delta_t is the bin width data.bin_ms={bin_ms!r}: leave delta_t at its default"
        )
    cfg.model.delta_t = bin_ms


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The fields (dotted paths) where two plain config dicts differ, as "path: old -> new"."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += config_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


__all__ = [
    "config_diff",
    "field_problems",
    "merge_config",
    "resolve_config",
    "resolve_fields",
]
