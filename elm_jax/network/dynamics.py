"""The ELM network's pure math (docs/science.md §3, no Flax): branch inputs, the step and the run over time.

Axis legend: ``b`` batch, ``t`` time, ``i`` external channel (D_ext), ``j`` presynaptic neuron,
``n`` neuron, ``s`` synapse, ``d`` branch (d_tree), ``m`` memory unit (d_m), ``h`` MLP hidden unit.

Layout of the computation (CONTRIBUTING.md habit 2):

* Wiring (`make_wiring`) is drawn once with NumPy from ``wiring_seed`` so it is identical on every
  process and device, and stored in the ``constants`` collection. Each neuron has exactly ``k_c``
  synapses, ordered ``[external (k_ext) | recurrent (k_rec)]`` and sorted by branch inside each
  block; ``synapse_source`` indexes the pool ``[e_t ; y_{t-1}]`` and ``synapse_branch`` says
  which of the ``d_tree`` branches the synapse feeds.
* Everything that does not depend on ``y_{t-1}`` is done before the scan: decay factors,
  rectified synaptic weights, the synapse-to-branch matrices and the external branch input of
  every neuron for every step (one gather or one matmul over ``[b, t]``).
* The scan body (`network_step`, reading one `NetworkWeights`) only does the recurrent synapses, the branch trace, the
  per-neuron MLP (weights stacked on the leading ``n`` axis, one einsum per layer) and the
  readout.

Connectivity is offered two ways, equal up to float rounding: ``"gather"`` (index the pool, then
a per-neuron ``[s, d]`` weight matrix) and ``"dense"`` (scatter the synaptic weights once into a
``[pool, n, d]`` matrix, then a plain matmul). `choose_connectivity` picks per part by shape.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from elm_jax.network.scan import (
    NetworkWeights,
    from_scan_layout,
    in_layout,
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


# The external gather runs over time chunks whose gathered rows ([n, s, b * chunk]) hold at most
# this many elements (8 MiB of float32), each chunk recomputed in the backward (`jax.checkpoint`).
# All T steps at once write an [n, s, b * t] array (61 MB for N = 600, k_ext = 16, batch 8,
# T = 200), which is memory-bound: a plain broadcast of that size took 28 ms, the gather 32 ms.
# In chunks the external input's forward and gradient took 90 -> 35 and 70 -> 31 ms there
# (docs/performance-log.md).
GATHER_CHUNK_ELEMENTS = 1 << 21


def _gathered_branch_input(e_t: Array, wb: Array, source: Array) -> Array:
    """``e_t [c, b, i]`` (time-major) -> ``[c, n, b, d]`` through the synapse rows ``source``.

    Gathers whole rows of a channel-major copy (each row all ``c * b`` values of one channel):
    measured about 1.4x faster than gathering single elements of ``e``.
    """
    c, b, i = e_t.shape
    xs = jnp.transpose(e_t, (2, 0, 1)).reshape(i, c * b)[source]  # [n, s, c*b]
    out = jnp.einsum("nsx,nsd->nxd", xs, wb).reshape(wb.shape[0], c, b, wb.shape[-1])
    return jnp.swapaxes(out, 0, 1)


# With at most this many external synapses per neuron, the external input's forward runs slot
# by slot (`branch_slots`, `_slot_sum`): d * s fused gather-multiply-adds that write the scan's
# [t, n, b, d] input directly, instead of row gathers, a per-neuron [s, d] product and a
# transpose. Many simple neurons (N = 600, 16 external synapses, batch 8, T = 200): the train
# step 0.231 -> 0.210 s in one process (docs/performance-log.md, fourth round).
BRANCH_SLOTS_MAX = 16


def branch_slots(source: Array, branch: Array, num_branches: int, pad_source: int):
    """Each branch's synapses as padded slots: ``[n, s] -> slot [n, d, s], source [n, d, s]``.

    ``slot[n, d, k]`` is the k-th synapse of branch d (in synapse order), or ``s`` (one past
    the last: a zero weight once appended, `slot_weights`) where the branch has fewer; the
    slot's source is ``pad_source`` there (a zero row). Any order of ``branch`` is allowed.
    """
    n, s = source.shape  # s slots per branch: a branch can hold all s synapses
    one_hot = jax.nn.one_hot(branch, num_branches, dtype=jnp.int32)  # [n, s, d]
    counts = one_hot.sum(axis=1)  # [n, d]
    # Stable order by branch: the synapses of branch d sit at [start_d, start_d + count_d).
    order = jnp.argsort(branch, axis=1, stable=True).astype(jnp.int32)  # [n, s]
    start = jnp.cumsum(counts, axis=1) - counts
    pos = start[..., None] + jnp.arange(s, dtype=jnp.int32)  # [n, d, s]
    filled = jnp.arange(s) < counts[..., None]
    picked = jnp.take_along_axis(order, jnp.clip(pos, 0, s - 1).reshape(n, -1), axis=1)
    picked_source = jnp.take_along_axis(source, picked, axis=1).reshape(filled.shape)
    slot = jnp.where(filled, picked.reshape(filled.shape), s)
    src = jnp.where(filled, picked_source, pad_source)
    return slot, src


def slot_weights(w_s: Array, slot: Array) -> Array:
    """``w_s [n, s]`` at ``slot [n, d, K]`` (zero in empty slots) -> ``[n, d, K]``."""
    n = w_s.shape[0]
    padded = jnp.concatenate([w_s, jnp.zeros((n, 1), w_s.dtype)], axis=1)
    return jnp.take_along_axis(padded, slot.reshape(n, -1), axis=1).reshape(slot.shape)


def _slot_sum(e: Array, w_s: Array, source: Array, branch: Array, d: int) -> Array:
    """``e [b, t, i] -> out [t, n, b, d] = sum_k w[n, d, k] * e[b, t, src[n, d, k]]``.

    Each slot's gather reads the ``b`` contiguous values of one channel of ``e [t, i + 1, b]``
    (a zero channel appended for the empty slots) and XLA fuses all of them into one loop that
    writes ``[t, n, b, d]`` directly: nothing gathered is written out and nothing transposed.
    """
    b, t, i = e.shape
    slot, src = branch_slots(source, branch, d, pad_source=i)
    w = slot_weights(w_s, slot)
    e_t = jnp.concatenate([jnp.transpose(e, (1, 2, 0)), jnp.zeros((t, 1, b), e.dtype)], axis=1)
    slots = src.shape[-1]
    return jnp.stack(
        [sum(e_t[:, src[:, j, q], :] * w[None, :, None, j, q] for q in range(slots))
         for j in range(d)], axis=-1,
    )  # fmt: skip


def _row_gather_input(e: Array, w_s: Array, source: Array, branch: Array, d: int) -> Array:
    """``e [b, t, i] -> [t, n, b, d]``: row gathers in time chunks, then a per-neuron product."""
    wb = synapse_branch_weights(w_s, branch, d)
    b, t, _ = e.shape
    chunk = max(1, GATHER_CHUNK_ELEMENTS // max(1, source.size * b))
    e_t = jnp.swapaxes(e, 0, 1)  # [t, b, i]
    if chunk >= t:
        return _gathered_branch_input(e_t, wb, source)
    whole = t - t % chunk
    pieces = e_t[:whole].reshape(whole // chunk, chunk, *e_t.shape[1:])
    step = jax.checkpoint(lambda piece: _gathered_branch_input(piece, wb, source))
    parts = [jax.lax.map(step, pieces).reshape(whole, wb.shape[0], b, d)]
    if whole < t:
        parts.append(_gathered_branch_input(e_t[whole:], wb, source))
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _slot_branch_input(e: Array, w_s: Array, source: Array, branch: Array, d: int) -> Array:
    """`_slot_sum` forward, `_row_gather_input`'s gradient (the faster of each, measured)."""
    return _slot_sum(e, w_s, source, branch, d)


