"""The ELM network's recurrence as one fused CPU kernel (XLA FFI), with its gradient.

Same math as `elm_jax.network.scan` (tested equal in values and gradients, tests/test_fused.py):
one FFI call runs all T steps of the forward, one the whole backward. Inside, the state of a
tile of 8 sequences stays in cache across steps; the forward keeps the state every ``chunk``
steps and the backward recomputes each chunk's activations from it before running the chunk in
reverse, so memory grows with T / chunk states (as `scan_with_remat`). The weight gradients of
every recurrence weight come out of the backward call; what is computed before the recurrence
(relu of the synaptic weights, decays from τ, the external branch input) stays in JAX, whose
autodiff covers it.

The C++ sources are in ``kernel/``; `elm_jax.network.fused_build` compiles them for the
installed jaxlib. Vectorised (``jax.vmap``, e.g. over seeds) calls run every group of the mapped
axes and every batch tile as a task on XLA's CPU thread pool.

Kernel choice (`KERNELS`, `resolve_kernel`): ``"xla"`` is the `lax.scan` path; ``"cpu_fused"``
this kernel (CPU only: lowering it for another platform raises, see `_cpu_only`);
``"gpu_pallas"`` the Pallas kernel of `elm_jax.network.pallas_gpu` (NVIDIA GPUs only, guarded
the same way); ``"auto"`` this kernel where the step runs on a CPU and the kernel is built and
covers the configuration, the Pallas kernel on cuda where it covers the configuration, the XLA
path on other platforms (one program, chosen per platform at lowering by
`jax.lax.platform_dependent`).
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from elm_jax.network import fused_build, pallas_gpu
from elm_jax.network.scan import NetworkWeights

Array = jax.Array
KERNELS = ("auto", "xla", "cpu_fused", "gpu_pallas")
LANES = 8  # sequences per SIMD tile (kernel/elm_network_types.h)
MAX_MAPS = 8  # affine maps of the per-neuron MLP the kernel takes
FORWARD_TARGET, BACKWARD_TARGET = "elm_network_forward", "elm_network_backward"
# The single neuron's memory recurrence (elm_jax.neuron.fused), in the same library.
NEURON_FORWARD_TARGET, NEURON_BACKWARD_TARGET = "elm_neuron_forward", "elm_neuron_backward"
PROJECT_TARGET, PROJECT_GRAD_TARGET = "elm_input_project", "elm_input_project_grad"
READOUT_TARGET, READOUT_GRAD_TARGET = "elm_neuron_readout", "elm_neuron_readout_grad"
DECODE_TARGET, DECODE_GRAD_TARGET = "elm_network_decode", "elm_network_decode_grad"

log = logging.getLogger(__name__)
_logged: set[str] = set()
_state: dict[str, object] = {}


def log_once(message: str) -> None:
    """Logs `message` (a warning) the first time it is seen in this process."""
    if message not in _logged:
        _logged.add(message)
        log.warning(message)


def available() -> bool:
    """Whether the kernel is built (building it now if needed) and registered with XLA."""
    if "ok" not in _state:
        path = fused_build.library_path()
        if path is None:
            _state["ok"], _state["why"] = False, fused_build.build_problem()
        else:
            try:
                lib = ctypes.cdll.LoadLibrary(path)
                for name, symbol in ((FORWARD_TARGET, lib.ElmNetworkForward),
                                     (BACKWARD_TARGET, lib.ElmNetworkBackward),
                                     (NEURON_FORWARD_TARGET, lib.ElmNeuronForward),
                                     (NEURON_BACKWARD_TARGET, lib.ElmNeuronBackward),
                                     (PROJECT_TARGET, lib.ElmInputProject),
                                     (PROJECT_GRAD_TARGET, lib.ElmInputProjectGrad),
                                     (READOUT_TARGET, lib.ElmNeuronReadout),
                                     (READOUT_GRAD_TARGET, lib.ElmNeuronReadoutGrad),
                                     (DECODE_TARGET, lib.ElmNetworkDecode),
                                     (DECODE_GRAD_TARGET, lib.ElmNetworkDecodeGrad)):  # fmt: skip
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(symbol), platform="cpu")
                _state["ok"], _state["why"] = True, None
                _state["isa"] = "avx2" if lib.ElmKernelUsesAvx2() else "baseline"
            except (OSError, AttributeError, ValueError) as err:
                _state["ok"], _state["why"] = False, f"cannot load {path}: {err}"
        if not _state["ok"]:
            log_once(f"fused CPU kernel unavailable ({_state['why']}): the XLA path runs")
    return bool(_state["ok"])


def unavailable_reason() -> str | None:
    """Why `available()` is False (None when it is True or was not asked yet)."""
    return _state.get("why")  # type: ignore[return-value]


def instruction_set() -> str | None:
    """Which build of the kernels runs: "avx2" (x86-64 with AVX2 and FMA) or "baseline" (any
    other CPU, or ``ELM_JAX_KERNEL_ISA=baseline`` set before the first call); None without the
    kernel."""
    return _state.get("isa") if available() else None  # type: ignore[return-value]


def coverage_problem(num_maps: int) -> str | None:
    """What of a configuration the kernel does not cover (None: it covers it)."""
    if num_maps > MAX_MAPS:
        return f"an MLP of {num_maps} affine maps (it takes at most {MAX_MAPS})"
    return None


def default_platform() -> str:
    """The default backend's platform as `jax.lax.platform_dependent` names it: "cpu", "cuda",
    "rocm", "tpu", ..."""
    backend = jax.default_backend()
    if backend != "gpu":
        return backend
    return "rocm" if "rocm" in jax.devices()[0].client.platform_version.lower() else "cuda"


def resolve_kernel(
    kernel: str, num_maps: int, *, neuron_macs: int = 0, platform: str | None = None
) -> str:
    """The implementation ``kernel`` (`KERNELS`) runs on ``platform`` (None: the default
    backend's): "xla", "cpu_fused" or "gpu_pallas".

    A forced kernel is itself, or "xla" where it does not cover the configuration or (the CPU
    kernel) is not built, logged once with the reason. "auto" is the CPU kernel on a CPU and the
    Pallas kernel on cuda under the same conditions, "xla" on other platforms. ``neuron_macs``:
    multiply-adds of one neuron's MLP and readout per step (the Pallas kernel's coverage,
    `elm_jax.network.pallas_gpu.coverage_problem`).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r} is invalid: must be one of {KERNELS}")
    if kernel == "xla":
        return "xla"
    platform = platform or default_platform()
    # "auto" resolved for a platform the process does not run on (the CPU lowering a cuda
    # branch) is not worth a warning.
    say = log_once if kernel != "auto" or platform == default_platform() else (lambda _: None)
    if kernel == "cpu_fused" or (kernel == "auto" and platform == "cpu"):
        problem = coverage_problem(num_maps)
        if problem is not None:
            say(f"kernel={kernel!r}: the fused CPU kernel does not cover {problem}; XLA runs")
            return "xla"
        return "cpu_fused" if available() else "xla"  # available() logs why not, once
    if kernel == "gpu_pallas" or (kernel == "auto" and platform == "cuda"):
        problem = pallas_gpu.coverage_problem(num_maps, neuron_macs)
        if problem is not None:
            say(f"kernel={kernel!r}: the Pallas GPU kernel does not cover {problem}; XLA runs")
            return "xla"
        return "gpu_pallas"
    return "xla"


