"""The single ELM neuron's memory recurrence on the fused CPU kernel (XLA FFI), with its gradient.

Same math as `elm_jax.neuron.dynamics.memory_scan` (tested equal in values and gradients,
tests/test_neuron_fused.py): one FFI call runs the forward loop over all T steps and records
every MLP pre-activation, one runs the reverse loop and returns the cotangent of every
pre-activation and of every memory state. As on the XLA path, everything linear in the input
(the branch half of the first MLP layer, its bias) is one product before the loop, and every
weight gradient is one product over all (t, b) after it; only the sequential, nonlinear part runs
in the kernel, which removes XLA's per-step overhead (a few hundred small operations for a
200-step sequence, forward and backward).

The kernel is the network kernel's library (`elm_jax.network.fused_build`, sources
``elm_jax/network/kernel/elm_neuron_*``), so it is built, found and registered with it
(`elm_jax.network.fused.available`). Inside, one task runs a tile of 8 sequences (the batch is
padded to a multiple of 8) with the state in registers and cache; tasks of a vmapped call and
of a larger batch share XLA's CPU thread pool.

Selection (`resolve`): ``"xla"`` is `dynamics.memory_scan`; ``"cpu_fused"`` this kernel, which
lowers only for a CPU; ``"auto"`` this kernel where the computation runs on a CPU and the kernel
is built and covers the configuration (`coverage_problem`), XLA elsewhere. A kernel that cannot
run says why in one logged line and the XLA path runs: never a wrong result.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from elm_jax.network import fused as network_fused
from elm_jax.neuron.config import ACTIVATIONS

Array = jax.Array
KERNELS = ("auto", "xla", "cpu_fused")
# The activation codes the kernel takes (kernel/elm_neuron_types.h).
ACTIVATION_CODES = {"relu": 0, "silu": 1}
_ACTIVATION_OF_CODE = {code: name for name, code in ACTIVATION_CODES.items()}
LANES = network_fused.LANES


def coverage_problem(
    activation: str, num_maps: int, compute_dtype: Any, state_dtype: Any
) -> str | None:
    """What of a configuration the kernel does not cover (None: it covers it)."""
    if activation not in ACTIVATION_CODES:
        return f"the activation {activation!r} (it has {sorted(ACTIVATION_CODES)})"
    if num_maps > network_fused.MAX_MAPS:
        return f"an MLP of {num_maps} affine maps (it takes at most {network_fused.MAX_MAPS})"
    compute, state = jnp.dtype(compute_dtype), jnp.dtype(state_dtype)
    if compute != state or state not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        return (
            f"products in {compute.name} with the state in {state.name} (it computes in the "
            f"state's float32 or float64)"
        )
    return None


def default_platform() -> str:
    """The default backend's platform ("cpu", "cuda", ...; `elm_jax.network.fused`)."""
    return network_fused.default_platform()


def resolve(kernel: str, problem: str | None, *, platform: str | None = None) -> str:
    """The implementation ``kernel`` (`KERNELS`; the network's "gpu_pallas" means "xla" here)
    runs on ``platform`` (None: the default backend's): "cpu_fused" or "xla". ``problem``: the
    configuration's `coverage_problem`. A forced kernel that cannot run is logged once, with the
    reason."""
    if kernel not in (*KERNELS, "gpu_pallas"):
        raise ValueError(f"kernel={kernel!r} is invalid: must be one of {KERNELS}")
    platform = platform or network_fused.default_platform()
    if kernel == "gpu_pallas":
        network_fused.log_once(
            "kernel='gpu_pallas': the single ELM neuron has no Pallas kernel; XLA runs"
        )
        return "xla"
    if kernel == "xla" or (kernel == "auto" and platform != "cpu"):
        return "xla"
    if problem is not None:
        if kernel == "cpu_fused":
            network_fused.log_once(
                f"kernel='cpu_fused': the fused neuron kernel does not cover {problem}; XLA runs"
            )
        return "xla"
    return "cpu_fused" if network_fused.available() else "xla"


def _call(target: str, out: tuple, static: tuple, *args: Array) -> tuple[Array, ...]:
    rest_size, activation, sizes = static
    call = jax.ffi.ffi_call(target, out, vmap_method="broadcast_all")
    return call(
        *args, rest_size=np.int64(rest_size), activation=np.int64(activation),
        sizes=np.asarray(sizes, np.int64),
    )  # fmt: skip


