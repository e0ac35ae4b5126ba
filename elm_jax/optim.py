"""Optimizers and learning-rate schedules (optax), built from plain config data.

The peak learning rate is an `optax.inject_hyperparams` hyperparameter, so it lives in the
optimizer state as an array: when S seeds are trained as one vmapped program each seed can carry
its own learning rate (`set_learning_rate`). The schedule is a unit-peak multiplier of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam", "adamax", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimizer settings (hashable, so a jitted step can take it as a static argument).

    name: one of OPTIMIZERS ("adamw" is adam with decoupled weight decay; any optimizer takes
      `weight_decay` as decoupled decay).
    learning_rate: peak learning rate (after warm-up).
    schedule: "constant", "cosine" (decay to `final_lr_fraction`·peak at `num_steps`) or "linear".
    warmup_steps: linear warm-up from 0 over this many steps (0: none).
    clip_norm: clip gradients to this global norm (None or 0: no clipping).
    weight_decay: decoupled weight decay (0: none).
    num_steps: total training steps (the schedule's horizon).
    """

    name: str = "adamax"
    learning_rate: float = 5e-3
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = None
    weight_decay: float = 0.0
    num_steps: int = 1000
    final_lr_fraction: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(
                f"optim.name={self.name!r} is not a known optimizer; valid: {OPTIMIZERS}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule={self.schedule!r} is not known; valid: {SCHEDULES}")
        if not self.learning_rate > 0:
            raise ValueError(f"optim.learning_rate={self.learning_rate!r} must be > 0")
        if self.warmup_steps < 0 or self.warmup_steps > self.num_steps:
            raise ValueError(
                f"optim.warmup_steps={self.warmup_steps!r} must be in [0, num_steps={self.num_steps}]"
            )
        if self.num_steps < 1:
            raise ValueError(f"num_train_steps={self.num_steps!r} must be >= 1")
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ValueError(f"optim.clip_norm={self.clip_norm!r} must be >= 0 or None")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay={self.weight_decay!r} must be >= 0")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], num_steps: int) -> OptimConfig:
        """Builds from `config.optim`, naming any unknown field."""
        known = {f.name for f in dataclasses.fields(cls)} - {"num_steps"}
        extra = set(mapping) - known - {"seed_learning_rates"}
        if extra:
            raise ValueError(f"unknown optim field(s) {sorted(extra)}; valid: {sorted(known)}")
        kwargs = {k: v for k, v in mapping.items() if k in known}
        if kwargs.get("clip_norm") == 0:
            kwargs["clip_norm"] = None
        return cls(num_steps=int(num_steps), **kwargs)


def unit_schedule(cfg: OptimConfig) -> Callable[[jax.Array], jax.Array]:
    """Multiplier of the peak learning rate at optimizer step `count` (0-based): warm-up, then decay."""
    decay_steps = max(cfg.num_steps - cfg.warmup_steps, 1)
    final = cfg.final_lr_fraction

    def schedule(count: jax.Array) -> jax.Array:
        count = jnp.asarray(count, jnp.float32)
        if cfg.warmup_steps > 0:
            warm = jnp.minimum((count + 1.0) / cfg.warmup_steps, 1.0)
        else:
            warm = jnp.ones_like(count)
        progress = jnp.clip((count - cfg.warmup_steps) / decay_steps, 0.0, 1.0)
        if cfg.schedule == "cosine":
            decay = final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        elif cfg.schedule == "linear":
            decay = 1.0 - (1.0 - final) * progress
        else:
            decay = jnp.ones_like(progress)
        return jnp.where(count < cfg.warmup_steps, warm, decay)

    return schedule


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """The optax transformation for `cfg`; its state holds `hyperparams["learning_rate"]`."""
    schedule = unit_schedule(cfg)

    def factory(learning_rate: jax.Array) -> optax.GradientTransformation:
        parts: list[optax.GradientTransformation] = []
        if cfg.clip_norm:
            parts.append(optax.clip_by_global_norm(cfg.clip_norm))
        if cfg.name in ("adam", "adamw"):
            parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
        elif cfg.name == "adamax":
            parts.append(optax.scale_by_adamax(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
        if cfg.weight_decay:
            parts.append(optax.add_decayed_weights(cfg.weight_decay))
        parts.append(optax.scale_by_schedule(lambda count: -learning_rate * schedule(count)))
        return optax.chain(*parts)

    return optax.inject_hyperparams(factory)(learning_rate=cfg.learning_rate)


def set_learning_rate(opt_state: Any, learning_rate: jax.Array | float) -> Any:
    """Returns `opt_state` with its injected peak learning rate replaced (e.g. one per seed)."""
    hyper = dict(opt_state.hyperparams)
    old = hyper["learning_rate"]
    hyper["learning_rate"] = jnp.broadcast_to(jnp.asarray(learning_rate, old.dtype), old.shape)
    return opt_state._replace(hyperparams=hyper)


def seed_learning_rates(
    cfg: OptimConfig, seeds: Sequence[int], per_seed: Sequence[float] | None
) -> list[float]:
    """One peak learning rate per seed: `per_seed` when given (same length as seeds), else the peak."""
    if per_seed is None or len(per_seed) == 0:
        return [cfg.learning_rate] * len(seeds)
    if len(per_seed) != len(seeds):
        raise ValueError(
            f"optim.seed_learning_rates has {len(per_seed)} entries but seeds has {len(seeds)}; "
            "give one learning rate per seed or leave it empty"
        )
    if any(not lr > 0 for lr in per_seed):
        raise ValueError(f"optim.seed_learning_rates={list(per_seed)} must all be > 0")
    return [float(lr) for lr in per_seed]