def _slot_fwd(e, w_s, source, branch, d):
    return _slot_sum(e, w_s, source, branch, d), (e, w_s, source, branch)


def _slot_bwd(d, res, g):
    e, w_s, source, branch = res
    _, vjp = jax.vjp(lambda e_, w_: _row_gather_input(e_, w_, source, branch, d), e, w_s)
    d_e, d_w = vjp(g)
    return d_e, d_w, None, None


_slot_branch_input.defvjp(_slot_fwd, _slot_bwd)


def external_branch_input(
    e: Array, w_s: Array, source: Array, branch: Array, num_branches: int, mode: str
) -> Array:
    """External branch input of every neuron for all steps: ``e [b, t, i] -> [t, n, b, d]``.

    Computed once before the scan, already in the scan's time-major, neuron-major layout.
    ``"gather"``: the forward slot by slot while a neuron has at most `BRANCH_SLOTS_MAX` of
    these synapses (`_slot_sum`); beyond that, and for the gradient, row gathers
    (`_row_gather_input`).
    """
    if mode == "gather" and source.shape[1] <= BRANCH_SLOTS_MAX:
        return _slot_branch_input(e, w_s, source, branch, num_branches)
    if mode == "gather":
        return _row_gather_input(e, w_s, source, branch, num_branches)
    if mode == "dense":
        w = dense_synapse_matrix(w_s, source, branch, e.shape[-1], num_branches)
        return jnp.einsum("bti,ind->tnbd", e, w)
    raise ValueError(f"connectivity={mode!r} is invalid: must be 'gather' or 'dense'")


def recurrent_branch_input(y: Array, rec: Array, src: Array | None, mode: str) -> Array:
    """Recurrent branch input ``y_{t-1} [j, b] -> [n, b, d]`` (inside the scan)."""
    if mode == "gather":
        return jnp.einsum("nsb,nsd->nbd", y[src], rec)
    return jnp.einsum("jb,jnd->nbd", y, rec)


