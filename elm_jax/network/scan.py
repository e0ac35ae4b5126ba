"""The ELM network's recurrence with a hand-written gradient (used by `ELMNetwork`).

Same math as `elm_jax.network.dynamics.network_step` (the plain-autodiff reference, tested equal in values
and gradients). Why a custom VJP: under plain autodiff, the backward scan accumulates every weight
gradient (MLP kernels, readout, recurrent synapses, decays) with a small per-neuron product at
every step. Here the reverse scan propagates only the activations' cotangents; each weight
gradient is then one product over all ``(t, b)`` after it, and the MLP's relu masks and tanh
derivatives are computed time-parallel before it.

Axis legend as in `elm_jax.network.dynamics`. The scan is time-major, in one of two layouts (`LAYOUTS`):

* ``"neuron_major"``: ``ext [t, n, b, d]``, state ``branch [n, b, d]``, ``memory [n, b, m]``,
  ``output [n, b]``; per-neuron products are batched matmuls with the unit axis leading.
* ``"neuron_minor"``: ``ext [t, d, b, n]``, state ``branch [d, b, n]``, ``memory [m, b, n]``,
  ``output [b, n]``; every per-neuron product is a sum of elementwise products over its (small)
  contraction, vectorised along the neuron axis, which is the contiguous one. For many neurons
  with tiny MLPs this replaces hundreds of tiny matmuls per step by a few fused loops.

``weights`` is a `NetworkWeights` (float32; the same container `network_step` reads, built
once by `ELMNetwork` outside the scan; shapes below for neuron-major, `in_layout` transposes
each to ``[features.., n]`` order for neuron-minor). ``rec`` is read with the static ``mode``:
``"gather"`` ([n, s, d], with ``src [n, s]`` the presynaptic neuron of each synapse),
``"dense"`` ([j, n, d]) or ``"none"`` (no recurrent synapses, ``rec`` None). Neuron-minor:
kappa_b [d, 1, n], k_branch [d, h0, n], kernel [i, o, n], bias [o, 1, n], w_y [m, 1, n],
b_y [1, n], gather rec [s, d, n] with src [s, n], dense rec [j, d, n].
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from elm_jax.ops import TANH_SCALE, TANH_SLOPE, scaled_tanh

Array = jax.Array

# Steps per scan iteration in the forward and reverse scans; 4 measured no faster on CPU.
SCAN_UNROLL = 1
LAYOUTS = ("neuron_major", "neuron_minor")


class NetworkWeights(NamedTuple):
    """The network's weights and derived constants, as the recurrence reads them (float32).

    Shapes for the neuron-major layout (``n`` leading, a broadcast axis for the batch):
    """

    kappa_b: Array  # [n, 1, d] branch decay exp(-Δt / τ_b)
    kappa_m: Array  # [n, 1, m] memory decay exp(-Δt / τ_m)
    memory_gain: Array  # [n, 1, m] 1 - exp(-λ Δt / τ_m), the gain of the memory update
    k_branch: Array  # [n, d, h0] first MLP layer, branch rows
    k_memory: Array  # [n, m, h0] first MLP layer, memory rows
    bias0: Array  # [n, 1, h0]
    layers: tuple[
        tuple[Array, Array], ...
    ]  # further MLP layers: (kernel [n, i, o], bias [n, 1, o])
    w_y: Array  # [n, 1, m] readout
    b_y: Array  # [n, 1]
    rec: Array | None  # recurrent synapse weights (see the module docstring), None without


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


class NeuronMajor:
    """Products and recurrent synapses of the neuron-major layout (module docstring)."""

    feature_axis = -1  # of a per-step activation [n, b, f]
    neuron_axis_y = 0  # of an output [n, b]

    mm, mm_t = staticmethod(_nmm), staticmethod(_nmm_t)

    @staticmethod
    def mm_grad(xs: Array, gs: Array) -> Array:
        """Kernel gradient ``[t, n, b, i] x [t, n, b, o] -> [n, i, o]``."""
        return jnp.einsum("tnbi,tnbo->nio", xs, gs)

    @staticmethod
    def expand_y(g: Array) -> Array:
        return g[..., None]

    @staticmethod
    def recurrent(y: Array, rec: Array, src: Array | None, mode: str) -> Array:
        """``y_{t-1} [j, b] -> [n, b, d]``."""
        if mode == "gather":
            return _nmm(jnp.swapaxes(y[src], 1, 2), rec)
        return jnp.einsum("jb,jnd->nbd", y, rec)

    @staticmethod
    def recurrent_t(g_b: Array, rec: Array, src: Array | None, mode: str, n: int) -> Array:
        """Cotangent of ``y_{t-1} [j, b]`` from that of the branch input ``g_b [n, b, d]``."""
        if mode == "gather":
            # A dot even for small d_tree: as a sum of elementwise products XLA fuses it with
            # everything that computes g_b and recomputes that chain for every synapse (many
            # simple neurons: 94 ms of a ~450 ms profiled train step, docs/performance-log.md).
            per_synapse = jax.lax.dot_general(rec, g_b, (((2,), (2,)), ((0,), (0,))))  # [n, s, b]
            return jax.ops.segment_sum(
                per_synapse.reshape(-1, per_synapse.shape[-1]), src.reshape(-1), n
            )
        return jnp.einsum("jnd,nbd->jb", rec, g_b)

    @staticmethod
    def recurrent_grad(y_prev: Array, g_bs: Array, src: Array | None, mode: str) -> Array:
        """Recurrent weight gradient from ``y_prev [t, j, b]`` and ``g_bs [t, n, b, d]``."""
        if mode == "gather":
            return jnp.einsum("tnsb,tnbd->nsd", y_prev[:, src], g_bs)
        return jnp.einsum("tjb,tnbd->jnd", y_prev, g_bs)


def _emm(x: Array, kernel: Array) -> Array:
    """``[i, b, n] x [i, o, n] -> [o, b, n]``: a sum of ``i`` elementwise products."""
    return sum(x[k][None] * kernel[k][:, None] for k in range(kernel.shape[0]))


def _emm_t(g: Array, kernel: Array) -> Array:
    """``[o, b, n] x [i, o, n] -> [i, b, n]``: the transpose product of `_emm`."""
    return sum(g[k][None] * kernel[:, k][:, None] for k in range(kernel.shape[1]))


class NeuronMinor:
    """Products and recurrent synapses of the neuron-minor layout (module docstring)."""

    feature_axis = 0  # of a per-step activation [f, b, n]
    neuron_axis_y = 1  # of an output [b, n]

    mm, mm_t = staticmethod(_emm), staticmethod(_emm_t)

    @staticmethod
    def mm_grad(xs: Array, gs: Array) -> Array:
        """Kernel gradient ``[t, i, b, n] x [t, o, b, n] -> [i, o, n]``."""
        return jnp.einsum("tibn,tobn->ion", xs, gs)

    @staticmethod
    def expand_y(g: Array) -> Array:
        return jnp.expand_dims(g, g.ndim - 2)

    @staticmethod
    def recurrent(y: Array, rec: Array, src: Array | None, mode: str) -> Array:
        """``y_{t-1} [b, j] -> [d, b, n]``."""
        if mode == "gather":
            return _emm(jnp.swapaxes(y[:, src], 0, 1), rec)  # y[:, src]: [b, s, n]
        return jnp.einsum("bj,jdn->dbn", y, rec)

    @staticmethod
    def recurrent_t(g_b: Array, rec: Array, src: Array | None, mode: str, n: int) -> Array:
        """Cotangent of ``y_{t-1} [b, j]`` from that of the branch input ``g_b [d, b, n]``."""
        if mode == "gather":
            per_synapse = jnp.swapaxes(_emm_t(g_b, rec), 0, 1)  # [b, s, n]
            return jnp.zeros((g_b.shape[1], n), g_b.dtype).at[:, src].add(per_synapse)
        return jnp.einsum("jdn,dbn->bj", rec, g_b)

    @staticmethod
    def recurrent_grad(y_prev: Array, g_bs: Array, src: Array | None, mode: str) -> Array:
        """Recurrent weight gradient from ``y_prev [t, b, j]`` and ``g_bs [t, d, b, n]``."""
        if mode == "gather":
            return jnp.einsum("tbsn,tdbn->sdn", y_prev[:, :, src], g_bs)
        return jnp.einsum("tbj,tdbn->jdn", y_prev, g_bs)


_LAYOUT = {"neuron_major": NeuronMajor, "neuron_minor": NeuronMinor}


def _forward(weights, ext, state0, src, mode, lay):
    """The forward scan; returns (final state, per-step ``(branch, memory, output, pre_acts)``)."""
    layers = weights.layers

    def body(state, ext_t):
        b = weights.kappa_b * state["branch"] + ext_t
        if mode != "none":
            b = b + lay.recurrent(state["output"], weights.rec, src, mode)
        m_prev = state["memory"]
        z = lay.mm(b, weights.k_branch) + lay.mm(m_prev * weights.kappa_m, weights.k_memory)
        z = z + weights.bias0
        pre_acts = [z]
        for kernel, bias in layers:
            z = lay.mm(jax.nn.relu(z), kernel) + bias
            pre_acts.append(z)
        dm = scaled_tanh(z)
        m = weights.kappa_m * m_prev + weights.memory_gain * dm
        y = jnp.sum(m * weights.w_y, axis=lay.feature_axis) + weights.b_y
        new = {"branch": b, "memory": m, "output": y}
        return new, (b, m, y, tuple(pre_acts))

    return jax.lax.scan(body, state0, ext, unroll=SCAN_UNROLL)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def scan_with_custom_grad(
    weights: NetworkWeights,
    ext: Array,
    state0: Mapping[str, Array],
    src: Array | None,
    mode: str,
    layout: str = "neuron_major",
) -> tuple[dict[str, Array], Array]:
    """Runs the network over time: ``ext -> (final state, y [t, ...])`` in ``layout``.

    ``state0`` and the final state are in the scan layout (module docstring). ``mode`` is the
    recurrent connectivity, ``"gather"``, ``"dense"`` or ``"none"``. Gradient: module docstring.
    """
    state, (_, _, ys, _) = _forward(weights, ext, state0, src, mode, _LAYOUT[layout])
    return state, ys


def _fwd(weights, ext, state0, src, mode, layout):
    state, (bs, ms, ys, pre_acts) = _forward(weights, ext, state0, src, mode, _LAYOUT[layout])
    return (state, ys), (weights, state0, src, bs, ms, ys, pre_acts)


def _shift(seq: Array, first: Array) -> Array:
    """``[x_0, x_1, ..] -> [first, x_0, ..]`` along the leading (time) axis."""
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _sum_tb(x: Array) -> Array:
    """Sum of ``[t, u, b, v]`` over time and batch, in the weights' ``[u, 1, v]`` shape.

    A product with a vector of ones, not a reduce: XLA CPU runs this reduce over two
    non-adjacent axes as a YNNPACK fusion that took 0.1-0.4 ms for [10, 600, 8, 1..2] and
    about 2 ms with a tanh in its operand, against about 0.1-0.25 ms as a product (many
    simple neurons: about 35 ms of a 250 ms train step in five such sums, docs/performance-log.md).
    """
    ones = jnp.ones((x.shape[0], x.shape[2]), x.dtype)
    return jnp.einsum("tubv,tb->uv", x, ones)[:, None]


def _bwd(mode, layout, residuals, cotangents):
    lay = _LAYOUT[layout]
    weights, state0, src, bs, ms, ys, pre_acts = residuals
    g_state, g_ys = cotangents
    layers = weights.layers
    kappa_b, kappa_m, memory_gain = weights.kappa_b, weights.kappa_m, weights.memory_gain
    n = state0["output"].shape[lay.neuron_axis_y]
    # Time-parallel, before the reverse scan: the tanh derivative (times the gain), relu masks.
    tanh = jnp.tanh(TANH_SLOPE * pre_acts[-1])
    tanh_factor = memory_gain * (TANH_SCALE * TANH_SLOPE) * (1.0 - tanh * tanh)  # like [t, n, b, m]
    masks = tuple((z > 0).astype(z.dtype) for z in pre_acts[:-1])

    def body(carry, inputs):
        c_b, c_m, c_y = carry
        g_y_t, fac_t, masks_t = inputs
        g_y = g_y_t + c_y  # total cotangent of y_t
        g_m = lay.expand_y(g_y) * weights.w_y + c_m  # total cotangent of m_t
        g_z = g_m * fac_t
        g_zs = [g_z]
        for li in range(len(layers) - 1, -1, -1):
            g_z = lay.mm_t(g_z, layers[li][0]) * masks_t[li]
            g_zs.append(g_z)
        g_b = lay.mm_t(g_z, weights.k_branch) + c_b  # total cotangent of b_t
        g_h_m = lay.mm_t(g_z, weights.k_memory)  # cotangent of (kappa_m * m_{t-1}) via the MLP
        new_c_m = kappa_m * (g_m + g_h_m)
        new_c_y = (
            lay.recurrent_t(g_b, weights.rec, src, mode, n)
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
    d_layers = tuple(
        (lay.mm_grad(jax.nn.relu(pre_acts[li]), g_zs[li + 1]), _sum_tb(g_zs[li + 1]))
        for li in range(len(layers))
    )
    dm = scaled_tanh(pre_acts[-1])
    d_rec = None if mode == "none" else lay.recurrent_grad(y_prev, g_bs, src, mode)
    d_weights = NetworkWeights(
        kappa_b=_sum_tb(g_bs * b_prev),
        kappa_m=_sum_tb((g_ms + g_h_ms) * m_prev),
        memory_gain=_sum_tb(g_ms * dm),
        k_branch=lay.mm_grad(bs, g_zs[0]),
        k_memory=lay.mm_grad(m_prev * kappa_m, g_zs[0]),
        bias0=_sum_tb(g_zs[0]),
        layers=d_layers,
        w_y=_sum_tb(ms * lay.expand_y(g_y_all)),
        b_y=jnp.sum(g_y_all, axis=0).sum(axis=1 - lay.neuron_axis_y, keepdims=True),
        rec=d_rec,
    )
    d_state0 = {"branch": c_b, "memory": c_m, "output": c_y}
    return d_weights, g_bs, d_state0, None


scan_with_custom_grad.defvjp(_fwd, _bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def scan_with_remat(
    weights: NetworkWeights,
    ext: Array,
    state0: Mapping[str, Array],
    src: Array | None,
    mode: str,
    layout: str,
    chunk: int,
) -> tuple[dict[str, Array], Array]:
    """`scan_with_custom_grad` that keeps only the state every ``chunk`` steps for the gradient.

    The backward pass recomputes each chunk's forward from its first state, then runs the
    chunk's reverse scan (same values and gradients; memory ~ T / chunk states plus one chunk's
    activations instead of all T steps' activations). ``chunk`` must divide T.
    """
    state, (_, _, ys, _) = _forward(weights, ext, state0, src, mode, _LAYOUT[layout])
    return state, ys


def _chunked(x: Array, chunk: int) -> Array:
    return x.reshape(x.shape[0] // chunk, chunk, *x.shape[1:])


def _remat_fwd(weights, ext, state0, src, mode, layout, chunk):
    lay = _LAYOUT[layout]

    def body(state, ext_c):
        new, (_, _, ys, _) = _forward(weights, ext_c, state, src, mode, lay)
        return new, (state, ys)

    state, (starts, ys) = jax.lax.scan(body, state0, _chunked(ext, chunk))
    ys = ys.reshape(-1, *ys.shape[2:])
    return (state, ys), (weights, ext, starts, src)


def _remat_bwd(mode, layout, chunk, residuals, cotangents):
    weights, ext, starts, src = residuals
    g_state, g_ys = cotangents
    lay = _LAYOUT[layout]

    def body(carry, inputs):
        g_next, acc = carry
        ext_c, start, g_ys_c = inputs
        _, (bs, ms, ys, pre_acts) = _forward(weights, ext_c, start, src, mode, lay)
        residual = (weights, start, src, bs, ms, ys, pre_acts)
        d_w, g_ext_c, g_start, _ = _bwd(mode, layout, residual, (g_next, g_ys_c))
        acc = jax.tree_util.tree_map(jnp.add, acc, d_w)
        return (g_start, acc), g_ext_c

    acc0 = jax.tree_util.tree_map(jnp.zeros_like, weights)
    (g_state0, d_weights), g_ext = jax.lax.scan(
        body,
        (g_state, acc0),
        (_chunked(ext, chunk), starts, _chunked(g_ys, chunk)),
        reverse=True,
    )
    return d_weights, g_ext.reshape(ext.shape), g_state0, None


scan_with_remat.defvjp(_remat_fwd, _remat_bwd)


def in_layout(
    weights: NetworkWeights, src: Array | None, mode: str, layout: str = "neuron_major"
) -> tuple[NetworkWeights, Array | None]:
    """Neuron-major ``weights`` and gather sources ``src`` in ``layout`` (module docstring)."""
    if layout == "neuron_major":
        return weights, src
    if layout != "neuron_minor":
        raise ValueError(f"layout={layout!r} is invalid: must be one of {LAYOUTS}")
    units_last = lambda a: jnp.transpose(a, (1, 2, 0))  # noqa: E731  [n, u, v] -> [u, v, n]
    flip = lambda a: jnp.transpose(a, (2, 1, 0))  # noqa: E731  [n, 1, v] -> [v, 1, n]
    rec = None
    if mode == "gather":
        rec, src = units_last(weights.rec), src.T  # [s, d, n], [s, n]
    elif mode == "dense":
        rec = jnp.transpose(weights.rec, (0, 2, 1))  # [j, d, n]
    minor = NetworkWeights(
        kappa_b=flip(weights.kappa_b),
        kappa_m=flip(weights.kappa_m),
        memory_gain=flip(weights.memory_gain),
        k_branch=units_last(weights.k_branch),
        k_memory=units_last(weights.k_memory),
        bias0=flip(weights.bias0),
        layers=tuple((units_last(k), flip(b)) for k, b in weights.layers),
        w_y=flip(weights.w_y),
        b_y=weights.b_y.T,
        rec=rec,
    )
    return minor, src


def to_scan_layout(carry: Mapping[str, Array], ext: Array, layout: str):
    """Batch-major carry (``[b, n, ·]``) and neuron-major ``ext [t, n, b, d]`` -> ``layout``."""
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    if layout == "neuron_major":
        state = {k: jnp.swapaxes(f32(v), 0, 1) for k, v in carry.items()}
        return state, ext
    state = {
        "branch": jnp.transpose(f32(carry["branch"]), (2, 0, 1)),
        "memory": jnp.transpose(f32(carry["memory"]), (2, 0, 1)),
        "output": f32(carry["output"]),
    }
    return state, jnp.transpose(ext, (0, 3, 2, 1))


def from_scan_layout(state: Mapping[str, Array], ys: Array, layout: str):
    """Inverse of `to_scan_layout` for the final state; ``ys -> y [b, t, n]``."""
    if layout == "neuron_major":
        out = {k: jnp.swapaxes(v, 0, 1) for k, v in state.items()}
        return out, jnp.transpose(ys, (2, 0, 1))
    out = {
        "branch": jnp.transpose(state["branch"], (1, 2, 0)),
        "memory": jnp.transpose(state["memory"], (1, 2, 0)),
        "output": state["output"],
    }
    return out, jnp.swapaxes(ys, 0, 1)
