"""Dynamics of a reference ELM neuron (docs/science.md §2): derived arrays, step, scan, custom VJP.

No Flax here. A neuron is described by a frozen `NeuronConfig` (`elm_jax.neuron.config`) and a
flat mapping `tree` of arrays with the names of docs/interfaces.md (`proto_w_s`, `proto_tau_m`,
`mlp`, `w_y`, `tau_b` or `tau_s`, `routing_indices`, `routing_mask`), i.e. the `params` and
`constants` collections of `elm_jax.neuron.layers.ELMNeuron` merged into one dict.

Axes: b batch, t time, i input, s synapse, d branch, m memory, h MLP hidden, o output.

The fast path (`scan`) uses that everything before the MLP is linear in the input:
routing, synapse weights and branch sum are one matrix [i, d]; the branch trace (v2, and v1 when
the synaptic time constants are equal within each branch) is an elementwise linear recurrence
computed for the whole sequence before the memory loop; the branch part of the MLP's first layer
is therefore one matrix product for all t (for narrow inputs without routing, the trace instead
runs inside the memory loop, `input_memory_scan`). Only the memory recurrence, which is
nonlinear, does matrix products inside a loop, whose custom gradient (`memory_scan`) sits beside
it. Whole-sequence arrays are batch-major [b, t, ...]; the loops slice axis 1.
`step` is the literal per-step equation of the reference and serves as the oracle for `scan`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from elm_jax.neuron import fused
from elm_jax.neuron.config import ACTIVATIONS, NeuronConfig
from elm_jax.ops import TANH_SCALE, TANH_SLOPE, decay, scaled_sigmoid, scaled_tanh

# ----------------------------------------------------------------------------- derived arrays


class Prepared(NamedTuple):
    """Everything the recurrence needs, computed once from the parameters (outside any scan)."""

    in_to_branch: jax.Array | None  # [i, d] routing · relu(w) · branch sum (routed, merged)
    syn_index: jax.Array  # [s] input feeding each synapse
    syn_weight: jax.Array  # [s] relu(w_s) · mask
    kappa_syn: jax.Array  # [s] per-synapse decay (per-synapse path) or [d] branch decay
    kappa_m: jax.Array  # [m]
    memory_gain: jax.Array  # [m] (1 - kappa_lambda) in v2, lambda (1 - kappa_m) in v1
    mlp: tuple[tuple[jax.Array, jax.Array], ...]  # (kernel [in, out], bias [out]) per layer
    readout: tuple[jax.Array, jax.Array]  # kernel [m, o], bias [o]


def input_to_branch_matrix(
    syn_index: jax.Array, syn_weight: jax.Array, *, num_input: int, num_branches: int
) -> jax.Array:
    """The linear map [i, d]: entry (i, d) sums the weights of branch d's synapses reading input i."""
    branch = jnp.arange(syn_weight.shape[0]) // (syn_weight.shape[0] // num_branches)
    zeros = jnp.zeros((num_input, num_branches), syn_weight.dtype)
    return zeros.at[syn_index, branch].add(syn_weight)


def prepare(tree: Mapping[str, Any], cfg: NeuronConfig, state_dtype: Any) -> Prepared:
    """Decay factors, rectified weights and the input→branch map, in `state_dtype`."""
    as_state = lambda a: jnp.asarray(a, state_dtype)  # noqa: E731
    if cfg.routing == "none":
        syn_index = jnp.arange(cfg.num_synapses)
        mask = jnp.ones(cfg.num_synapses, state_dtype)
    else:
        syn_index = jnp.asarray(tree["routing_indices"], jnp.int32)
        mask = as_state(tree["routing_mask"])
    syn_weight = jax.nn.relu(as_state(tree["proto_w_s"])) * mask

    tau_m = scaled_sigmoid(as_state(tree["proto_tau_m"]), cfg.memory_tau_min, cfg.tau_max)
    kappa_m = decay(tau_m, cfg.delta_t)
    if cfg.neuron_version == "v2":
        memory_gain = 1.0 - decay(tau_m, cfg.delta_t, cfg.lambda_value)
        kappa_syn = decay(as_state(tree["tau_b"]), cfg.delta_t)
    else:
        memory_gain = cfg.lambda_value * (1.0 - kappa_m)
        kappa_syn = decay(as_state(tree["tau_s"]), cfg.delta_t)
        if not cfg.per_synapse_trace:
            # Equal timescales inside a branch: the sum of its traces is one trace of the sum.
            kappa_syn = kappa_syn.reshape(cfg.num_branches, cfg.synapses_per_branch)[:, 0]
    in_to_branch = None
    if cfg.routing != "none" and not cfg.per_synapse_trace:
        in_to_branch = input_to_branch_matrix(
            syn_index, syn_weight, num_input=cfg.num_input, num_branches=cfg.num_branches
        )
    mlp = tuple(
        (tree["mlp"][f"dense_{j}"]["kernel"], tree["mlp"][f"dense_{j}"]["bias"])
        for j in range(cfg.mlp_num_layers + 1)
    )
    readout = (tree["w_y"]["kernel"], tree["w_y"]["bias"])
    return Prepared(
        in_to_branch, syn_index, syn_weight, kappa_syn, kappa_m, memory_gain, mlp, readout
    )