def prepare_recurrent(
    w_s: Array, source: Array, branch: Array, num_neurons: int, num_branches: int, mode: str
) -> tuple[Array, Array | None]:
    """The recurrent synapses' weights as the scan reads them (computed outside it), and the
    presynaptic neuron of each synapse for ``"gather"`` (None for ``"dense"``)."""
    if mode == "gather":
        return synapse_branch_weights(w_s, branch, num_branches), source  # [n, s, d]
    return dense_synapse_matrix(w_s, source, branch, num_neurons, num_branches), None  # [j, n, d]


def _neuron_matmul(h: Array, kernel: Array) -> Array:
    """``[n, b, i] x [n, i, o] -> [n, b, o]``: one batched matmul with the unit axis leading."""
    return jax.lax.dot_general(h, kernel, (((2,), (1,)), ((0,), (0,))))


def network_step(
    weights: NetworkWeights,
    carry: Mapping[str, Array],
    ext_t: Array,
    *,
    src: Array | None,
    mode: str,
) -> tuple[dict[str, Array], Array]:
    """One step in the scan layout: ``carry, ext_t [n, b, d] -> (carry, y_t [n, b])``.

    Carry leaves are neuron-major here (``branch [n, b, d]``, ``memory [n, b, m]``,
    ``output [n, b]``): every per-neuron product is then a batched matmul with the unit axis
    leading, which XLA runs without transposes (about 3x faster on CPU than batch-major).
    ``weights`` holds what was computed outside the scan; ``mode`` is the recurrent
    connectivity ("gather", "dense" or "none"). No module calls in here.
    """
    b = weights.kappa_b * carry["branch"] + ext_t
    if mode != "none":
        b = b + recurrent_branch_input(carry["output"], weights.rec, src, mode)
    m_prev = carry["memory"]
    h = (
        _neuron_matmul(b, weights.k_branch)
        + _neuron_matmul(weights.kappa_m * m_prev, weights.k_memory)
        + weights.bias0
    )
    for kernel, bias in weights.layers:
        h = _neuron_matmul(jax.nn.relu(h), kernel) + bias
    m = weights.kappa_m * m_prev + weights.memory_gain * scaled_tanh(h)
    y = jnp.sum(m * weights.w_y, axis=-1) + weights.b_y
    return {"branch": b, "memory": m, "output": y}, y


def zero_carry(
    *, batch_size: int, num_neurons: int, num_memory: int, num_branches: int
) -> dict[str, Array]:
    """The zero state: branch traces ``[b, n, d]``, memories ``[b, n, m]`` and previous outputs
    ``[b, n]``, all float32."""
    return {
        "branch": jnp.zeros((batch_size, num_neurons, num_branches), jnp.float32),
        "memory": jnp.zeros((batch_size, num_neurons, num_memory), jnp.float32),
        "output": jnp.zeros((batch_size, num_neurons), jnp.float32),
    }


def run_network(
    weights: NetworkWeights,
    carry: Mapping[str, Array],
    ext: Array,
    *,
    src: Array | None,
    mode: str,
    layout: str = "neuron_major",
    remat_chunk: int = 0,
    custom_grad: bool = True,
) -> tuple[dict[str, Array], Array]:
    """Runs `network_step` over time: ``ext [t, n, b, d] -> (carry, y [b, t, n])``.

    ``weights`` are neuron-major; ``carry`` is batch-major (`zero_carry`) on both sides, float32
    whatever the inputs. ``custom_grad`` (default) runs `elm_jax.network.scan.scan_with_custom_grad`
    (same values, weight gradients computed after the reverse scan) in ``layout``, keeping only
    every ``remat_chunk``-th state for the gradient when it is > 0 (`scan_with_remat`); False is
    plain autodiff of `network_step`, neuron-major (the reference the tests compare against).
    """
    layout = layout if custom_grad else "neuron_major"
    state, ext = to_scan_layout(carry, ext, layout)
    if custom_grad:
        weights, src = in_layout(weights, src, mode, layout)
    if custom_grad and remat_chunk:
        # Whole chunks, then the remaining T mod chunk steps as one shorter chunk.
        whole = ext.shape[0] - ext.shape[0] % remat_chunk
        parts = []
        for piece, size in ((ext[:whole], remat_chunk), (ext[whole:], ext.shape[0] - whole)):
            if piece.shape[0]:
                state, ys = scan_with_remat(weights, piece, state, src, mode, layout, size)
                parts.append(ys)
        ys = jnp.concatenate(parts, axis=0)
    elif custom_grad:
        state, ys = scan_with_custom_grad(weights, ext, state, src, mode, layout)
    else:

        def step(c: Mapping[str, Array], x: Array) -> tuple[dict[str, Array], Array]:
            return network_step(weights, c, x, src=src, mode=mode)

        state, ys = jax.lax.scan(step, state, ext)
    return from_scan_layout(state, ys, layout)