# The kernel's CPU-only guard: an identity on the kernel's input that lowers only into a module
# that can run on a CPU. An FFI call lowers for any platform (XLA looks its target up only when
# it compiles for the device), so without this a step forced onto the kernel (kernel="cpu_fused")
# would lower for a GPU or TPU and fail only there; with it, lowering for accelerators alone
# raises at once (tests/test_lowering.py). A module lowered for the CPU and accelerators
# together (a multi-platform export) lowers it: there "auto" puts the kernel in
# `platform_dependent`'s CPU branch, which runs on the CPU only.
_cpu_only = Primitive("elm_network_fused_kernel_cpu_only")
_cpu_only.def_impl(lambda x: x)
_cpu_only.def_abstract_eval(lambda x: x)
batching.primitive_batchers[_cpu_only] = lambda args, dims: (_cpu_only.bind(*args), dims[0])


def _cpu_only_lowering(ctx, x):
    platforms = tuple(ctx.module_context.platforms)
    if "cpu" not in platforms:
        raise NotImplementedError(
            f"the fused CPU kernel (elm_network_fused_kernel_cpu_only) cannot be lowered for "
            f"{', '.join(platforms)}: it runs on a CPU only; use kernel='auto' or 'xla' there"
        )
    return [x]


for _platform in ("cpu", "cuda", "rocm", "tpu"):
    mlir.register_lowering(_cpu_only, _cpu_only_lowering, platform=_platform)


