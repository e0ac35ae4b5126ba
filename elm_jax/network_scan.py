"""The ELM network's recurrence with a hand-written gradient (used by `elm_jax.network.ELMNetwork`).

Same math as `elm_jax.network.network_step` (the plain-autodiff reference, tested equal in values
and gradients). Why a custom VJP: under plain autodiff, the backward scan accumulates every weight
gradient (MLP kernels, readout, recurrent synapses, decays) with a small per-neuron product at
every step. Here the reverse scan propagates only the activations' cotangents; each weight
gradient is then one product over all ``(t, b)`` after it, and the MLP's relu masks and tanh
derivatives are computed time-parallel before it.

Axis legend as in `elm_jax.network`; the scan layout is time-major and neuron-major:
``ext [t, n, b, d]``, state ``branch [n, b, d]``, ``memory [n, b, m]``, ``output [n, b]``.

``weights`` (all float32, neuron axis leading):
  kappa_b [n, 1, d], kappa_m [n, 1, m], alpha [n, 1, m] (``1 - exp(-λ Δt / τ_m)``),
  k_branch [n, d, h0] and k_memory [n, m, h0] (the first MLP layer split by input),
  bias0 [n, h0], layers: ((kernel [n, i, o], bias [n, o]), ...) (the further MLP layers),
  w_y [n, m], b_y [n], rec: recurrent synapse weights (``"gather"``: [n, s, d] with ``src
  [n, s]`` the presynaptic neuron of each; ``"dense"``: [j, n, d]; ``None``: no recurrence).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

_TANH_GAIN, _TANH_SLOPE = 1.7159, 2.0 / 3.0
# Steps per scan iteration in the forward and reverse scans; 4 measured no faster on CPU.
SCAN_UNROLL = 1


# Per-neuron products contracting over at most this many terms are written as a sum of
# elementwise products (one fused loop); XLA's CPU batched matmul pays per neuron, which dominates
# for many neurons with tiny matrices.
SMALL_CONTRACTION_MAX = 4


def _nmm(x: Array, kernel: Array) -> Array:
    """``[n, b, i] x [n, i, o] -> [n, b, o]``: per-neuron product with the unit axis leading."""
    if kernel.shape[1] <= SMALL_CONTRACTION_MAX:
        return sum(x[:, :, k, None] * kernel[:, None, k, :] for k in range(kernel.shape[1]))
    return jax.lax.dot_general(x, kernel, (((2,), (1,)), ((0,), (0,))))


def _nmm_t(g: Array, kernel: Array) -> Array:
    """``[n, b, o] x [n, i, o] -> [n, b, i]``: the transpose product of `_nmm`."""
    if kernel.shape[2] <= SMALL_CONTRACTION_MAX:
        return sum(g[:, :, k, None] * kernel[:, None, :, k] for k in range(kernel.shape[2]))
    return jax.lax.dot_general(g, kernel, (((2,), (2,)), ((0,), (0,))))


def _recurrent(y: Array, rec: Array | None, src: Array | None, mode: str) -> Array | float:
    """Recurrent branch input ``y_{t-1} [j, b] -> [n, b, d]``."""
    if mode == "gather":
        return _nmm(jnp.swapaxes(y[src], 1, 2), rec)
    if mode == "dense":
        return jnp.einsum("jb,jnd->nbd", y, rec)
    return 0.0


def _recurrent_transpose(g_b: Array, rec: Array, src: Array, mode: str, num_neurons: int) -> Array:
    """Cotangent of ``y_{t-1} [j, b]`` from that of the branch input ``g_b [n, b, d]``."""
    if mode == "gather":
        per_synapse = jnp.swapaxes(_nmm_t(g_b, rec), 1, 2)  # [n, s, b]
        return jax.ops.segment_sum(
            per_synapse.reshape(-1, per_synapse.shape[-1]), src.reshape(-1), num_neurons
        )
    return jnp.einsum("jnd,nbd->jb", rec, g_b)


def _forward(weights: Mapping[str, Any], ext: Array, state0: Mapping[str, Array], src, mode):
    """The forward scan; returns (final state, per-step ``(branch, memory, output, pre_acts)``)."""
    layers = weights["layers"]

    def body(state, ext_t):
        b = weights["kappa_b"] * state["branch"] + ext_t
        b = b + _recurrent(state["output"], weights["rec"], src, mode)
        m_prev = state["memory"]
        z = _nmm(b, weights["k_branch"]) + _nmm(m_prev * weights["kappa_m"], weights["k_memory"])
        z = z + weights["bias0"][:, None]
        pre_acts = [z]
        for kernel, bias in layers:
            z = _nmm(jax.nn.relu(z), kernel) + bias[:, None]
            pre_acts.append(z)
        dm = _TANH_GAIN * jnp.tanh(_TANH_SLOPE * z)
        m = weights["kappa_m"] * m_prev + weights["alpha"] * dm
        y = jnp.einsum("nbm,nm->nb", m, weights["w_y"]) + weights["b_y"][:, None]
        new = {"branch": b, "memory": m, "output": y}
        return new, (b, m, y, tuple(pre_acts))

    return jax.lax.scan(body, state0, ext, unroll=SCAN_UNROLL)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def scan_with_custom_grad(
    weights: Mapping[str, Any],
    ext: Array,
    state0: Mapping[str, Array],
    src: Array | None,
    mode: str,
) -> tuple[dict[str, Array], Array]:
    """Runs the network over time: ``ext [t, n, b, d] -> (final state, y [t, n, b])``.

    ``state0`` and the final state are neuron-major (module docstring). ``mode`` is the recurrent
    connectivity, ``"gather"``, ``"dense"`` or ``"none"``. Gradient: see the module docstring.
    """
    state, (_, _, ys, _) = _forward(weights, ext, state0, src, mode)
    return state, ys


def _fwd(weights, ext, state0, src, mode):
    state, (bs, ms, ys, pre_acts) = _forward(weights, ext, state0, src, mode)
    return (state, ys), (weights, state0, src, bs, ms, ys, pre_acts)


def _shift(seq: Array, first: Array) -> Array:
    """``[x_0, x_1, ..] -> [first, x_0, ..]`` along the leading (time) axis."""
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _bwd(mode, residuals, cotangents):
    weights, state0, src, bs, ms, ys, pre_acts = residuals
    g_state, g_ys = cotangents
    layers = weights["layers"]
    kappa_b, kappa_m, alpha = weights["kappa_b"], weights["kappa_m"], weights["alpha"]
    n = bs.shape[1]
    # Time-parallel, before the reverse scan: the tanh derivative (times alpha) and relu masks.
    tanh = jnp.tanh(_TANH_SLOPE * pre_acts[-1])
    tanh_factor = alpha * (_TANH_GAIN * _TANH_SLOPE) * (1.0 - tanh * tanh)  # [t, n, b, m]
    masks = tuple((z > 0).astype(z.dtype) for z in pre_acts[:-1])

    def body(carry, inputs):
        c_b, c_m, c_y = carry
        g_y_t, fac_t, masks_t = inputs
        g_y = g_y_t + c_y  # total cotangent of y_t
        g_m = g_y[..., None] * weights["w_y"][:, None] + c_m  # total cotangent of m_t
        g_z = g_m * fac_t
        g_zs = [g_z]
        for li in range(len(layers) - 1, -1, -1):
            g_z = _nmm_t(g_z, layers[li][0]) * masks_t[li]
            g_zs.append(g_z)
        g_b = _nmm_t(g_z, weights["k_branch"]) + c_b  # total cotangent of b_t
        g_h_m = _nmm_t(g_z, weights["k_memory"])  # cotangent of (kappa_m * m_{t-1}) via the MLP
        new_c_m = kappa_m * (g_m + g_h_m)
        new_c_y = (
            _recurrent_transpose(g_b, weights["rec"], src, mode, n)
            if mode != "none"
            else jnp.zeros_like(c_y)
        )
        return (kappa_b * g_b, new_c_m, new_c_y), (g_b, g_m, g_y, g_h_m, tuple(g_zs[::-1]))

    carry0 = (g_state["branch"], g_state["memory"], g_state["output"])
    (c_b, c_m, c_y), (g_bs, g_ms, g_y_all, g_h_ms, g_zs) = jax.lax.scan(
        body, carry0, (g_ys, tanh_factor, masks), reverse=True, unroll=SCAN_UNROLL
    )
    # Weight gradients: one product over all (t, b) each.
    b_prev = _shift(bs, state0["branch"])
    m_prev = _shift(ms, state0["memory"])
    y_prev = _shift(ys, state0["output"])
    tb = (0, 2)
    d_layers = tuple(
        (
            jnp.einsum("tnbi,tnbo->nio", jax.nn.relu(pre_acts[li]), g_zs[li + 1]),
            g_zs[li + 1].sum(tb),
        )
        for li in range(len(layers))
    )
    dm = _TANH_GAIN * jnp.tanh(_TANH_SLOPE * pre_acts[-1])
    if mode == "gather":
        d_rec = jnp.einsum("tnsb,tnbd->nsd", y_prev[:, src], g_bs)
    elif mode == "dense":
        d_rec = jnp.einsum("tjb,tnbd->jnd", y_prev, g_bs)
    else:
        d_rec = None
    d_weights = {
        "kappa_b": jnp.sum(g_bs * b_prev, axis=tb)[:, None],
        "kappa_m": jnp.sum((g_ms + g_h_ms) * m_prev, axis=tb)[:, None],
        "alpha": jnp.sum(g_ms * dm, axis=tb)[:, None],
        "k_branch": jnp.einsum("tnbd,tnbh->ndh", bs, g_zs[0]),
        "k_memory": jnp.einsum("tnbm,tnbh->nmh", m_prev * kappa_m, g_zs[0]),
        "bias0": g_zs[0].sum(tb),
        "layers": d_layers,
        "w_y": jnp.einsum("tnbm,tnb->nm", ms, g_y_all),
        "b_y": g_y_all.sum(tb),
        "rec": d_rec,
    }
    d_state0 = {"branch": c_b, "memory": c_m, "output": c_y}
    return d_weights, g_bs, d_state0, None


scan_with_custom_grad.defvjp(_fwd, _bwd)


def network_weights(derived: Mapping[str, Any]) -> tuple[dict[str, Any], Array | None, str]:
    """`elm_jax.network`'s ``derived`` dict -> (``weights``, ``src``, recurrent mode)."""
    (k0, b0), *rest = derived["mlp"]
    d = derived["kappa_b"].shape[-1]
    rec = derived["recurrent"]
    weights = {
        "kappa_b": derived["kappa_b"],
        "kappa_m": derived["kappa_m"],
        "alpha": derived["one_minus_kappa_lambda"],
        "k_branch": k0[:, :d],
        "k_memory": k0[:, d:],
        "bias0": b0,
        "layers": tuple(tuple(layer) for layer in rest),
        "w_y": derived["w_y"],
        "b_y": derived["b_y"],
        "rec": None if rec is None else rec["weights"],
    }
    if rec is None:
        return weights, None, "none"
    return weights, (rec["source"] if rec["mode"] == "gather" else None), rec["mode"]
