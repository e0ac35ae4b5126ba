"""Pure primitives shared by the reference neuron and the trained network (no Flax).

Each formula lives here once: the reference's timescale clamp and decay, the scaled sigmoid
that maps a proto-parameter onto (tau_min, tau_max) and its log-spaced initialisation, the
scaled tanh of the memory update, the torch-style uniform initialiser and the per-neuron
multiply-add count. Shapes follow the caller's (everything here is elementwise or a scalar).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The reference clamps every timescale from below before dividing by it.
TAU_FLOOR = 1e-6
# Scaled tanh of LeCun et al. used by the reference for the memory update.
TANH_SCALE, TANH_SLOPE = 1.7159, 2.0 / 3.0


def scaled_tanh(x: jax.Array) -> jax.Array:
    """1.7159 · tanh(2x/3), the memory update's nonlinearity."""
    return TANH_SCALE * jnp.tanh(TANH_SLOPE * x)


def clamp_tau(tau: jax.Array) -> jax.Array:
    """max(tau, 1e-6) with the reference's gradient (torch.clamp passes it at the bound too)."""
    return jnp.where(tau >= TAU_FLOOR, tau, TAU_FLOOR)


def decay(tau: jax.Array, delta_t: float, rate: float = 1.0) -> jax.Array:
    """exp(-Δt · rate / max(tau, 1e-6)); rate = λ gives the reference's kappa_lambda."""
    return jnp.exp(-delta_t * rate / clamp_tau(tau))


def scaled_sigmoid(x: jax.Array, lower: float, upper: float) -> jax.Array:
    """(upper - lower) * sigmoid(x) + lower: maps the real line onto (lower, upper)."""
    return (upper - lower) * jax.nn.sigmoid(x) + lower


def inverse_scaled_sigmoid(tau: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Inverse of `scaled_sigmoid`, clamped 1e-6 inside the bounds like the reference (float64)."""
    tau = np.clip(np.asarray(tau, dtype=np.float64), lower + 1e-6, upper - 1e-6)
    return np.log((tau - lower) / (upper - tau))


def effective_tau_max(tau_min: float, tau_max: float, version: str = "v2") -> float:
    """The upper tau_m bound the reference uses: v2 widens it to at least tau_min + 3e-6."""
    return max(tau_min + 3e-6, tau_max) if version == "v2" else tau_max


def check_memory_tau_bounds(tau_min: float, tau_max: float, version: str = "v2") -> None:
    """Accepts exactly the bounds the reference handles (docs/science.md §4); else ValueError.

    tau_min = 0 is legal (every decay clamps tau at 1e-6). v2 widens a tau_max within 3e-6 of
    tau_min; a tau_max below tau_min would be replaced silently, so it is refused. v1 does not
    widen: its log-spaced initialisation needs tau_max - tau_min > 1e-6 to stay finite.
    """
    if not tau_min >= 0:
        raise ValueError(f"memory_tau_min={tau_min!r}: must be >= 0")
    if not tau_max >= tau_min:
        raise ValueError(f"memory_tau_max={tau_max!r}: must be >= memory_tau_min={tau_min!r}")
    if version != "v2" and not (tau_max - 1e-6) - tau_min > 0:
        raise ValueError(
            f"memory_tau_max={tau_max!r}: v1 needs memory_tau_max > memory_tau_min + 1e-6 "
            f"(memory_tau_min={tau_min!r}); its tau_m initialisation is undefined otherwise"
        )


def check_memory_tau_init(
    init_min: float | None, init_max: float | None, tau_min: float, tau_max: float
) -> None:
    """Accepts a tau_m initialisation range (both None, or inside the bounds); else ValueError."""
    if (init_min is None) != (init_max is None):
        raise ValueError(
            f"memory_tau_init_min={init_min!r}, memory_tau_init_max={init_max!r}: give both or "
            "neither (neither: tau_m is initialised over [memory_tau_min, memory_tau_max])"
        )
    if init_min is not None and not (tau_min <= init_min < init_max <= tau_max):
        raise ValueError(
            f"memory_tau_init_min={init_min!r}, memory_tau_init_max={init_max!r} is invalid: "
            f"must satisfy memory_tau_min={tau_min!r} <= init_min < init_max <= "
            f"memory_tau_max={tau_max!r}"
        )


def check_integer(name: str, value: Any, minimum: int) -> None:
    """ValueError naming the field unless `value` is an integer (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is invalid: must be an integer")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: must be >= {minimum}")


def check_number(name: str, value: Any, *, positive: bool) -> None:
    """ValueError naming the field unless `value` is a number > 0 (`positive`) or >= 0."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (ok and (value > 0 if positive else value >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} is invalid: must be a number {bound}")


def log_spaced_proto_tau(
    num_memory: int,
    tau_min: float,
    tau_max: float,
    init_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """proto_tau_m [m] whose tau_m lie log-spaced over [lo + 1e-6, hi - 1e-6].

    (lo, hi) is `init_range`, by default the bounds (tau_min, tau_max) as in the reference;
    `tau_max` is the bound actually used (`effective_tau_max`). The reference's offsets make
    tau_min = 0 legal (the first timescale is 1e-6). Float64, and finite: the clamp is evaluated
    in float64, where the float32 reference rounds the top value to +inf.
    """
    lo, hi = init_range if init_range is not None else (tau_min, tau_max)
    tau = np.logspace(math.log10(lo + 1e-6), math.log10(hi - 1e-6), num_memory)
    return inverse_scaled_sigmoid(tau, tau_min, tau_max)


def torch_linear_uniform(fan_in: int) -> Callable[..., jax.Array]:
    """Initialiser ``init(key, shape, dtype=float32)``: uniform in ±1/sqrt(fan_in), like the
    weights and biases of torch.nn.Linear (Kaiming-uniform with a = sqrt(5))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def elm_macs_per_neuron(
    *,
    num_memory: int,
    synapses_per_neuron: int,
    hidden_size: int | None = None,
    num_branches: int = 4,
    mlp_num_layers: int = 1,
) -> int:
    """Multiply-adds of one ELM neuron for one step: synapses, MLP and readout.

    ``k_c + (d + m)·h + (L - 1)·h² + h·m + m`` with h = `hidden_size` (None: 2·m).
    """
    m, h = num_memory, hidden_size or 2 * num_memory
    return synapses_per_neuron + (num_branches + m) * h + (mlp_num_layers - 1) * h * h + h * m + m
