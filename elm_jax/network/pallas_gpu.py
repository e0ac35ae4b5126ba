"""The ELM network's recurrence as one Pallas kernel for NVIDIA GPUs (Triton), with its gradient.

Same math as `elm_jax.network.scan` and the fused CPU kernel (`elm_jax.network.fused`): one
kernel runs all T steps of the forward, one the whole backward (`elm_jax.network.pallas_gpu_kernel`).
Each program of the grid owns a block of the batch (and, under ``jax.vmap`` over seeds, one
seed: the grid gains a seed axis) and keeps its sequences' state and its network's per-neuron
weights on chip for the whole sequence. The forward keeps the state every ``chunk`` steps; the
backward recomputes each chunk's steps from it before running the chunk in reverse (the CPU
kernel's scheme), so memory grows with T / chunk states. The gradients of every recurrence
weight, of the input and of the initial state come out of the backward kernel; what is
computed before the recurrence (relu of the synaptic weights, decays from tau) stays in JAX,
whose autodiff covers it.

Layout (axis letters as in `elm_jax.network.dynamics`): neuron-minor. Every per-sequence
quantity of one feature (a branch, a memory unit, an MLP unit) is a ``[bb, lanes]`` tile (the
program's sequences by the neurons padded to a power of two, as Triton wants) and every
per-neuron weight a ``[1, lanes]`` row, so each per-neuron product is a sum of elementwise
products unrolled over its (small) contraction. The synapses read the pool ``[e_t ; y_{t-1}]``
by index from a global ``[b, t + 1, i + lanes]`` buffer that holds the input and, written by
the kernel step by step, the outputs. The backward's scatter into that pool (the cotangents of
``e_t`` and ``y_{t-1}``) is a gather too: with the synapses sorted by source, each pool column
sums its own synapses' terms, so there are no atomics and the summation order is fixed.

Selection: `elm_jax.network.fused.resolve_kernel` (``kernel="gpu_pallas"``, or ``"auto"`` on
cuda where `coverage_problem` finds nothing). The kernel runs on cuda only: its call is wrapped
in `_cuda_only`, which refuses to lower for any other platform and lowers the call for cuda
alone inside a multi-platform module (where ``"auto"`` puts it in `jax.lax.platform_dependent`'s
cuda branch). ``interpret=True`` runs the same kernels in Pallas's interpreter on any platform
(slow; how the tests check them without a GPU).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax.core import ShapedArray
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from elm_jax.network.pallas_gpu_kernel import (
    Dims,
    backward_kernel,
    forward_kernel,
    num_weight_refs,
    pow2,
)
from elm_jax.network.scan import NetworkWeights

Array = jax.Array
KERNEL_NAME = "elm_network_pallas_gpu"
TRITON_TARGET = "__gpu$xla.gpu.triton"  # the custom call target of a Triton kernel in XLA
MAX_MAPS = 8  # affine maps of the per-neuron MLP (as the CPU kernel)
# Multiply-adds of one neuron's MLP and readout per step (`elm_jax.ops.elm_macs_per_neuron`
# without the synapses) the kernels unroll. Their code, and the time to trace, lower and compile
# them, grow with them: about 13 jaxpr equations per multiply-add over the two kernels, traced
# and lowered at a few ms each on the (loaded) 2-core test machine: a train step took about
# 40 s at d_m = 16 (1,168) and 2 minutes at d_m = 24 (2,520). 1,024 covers d_m <= 12 at the
# default width.
MAX_NEURON_MACS = 1024
TILE_ELEMENTS = 256  # a program's [batch block, neurons] tile aims at this many elements
NUM_WARPS = 4


def coverage_problem(num_maps: int, neuron_macs: int) -> str | None:
    """What of a configuration the kernel does not cover (None: it covers it). ``neuron_macs``:
    multiply-adds of one neuron's MLP and readout per step (`elm_jax.ops.elm_macs_per_neuron`
    without the synapses)."""
    if num_maps > MAX_MAPS:
        return f"an MLP of {num_maps} affine maps (it takes at most {MAX_MAPS})"
    if neuron_macs > MAX_NEURON_MACS:
        return (
            f"{neuron_macs} multiply-adds per neuron and step in the MLP and readout (it unrolls "
            f"at most {MAX_NEURON_MACS})"
        )
    return None


# ---------------------------------------------------------------------------------------------
# The cuda-only guard. A primitive that stands for the kernel's pallas_call (``fun``) with its
# output shapes: it lowers only into a module that can run on cuda, and there lowers the call
# for cuda alone (a multi-platform module would otherwise lower the call for every platform,
# and Pallas refuses the CPU). The kernel is traced only then, so a CPU step with
# kernel="auto", whose cuda branch is never lowered, does not pay for tracing it.

_cuda_only = Primitive(f"{KERNEL_NAME}_cuda_only")
_cuda_only.multiple_results = True
_cuda_only.def_abstract_eval(lambda *args, fun, out_avals: out_avals)


def _bind_cuda_only(fun, out_avals, *args):
    return _cuda_only.bind(*args, fun=fun, out_avals=tuple(out_avals))


# Called outside jit, it is jitted: lowering applies the guard.
_cuda_only.def_impl(
    lambda *args, fun, out_avals: jax.jit(functools.partial(_bind_cuda_only, fun, out_avals))(*args)
)


def _cuda_only_batch(args, dims, *, fun, out_avals):
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    args = [a if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims, strict=True)]
    axes = [None if d is None else 0 for d in dims]
    batched = [ShapedArray((size, *a.shape), a.dtype) for a in out_avals]
    outs = _bind_cuda_only(jax.vmap(fun, in_axes=axes), batched, *args)
    return outs, [0] * len(outs)


def _cuda_only_lowering(ctx, *args, fun, out_avals):
    platforms = tuple(ctx.module_context.platforms)
    if "cuda" not in platforms:
        raise NotImplementedError(
            f"the Pallas GPU kernel ({KERNEL_NAME}) cannot be lowered for {', '.join(platforms)}: "
            "it runs on an NVIDIA GPU (cuda) only; use kernel='auto' or 'xla' there, or "
            "interpret mode to check it on a CPU"
        )
    cuda = ctx.replace(module_context=ctx.module_context.replace(platforms=("cuda",)))
    return mlir.lower_fun(fun, multiple_results=True)(cuda, *args)


batching.primitive_batchers[_cuda_only] = _cuda_only_batch
mlir.register_lowering(_cuda_only, _cuda_only_lowering)


# ---------------------------------------------------------------------------------------------
# The calls, and the custom VJP that ties them together.


def _whole(shape) -> pl.BlockSpec:
    return pl.BlockSpec(tuple(shape), lambda g: (0,) * len(shape))


def _batch_block(dims: Dims, *rest) -> pl.BlockSpec:
    """A block of ``bb`` sequences on the leading axis; ``rest``: the other axes, whole."""
    return pl.BlockSpec((dims.bb, *rest), lambda g: (g, *(0,) * len(rest)))


def _call(dims: Dims, kernel, name: str, *, out_shape, **kw):
    call = pl.pallas_call(
        functools.partial(kernel, dims),
        grid=(dims.bp // dims.bb,),
        interpret=dims.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=NUM_WARPS),
        name=name,
        out_shape=out_shape,
        **kw,
    )
    if dims.interpret:
        return call
    avals = [ShapedArray(s.shape, s.dtype) for s in out_shape]
    return functools.partial(_bind_cuda_only, call, avals)


def _weight_specs(dims: Dims):
    flat = [_whole(dims.flat_shape(s)) for s in dims.weight_shapes()]
    return flat + [_whole((dims.k, dims.lanes))] * 2


def _as_rows(dims: Dims, weights):
    return [a.reshape(dims.flat_shape(a.shape)) for a in weights]


def _forward(dims: Dims, flat, wiring, e, s0, y0):
    """The forward call: (pool with every y_t written, final state, checkpoints)."""
    pool = jnp.zeros((dims.bp, dims.t + 1, dims.width), e.dtype)
    pool = pool.at[:, : dims.t, : dims.i].set(e).at[:, 0, dims.i :].set(y0)
    features = dims.d + dims.m
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, e.dtype)  # noqa: E731
    call = _call(
        dims,
        forward_kernel,
        "elm_network_forward",
        in_specs=[
            *_weight_specs(dims),
            _batch_block(dims, dims.t + 1, dims.width),
            _batch_block(dims, features, dims.lanes),
        ],  # fmt: skip
        out_specs=[
            _batch_block(dims, dims.t + 1, dims.width),
            _batch_block(dims, features, dims.lanes),
            pl.BlockSpec((dims.chunks, dims.bb, features, dims.lanes), lambda g: (0, g, 0, 0)),
        ],
        out_shape=[
            sds(dims.bp, dims.t + 1, dims.width),
            sds(dims.bp, features, dims.lanes),
            sds(dims.chunks, dims.bp, features, dims.lanes),
        ],
        input_output_aliases={num_weight_refs(dims): 0},
    )
    return call(*_as_rows(dims, flat), *wiring, pool, s0)


def _pool_fan_in(dims: Dims, w_syn, wiring):
    """The synapses sorted by source (module docstring): q, weight, start, count, largest."""
    src, branch = (a[:, : dims.n].reshape(-1) for a in wiring)
    neuron = jnp.broadcast_to(jnp.arange(dims.n, dtype=jnp.int32), (dims.k, dims.n)).reshape(-1)
    order = jnp.argsort(src, stable=True)
    q = (branch * dims.lanes + neuron)[order].astype(jnp.int32)
    weight = w_syn[:, : dims.n].reshape(-1)[order]
    count = jnp.zeros((dims.pool_lanes,), jnp.int32).at[src].add(1)
    start = (jnp.cumsum(count) - count).astype(jnp.int32)
    return q, weight, start, count, jnp.max(count, keepdims=True)


def _backward(dims: Dims, flat, wiring, pool, ckpt, g_ys, g_final):
    """The backward call: (pool cotangent [bp, t, pool_lanes], initial state's cotangent,
    weight-gradient rows of every program)."""
    csr = _pool_fan_in(dims, flat[-1], wiring)
    features, programs = dims.d + dims.m, dims.bp // dims.bb
    rows = dims.grad_rows()[-1]
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, pool.dtype)  # noqa: E731
    call = _call(
        dims,
        backward_kernel,
        "elm_network_backward",
        in_specs=[
            *_weight_specs(dims),
            _batch_block(dims, dims.t + 1, dims.width),
            pl.BlockSpec((dims.chunks, dims.bb, features, dims.lanes), lambda g: (0, g, 0, 0)),
            _batch_block(dims, dims.t, dims.lanes),
            _batch_block(dims, features, dims.lanes),
            *(_whole(a.shape) for a in csr),
        ],
        out_specs=[
            _batch_block(dims, dims.t, dims.pool_lanes),
            _batch_block(dims, features, dims.lanes),
            pl.BlockSpec((rows, dims.lanes), lambda g: (g, 0)),
            pl.BlockSpec(
                (dims.chunk + 1, dims.recorded, dims.bb, dims.lanes), lambda g: (0, 0, g, 0)
            ),
            _batch_block(dims, dims.d * dims.lanes),
        ],
        out_shape=[
            sds(dims.bp, dims.t, dims.pool_lanes),
            sds(dims.bp, features, dims.lanes),
            sds(programs * rows, dims.lanes),
            sds(dims.chunk + 1, dims.recorded, dims.bp, dims.lanes),  # a chunk's steps (scratch)
            sds(dims.bp, dims.d * dims.lanes),  # one step's branch cotangents (scratch)
        ],
    )
    g_pool, g_s0, d_rows, _, _ = call(
        *_as_rows(dims, flat), *wiring, pool, ckpt, g_ys, g_final, *csr
    )
    return g_pool, g_s0, d_rows.reshape(programs, rows, dims.lanes).sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _pallas_scan(dims, flat, wiring, e, s0, y0):
    pool, final, _ = _forward(dims, flat, wiring, e, s0, y0)
    return pool[:, 1:, dims.i :], final


def _pallas_fwd(dims, flat, wiring, e, s0, y0):
    pool, final, ckpt = _forward(dims, flat, wiring, e, s0, y0)
    return (pool[:, 1:, dims.i :], final), (flat, wiring, pool, ckpt)


def _pallas_bwd(dims, residuals, cotangents):
    flat, wiring, pool, ckpt = residuals
    g_ys, g_final = cotangents
    g_pool, g_s0, d_rows = _backward(dims, flat, wiring, pool, ckpt, g_ys, g_final)
    starts = dims.grad_rows()
    d_flat = tuple(
        d_rows[a:b].reshape(shape)
        for a, b, shape in zip(starts[:-1], starts[1:], dims.weight_shapes(), strict=True)
    )
    g_e = g_pool[:, :, : dims.i]
    g_y0 = g_pool[:, 0, dims.i : dims.width]
    return d_flat, (None, None), g_e, g_s0, g_y0


_pallas_scan.defvjp(_pallas_fwd, _pallas_bwd)


def _block_batch(batch: int, lanes: int) -> int:
    return min(pow2(batch), max(1, TILE_ELEMENTS // lanes))


def run_pallas(
    weights: NetworkWeights,
    carry: Mapping[str, Array],
    e: Array,
    w_s: Array,
    source: Array,
    branch: Array,
    *,
    remat_chunk: int = 10,
    interpret: bool = False,
) -> tuple[dict[str, Array], Array]:
    """The ELM network over time on the Pallas kernel: ``e [b, t, i] -> (carry, y [b, t, n])``.

    Arguments as `elm_jax.network.fused.run_fused` (``weights`` neuron-major, ``rec`` not read;
    the synapses as ``w_s``, ``source`` into the pool ``[e_t ; y_{t-1}]`` and ``branch``, each
    ``[n, k]``; ``carry`` batch-major). ``remat_chunk``: steps between the states the forward
    keeps for the backward (0: only the first). ``interpret``: run in Pallas's interpreter (any
    platform); otherwise the kernel lowers for cuda only.
    """
    b, t, i = e.shape
    n, k = w_s.shape
    if t < 1:
        raise ValueError(f"input shape {e.shape} is invalid: the kernel needs at least one step")
    dtype = jnp.result_type(weights.kappa_b)
    lanes = pow2(n)
    bb = _block_batch(b, lanes)
    sizes = (weights.k_branch.shape[-1], *(kernel.shape[-1] for kernel, _ in weights.layers))
    dims = Dims(
        t=t, i=i, n=n, lanes=lanes, d=weights.kappa_b.shape[-1], m=weights.kappa_m.shape[-1],
        sizes=sizes, k=k, bb=bb, bp=-(-b // bb) * bb,
        chunk=min(remat_chunk, t) if remat_chunk > 0 else t, interpret=bool(interpret),
    )  # fmt: skip

    def minor(a, as_type=dtype):  # [n, ...] -> [..., lanes], zero on the padded neurons
        a = jnp.moveaxis(jnp.asarray(a, as_type), 0, -1)
        return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, lanes - n)])

    def batch_pad(a):
        a = jnp.asarray(a, dtype)
        return jnp.pad(a, [(0, dims.bp - b)] + [(0, 0)] * (a.ndim - 1))

    layers = tuple(p for kernel, bias in weights.layers for p in (minor(kernel), minor(bias[:, 0])))
    flat = (
        minor(weights.kappa_b[:, 0]), minor(weights.kappa_m[:, 0]),
        minor(weights.memory_gain[:, 0]), minor(weights.k_branch), minor(weights.k_memory),
        minor(weights.bias0[:, 0]), *layers, minor(weights.w_y[:, 0]), minor(weights.b_y),
        minor(w_s),
    )  # fmt: skip
    wiring = (minor(source, jnp.int32), minor(branch, jnp.int32))
    state = jnp.concatenate([carry["branch"], carry["memory"]], axis=-1)  # [b, n, d + m]
    s0 = jnp.pad(batch_pad(jnp.swapaxes(state, 1, 2)), [(0, 0), (0, 0), (0, lanes - n)])
    y0 = jnp.pad(batch_pad(carry["output"]), [(0, 0), (0, lanes - n)])
    ys, final = _pallas_scan(dims, flat, wiring, batch_pad(e), s0, y0)
    y = ys[:b, :, :n]
    final = jnp.swapaxes(final[:b, :, :n], 1, 2)
    out = {"branch": final[..., : dims.d], "memory": final[..., dims.d :], "output": y[:, -1]}
    return out, y