def _memory_update(
    first_layer_out: jax.Array, prep: Prepared, cfg: NeuronConfig, m_prev: jax.Array
) -> jax.Array:
    """Given the first MLP layer's pre-activation, the rest of the MLP and the memory update."""
    act = ACTIVATIONS[cfg.mlp_activation]
    z = first_layer_out
    for kernel, bias in prep.mlp[1:]:
        z = act(z) @ kernel + bias
    delta_m = scaled_tanh(z)
    return prep.kappa_m * m_prev + prep.memory_gain * delta_m.astype(m_prev.dtype)


# ----------------------------------------------------------------------------- step (oracle)


def initial_state(prep: Prepared, cfg: NeuronConfig, batch: int, state_dtype: Any):
    """Zero state: (synapse or branch trace [b, s|d], memory [b, m])."""
    width = cfg.num_synapses if cfg.per_synapse_trace else cfg.num_branches
    return (jnp.zeros((batch, width), state_dtype), jnp.zeros((batch, cfg.num_memory), state_dtype))


def step(prep: Prepared, cfg: NeuronConfig, state, x_t: jax.Array):
    """One time step, literally the reference's equations. x_t [b, i].

    Returns (new state, (y_t [b, o], branch_t [b, d], m_t [b, m])).
    """
    trace, m_prev = state
    if cfg.per_synapse_trace:
        trace = prep.kappa_syn * trace + prep.syn_weight * x_t[:, prep.syn_index]
        branch = trace.reshape(x_t.shape[0], cfg.num_branches, -1).sum(-1)
    else:
        trace = prep.kappa_syn * trace + synaptic_input(prep, cfg, x_t)
        branch = trace
    kernel0, bias0 = prep.mlp[0]
    mlp_in = jnp.concatenate([branch, prep.kappa_m * m_prev], axis=-1)
    m_t = _memory_update(mlp_in @ kernel0 + bias0, prep, cfg, m_prev)
    y_t = m_t @ prep.readout[0] + prep.readout[1]
    return (trace, m_t), (y_t, branch, m_t)


# ----------------------------------------------------------------------------- scan (fast path)


def synaptic_input(prep: Prepared, cfg: NeuronConfig, x: jax.Array) -> jax.Array:
    """The input→branch linear map applied to x [..., i] → [..., d].

    With a routing it is one product with the [i, d] matrix. Without one, the matrix is block
    diagonal (input j feeds only branch j // k), so it is applied as a product and a sum over
    blocks instead of a dense product that would be mostly zeros.
    """
    if prep.in_to_branch is not None:
        return x @ prep.in_to_branch.astype(x.dtype)
    weighted = x * prep.syn_weight.astype(x.dtype)
    return weighted.reshape(*x.shape[:-1], cfg.num_branches, -1).sum(-1)


# Every whole-sequence array is batch-major, [b, t, ...], like the input: the scans below read
# and write one time step as a strided slice along axis 1, so no array is ever transposed
# between [b, t] and [t, b] order (on a CPU such copies cost as much as the products around them).


def _at(a: jax.Array, t: jax.Array) -> jax.Array:
    """a[:, t] of a batch-major [b, t, ...] array (t in range: no wrap-around of negatives)."""
    starts = (0, t) + (0,) * (a.ndim - 2)
    sizes = (a.shape[0], 1) + a.shape[2:]
    return jax.lax.dynamic_slice(a, starts, sizes, allow_negative_indices=False)[:, 0]


