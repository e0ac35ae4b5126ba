"""The kernels of `elm_jax.network.pallas_gpu`: one program's forward and backward over all steps.

Written with Pallas's Triton lowering in mind: every array a program touches is a power of two
in size, per-feature quantities are separate ``[bb, lanes]`` tiles (Triton cannot index into a
tile), gathers read global memory by index, and a program's threads meet at a barrier
(`barrier`) wherever one reads what another wrote. Axis letters as in
`elm_jax.network.dynamics`; ``lanes`` is the neuron axis padded to a power of two.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from elm_jax.ops import TANH_SCALE, TANH_SLOPE


class Dims(NamedTuple):
    """The static shapes of one call."""

    t: int  # steps
    i: int  # external channels
    n: int  # neurons
    lanes: int  # neurons padded to a power of two
    d: int  # branches
    m: int  # memory units
    sizes: tuple[int, ...]  # output size of each affine map (the last is m)
    k: int  # synapses per neuron
    bb: int  # sequences per program
    bp: int  # padded batch
    chunk: int  # steps between checkpoints
    interpret: bool

    @property
    def chunks(self) -> int:
        return -(-self.t // self.chunk)

    @property
    def recorded(self) -> int:  # per step, what the backward reads: state, pre-activations, tanh
        return self.d + 2 * self.m + sum(self.sizes[:-1])

    @property
    def width(self) -> int:  # a row of the pool: [e_t ; y_{t-1}]
        return self.i + self.lanes

    @property
    def pool_lanes(self) -> int:  # a row of the pool's cotangent, a power of two
        return pow2(self.width)

    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the differentiable weights as the kernel reads them (``[.., lanes]``)."""
        d, m, h0, np_ = self.d, self.m, self.sizes[0], self.lanes
        maps = zip(self.sizes[:-1], self.sizes[1:], strict=True)
        rest = tuple(s for a, b in maps for s in ((a, b, np_), (b, np_)))
        return ((d, np_), (m, np_), (m, np_), (d, h0, np_), (m, h0, np_), (h0, np_), *rest,
                (m, np_), (1, np_), (self.k, np_))  # fmt: skip

    @staticmethod
    def flat_shape(shape: tuple[int, ...]) -> tuple[int, int]:
        """How the kernel takes a weight of ``shape``: ``[rows, lanes]``."""
        return int(np.prod(shape[:-1])), shape[-1]

    def grad_rows(self) -> tuple[int, ...]:
        """First row of each weight in the gradient buffer ``[rows, lanes]``, and the total."""
        starts = [0]
        for shape in self.weight_shapes():
            starts.append(starts[-1] + int(np.prod(shape[:-1])))
        return tuple(starts)


def pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def barrier(dims: Dims) -> None:
    """Orders one program's global-memory writes before its threads' next reads (a no-op in
    the interpreter, which runs a program's steps in order)."""
    if not dims.interpret:
        plgpu.debug_barrier()


def _rows(ref, shape: tuple[int, ...]):
    """A weight of ``shape`` ``[a, lanes]`` or ``[a, c, lanes]``, passed flat as ``[a * c,
    lanes]``, as (nested) lists of ``[1, lanes]`` rows. Static slices only: the interpreter
    reads them without index arithmetic."""
    rows = [ref[pl.ds(r, 1), :] for r in range(ref.shape[0])]
    if len(shape) == 2:
        return rows
    return [rows[x * shape[1] : (x + 1) * shape[1]] for x in range(shape[0])]


class _Weights:
    """The weights as a program holds them: every per-neuron weight as ``[1, lanes]`` rows,
    loaded once and kept on chip for the whole sequence; the synapses' (read at a loop index)
    as refs. In `Dims.weight_shapes` order (each flat, `Dims.flat_shape`), then the wiring."""

    def __init__(self, dims: Dims, refs):
        shapes = dims.weight_shapes()
        weights = zip(refs[: len(shapes) - 1], shapes[:-1], strict=True)
        rows = [_rows(ref, shape) for ref, shape in weights]
        self.kb, self.km, self.gain, self.kbr, self.kmem, self.bias0 = rows[:6]
        self.layers = list(zip(rows[6:-2:2], rows[7:-2:2], strict=True))
        self.wy, self.by = rows[-2:]
        self.wsyn, self.src, self.branch = refs[len(shapes) - 1 : len(shapes) + 2]


