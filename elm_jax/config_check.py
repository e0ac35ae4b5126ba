"""The trainer's config check: everything about a config that can be wrong, found without data.

One function for both callers, so they cannot drift: the trainer (`elm_jax.train.loop.Run.prepare`)
raises the problems as one ValueError before it touches a workdir, a device or a file, and a
sweep (`sweeps.engine.validate_sweep`) collects them for every trial before the first one trains.
Checked here: the schema and value types (`configs.merge.field_problems`, `configs.merge.resolve_fields`), the model
(`ModelConfig`), the optimizer (`OptimConfig`, per-seed learning rates), the dataset name and
options (`data.check_options`), and that the data's task fits the model (`data.static_info`).
No data is read or built and nothing is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import ml_collections

from elm_jax import data
from elm_jax.configs.common import base_config
from elm_jax.configs.merge import field_problems, merge_config, resolve_fields
from elm_jax.models import ModelConfig
from elm_jax.optim import OptimConfig, seed_learning_rates
from elm_jax.tasks import kind_names

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class CheckedConfig:
    """A config that passed every check, with the objects the trainer builds from it."""

    cfg: ml_collections.ConfigDict
    model: ModelConfig
    optim: OptimConfig
    learning_rates: list[float]


def data_options(data_cfg: Any) -> dict[str, Any]:
    """The `elm_jax.data.load` options the trainer passes for `config.data`: the bin width to
    binned spike data, else the sequence length."""
    options: dict[str, Any] = {}
    entry = data.DATASETS.get(str(data_cfg.name))
    if entry is not None and entry.binned:
        options["bin_ms"] = data_cfg.bin_ms
    else:
        options["seq_len"] = data_cfg.seq_len
    if data_cfg.input_dropout:
        options["input_dropout"] = data_cfg.input_dropout
    return options


def _attempt(problems: list[str], prefix: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except ValueError as err:
        problems.append(f"{prefix}{err}")
        return None


def config_problems(
    config: Any, *, check_data: bool = True
) -> tuple[list[str], CheckedConfig | None]:
    """Every problem of `config` (one line each) and, when there is none, the checked config.

    `check_data=False` skips the dataset name, options and task fit (the trainer was handed a
    dataset object instead of a name to load).
    """
    problems: list[str] = []
    full = base_config()
    _attempt(problems, "", lambda: merge_config(full, config))
    if problems:
        return problems, None  # unknown fields or wrong types: nothing further is meaningful
    problems += field_problems(full)
    # Resolved in place: the model, the optimizer and the data options below are all read from
    # this one resolved config (model.time_unit="ms" sets model.delta_t to data.bin_ms).
    resolved = not problems and _attempt(problems, "", lambda: resolve_fields(full) or True)
    cfg = full if resolved else None
    model = _attempt(problems, "config.model.", lambda: ModelConfig.from_dict(full.model.to_dict()))
    steps = full.num_train_steps
    steps = steps if isinstance(steps, int) and steps >= 1 else 1  # reported by field_problems
    optim = _attempt(problems, "", lambda: OptimConfig.from_dict(full.optim.to_dict(), steps))
    lrs = None
    if optim is not None:
        seeds, per_seed = list(full.seeds), full.optim.seed_learning_rates
        lrs = _attempt(problems, "", lambda: seed_learning_rates(optim, seeds, per_seed))
    if check_data:
        name = full.data.name
        options = data_options(full.data)
        if name not in data.DATASET_NAMES:
            problems.append(
                f"config.data.name={name!r} is not a known dataset; valid: "
                + ", ".join(data.DATASET_NAMES)
            )
        else:
            _attempt(problems, "config.data.", lambda: data.check_options(name, **options))
            problems += _fit_problems(name, data.static_info(name), model)
    if model is not None and full.data.carry_train_state and not model.task_kind.streams:
        problems.append(
            "config.data.carry_train_state=True needs config.model.task="
            f"{kind_names(lambda kind: kind.streams)} (got {model.task!r}); set it to False"
        )
    if problems or cfg is None or model is None or optim is None or lrs is None:
        return problems, None
    return [], CheckedConfig(cfg, model, optim, lrs)


def _fit_problems(name: str, info: dict, model: Any) -> list[str]:
    if model is None:
        return []
    out = []
    for key, want in info.items():
        have = getattr(model, key)
        if have != want:
            out.append(
                f"config.model.{key}={have!r} does not fit the data {name!r} ({key}={want!r}); "
                f"set config.model.{key}={want!r} or choose data for a {model.task!r} model"
            )
    return out


def check_config(config: Any, *, check_data: bool = True) -> CheckedConfig:
    """The checked config; raises ValueError listing every problem ("; "-separated)."""
    problems, checked = config_problems(config, check_data=check_data)
    if checked is None:
        raise ValueError("; ".join(problems))
    return checked


__all__ = ["CheckedConfig", "check_config", "config_problems", "data_options"]
