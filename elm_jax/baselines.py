"""Simple-unit recurrent layers under the same interface as `ELMNetwork`.

Each layer is called as ``y, carry = layer(e, carry)`` with ``e [b, t, i]`` and returns
``y [b, t, n]`` (one output per unit) and the state after the last step. Parameter layout (what
`elm_jax.budget` counts as the recurrent core):

* ``LSTMLayer``: flax ``OptimizedLSTMCell`` — ``4 (i n + n n + n)`` parameters;
  ``ChronoLSTMLayer``: the same count, gate biases chrono-initialised (the paper's Chrono-LSTM).
* ``GRULayer``: flax ``GRUCell`` — ``3 (i n + n n) + 4 n`` parameters.
* ``LeakyLayer``: the "simple unit" — one state per unit, no MLP:
  ``h_t = a * h_{t-1} + (1 - a) * tanh(W_in e_t + W_rec h_{t-1} + b)``, ``a = exp(-dt / tau)``
  with a learnable per-unit ``tau`` in ``[tau_min, tau_max]`` (scaled sigmoid, log-spaced init
  like the ELM memory) — ``i n + n n + 2 n`` parameters.

Carries are float32.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elm_jax.ops import decay, effective_tau_max, log_spaced_proto_tau, scaled_sigmoid

Array = jax.Array


def _check_input(e: Array, input_dim: int) -> None:
    if e.ndim != 3 or e.shape[-1] != input_dim:
        raise ValueError(f"input shape {e.shape} is invalid: expected [batch, time, {input_dim}]")


class LSTMLayer(nn.Module):
    """N LSTM units (flax OptimizedLSTMCell) scanned over time; carry ``{"c", "h"}``."""

    num_units: int
    input_dim: int

    @nn.compact
    def __call__(self, e: Array, carry=None):
        _check_input(e, self.input_dim)
        if carry is None:
            carry = lstm_zero_carry(e.shape[0], self.num_units)
        scan = nn.scan(
            nn.OptimizedLSTMCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        (c, h), y = scan(self.num_units, name="cell")((carry["c"], carry["h"]), e)
        return y, {"c": c, "h": h}


class GRULayer(nn.Module):
    """N GRU units (flax GRUCell) scanned over time; carry ``{"h"}``."""

    num_units: int
    input_dim: int

    @nn.compact
    def __call__(self, e: Array, carry=None):
        _check_input(e, self.input_dim)
        if carry is None:
            carry = {"h": jnp.zeros((e.shape[0], self.num_units), jnp.float32)}
        scan = nn.scan(
            nn.GRUCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        h, y = scan(self.num_units, name="cell")(carry["h"], e)
        return y, {"h": h}


def lstm_zero_carry(batch_size: int, num_units: int) -> dict[str, Array]:
    """Zero LSTM state ``{"c", "h"}``, float32 ``[b, n]`` each."""
    z = jnp.zeros((batch_size, num_units), jnp.float32)
    return {"c": z, "h": z}


def leaky_scan(decay: Array, drive_in: Array, w_rec: Array, h0: Array) -> tuple[Array, Array]:
    """Leaky-unit recurrence: ``drive_in [b, t, n]`` (input part, precomputed) -> h ``[b, t, n]``."""

    def step(h, x):
        h = decay * h + (1.0 - decay) * jnp.tanh(x + h @ w_rec)
        return h, h

    h, ys = jax.lax.scan(step, h0.astype(jnp.float32), jnp.swapaxes(drive_in, 0, 1))
    return h, jnp.swapaxes(ys, 0, 1)


class LeakyLayer(nn.Module):
    """N leaky tanh units with learnable per-unit time constants; carry ``{"h"}``."""

    num_units: int
    input_dim: int
    tau_min: float = 1.0
    tau_max: float = 1000.0
    delta_t: float = 1.0

    @nn.compact
    def __call__(self, e: Array, carry=None):
        _check_input(e, self.input_dim)
        n = self.num_units
        w_in = self.param("w_in", nn.initializers.lecun_normal(), (self.input_dim, n))
        w_rec = self.param("w_rec", nn.initializers.orthogonal(), (n, n))
        bias = self.param("bias", nn.initializers.zeros, (n,))
        tau_max = effective_tau_max(self.tau_min, self.tau_max)
        proto = log_spaced_proto_tau(n, self.tau_min, tau_max)
        proto_tau = self.param("proto_tau", lambda *_: jnp.asarray(proto, jnp.float32))
        tau = scaled_sigmoid(proto_tau, self.tau_min, tau_max)
        keep = decay(tau, self.delta_t)
        drive = e.astype(jnp.float32) @ w_in + bias  # input part, outside the scan
        h0 = jnp.zeros((e.shape[0], n), jnp.float32) if carry is None else carry["h"]
        h, y = leaky_scan(keep, drive, w_rec, h0)
        return y, {"h": h}


def baseline_core_params(arch: str, num_units: int, input_dim: int) -> tuple[int, int]:
    """``(k_e, k_c)`` per unit of a baseline, with ``P_core = N (k_e + k_c)``.

    ``k_c`` counts each unit's connection weights from the pool (input and recurrent), ``k_e``
    its other parameters (biases, time constant).
    """
    pool = input_dim + num_units
    if arch == "lstm":
        return 4, 4 * pool
    if arch == "gru":
        return 4, 3 * pool
    if arch == "leaky":
        return 2, pool
    raise ValueError(f"arch={arch!r} is invalid for a baseline: must be 'lstm', 'gru' or 'leaky'")


def baseline_macs_per_step(arch: str, num_units: int, input_dim: int) -> int:
    """Multiply-accumulates of one step of the recurrent layer (per sample)."""
    pool = input_dim + num_units
    gates = {"lstm": 4, "gru": 3, "leaky": 1}
    if arch not in gates:
        raise ValueError(f"arch={arch!r} is invalid for a baseline: must be one of {sorted(gates)}")
    return int(np.int64(gates[arch]) * pool * num_units)


def chrono_bias_init(t_max: float) -> nn.initializers.Initializer:
    """Chrono initialisation of the LSTM gate biases (Tallec & Ollivier 2018), as one [4n] vector
    in gate order (i, f, g, o): forget bias `b_f = log(u)`, `u ~ U(1, t_max - 1)`, input bias
    `b_i = -b_f`, the others 0, so unit j starts with a memory of about u_j steps."""

    def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        n = shape[0] // 4
        b_f = jnp.log(jax.random.uniform(key, (n,), jnp.float32, 1.0, t_max - 1.0))
        zero = jnp.zeros((n,), jnp.float32)
        return jnp.concatenate([-b_f, b_f, zero, zero]).astype(dtype)

    return init


def chrono_lstm_scan(drive_in: Array, w_rec: Array, c0: Array, h0: Array):
    """LSTM recurrence over ``drive_in [b, t, 4n]`` (input part and bias, precomputed)."""

    def step(carry, x):
        c, h = carry
        i, f, g, o = jnp.split(x + h @ w_rec, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    (c, h), ys = jax.lax.scan(step, (c0, h0), jnp.swapaxes(drive_in, 0, 1))
    return (c, h), jnp.swapaxes(ys, 0, 1)


class ChronoLSTMLayer(nn.Module):
    """N LSTM units with chrono-initialised gate biases (Tallec & Ollivier 2018); carry
    ``{"c", "h"}``. Same parameter count as `LSTMLayer` (``4 (i n + n n + n)``): ``w_in [i, 4n]``
    (LeCun normal), ``w_rec [n, 4n]`` (orthogonal), ``bias [4n]`` (`chrono_bias_init`)."""

    num_units: int
    input_dim: int
    t_max: float

    @nn.compact
    def __call__(self, e: Array, carry=None):
        _check_input(e, self.input_dim)
        n = self.num_units
        w_in = self.param("w_in", nn.initializers.lecun_normal(), (self.input_dim, 4 * n))
        w_rec = self.param("w_rec", nn.initializers.orthogonal(), (n, 4 * n))
        bias = self.param("bias", chrono_bias_init(self.t_max), (4 * n,))
        if carry is None:
            carry = lstm_zero_carry(e.shape[0], n)
        drive = e.astype(jnp.float32) @ w_in + bias  # input part, outside the scan
        (c, h), y = chrono_lstm_scan(drive, w_rec, carry["c"], carry["h"])
        return y, {"c": c, "h": h}