def num_weight_refs(dims: Dims) -> int:
    return len(dims.weight_shapes()) + 2


# ---------------------------------------------------------------------------------------------
# The step, shared by the forward and the backward's recomputation.


def _affine(bias, kernel_rows, inputs):
    """``bias + sum_k kernel_rows[k] * inputs[k]`` (rows [1, lanes], tiles [bb, lanes]; no
    bias for None)."""
    terms = [row * x for row, x in zip(kernel_rows, inputs, strict=True)]
    out = terms[0] if bias is None else bias + terms[0]
    for term in terms[1:]:
        out = out + term
    return out


def _column(rows, o):
    """Column ``o`` of nested rows ``[in][out]``: the kernel rows of one output."""
    return [r[o] for r in rows]


def _mlp(w: _Weights, dims: Dims, b, ms):
    """The MLP on ``[b_t ; kappa_m * m_{t-1}]``: every map's pre-activations, and
    ``tanh(slope * last)``."""
    first = [
        _affine(_affine(bias, _column(w.kbr, h), b), _column(w.kmem, h), ms)
        for h, bias in enumerate(w.bias0)
    ]
    pre = [first]
    for kernel, biases in w.layers:
        act = [jnp.maximum(z, 0.0) for z in pre[-1]]
        pre.append([_affine(bias, _column(kernel, o), act) for o, bias in enumerate(biases)])
    return pre, [jnp.tanh(TANH_SLOPE * z) for z in pre[-1]]


def _synapse_input(w: _Weights, pool_ref, t, p, rows):
    """Synapse slot ``p`` of every neuron: its weight times its pool value ``[bb, lanes]``, and
    its branch ``[1, lanes]``."""
    cols = jnp.broadcast_to(w.src[pl.ds(p, 1), :], rows.shape)
    return w.wsyn[pl.ds(p, 1), :], pool_ref[rows, t, cols], w.branch[pl.ds(p, 1), :]


def _step(w: _Weights, dims: Dims, pool_ref, t, state, rows):
    """One step: ``state`` (d branch then m memory tiles) -> (new state, y_t [bb, lanes], what
    the backward reads besides the state: the pre-activations of every map but the last, and
    ``tanh(slope * last)``)."""
    d = dims.d
    b_prev, m_prev = state[:d], state[d:]

    def synapse(p, acc):
        weight, x, branch = _synapse_input(w, pool_ref, t, p, rows)
        wx = weight * x
        return tuple(a + jnp.where(branch == k, wx, 0.0) for k, a in enumerate(acc))

    start = tuple(w.kb[k] * b_prev[k] for k in range(d))
    b = list(jax.lax.fori_loop(0, dims.k, synapse, start))
    ms = [w.km[q] * m_prev[q] for q in range(dims.m)]
    pre, th = _mlp(w, dims, b, ms)
    m = [ms[q] + w.gain[q] * (TANH_SCALE * th[q]) for q in range(dims.m)]
    y = _affine(w.by[0], w.wy, m)
    return (*b, *m), y, (*(z for zs in pre[:-1] for z in zs), *th)


# ---------------------------------------------------------------------------------------------
# The forward kernel.


def forward_kernel(dims: Dims, *refs):
    nw = num_weight_refs(dims)
    w = _Weights(dims, refs[:nw])
    _, s0_ref, pool_ref, final_ref, ckpt_ref = refs[nw:]  # pool in: aliased with pool_ref
    features = dims.d + dims.m
    rows = jax.lax.broadcasted_iota(jnp.int32, (dims.bb, dims.lanes), 0)

    def chunk(c, state):
        for f in range(features):
            ckpt_ref[c, :, f, :] = state[f]
        t0 = c * dims.chunk

        def one(q, state):
            new, y, _ = _step(w, dims, pool_ref, t0 + q, state, rows)
            pool_ref[:, t0 + q + 1, pl.ds(dims.i, dims.lanes)] = y
            barrier(dims)  # the next step's synapses read y_t
            return new

        return jax.lax.fori_loop(0, jnp.minimum(dims.chunk, dims.t - t0), one, state)

    state = tuple(s0_ref[:, f, :] for f in range(features))
    state = jax.lax.fori_loop(0, dims.chunks, chunk, state)
    for f in range(features):
        final_ref[:, f, :] = state[f]


# ---------------------------------------------------------------------------------------------
# The backward kernel.