def cpu_only(x: Array) -> Array:
    """``x`` unchanged, in a module that lowers only for a CPU (the guard above)."""
    return _cpu_only.bind(x)


def _ffi_forward(static, flat, e, b0, m0, y0):
    rest_size, chunk, sizes = static
    t, _, bp = e.shape
    n, d, _ = b0.shape
    m = m0.shape[1]
    chunks = -(-t // chunk)
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, b0.dtype)  # noqa: E731
    out = (sds(t, n, bp), sds(n, d, bp), sds(n, m, bp), sds(n, bp),
           sds(chunks, n, d, bp), sds(chunks, n, m, bp))  # fmt: skip
    call = jax.ffi.ffi_call(FORWARD_TARGET, out, vmap_method="broadcast_all")
    return call(
        *flat, _cpu_only.bind(e), b0, m0, y0, rest_size=np.int64(rest_size), chunk=np.int64(chunk),
        sizes=np.asarray(sizes, np.int64),
    )  # fmt: skip


# flat: (kappa_b, kappa_m, memory_gain, k_branch, k_memory, bias0, rest, w_y, b_y, w_syn) and
# the integer (source, branch): differentiable weights, then the wiring.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_scan(static, flat, wiring, e, b0, m0, y0):
    ys, b_out, m_out, y_out, _, _ = _ffi_forward(static, (*flat, *wiring), e, b0, m0, y0)
    return ys, b_out, m_out, y_out


def _fused_fwd(static, flat, wiring, e, b0, m0, y0):
    outs = _ffi_forward(static, (*flat, *wiring), e, b0, m0, y0)
    ys, b_out, m_out, y_out, ckpt_b, ckpt_m = outs
    return (ys, b_out, m_out, y_out), (flat, wiring, e, y0, ys, ckpt_b, ckpt_m)


def _fused_bwd(static, residuals, cotangents):
    rest_size, chunk, sizes = static
    flat, wiring, e, y0, ys, ckpt_b, ckpt_m = residuals
    g_ys, g_b, g_m, g_y = cotangents
    out = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (*flat, e, g_b, g_m, y0))
    call = jax.ffi.ffi_call(BACKWARD_TARGET, out, vmap_method="broadcast_all")
    grads = call(
        *flat, *wiring, _cpu_only.bind(e), y0, ys, ckpt_b, ckpt_m, g_ys, g_b, g_m, g_y,
        rest_size=np.int64(rest_size), chunk=np.int64(chunk), sizes=np.asarray(sizes, np.int64),
    )  # fmt: skip
    d_flat, (g_e, g_b0, g_m0, g_y0) = tuple(grads[: len(flat)]), grads[len(flat) :]
    return d_flat, (None, None), g_e, g_b0, g_m0, g_y0