def _put(buffer: jax.Array, t: jax.Array, value: jax.Array) -> jax.Array:
    """buffer[:, t] = value (in place inside a loop)."""
    update = value.astype(buffer.dtype)[:, None]
    starts = (0, t) + (0,) * (buffer.ndim - 2)
    return jax.lax.dynamic_update_slice(buffer, update, starts, allow_negative_indices=False)


def _trace_loop(u: jax.Array, kappa: jax.Array, reverse: bool, unroll: int) -> jax.Array:
    """c_t = kappa * c_{t∓1} + u_t along axis 1 of u [b, t, k] (backwards when `reverse`)."""
    steps = u.shape[1]

    def body(i, carry):
        c_prev, out = carry
        t = steps - 1 - i if reverse else i
        c_t = kappa * c_prev + _at(u, t)
        return c_t, _put(out, t, c_t)

    c0 = jnp.zeros((u.shape[0], u.shape[2]), u.dtype)
    return jax.lax.fori_loop(0, steps, body, (c0, jnp.empty_like(u)), unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def linear_trace(u: jax.Array, kappa: jax.Array, unroll: int = 1) -> jax.Array:
    """c_t = kappa * c_{t-1} + u_t (c_0 = u_0) over the time axis of u [b, t, k], kappa [k].

    Elementwise only, so a plain sequential loop is cheap (on CPU cheaper than the log-depth
    associative scan, forward and backward). Its gradient is the same loop backwards in time
    (lam_t = g_t + kappa lam_{t+1}), and kappa's is one sum over (b, t) afterwards.
    """
    return _trace_loop(u, kappa, False, unroll)


def _linear_trace_fwd(u, kappa, unroll):
    c = _trace_loop(u, kappa, False, unroll)
    return c, (kappa, c)


def _linear_trace_bwd(unroll, residuals, g):
    kappa, c = residuals
    lam = _trace_loop(g.astype(c.dtype), kappa, True, unroll)
    d_kappa = jnp.sum(lam[:, 1:] * c[:, :-1], axis=(0, 1))
    return lam, d_kappa.astype(kappa.dtype)


linear_trace.defvjp(_linear_trace_fwd, _linear_trace_bwd)


def _rows(a: jax.Array) -> jax.Array:
    """[b, t, k] → [b·t, k] (free for a contiguous array)."""
    return a.reshape(-1, a.shape[-1])


def _dot_rows(a: jax.Array, b: jax.Array) -> jax.Array:
    """sum over (b, t) of a[b, t, :]ᵀ b[b, t, :]: [k, l], one product over all rows."""
    return jax.lax.dot_general(_rows(a), _rows(b), (((0,), (0,)), ((), ())))


def branch_traces(prep: Prepared, cfg: NeuronConfig, x: jax.Array, unroll: int = 1) -> jax.Array:
    """The branch input of every step, [b, t, d], computed for the whole sequence at once."""
    state = prep.kappa_syn.dtype
    if cfg.per_synapse_trace:
        syn = jnp.take(x, prep.syn_index, axis=-1).astype(state) * prep.syn_weight
        syn = linear_trace(syn, prep.kappa_syn, unroll)
        return syn.reshape(*syn.shape[:2], cfg.num_branches, -1).sum(-1)
    return linear_trace(synaptic_input(prep, cfg, x).astype(state), prep.kappa_syn, unroll)


@jax.custom_vjp
def _branch_decay_tap(u: jax.Array, kappa_b: jax.Array, branch: jax.Array, kernel_b: jax.Array):
    """u unchanged; its backward gives kappa_b [d] the gradient of the branch decays for
    pre = trace(u) + bias0 with u = x W_in and every branch decaying alike: with lam_t the
    cotangent of u_t, d kappa_b = sum over (b, t) of (lam_t K_bᵀ) ⊙ branch_{t-1} (branch [b, t, d],
    K_b [d, h0]). Pruned, with the branch traces it reads, where kappa_b is not differentiated."""
    return u


def _branch_decay_tap_fwd(u, kappa_b, branch, kernel_b):
    return u, (kappa_b, branch, kernel_b)


def _branch_decay_tap_bwd(residuals, g):
    kappa_b, branch, kernel_b = residuals
    branch_prev = jnp.pad(branch[:, :-1], ((0, 0), (1, 0), (0, 0)))
    d_kappa = jnp.sum((g @ kernel_b.T) * branch_prev, axis=(0, 1)).astype(kappa_b.dtype)
    return g, d_kappa, jnp.zeros_like(branch), jnp.zeros_like(kernel_b)


_branch_decay_tap.defvjp(_branch_decay_tap_fwd, _branch_decay_tap_bwd)


def input_map(prep: Prepared, cfg: NeuronConfig) -> jax.Array:
    """W_in [i, h0]: the first layer's branch half as a map of the input, for branch traces
    (not per-synapse ones). When every branch decays alike (kappa_syn all equal), the trace
    commutes with it: pre_t = trace(x W_in)_t + bias0."""
    kernel_b = prep.mlp[0][0][: cfg.num_branches].astype(prep.kappa_m.dtype)
    if prep.in_to_branch is not None:
        return prep.in_to_branch @ kernel_b
    return prep.syn_weight[:, None] * jnp.repeat(kernel_b, cfg.synapses_per_branch, 0)


def first_layer_branch_part(
    prep: Prepared, cfg: NeuronConfig, x: jax.Array, cd: Any, unroll: int = 1
) -> tuple[jax.Array, jax.Array]:
    """(branch [b, t, d], pre [b, t, h] = branch · K_b + bias) for the whole sequence.

    Without routing each input feeds one branch, so the trace commutes with the synapse weights:
    trace(x) · (w ⊙ K_b) equals trace(x · w) · K_b exactly, and trace(x) does not depend on any
    trainable parameter. Training then needs one large product backward (for the [i, h] matrix)
    instead of two (for K_b and for the branch input).
    """
    kernel0, bias0 = prep.mlp[0]
    d, k = cfg.num_branches, cfg.synapses_per_branch
    kernel_b = kernel0[:d]
    if cfg.routing == "none" and not cfg.per_synapse_trace:
        state = prep.kappa_syn.dtype
        x_trace = linear_trace(x.astype(state), jnp.repeat(prep.kappa_syn, k), unroll)  # [b,t,i]
        in_kernel = prep.syn_weight[:, None].astype(cd) * jnp.repeat(kernel_b.astype(cd), k, 0)
        pre = x_trace.astype(cd) @ in_kernel + bias0.astype(cd)
        branch = (x_trace * prep.syn_weight).reshape(*x_trace.shape[:2], d, k).sum(-1)
        return branch, pre
    branch = branch_traces(prep, cfg, x, unroll)
    pre = branch.astype(cd) @ kernel_b.astype(cd) + bias0.astype(cd)
    return branch, pre


def _memory_forward(pre, mem_kernel, layers, kappa, gain, activation, unroll, save):
    """The memory recurrence over pre [b, t, h]: memory [b, t, m] and, when `save`, each
    layer's pre-activation [b, t, h_j] (written step by step into preallocated buffers)."""
    act = ACTIVATIONS[activation]
    cd = pre.dtype
    batch, steps = pre.shape[:2]

    def body(t, carry):
        m_prev, memory, pre_acts = carry
        a = _at(pre, t) + m_prev.astype(cd) @ mem_kernel
        new_acts = [a]
        for kernel, bias in layers:
            a = act(a) @ kernel + bias
            new_acts.append(a)
        m_t = kappa * m_prev + gain * scaled_tanh(a).astype(m_prev.dtype)
        if save:
            pre_acts = tuple(_put(buf, t, v) for buf, v in zip(pre_acts, new_acts, strict=True))
        return m_t, _put(memory, t, m_t), pre_acts

    m0 = jnp.zeros((batch, kappa.shape[0]), kappa.dtype)
    memory = jnp.empty((batch, steps, kappa.shape[0]), kappa.dtype)
    widths = [mem_kernel.shape[1]] + [kernel.shape[1] for kernel, _ in layers]
    pre_acts = tuple(jnp.empty((batch, steps, w), cd) for w in widths) if save else ()
    _, memory, pre_acts = jax.lax.fori_loop(0, steps, body, (m0, memory, pre_acts), unroll=unroll)
    return memory, pre_acts


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def memory_scan(
    pre: jax.Array,
    mem_kernel: jax.Array,
    layers: tuple[tuple[jax.Array, jax.Array], ...],
    kappa: jax.Array,
    gain: jax.Array,
    activation: str,
    unroll: int,
) -> jax.Array:
    """m_t = kappa ⊙ m_{t-1} + gain ⊙ 1.7159 tanh(2/3 MLP(pre_t + m_{t-1} K_m)) over t.

    pre [b, t, h] (the branch half of the first layer, bias included), mem_kernel K_m [m, h]
    (kappa_m folded in), layers: the remaining MLP layers. Returns memory [b, t, m].

    Custom gradient: the reverse loop propagates only the activations' cotangents; the
    gradients of the weights are then one product over all (t, b) each, instead of a small
    product accumulated at every step.
    """
    return _memory_forward(pre, mem_kernel, layers, kappa, gain, activation, unroll, False)[0]


def _memory_scan_fwd(pre, mem_kernel, layers, kappa, gain, activation, unroll):
    memory, pre_acts = _memory_forward(
        pre, mem_kernel, layers, kappa, gain, activation, unroll, True
    )
    return memory, (mem_kernel, layers, kappa, gain, memory, pre_acts)


def _memory_backward(layers, mem_kernel, kappa, gain, pre_acts, g_memory, activation, unroll):
    """The reverse loop shared by both scans: (g_ms [b, t, m], the total cotangent of every
    m_t; d_acts, the cotangent of every layer's pre-activation [b, t, h_j])."""
    act = ACTIVATIONS[activation]
    cd, sd = mem_kernel.dtype, kappa.dtype
    steps = g_memory.shape[1]
    # Transposed once here, not inside the loop.
    mem_kernel_t = mem_kernel.T
    kernels_t = [kernel.T for kernel, _ in layers]
    g_memory = g_memory.astype(sd)

    def body(i, carry):
        g_next, g_ms, d_acts = carry
        t = steps - 1 - i
        g_m = _at(g_memory, t) + g_next  # total cotangent of m_t
        tanh = jnp.tanh(TANH_SLOPE * _at(pre_acts[-1], t))
        d_a = (g_m * gain).astype(cd) * (TANH_SCALE * TANH_SLOPE) * (1 - tanh * tanh)
        new_d = [d_a]
        for j in range(len(layers) - 1, -1, -1):
            _, act_vjp = jax.vjp(act, _at(pre_acts[j], t))
            d_a = act_vjp(d_a @ kernels_t[j])[0]
            new_d.append(d_a)
        g_prev = g_m * kappa + (d_a @ mem_kernel_t).astype(sd)
        d_acts = tuple(_put(buf, t, v) for buf, v in zip(d_acts, new_d[::-1], strict=True))
        return g_prev, _put(g_ms, t, g_m), d_acts

    g0 = jnp.zeros_like(g_memory[:, 0])
    d_acts = tuple(jnp.empty_like(a) for a in pre_acts)
    _, g_ms, d_acts = jax.lax.fori_loop(
        0, steps, body, (g0, jnp.empty_like(g_memory), d_acts), unroll=unroll
    )
    return g_ms, d_acts


def _mlp_rest_grads(layers, pre_acts, d_acts, activation):
    """(kernel, bias) gradients of the MLP layers after the first, one product each."""
    act = ACTIVATIONS[activation]
    return tuple(
        (_dot_rows(act(pre_acts[j]), d_acts[j + 1]), d_acts[j + 1].sum((0, 1)))
        for j in range(len(layers))
    )


def _memory_scan_bwd(activation, unroll, residuals, g_memory):
    mem_kernel, layers, kappa, gain, memory, pre_acts = residuals
    cd, sd = mem_kernel.dtype, kappa.dtype
    g_ms, d_acts = _memory_backward(
        layers, mem_kernel, kappa, gain, pre_acts, g_memory, activation, unroll
    )
    m_prev = jnp.pad(memory[:, :-1], ((0, 0), (1, 0), (0, 0)))
    d_mem_kernel = _dot_rows(m_prev.astype(cd), d_acts[0])
    d_layers = _mlp_rest_grads(layers, pre_acts, d_acts, activation)
    delta = scaled_tanh(pre_acts[-1]).astype(sd)
    d_kappa = jnp.sum(g_ms * m_prev, axis=(0, 1))
    d_gain = jnp.sum(g_ms * delta, axis=(0, 1))
    return d_acts[0], d_mem_kernel, d_layers, d_kappa, d_gain


memory_scan.defvjp(_memory_scan_fwd, _memory_scan_bwd)


def _input_memory_forward(x, kappa_x, in_kernel, mem_kernel, bias0, layers, kappa, gain, activation,
                          unroll, save):  # fmt: skip
    """The input trace and the memory recurrence in one loop. The carry c_t = [xt_t, m_{t-1}]
    [b, i + m] is the whole input of step t's first layer, so each step does one product with
    [W_in; K_m]; every c_t is written to C [b, t + 1, i + m] (slot t; slot t + 1 holds m_t)."""
    act = ACTIVATIONS[activation]
    cd = in_kernel.dtype
    batch, steps, width = x.shape
    w_cat = jnp.concatenate([in_kernel, mem_kernel], axis=0)

    def body(t, carry):
        c, inputs, pre_acts = carry
        a = c.astype(cd) @ w_cat + bias0
        new_acts = [a]
        for kernel, bias in layers:
            a = act(a) @ kernel + bias
            new_acts.append(a)
        m_t = kappa * c[:, width:] + gain * scaled_tanh(a).astype(c.dtype)
        # x at t + 1 (clamped at the end: that last slot's trace part is never read).
        x_next = _at(x, jnp.minimum(t + 1, steps - 1))
        c_next = jnp.concatenate([kappa_x * c[:, :width] + x_next, m_t], axis=-1)
        if save:
            pre_acts = tuple(_put(buf, t, v) for buf, v in zip(pre_acts, new_acts, strict=True))
        return c_next, _put(inputs, t + 1, c_next), pre_acts

    c0 = jnp.concatenate([x[:, 0], jnp.zeros((batch, kappa.shape[0]), x.dtype)], axis=-1)
    inputs = _put(jnp.empty((batch, steps + 1, c0.shape[-1]), x.dtype), 0, c0)
    widths = [w_cat.shape[1]] + [kernel.shape[1] for kernel, _ in layers]
    pre_acts = tuple(jnp.empty((batch, steps, w), cd) for w in widths) if save else ()
    _, inputs, pre_acts = jax.lax.fori_loop(0, steps, body, (c0, inputs, pre_acts), unroll=unroll)
    return inputs, pre_acts


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def input_memory_scan(
    x: jax.Array,
    kappa_x: jax.Array,
    in_kernel: jax.Array,
    mem_kernel: jax.Array,
    bias0: jax.Array,
    layers: tuple[tuple[jax.Array, jax.Array], ...],
    kappa: jax.Array,
    gain: jax.Array,
    activation: str,
    unroll: int,
) -> tuple[jax.Array, jax.Array]:
    """`linear_trace` of x and `memory_scan` in one loop: (memory [b, t, m], trace [b, t, i]).

    The memory recurrence with pre_t = trace_t W_in + bias0, where trace_t = kappa_x ⊙
    trace_{t-1} + x_t. For inputs narrow enough that one product with [W_in; K_m] per step
    costs less than a separate loop for the trace and a product over the whole sequence.
    Custom gradient as in `memory_scan`; the gradient of [W_in; K_m] is one product over all
    (t, b) of the saved step inputs, and x's (the reverse trace) is computed only when used.
    """
    inputs, _ = _input_memory_forward(
        x, kappa_x, in_kernel, mem_kernel, bias0, layers, kappa, gain, activation, unroll, False
    )
    width = x.shape[-1]
    return inputs[:, 1:, width:], inputs[:, :-1, :width]


def _input_memory_scan_fwd(
    x, kappa_x, in_kernel, mem_kernel, bias0, layers, kappa, gain, activation, unroll
):
    inputs, pre_acts = _input_memory_forward(
        x, kappa_x, in_kernel, mem_kernel, bias0, layers, kappa, gain, activation, unroll, True
    )
    width = x.shape[-1]
    outputs = (inputs[:, 1:, width:], inputs[:, :-1, :width])
    return outputs, (kappa_x, in_kernel, mem_kernel, layers, kappa, gain, inputs, pre_acts)


def _input_memory_scan_bwd(activation, unroll, residuals, cotangents):
    kappa_x, in_kernel, mem_kernel, layers, kappa, gain, inputs, pre_acts = residuals
    g_memory, g_trace = cotangents
    cd, sd = mem_kernel.dtype, kappa.dtype
    width = in_kernel.shape[0]
    g_ms, d_acts = _memory_backward(
        layers, mem_kernel, kappa, gain, pre_acts, g_memory, activation, unroll
    )
    d_pre = d_acts[0]
    # Step t's first-layer input is inputs[:, t]; the extra last slot meets a zero cotangent.
    d_w_cat = _dot_rows(inputs.astype(cd), jnp.pad(d_pre, ((0, 0), (0, 1), (0, 0))))
    d_layers = _mlp_rest_grads(layers, pre_acts, d_acts, activation)
    m_prev = inputs[:, :-1, width:]
    delta = scaled_tanh(pre_acts[-1]).astype(sd)
    d_kappa = jnp.sum(g_ms * m_prev, axis=(0, 1))
    d_gain = jnp.sum(g_ms * delta, axis=(0, 1))
    # x and kappa_x: the reverse trace of the trace's cotangent (pruned when x is not
    # differentiated, as in training).
    trace = inputs[:, :-1, :width]
    g_x_trace = (d_pre @ in_kernel.T).astype(sd) + g_trace.astype(sd)
    lam = _trace_loop(g_x_trace, kappa_x, True, unroll)
    d_kappa_x = jnp.sum(lam[:, 1:] * trace[:, :-1], axis=(0, 1))
    return (
        lam.astype(sd),
        d_kappa_x,
        d_w_cat[:width],
        d_w_cat[width:],
        d_pre.sum((0, 1)),
        d_layers,
        d_kappa,
        d_gain,
    )


input_memory_scan.defvjp(_input_memory_scan_fwd, _input_memory_scan_bwd)


# Up to this many inputs (no routing) the input trace runs inside the memory loop (see
# `input_memory_scan`); wider inputs are traced and projected for the whole sequence at once.
FUSED_INPUT_MAX = 128


def fuse_input_trace(cfg: NeuronConfig) -> bool:
    """Whether `scan` uses `input_memory_scan` (no routing, branch traces, narrow input)."""
    return cfg.routing == "none" and not cfg.per_synapse_trace and cfg.num_input <= FUSED_INPUT_MAX


def scan(
    prep: Prepared,
    cfg: NeuronConfig,
    x: jax.Array,
    *,
    compute_dtype: Any = None,
    unroll: int = 1,
    kernel: str = "xla",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The neuron over a sequence x [b, t, i] → (y [b, t, o], branch [b, t, d], memory [b, t, m]).

    The state (traces, memory) is kept in the dtype of `prep` (float32, or float64 under x64);
    matrix products run in `compute_dtype` (default: that of x). ``kernel``: what runs the
    memory recurrence, "xla" (`memory_scan` or `input_memory_scan`), "cpu_fused" (the fused CPU
    kernel, `elm_jax.neuron.fused`) or "auto" (the kernel where the computation runs on a CPU
    and the kernel is built and covers the configuration, XLA elsewhere).
    """
    cd = compute_dtype or x.dtype
    kernel0, bias0 = prep.mlp[0]
    d, k = cfg.num_branches, cfg.synapses_per_branch
    sd = prep.kappa_m.dtype
    # kappa_m folded into the memory rows of the first layer.
    mem_kernel = (prep.kappa_m[:, None] * kernel0[d:].astype(sd)).astype(cd)
    layers = tuple((kk.astype(cd), b.astype(cd)) for kk, b in prep.mlp[1:])
    kernel_y, bias_y = prep.readout

    def read(memory):
        return memory.astype(cd) @ kernel_y.astype(cd) + bias_y.astype(cd)

    def on_xla(x):
        if fuse_input_trace(cfg):
            in_kernel = prep.syn_weight[:, None].astype(cd) * jnp.repeat(
                kernel0[:d].astype(cd), k, 0
            )
            memory, x_trace = input_memory_scan(
                x.astype(sd), jnp.repeat(prep.kappa_syn, k), in_kernel, mem_kernel,
                bias0.astype(cd), layers, prep.kappa_m, prep.memory_gain, cfg.mlp_activation,
                unroll,
            )  # fmt: skip
            branch = (x_trace * prep.syn_weight).reshape(*x_trace.shape[:2], d, k).sum(-1)
            return branch, memory, read(memory)
        # Split the first layer: the branch half is one product for all t, the memory half is
        # the only product the recurrence has to do per step.
        branch, pre = first_layer_branch_part(prep, cfg, x, cd, unroll)
        memory = memory_scan(
            pre, mem_kernel, layers, prep.kappa_m, prep.memory_gain, cfg.mlp_activation, unroll
        )  # [b, t, m]
        return branch, memory, read(memory)

    def on_kernel(x):
        branch = branch_traces(prep, cfg, x, unroll)
        # The readout runs on the kernel's memory layout (its reverse skips zero cotangents).
        readout = (kernel_y.astype(sd), bias_y.astype(sd))

        def dense(x):
            _, pre = first_layer_branch_part(prep, cfg, x, cd, unroll)
            return fused.memory_scan(
                pre, mem_kernel, layers, prep.kappa_m, prep.memory_gain, cfg.mlp_activation,
                readout,
            )  # fmt: skip

        if cfg.per_synapse_trace:
            return branch, *dense(x)

        # Everything before the first layer is linear in x. When every branch decays alike
        # (v2's default branch time constant), the trace commutes with the map x -> pre, so
        # x W_in is computed from x's nonzeros only (spike inputs are mostly zeros) and the
        # trace runs inside the kernel's loop; otherwise the trace runs first, as on XLA.
        # The kernel decays every channel alike; each branch's own decay gets its gradient
        # from `_branch_decay_tap` (a shared decay's would be their sum). The tap sits outside
        # the `cond`, so where the decays are not differentiated (training) its branch traces
        # are pruned; inside, they would be an operand of the `cond` and always computed.
        u = fused.project(x.astype(sd), input_map(prep, cfg))
        # (The tap's value does not depend on the traces or K_b: stopping their gradient spares
        # a backward pass through the traces that would only carry zeros.)
        stop = jax.lax.stop_gradient
        u = _branch_decay_tap(u, prep.kappa_syn, stop(branch), stop(kernel0[:d].astype(sd)))

        def traced(u, x):
            kappa_p = jax.lax.stop_gradient(jnp.full((u.shape[-1],), prep.kappa_syn[0], sd))
            return fused.traced_memory_scan(
                u, kappa_p, bias0.astype(sd), mem_kernel, layers, prep.kappa_m,
                prep.memory_gain, cfg.mlp_activation, readout,
            )  # fmt: skip

        def dense_of(u, x):
            return dense(x)

        uniform = jnp.all(prep.kappa_syn == prep.kappa_syn[0])
        return branch, *jax.lax.cond(uniform, traced, dense_of, u, x)

    problem = fused.coverage_problem(cfg.mlp_activation, len(prep.mlp), cd, sd)
    if kernel != "auto":
        run = on_kernel if fused.resolve(kernel, problem) == "cpu_fused" else on_xla
        branch, memory, y = run(x)
    elif fused.default_platform() == "cpu" and fused.resolve(kernel, problem) == "cpu_fused":
        # One program: the kernel where it runs on a CPU, XLA's loop on any other platform.
        branch, memory, y = jax.lax.platform_dependent(x, cpu=on_kernel, default=on_xla)
    else:
        branch, memory, y = on_xla(x)
    return y, branch, memory


def kernel_ran(cfg: NeuronConfig, kernel: str, x_dtype: Any = jnp.float32) -> str:
    """What `scan` runs the memory recurrence on, on the default backend: "cpu_fused" or "xla"
    (for the records of a run; float32 parameters and inputs of ``x_dtype``)."""
    sd = state_dtype_for(jnp.zeros((), x_dtype))
    problem = fused.coverage_problem(cfg.mlp_activation, cfg.mlp_num_layers + 1, x_dtype, sd)
    return fused.resolve(kernel, problem)


def state_dtype_for(*arrays: Any) -> Any:
    """float32, or float64 when x64 is enabled and any input is float64."""
    dtype = jnp.result_type(*arrays, jnp.float32)
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def apply(
    tree: Mapping[str, Any],
    cfg: NeuronConfig,
    x: jax.Array,
    *,
    compute_dtype: Any = None,
    unroll: int = 1,
    kernel: str = "xla",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """prepare + scan: (y [b, t, o], branch [b, t, d], memory [b, t, m])."""
    if x.ndim != 3 or x.shape[-1] != cfg.num_input:
        raise ValueError(f"x has shape {tuple(x.shape)}: expected [batch, time, {cfg.num_input}]")
    state_dtype = state_dtype_for(x, *jax.tree_util.tree_leaves(tree["mlp"]))
    prep = prepare(tree, cfg, state_dtype)
    return scan(prep, cfg, x, compute_dtype=compute_dtype, unroll=unroll, kernel=kernel)


def loop(tree: Mapping[str, Any], cfg: NeuronConfig, x: jax.Array) -> Sequence[jax.Array]:
    """A Python loop over `step` (slow; the oracle `scan` is tested against)."""
    state_dtype = state_dtype_for(x, *jax.tree_util.tree_leaves(tree["mlp"]))
    prep = prepare(tree, cfg, state_dtype)
    state = initial_state(prep, cfg, x.shape[0], state_dtype)
    outs = []
    for t in range(x.shape[1]):
        state, out = step(prep, cfg, state, x[:, t])
        outs.append(out)
    return tuple(jnp.stack(o, axis=1) for o in zip(*outs, strict=True))