class _Grads:
    """A step's weight gradients, summed over the program's sequences: every weight but the
    synapses' as carried ``[lanes]`` rows (``rows``, in `Dims.grad_rows` order), the
    synapses' (read at a loop index) added to their rows of the gradient ref."""

    def __init__(self, dims: Dims, ref, rows):
        self.ref, self.rows = ref, list(rows)
        self.starts, self.shapes = dims.grad_rows(), dims.weight_shapes()

    def add(self, weight: int, index: tuple[int, ...], value) -> None:
        r = self.starts[weight] + int(np.ravel_multi_index(index, self.shapes[weight][:-1]))
        self.rows[r] = self.rows[r] + jnp.sum(value, axis=0)

    def add_synapse(self, p, value) -> None:
        r = pl.ds(self.starts[-2] + p, 1)
        self.ref[r, :] = self.ref[r, :] + jnp.sum(value, axis=0, keepdims=True)


def _back_step(w: _Weights, dims: Dims, io, t, q, carry):
    """Step ``t`` (``q`` within its chunk) in reverse: the carried cotangents of (b_t, m_t,
    y_t) and the weight gradients so far -> those of (b_{t-1}, m_{t-1}, y_{t-1}) and the
    gradients with this step's terms (`_Grads`)."""
    pool_ref, gys_ref, states_ref, gbs_ref, gpool_ref, dw_ref, csr = io
    d, m, sizes = dims.d, dims.m, dims.sizes
    num_layers = len(sizes) - 1
    kb_i, km_i, gain_i, kbr_i, kmem_i, bias0_i = range(6)
    wy_i, by_i = 6 + 2 * num_layers, 7 + 2 * num_layers
    cb, cm, cy, rows_in = carry
    grads = _Grads(dims, dw_ref, rows_in)
    b_prev = [states_ref[q, k] for k in range(d)]
    m_prev = [states_ref[q, d + j] for j in range(m)]
    b = [states_ref[q + 1, k] for k in range(d)]
    mem = [states_ref[q + 1, d + j] for j in range(m)]
    recorded = iter(range(d + m, dims.recorded))
    pre = [[states_ref[q + 1, next(recorded)] for _ in range(size)] for size in sizes[:-1]]
    th = [states_ref[q + 1, next(recorded)] for _ in range(m)]
    ms = [w.km[j] * m_prev[j] for j in range(m)]

    gy = gys_ref[:, t, :] + cy
    grads.add(by_i, (0,), gy)
    gm = [w.wy[j] * gy + cm[j] for j in range(m)]
    gz = []
    for j in range(m):
        grads.add(wy_i, (j,), mem[j] * gy)
        grads.add(gain_i, (j,), gm[j] * (TANH_SCALE * th[j]))
        slope = w.gain[j] * (TANH_SCALE * TANH_SLOPE)
        gz.append(gm[j] * slope * (1.0 - th[j] * th[j]))
    for layer in range(num_layers, 0, -1):  # back through the maps after the first
        kernel, _ = w.layers[layer - 1]
        kernel_i = 6 + 2 * (layer - 1)
        z_in = pre[layer - 1]
        act = [jnp.maximum(z, 0.0) for z in z_in]
        for o, g in enumerate(gz):
            grads.add(kernel_i + 1, (o,), g)
            for k, a in enumerate(act):
                grads.add(kernel_i, (k, o), a * g)
        gin = [_affine(None, kernel[k], gz) for k in range(len(z_in))]
        gz = [jnp.where(z > 0.0, g, 0.0) for z, g in zip(z_in, gin, strict=True)]
    for h, g in enumerate(gz):  # the first map read [b_t ; kappa_m * m_{t-1}]
        grads.add(bias0_i, (h,), g)
        for k in range(d):
            grads.add(kbr_i, (k, h), b[k] * g)
        for j in range(m):
            grads.add(kmem_i, (j, h), ms[j] * g)
    gb = [_affine(cb[k], w.kbr[k], gz) for k in range(d)]
    new_cm = []
    for j in range(m):
        total = gm[j] + _affine(None, w.kmem[j], gz)
        grads.add(km_i, (j,), total * m_prev[j])
        new_cm.append(w.km[j] * total)
    new_cb = []
    for k in range(d):
        grads.add(kb_i, (k,), gb[k] * b_prev[k])
        new_cb.append(w.kb[k] * gb[k])

    rows = jax.lax.broadcasted_iota(jnp.int32, (dims.bb, dims.lanes), 0)

    def synapse(p, _):
        _, x, branch = _synapse_input(w, pool_ref, t, p, rows)
        g = jnp.where(branch == 0, gb[0], 0.0)
        for k in range(1, d):
            g = g + jnp.where(branch == k, gb[k], 0.0)
        grads.add_synapse(p, x * g)
        return None

    jax.lax.fori_loop(0, dims.k, synapse, None)

    # The pool's cotangent: each column j sums w * g_b over the synapses that read it, in the
    # order of `csr` (synapses sorted by source: q [branch * lanes + neuron], weight, each
    # column's first entry and count, the largest count).
    for k in range(d):
        gbs_ref[:, pl.ds(k * dims.lanes, dims.lanes)] = gb[k]
    barrier(dims)
    q_ref, w_ref, start_ref, count_ref, fan_ref = csr
    cols = jax.lax.broadcasted_iota(jnp.int32, (dims.bb, dims.pool_lanes), 0)
    start, count = start_ref[...], count_ref[...]
    last = q_ref.shape[0] - 1

    def fan_in(f, acc):
        entry = jnp.minimum(start + f, last)
        weight = jnp.where(f < count, w_ref[entry], 0.0)
        g = gbs_ref[cols, jnp.broadcast_to(q_ref[entry][None, :], cols.shape)]
        return acc + weight[None, :] * g

    zero = jnp.zeros((dims.bb, dims.pool_lanes), gys_ref.dtype)
    gpool_ref[:, t, :] = jax.lax.fori_loop(0, fan_ref[0], fan_in, zero)
    barrier(dims)  # y_{t-1}'s cotangent is read back; gbs is rewritten next step
    new_cy = gpool_ref[:, t, pl.ds(dims.i, dims.lanes)]
    return tuple(new_cb), tuple(new_cm), new_cy, tuple(grads.rows)


