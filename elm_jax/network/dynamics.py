"""The ELM network's pure math (SPEC §3, no Flax): branch inputs, the step and the run over time.

Axis legend: ``b`` batch, ``t`` time, ``i`` external channel (D_ext), ``j`` presynaptic neuron,
``n`` neuron, ``s`` synapse, ``d`` branch (d_tree), ``m`` memory unit (d_m), ``h`` MLP hidden unit.

Layout of the computation (STYLE habit 2):

* Wiring (`make_wiring`) is drawn once with NumPy from ``wiring_seed`` so it is identical on every
  process and device, and stored in the ``constants`` collection. Each neuron has exactly ``k_c``
  synapses, ordered ``[external (k_ext) | recurrent (k_rec)]`` and sorted by branch inside each
  block; ``synapse_source`` indexes the pool ``[e_t ; y_{t-1}]`` and ``synapse_branch`` says
  which of the ``d_tree`` branches the synapse feeds.
* Everything that does not depend on ``y_{t-1}`` is done before the scan: decay factors,
  rectified synaptic weights, the synapse-to-branch matrices and the external branch input of
  every neuron for every step (one gather or one matmul over ``[b, t]``).
* The scan body (`network_step`) only does the recurrent synapses, the branch trace, the
  per-neuron MLP (weights stacked on the leading ``n`` axis, one einsum per layer) and the
  readout.

Connectivity is offered two ways, equal up to float rounding: ``"gather"`` (index the pool, then
a per-neuron ``[s, d]`` weight matrix) and ``"dense"`` (scatter the synaptic weights once into a
``[pool, n, d]`` matrix, then a plain matmul). `choose_connectivity` picks per part by shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from elm_jax.network.scan import (
    from_scan_layout,
    network_weights,
    scan_with_custom_grad,
    scan_with_remat,
    to_scan_layout,
)
from elm_jax.ops import scaled_tanh

Array = jax.Array


def synapse_branch_weights(w_s: Array, branch: Array, num_branches: int) -> Array:
    """``[n, s] x [n, s] -> [n, s, d]``: each synapse's weight placed in its branch column."""
    return w_s[..., None] * jax.nn.one_hot(branch, num_branches, dtype=w_s.dtype)


def dense_synapse_matrix(
    w_s: Array, source: Array, branch: Array, pool_size: int, num_branches: int
) -> Array:
    """``[pool, n, d]`` matrix with ``sum`` of the weights of synapses ``source -> (n, branch)``.

    Scatter-add, so duplicate sources (pool smaller than k_c) accumulate exactly like the gather.
    """
    n = w_s.shape[0]
    neuron = jnp.broadcast_to(jnp.arange(n)[:, None], source.shape)
    zeros = jnp.zeros((pool_size, n, num_branches), w_s.dtype)
    return zeros.at[source, neuron, branch].add(w_s)


def external_branch_input(
    e: Array, w_s: Array, source: Array, branch: Array, num_branches: int, mode: str
) -> Array:
    """External branch input of every neuron for all steps: ``e [b, t, i] -> [t, n, b, d]``.

    Computed once before the scan, already in the scan's time-major, neuron-major layout.
    """
    if mode == "gather":
        # Gather whole rows of a channel-major copy (each row is all b*t values of one channel):
        # measured about 1.4x faster in the train step than gathering single elements of e.
        b, t, i = e.shape
        xs = jnp.moveaxis(e, -1, 0).reshape(i, b * t)[source]  # [n, s, b*t]
        wb = synapse_branch_weights(w_s, branch, num_branches)
        out = jnp.einsum("nsx,nsd->nxd", xs, wb).reshape(w_s.shape[0], b, t, num_branches)
        return jnp.transpose(out, (2, 0, 1, 3))
    if mode == "dense":
        w = dense_synapse_matrix(w_s, source, branch, e.shape[-1], num_branches)
        return jnp.einsum("bti,ind->tnbd", e, w)
    raise ValueError(f"connectivity={mode!r} is invalid: must be 'gather' or 'dense'")


def recurrent_branch_input(y: Array, rec: Mapping[str, Any], num_branches: int) -> Array:
    """Recurrent branch input ``y_{t-1} [j, b] -> [n, b, d]`` (inside the scan)."""
    if rec["mode"] == "gather":
        return jnp.einsum("nsb,nsd->nbd", y[rec["source"]], rec["weights"])
    return jnp.einsum("jb,jnd->nbd", y, rec["weights"])