def _forward(static, u_k, kmem, rest, kappa, gain, kappa_p, bias0):
    _, _, sizes = static
    tiles, t = u_k.shape[:2]
    m = kappa.shape[-1]
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, kappa.dtype)  # noqa: E731
    out = (sds(tiles, t, m, LANES), sds(sum(sizes) + m + sizes[0], tiles, t, LANES))
    target = network_fused.NEURON_FORWARD_TARGET
    args = (kmem, rest, kappa, gain, kappa_p, bias0, network_fused.cpu_only(u_k))
    return _call(target, out, static, *args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _kernel_scan(static, u_k, kmem, rest, kappa, gain, kappa_p, bias0):
    """memory [tiles, t, m, 8] from u [tiles, t, h0, 8] (the kernel's layout: batch tiles of 8
    sequences, each tile's steps contiguous, the 8 sequences last)."""
    return _forward(static, u_k, kmem, rest, kappa, gain, kappa_p, bias0)[0]


def _kernel_scan_fwd(static, u_k, kmem, rest, kappa, gain, kappa_p, bias0):
    memory, record = _forward(static, u_k, kmem, rest, kappa, gain, kappa_p, bias0)
    return memory, (kmem, rest, kappa, gain, kappa_p, bias0, record)


def _kernel_scan_bwd(static, residuals, g_memory):
    _, activation, sizes = static
    kmem, rest, kappa, gain, kappa_p, bias0, record = residuals
    h0, m, zall = sizes[0], kappa.shape[-1], sum(sizes)
    _, tiles, t, _ = record.shape
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, record.dtype)  # noqa: E731
    out = (sds(zall, tiles, t, LANES), sds(tiles, t, h0, LANES), sds(tiles, 2 * m + zall + h0))
    target = network_fused.NEURON_BACKWARD_TARGET
    g_memory = jnp.asarray(g_memory, record.dtype)
    args = (kmem, rest, kappa, gain, kappa_p, bias0, network_fused.cpu_only(record), g_memory)
    d_acts, lam, sums = _call(target, out, static, *args)
    # Feature-major [features, tiles·t·8]: every weight gradient is one product with a contiguous
    # contraction; the sums of elementwise products came out of the kernel.
    rec = record.reshape(record.shape[0], -1)
    d = d_acts.reshape(zall, -1)
    bounds = np.cumsum((0, *sizes))
    sums = sums.sum(0)
    d_kmem = rec[zall : zall + m] @ d[:h0].T
    act = ACTIVATIONS[_ACTIVATION_OF_CODE[activation]]
    d_rest = []
    for j in range(1, len(sizes)):
        a_in = act(rec[bounds[j - 1] : bounds[j]])
        d_rest += [(a_in @ d[bounds[j] : bounds[j + 1]].T).ravel(),
                   sums[2 * m + bounds[j] : 2 * m + bounds[j + 1]]]  # fmt: skip
    d_rest = jnp.concatenate(d_rest) if d_rest else jnp.zeros_like(rest)
    d_kappa, d_gain = sums[:m], sums[m : 2 * m]
    d_bias0, d_kappa_p = sums[2 * m : 2 * m + h0], sums[2 * m + zall :]
    return lam, d_kmem, d_rest, d_kappa, d_gain, d_kappa_p, d_bias0


_kernel_scan.defvjp(_kernel_scan_fwd, _kernel_scan_bwd)


def _require() -> None:
    """Registers the kernel's targets (building it if needed); raises when it cannot be had."""
    if not network_fused.available():
        raise RuntimeError(
            f"the fused CPU kernel is unavailable: {network_fused.unavailable_reason()}"
        )


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _readout(memory_k, w, b, batch):
    """y [batch, t, o] = m_t W + b from the memory in the kernel's layout [tiles, t, m, 8]."""
    _require()
    t, o = memory_k.shape[-3], w.shape[-1]
    out = jax.ShapeDtypeStruct((batch, t, o), w.dtype)
    call = jax.ffi.ffi_call(network_fused.READOUT_TARGET, out, vmap_method="broadcast_all")
    return call(network_fused.cpu_only(memory_k), w, b)


def _readout_fwd(memory_k, w, b, batch):
    return _readout(memory_k, w, b, batch), (memory_k, w)


def _readout_bwd(batch, residuals, g_y):
    # The kernel skips the steps whose cotangent is zero in a whole tile (a loss on the last
    # step: one step's reverse instead of T).
    memory_k, w = residuals
    tiles, m, o = memory_k.shape[-4], w.shape[-2], w.shape[-1]
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, w.dtype)  # noqa: E731
    out = (sds(*memory_k.shape[-4:]), sds(tiles, (m + 1) * o))
    call = jax.ffi.ffi_call(network_fused.READOUT_GRAD_TARGET, out, vmap_method="broadcast_all")
    d_memory, sums = call(memory_k, w, jnp.asarray(g_y, w.dtype))
    sums = sums.sum(0)
    return d_memory, sums[: m * o].reshape(m, o), sums[m * o :]