def backward_kernel(dims: Dims, *refs):
    nw = num_weight_refs(dims)
    w = _Weights(dims, refs[:nw])
    pool_ref, ckpt_ref, gys_ref, gfin_ref, *csr = refs[nw : nw + 9]
    gpool_ref, g0_ref, dw_ref, states_ref, gbs_ref = refs[nw + 9 :]
    io = (pool_ref, gys_ref, states_ref, gbs_ref, gpool_ref, dw_ref, csr)
    d, features = dims.d, dims.d + dims.m
    starts = dims.grad_rows()
    rows = jax.lax.broadcasted_iota(jnp.int32, (dims.bb, dims.lanes), 0)

    def clear(p, _):
        dw_ref[pl.ds(starts[-2] + p, 1), :] = jnp.zeros((1, dims.lanes), dw_ref.dtype)
        return None

    jax.lax.fori_loop(0, dims.k, clear, None)

    def chunk(back, carry):
        c = dims.chunks - 1 - back
        t0 = c * dims.chunk
        steps = jnp.minimum(dims.chunk, dims.t - t0)
        state = tuple(ckpt_ref[c, :, f, :] for f in range(features))
        for f in range(features):
            states_ref[0, f] = state[f]

        def recompute(q, state):
            new, _, more = _step(w, dims, pool_ref, t0 + q, state, rows)
            for f, x in enumerate((*new, *more)):
                states_ref[q + 1, f] = x
            return new

        jax.lax.fori_loop(0, steps, recompute, state)
        barrier(dims)

        def reverse(r, carry):
            q = steps - 1 - r
            return _back_step(w, dims, io, t0 + q, q, carry)

        carry = jax.lax.fori_loop(0, steps, reverse, carry)
        barrier(dims)  # the next chunk rewrites the recorded states
        return carry

    barrier(dims)
    carry = (
        tuple(gfin_ref[:, f, :] for f in range(d)),
        tuple(gfin_ref[:, f, :] for f in range(d, features)),
        jnp.zeros((dims.bb, dims.lanes), gys_ref.dtype),
        (jnp.zeros((dims.lanes,), dw_ref.dtype),) * starts[-2],
    )
    cb, cm, _, grad_rows = jax.lax.fori_loop(0, dims.chunks, chunk, carry)
    for f, g in enumerate((*cb, *cm)):
        g0_ref[:, f, :] = g
    for r, g in enumerate(grad_rows):
        dw_ref[r, :] = g