_fused_scan.defvjp(_fused_fwd, _fused_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def decode(ys: Array, w: Array, b: Array, batch: int) -> Array:
    """logits [batch, t, o] = y_t W + b, read from the kernel's outputs ys [t, n, bp] (bp: the
    batch rounded up to 8) without transposing them; W [n, o], b [o], all of ys's dtype. Its
    reverse skips the steps whose cotangent is zero in all 8 sequences of a tile (a loss on the
    last step pays for one step). Raises when the kernel is not built."""
    if not available():
        raise RuntimeError(f"the fused CPU kernel is unavailable: {unavailable_reason()}")
    out = jax.ShapeDtypeStruct((batch, ys.shape[-3], w.shape[-1]), w.dtype)
    call = jax.ffi.ffi_call(DECODE_TARGET, out, vmap_method="broadcast_all")
    return call(_cpu_only.bind(ys), w, b)


def _decode_fwd(ys, w, b, batch):
    return decode(ys, w, b, batch), (ys, w)


def _decode_bwd(batch, residuals, g):
    ys, w = residuals
    t, n, bp = ys.shape[-3:]
    o = w.shape[-1]
    sds = lambda *shape: jax.ShapeDtypeStruct(shape, w.dtype)  # noqa: E731
    blocks = min(t, 16)  # tasks per group: blocks of steps (the kernel reads it from the shape)
    call = jax.ffi.ffi_call(
        DECODE_GRAD_TARGET, (sds(t, n, bp), sds(blocks, (n + 1) * o)), vmap_method="broadcast_all"
    )
    d_ys, sums = call(ys, w, jnp.asarray(g, w.dtype))
    sums = sums.sum(0)
    return d_ys, sums[: n * o].reshape(n, o), sums[n * o :]


decode.defvjp(_decode_fwd, _decode_bwd)

# The widest decoder `run_fused` runs on the kernel's layout (`decode`). Its loops keep a
# [n, o] block of 8-lane gradient sums per tile, which for wide outputs (next-byte logits, 256)
# and a cotangent at every step costs more than XLA's products; those decode on XLA.
DECODE_MAX_OUTPUTS = 32


def run_fused(
    weights: NetworkWeights,
    carry: Mapping[str, Array],
    e: Array,
    w_s: Array,
    source: Array,
    branch: Array,
    *,
    remat_chunk: int = 10,
    readout: tuple[Array, Array] | None = None,
) -> tuple[dict[str, Array], Array]:
    """The ELM network over time on the fused kernel: ``e [b, t, i] -> (carry, y [b, t, n])``.

    ``weights``: neuron-major, as `elm_jax.network.dynamics.run_network` reads them (``rec`` is
    not read: the synapses come as ``w_s [n, k]`` (rectified weights), ``source [n, k]`` (index
    into the pool ``[e_t ; y_{t-1}]``) and ``branch [n, k]``); ``carry`` batch-major
    (`elm_jax.network.dynamics.zero_carry`). ``remat_chunk``: steps between the states the
    forward keeps for the backward (0: only the first state). ``readout`` = (W [n, o], b [o]):
    returns the per-step decoder's logits ``y W + b [b, t, o]`` in y's place, read from the
    kernel's layout by `decode` when o <= `DECODE_MAX_OUTPUTS`.
    """
    if not available():
        raise RuntimeError(f"the fused CPU kernel is unavailable: {unavailable_reason()}")
    b, t, _ = e.shape
    n = w_s.shape[0]
    dtype = jnp.result_type(weights.kappa_b)
    bp = -(-b // LANES) * LANES

    def batch_last(a: Array, perm: tuple[int, ...]) -> Array:
        a = jnp.transpose(jnp.asarray(a, dtype), perm)
        return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, bp - b)]) if bp != b else a

    e_k = batch_last(e, (1, 2, 0))  # [t, i, bp]
    b0 = batch_last(carry["branch"], (1, 2, 0))  # [b, n, d] -> [n, d, bp]
    m0 = batch_last(carry["memory"], (1, 2, 0))
    y0 = batch_last(carry["output"], (1, 0))
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    parts = [cast(p).reshape(n, -1) for kernel, bias in weights.layers for p in (kernel, bias)]
    rest_size = sum(p.shape[1] for p in parts)
    rest = jnp.concatenate(parts, axis=1) if parts else jnp.zeros((n, 1), dtype)
    sizes = (weights.k_branch.shape[-1], *(kernel.shape[-1] for kernel, _ in weights.layers))
    flat = (
        cast(weights.kappa_b)[:, 0], cast(weights.kappa_m)[:, 0], cast(weights.memory_gain)[:, 0],
        cast(weights.k_branch), cast(weights.k_memory), cast(weights.bias0)[:, 0], rest,
        cast(weights.w_y)[:, 0], cast(weights.b_y)[:, 0], cast(w_s),
    )  # fmt: skip
    wiring = (jnp.asarray(source, jnp.int32), jnp.asarray(branch, jnp.int32))
    chunk = min(remat_chunk, t) if remat_chunk > 0 else t
    static = (rest_size, max(chunk, 1), sizes)
    ys, b_out, m_out, y_out = _fused_scan(static, flat, wiring, e_k, b0, m0, y0)
    state = {
        "branch": jnp.transpose(b_out[..., :b], (2, 0, 1)),
        "memory": jnp.transpose(m_out[..., :b], (2, 0, 1)),
        "output": jnp.transpose(y_out[..., :b], (1, 0)),
    }
    if readout is not None and readout[0].shape[-1] <= DECODE_MAX_OUTPUTS:
        return state, decode(ys, cast(readout[0]), cast(readout[1]), b)
    y = jnp.transpose(ys[..., :b], (2, 0, 1))
    if readout is None:
        return state, y
    return state, y @ readout[0] + readout[1]