def prepare_recurrent(w_s: Array, source: Array, branch: Array, num_neurons: int, d: int, mode):
    """The recurrent synapses' weights in the form the scan uses (computed outside it)."""
    if mode == "gather":
        weights = synapse_branch_weights(w_s, branch, d)  # [n, s, d]
    else:
        weights = dense_synapse_matrix(w_s, source, branch, num_neurons, d)  # [j, n, d]
    return {"mode": mode, "source": source, "weights": weights}


def _neuron_matmul(h: Array, kernel: Array) -> Array:
    """``[n, b, i] x [n, i, o] -> [n, b, o]``: one batched matmul with the unit axis leading."""
    return jax.lax.dot_general(h, kernel, (((2,), (1,)), ((0,), (0,))))


def network_step(derived: Mapping[str, Any], carry: Mapping[str, Array], ext_t: Array):
    """One step in the scan layout: ``carry, ext_t [n, b, d] -> (carry, y_t [n, b])``.

    Carry leaves are neuron-major here (``branch [n, b, d]``, ``memory [n, b, m]``,
    ``output [n, b]``): every per-neuron product is then a batched matmul with the unit axis
    leading, which XLA runs without transposes (about 3x faster on CPU than batch-major).
    ``derived`` holds what was computed outside the scan; no module calls in here.
    """
    b = derived["kappa_b"] * carry["branch"] + ext_t
    if derived["recurrent"] is not None:
        b = b + recurrent_branch_input(carry["output"], derived["recurrent"], b.shape[-1])
    m_prev = carry["memory"]
    kappa_m = derived["kappa_m"]
    h = jnp.concatenate([b, kappa_m * m_prev], axis=-1)
    layers = derived["mlp"]
    for li, (kernel, bias) in enumerate(layers):
        h = _neuron_matmul(h, kernel) + bias[:, None]
        if li < len(layers) - 1:
            h = jax.nn.relu(h)
    dm = scaled_tanh(h)
    m = kappa_m * m_prev + derived["one_minus_kappa_lambda"] * dm
    y = jnp.einsum("nbm,nm->nb", m, derived["w_y"]) + derived["b_y"][:, None]
    return {"branch": b, "memory": m, "output": y}, y


def zero_carry(batch_size: int, num_neurons: int, num_memory: int, num_branches: int):
    """The zero state: branch traces ``[b, n, d]``, memories ``[b, n, m]`` and previous outputs
    ``[b, n]``, all float32."""
    return {
        "branch": jnp.zeros((batch_size, num_neurons, num_branches), jnp.float32),
        "memory": jnp.zeros((batch_size, num_neurons, num_memory), jnp.float32),
        "output": jnp.zeros((batch_size, num_neurons), jnp.float32),
    }


def run_network(
    derived: Mapping[str, Any],
    carry: Mapping[str, Array],
    ext: Array,
    custom_grad: bool = True,
):
    """Runs `network_step` over time: ``ext [t, n, b, d] -> (carry, y [b, t, n])``.

    ``carry`` is batch-major (`zero_carry`) on both sides; float32 whatever the inputs.
    ``custom_grad`` (default) runs `elm_jax.network.scan.scan_with_custom_grad` (same values,
    weight gradients computed after the reverse scan) in the layout ``derived["layout"]``
    (default ``"neuron_major"``); False is plain autodiff of `network_step`, neuron-major (the
    reference the tests compare against).
    """
    layout = derived.get("layout", "neuron_major") if custom_grad else "neuron_major"
    chunk = derived.get("remat_chunk", 0)
    state, ext = to_scan_layout(carry, ext, layout)
    if custom_grad and chunk:
        # Whole chunks, then the remaining T mod chunk steps as one shorter chunk.
        weights, src, mode = network_weights(derived, layout)
        whole = ext.shape[0] - ext.shape[0] % chunk
        parts = []
        for piece, size in ((ext[:whole], chunk), (ext[whole:], ext.shape[0] - whole)):
            if piece.shape[0]:
                state, ys = scan_with_remat(weights, piece, state, src, mode, layout, size)
                parts.append(ys)
        ys = jnp.concatenate(parts, axis=0)
    elif custom_grad:
        weights, src, mode = network_weights(derived, layout)
        state, ys = scan_with_custom_grad(weights, ext, state, src, mode, layout)
    else:
        step = lambda c, x: network_step(derived, c, x)  # noqa: E731
        state, ys = jax.lax.scan(step, state, ext)
    return from_scan_layout(state, ys, layout)