_readout.defvjp(_readout_fwd, _readout_bwd)


def _run(u, kappa_p, bias0, mem_kernel, layers, kappa, gain, activation, readout):
    _require()
    dtype = kappa.dtype
    b, t, h0 = u.shape
    bp = -(-b // LANES) * LANES
    u = jnp.asarray(u, dtype)
    if bp != b:
        u = jnp.pad(u, ((0, bp - b), (0, 0), (0, 0)))
    u_k = jnp.transpose(u.reshape(bp // LANES, LANES, t, h0), (0, 2, 3, 1))
    parts = [jnp.asarray(p, dtype).ravel() for kernel, bias in layers for p in (kernel, bias)]
    rest = jnp.concatenate(parts) if parts else jnp.zeros((1,), dtype)
    sizes = (mem_kernel.shape[1], *(kernel.shape[1] for kernel, _ in layers))
    static = (sum(p.size for p in parts), ACTIVATION_CODES[activation], sizes)
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    memory = _kernel_scan(
        static, u_k, cast(mem_kernel), rest, kappa, gain, cast(kappa_p), cast(bias0)
    )
    memory_k = memory
    memory = jnp.transpose(memory_k, (0, 3, 1, 2)).reshape(bp, t, -1)[:b]  # [b, t, m]
    if readout is None:
        return memory
    return memory, _readout(memory_k, cast(readout[0]), cast(readout[1]), b)


def memory_scan(
    pre: Array,
    mem_kernel: Array,
    layers: tuple[tuple[Array, Array], ...],
    kappa: Array,
    gain: Array,
    activation: str,
    readout: tuple[Array, Array] | None = None,
) -> Array | tuple[Array, Array]:
    """`elm_jax.neuron.dynamics.memory_scan` on the kernel: memory [b, t, m] from pre [b, t, h].

    With ``readout`` = (W_y [m, o], b_y [o]): (memory, y [b, t, o] = memory W_y + b_y), the
    readout read from the kernel's own layout; its reverse skips the steps whose cotangent is
    zero (a loss on the last step pays for one step). Every array in the state's dtype (float32
    or float64; `coverage_problem`). Raises when the kernel is not built (`resolve` picks it only
    when it is).
    """
    zeros = jnp.zeros((mem_kernel.shape[1],), kappa.dtype)
    return _run(pre, zeros, zeros, mem_kernel, layers, kappa, gain, activation, readout)


def traced_memory_scan(
    u: Array,
    kappa_p: Array,
    bias0: Array,
    mem_kernel: Array,
    layers: tuple[tuple[Array, Array], ...],
    kappa: Array,
    gain: Array,
    activation: str,
    readout: tuple[Array, Array] | None = None,
) -> Array | tuple[Array, Array]:
    """`memory_scan` of pre_t = p_t + bias0 with the trace p_t = kappa_p ⊙ p_{t-1} + u_t
    (kappa_p [h0]) run inside the kernel's loop: memory [b, t, m] from u [b, t, h0] (and y, as
    `memory_scan`, with ``readout``)."""
    return _run(u, kappa_p, bias0, mem_kernel, layers, kappa, gain, activation, readout)


@jax.custom_vjp
def project(x: Array, w: Array) -> Array:
    """x [..., i] W [i, h] → [..., h], computed from x's nonzero entries only (`x` mostly zeros,
    like spike trains: the work is proportional to the nonzeros). Same dtype for both (float32 or
    float64). Raises when the kernel is not built."""
    return _project(x, w)


def _project(x, w):
    _require()
    rows = x.reshape(-1, x.shape[-1])
    out = jax.ShapeDtypeStruct((rows.shape[0], w.shape[1]), w.dtype)
    call = jax.ffi.ffi_call(network_fused.PROJECT_TARGET, out, vmap_method="broadcast_all")
    return call(network_fused.cpu_only(rows), w).reshape(*x.shape[:-1], w.shape[1])


def _project_fwd(x, w):
    return _project(x, w), (x, w)


def _project_bwd(residuals, g):
    x, w = residuals
    rows = x.reshape(-1, x.shape[-1])
    g_rows = jnp.asarray(g, w.dtype).reshape(-1, w.shape[1])
    out = jax.ShapeDtypeStruct(w.shape, w.dtype)
    call = jax.ffi.ffi_call(network_fused.PROJECT_GRAD_TARGET, out, vmap_method="broadcast_all")
    d_w = call(network_fused.cpu_only(rows), g_rows)
    # x's cotangent, a dense product (pruned where x is not differentiated, as in training).
    d_x = (g_rows @ w.T).reshape(x.shape).astype(x.dtype)
    return d_x, d_w


project.defvjp(_project_fwd, _project_bwd)
