"""The single ELM neuron's fused CPU kernel (`elm_jax.neuron.fused`) equals its XLA path.

Compared, in values and every gradient: `fused.memory_scan` against `dynamics.memory_scan` (the
memory recurrence alone, over memory sizes, MLP depths, activations, batch sizes that are and are
not multiples of the 8-sequence tile, T = 1 and T = 37), and the whole neuron with
kernel="cpu_fused" against kernel="xla" (`dynamics.apply` and the Flax `ELMNeuron`, jitted and
vmapped over seeds); the XLA path is itself tested against the step loop and the published
reference in tests/test_neuron.py. Every comparison first checks, in the lowered CPU module, that
the kernel's FFI targets are really called (and that the XLA path calls neither), so no test
passes by falling back.

Tolerances are float32's, relative to each array's largest magnitude: 2e-5 for values, 2e-4 for
gradients (sums over up to T * batch terms in another order, as in tests/test_fused.py); float64
is checked to 1e-9. A configuration the kernel does not cover (bfloat16 products) runs the XLA
path, bit for bit, and says why in one logged line. The kernel lowers only for a CPU: forced onto
cuda it raises, while kernel="auto" lowers for cuda on XLA (nothing is compiled for cuda here,
as in tests/test_lowering.py).
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from elm_jax.network import fused as network_fused
from elm_jax.network import fused_build
from elm_jax.neuron import dynamics, fused
from elm_jax.neuron.config import NeuronConfig
from elm_jax.neuron.layers import ELMNeuron

# Skipped only on a machine without a C++ compiler; with one, a failed build fails these tests.
pytestmark = pytest.mark.skipif(
    fused_build._compiler() is None, reason="no C++ compiler: the fused kernel cannot be built"
)

TARGETS = (network_fused.NEURON_FORWARD_TARGET, network_fused.NEURON_BACKWARD_TARGET)
VALUE_RTOL, GRAD_RTOL, F64_RTOL = 2e-5, 2e-4, 1e-9


def test_the_kernel_builds_and_registers_where_there_is_a_compiler():
    assert network_fused.available(), network_fused.unavailable_reason()


def assert_close(have, want, rtol: float, what: str) -> None:
    """max |have - want| <= rtol * max |want| (an all-zero `want` must be matched to rtol)."""
    have, want = np.asarray(have, np.float64), np.asarray(want, np.float64)
    assert have.shape == want.shape, f"{what}: shape {have.shape} != {want.shape}"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    err = float(np.max(np.abs(have - want))) / (scale or 1.0) if want.size else 0.0
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:g}"


def assert_trees_close(have, want, rtol: float, what: str) -> None:
    flat_want, _ = jax.tree_util.tree_flatten_with_path(want)
    flat_have = jax.tree_util.tree_leaves(have)
    assert jax.tree_util.tree_structure(have) == jax.tree_util.tree_structure(want), what
    for (path, w), h in zip(flat_want, flat_have, strict=True):
        assert_close(h, w, rtol, f"{what}{jax.tree_util.keystr(path)}")


def run_checked(fn, args: tuple, *, kernel: bool):
    """fn jitted and run on args, after checking that its CPU module calls the kernel's forward
    and backward targets (kernel=True) or neither (kernel=False)."""
    lowered = jax.jit(fn).lower(*args)
    text = lowered.as_text()
    for target in TARGETS:
        assert (target in text) == kernel, f"{target} {'missing from' if kernel else 'in'} module"
    return lowered.compile()(*args)


# ----------------------------------------------------------------------------- memory_scan alone


def memory_case(m: int, extra: int, batch: int, steps: int, seed: int, dtype=jnp.float32):
    """Random (pre, mem_kernel, layers, kappa, gain) and a cotangent of memory [b, t, m]; hidden
    width 2m (the first layer's output is m wide when there are no further layers)."""
    rng = np.random.default_rng(seed)
    arr = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    widths = [2 * m] * extra + [m]
    pre = arr(rng.standard_normal((batch, steps, widths[0])))
    mem_kernel = arr(rng.standard_normal((m, widths[0])) / np.sqrt(m))
    layers = tuple(
        (arr(rng.standard_normal((a, b)) / np.sqrt(a)), arr(0.3 * rng.standard_normal(b)))
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    )
    kappa = arr(rng.uniform(0.5, 0.99, m))
    gain = arr(rng.uniform(0.05, 0.6, m))
    cotangent = arr(rng.standard_normal((batch, steps, m)))
    return (pre, mem_kernel, layers, kappa, gain), cotangent


# (memory m, layers after the first, activation, batch, T): every value of every option at least
# once; batches 1, 5, 33 are not multiples of the kernel's 8-sequence tile.
MEMORY_CASES = [
    (1, 0, "relu", 1, 37),
    (1, 1, "silu", 5, 1),
    (1, 2, "silu", 33, 37),
    (3, 0, "relu", 33, 1),
    (3, 1, "relu", 5, 37),
    (3, 2, "silu", 8, 37),
    (8, 0, "silu", 33, 37),
    (8, 1, "relu", 1, 37),
    (8, 2, "relu", 8, 1),
    (24, 0, "silu", 5, 37),
    (24, 1, "silu", 33, 37),
    (24, 2, "relu", 1, 37),
]


@pytest.mark.parametrize("m,extra,activation,batch,steps", MEMORY_CASES)
def test_memory_scan_equals_xla_in_values_and_every_gradient(m, extra, activation, batch, steps):
    args, cotangent = memory_case(m, extra, batch, steps, seed=m * 100 + extra * 10 + batch)

    def vjp_of(scan):
        def run(args, cotangent):
            memory, pullback = jax.vjp(lambda *a: scan(*a), *args)
            return memory, pullback(cotangent)

        return run

    xla = lambda *a: dynamics.memory_scan(*a, activation, 1)  # noqa: E731
    kernel = lambda *a: fused.memory_scan(*a, activation)  # noqa: E731
    want, want_grads = run_checked(vjp_of(xla), (args, cotangent), kernel=False)
    have, have_grads = run_checked(vjp_of(kernel), (args, cotangent), kernel=True)
    assert have.dtype == want.dtype == jnp.float32
    assert_close(have, want, VALUE_RTOL, "memory")
    names = ("pre", "mem_kernel", "layers", "kappa", "gain")
    for name, h, w in zip(names, have_grads, want_grads, strict=True):
        assert_trees_close(h, w, GRAD_RTOL, f"d {name}")


@pytest.mark.parametrize(
    "density,shape", [(0.05, (3, 41, 70)), (1.0, (2, 9, 13)), (0.0, (1, 5, 7))]
)
def test_sparse_projection_equals_the_dense_product_in_values_and_gradients(density, shape):
    """`fused.project` (work on x's nonzeros only) against x @ W: mostly-zero, dense and all-zero
    inputs, the gradients of both arguments, and vmap over a leading axis of W alone."""
    rng = np.random.default_rng(len(shape) + int(density * 100))
    mask = rng.random(shape) < density
    x = jnp.asarray(mask * rng.standard_normal(shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal((shape[-1], 11)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((*shape[:-1], 11)), jnp.float32)

    def vjp_of(product):
        def run(x, w):
            out, pullback = jax.vjp(product, x, w)
            return out, pullback(g)

        return jax.jit(run)

    want, want_grads = vjp_of(lambda x, w: x @ w)(x, w)
    have, have_grads = vjp_of(fused.project)(x, w)
    assert_close(have, want, VALUE_RTOL, "x W")
    assert_close(have_grads[0], want_grads[0], GRAD_RTOL, "d x")
    assert_close(have_grads[1], want_grads[1], GRAD_RTOL, "d W")
    ws = jnp.stack([w, -2.0 * w])
    mapped = jax.jit(jax.vmap(fused.project, in_axes=(None, 0)))(x, ws)
    assert_close(mapped, jnp.stack([x @ w, x @ (-2.0 * w)]), VALUE_RTOL, "vmapped x W")


@pytest.mark.parametrize(
    "cotangent,batch,m,o,dtype",
    [
        ("dense", 13, 7, 5, jnp.float32),
        ("last step", 16, 16, 10, jnp.float32),
        ("one tile", 13, 3, 1, jnp.float32),
        ("zero", 5, 4, 9, jnp.float32),
        ("last step", 13, 6, 4, jnp.float64),
    ],
)
def test_readout_on_the_kernels_layout_equals_the_product_in_values_and_gradients(
    cotangent, batch, m, o, dtype
):
    """`fused._readout` (y = m W + b read from the kernel's [tiles, t, m, 8] layout; its reverse
    skips the steps whose cotangent is zero in a whole tile) against the plain product: a dense
    cotangent, one on the last step only (classification), a sparse one in one tile only (zero
    in some of a step's lanes), and none; a partly filled last tile; then vmapped over W and b."""
    with jax.enable_x64(dtype == jnp.float64):
        check_readout(cotangent, batch, m, o, dtype)


def check_readout(cotangent, batch, m, o, dtype):
    rng = np.random.default_rng(batch + m + o)
    tiles, steps = -(-batch // fused.LANES), 11
    arr = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    memory_k = arr(rng.standard_normal((tiles, steps, m, fused.LANES)))
    w, b = arr(rng.standard_normal((m, o))), arr(rng.standard_normal(o))
    g = rng.standard_normal((batch, steps, o))
    if cotangent == "last step":
        g[:, :-1] = 0.0
    elif cotangent == "one tile":
        g[fused.LANES :] = 0.0
        g[:, ::2] = 0.0
        g *= rng.random(g.shape) < 0.3  # some steps zero in some lanes only
    elif cotangent == "zero":
        g[:] = 0.0
    g = arr(g)

    def plain(memory_k, w, b):
        memory = jnp.transpose(memory_k, (0, 3, 1, 2)).reshape(tiles * fused.LANES, steps, m)
        return memory[:batch] @ w + b

    def vjp_of(readout):
        def run(memory_k, w, b):
            out, pullback = jax.vjp(readout, memory_k, w, b)
            return out, pullback(g)

        return jax.jit(run)

    kernel = lambda memory_k, w, b: fused._readout(memory_k, w, b, batch)  # noqa: E731
    rtol = (VALUE_RTOL, GRAD_RTOL) if dtype == jnp.float32 else (F64_RTOL, F64_RTOL)
    want, want_grads = vjp_of(plain)(memory_k, w, b)
    text = jax.jit(vjp_of(kernel)).lower(memory_k, w, b).as_text()
    for target in (network_fused.READOUT_TARGET, network_fused.READOUT_GRAD_TARGET):
        assert target in text, f"{target} missing from the module"
    have, have_grads = vjp_of(kernel)(memory_k, w, b)
    assert have.dtype == want.dtype == dtype
    assert_close(have, want, rtol[0], "y")
    for name, h, wg in zip(("d memory", "d W", "d b"), have_grads, want_grads, strict=True):
        assert_close(h, wg, rtol[1], name)
    ws, bs = jnp.stack([w, -2.0 * w]), jnp.stack([b, 3.0 * b])
    mapped = jax.jit(jax.vmap(kernel, in_axes=(None, 0, 0)))(memory_k, ws, bs)
    stacked = jnp.stack([plain(memory_k, w, b), plain(memory_k, -2.0 * w, 3.0 * b)])
    assert_close(mapped, stacked, rtol[0], "vmapped y")


@pytest.mark.parametrize("extra,activation,batch,steps", [(1, "relu", 5, 37), (0, "silu", 9, 1)])
def test_traced_memory_scan_equals_the_trace_then_the_xla_scan(extra, activation, batch, steps):
    """pre = trace(u) + bias0 with the trace inside the kernel, against `linear_trace` and
    `dynamics.memory_scan`: values and the gradients of u, kappa_p, bias0 and every weight."""
    (pre, mem_kernel, layers, kappa, gain), cotangent = memory_case(
        6, extra, batch, steps, seed=batch + steps
    )
    rng = np.random.default_rng(7)
    h0 = pre.shape[-1]
    kappa_p = jnp.asarray(rng.uniform(0.3, 0.95, h0), jnp.float32)
    bias0 = jnp.asarray(rng.standard_normal(h0), jnp.float32)
    args = (pre, kappa_p, bias0, mem_kernel, layers, kappa, gain)

    def xla(u, kp, b0, *rest):
        return dynamics.memory_scan(dynamics.linear_trace(u, kp) + b0, *rest, activation, 1)

    def kernel(*a):
        return fused.traced_memory_scan(*a, activation)

    def vjp_of(scan):
        def run(args):
            memory, pullback = jax.vjp(scan, *args)
            return memory, pullback(cotangent)

        return run

    want, want_grads = run_checked(vjp_of(xla), (args,), kernel=False)
    have, have_grads = run_checked(vjp_of(kernel), (args,), kernel=True)
    assert_close(have, want, VALUE_RTOL, "memory")
    names = ("u", "kappa_p", "bias0", "mem_kernel", "layers", "kappa", "gain")
    for name, h, w in zip(names, have_grads, want_grads, strict=True):
        assert_trees_close(h, w, GRAD_RTOL, f"d {name}")


def test_each_branch_decays_gradient_on_the_shared_decay_path():
    """With every branch decaying alike the kernel path traces x W_in once; the gradient of each
    branch's own decay (tau_b, a constant, differentiated here) still equals the XLA path's."""
    cfg = NeuronConfig(num_input=30, num_output=3, num_memory=4)
    x = jnp.asarray(np.random.default_rng(3).random((3, 17, 30)) < 0.2, jnp.float32)
    results = {}
    for kernel in ("xla", "cpu_fused"):
        module = ELMNeuron(cfg, kernel=kernel)
        variables = module.init(jax.random.key(0), x)

        def loss(constants, module=module, variables=variables):
            y = module.apply({"params": variables["params"], "constants": constants}, x)
            return jnp.sum(y * y)

        results[kernel] = jax.jit(jax.grad(loss))(variables["constants"])
    assert float(jnp.max(jnp.abs(results["xla"]["tau_b"]))) > 0
    assert_trees_close(results["cpu_fused"], results["xla"], GRAD_RTOL, "d constants")


# ----------------------------------------------------------------------------- the whole neuron

NEURON_CASES = {
    # Branch traces that all decay alike (v2; v1 with one tau_s): on the kernel, x W_in from
    # x's nonzeros (`fused.project`) and the trace inside the kernel's loop
    # (`fused.traced_memory_scan`). On XLA, a narrow input without routing (num_input <= 128)
    # runs its trace inside the memory loop (`input_memory_scan`), a wide one does not.
    "v2_narrow_no_routing": dict(num_input=12, num_output=2, num_memory=5, num_branches=4,
                                 synapses_per_branch=3),
    "v2_wide_no_routing_silu": dict(num_input=300, num_output=3, num_memory=6, num_branches=30,
                                    synapses_per_branch=10, mlp_activation="silu"),
    "v2_random_routing_two_layers": dict(num_input=20, num_output=2, num_memory=7, num_branches=5,
                                         synapses_per_branch=4, routing="random_routing",
                                         mlp_num_layers=2, learn_memory_tau=True),
    "v1_neuronio_routing_silu_two_layers": dict(
        num_input=16, num_output=2, num_memory=4, num_branches=4, synapses_per_branch=5,
        routing="neuronio_routing", neuron_version="v1", mlp_num_layers=2, mlp_hidden_size=9,
        mlp_activation="silu", delta_t=2.0, learn_memory_tau=True,
    ),
    # Branch traces with different time constants (equal within each branch): the trace runs
    # before the kernel (`fused.memory_scan`).
    "v1_branchwise_tau_s": dict(
        num_input=15, num_output=3, num_memory=6, num_branches=4, synapses_per_branch=5,
        routing="random_routing", neuron_version="v1",
        tau_s_value=tuple(np.repeat([2.0, 4.0, 8.0, 16.0], 5)),
    ),
    # One trace per synapse (v1, unequal tau_s inside a branch), no hidden layer.
    "v1_per_synapse_tau_s_no_hidden_layer": dict(
        num_input=10, num_output=2, num_memory=3, num_branches=4, synapses_per_branch=3,
        routing="random_routing", neuron_version="v1", mlp_num_layers=0,
        tau_s_value=tuple(np.linspace(1.5, 9.0, 12)),
    ),
}  # fmt: skip


@functools.cache
def initial_variables(cfg: NeuronConfig, dtype_name: str):
    """The module's initial variables (one compiled `init` per configuration and dtype; only
    the starting point of `neuron_setup`'s perturbation, so compiled without XLA's slower
    optimisations)."""
    dtype = jnp.dtype(dtype_name)
    init = ELMNeuron(cfg, param_dtype=dtype, kernel="xla").init
    args = (jax.random.key(0), jnp.zeros((1, 1, cfg.num_input), dtype))
    options = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(init).lower(*args).compile(compiler_options=options)(*args)


def neuron_setup(
    cfg: NeuronConfig, batch: int, steps: int, seed: int, dtype=jnp.float32, density=0.25
):
    """(variables, x): the module's initial variables with every parameter perturbed by the
    seed (so the synaptic weights differ, some negative) and a random non-negative input,
    nonzero with probability `density` (mostly zeros like spike trains, or dense)."""
    rng = np.random.default_rng(seed)
    shape = (batch, steps, cfg.num_input)
    x = rng.uniform(0.0, 2.0, shape) * (rng.random(shape) < density)
    x = jnp.asarray(x, dtype)
    variables = initial_variables(cfg, jnp.dtype(dtype).name)
    params = jax.tree_util.tree_map(
        lambda p: jnp.asarray(np.asarray(p) + 0.4 * rng.standard_normal(p.shape), dtype),
        variables["params"],
    )
    return {**variables, "params": params}, x


def neuron_loss(cfg: NeuronConfig, kernel: str, **kw):
    """A scalar reading y, branch and memory at every step; aux: (y, branch, memory)."""

    def loss(params, constants, x):
        y, branch, memory = dynamics.apply({**params, **constants}, cfg, x, kernel=kernel, **kw)
        total = (
            jnp.sum(jnp.sin(y) * jnp.arange(1, y.shape[-1] + 1, dtype=y.dtype))
            + jnp.sum(jnp.cos(branch))
            + jnp.sum(memory**2)
        )
        return total, (y, branch, memory)

    return loss


def value_and_grads(cfg, kernel, variables, x, **kw):
    """((loss, (y, branch, memory)), (d params, d x)), jitted, kernel use checked."""
    fn = jax.value_and_grad(neuron_loss(cfg, kernel, **kw), argnums=(0, 2), has_aux=True)
    return run_checked(
        fn, (variables["params"], variables["constants"], x), kernel=kernel == "cpu_fused"
    )


@pytest.mark.parametrize("name", list(NEURON_CASES))
def test_neuron_on_the_kernel_equals_xla_in_outputs_and_every_gradient(name):
    cfg = NeuronConfig(**NEURON_CASES[name])
    density = 1.0 if name == "v2_narrow_no_routing" else 0.25
    variables, x = neuron_setup(cfg, batch=5, steps=23, seed=len(name), density=density)
    (loss_x, outs_x), grads_x = value_and_grads(cfg, "xla", variables, x)
    (loss_k, outs_k), grads_k = value_and_grads(cfg, "cpu_fused", variables, x)
    for what, have, want in zip(("y", "branch", "memory"), outs_k, outs_x, strict=True):
        assert_close(have, want, VALUE_RTOL, what)
    np.testing.assert_allclose(float(loss_k), float(loss_x), rtol=VALUE_RTOL)
    assert_trees_close(grads_k[0], grads_x[0], GRAD_RTOL, "d params")
    assert_close(grads_k[1], grads_x[1], GRAD_RTOL, "d x")
    assert len(jax.tree_util.tree_leaves(grads_k[0])) == len(
        jax.tree_util.tree_leaves(variables["params"])
    )


def test_flax_module_on_the_kernel_equals_xla_under_jit():
    cfg = NeuronConfig(**NEURON_CASES["v2_random_routing_two_layers"])
    variables, x = neuron_setup(cfg, batch=9, steps=17, seed=11)
    outs = {}
    for kernel in ("xla", "cpu_fused"):
        module = ELMNeuron(cfg, kernel=kernel)
        apply = lambda v, x, module=module: module.apply(v, x, return_traces=True)  # noqa: E731
        text = jax.jit(apply).lower(variables, x).as_text()
        assert (network_fused.NEURON_FORWARD_TARGET in text) == (kernel == "cpu_fused")
        outs[kernel] = jax.jit(apply)(variables, x)
    (y_k, tr_k), (y_x, tr_x) = outs["cpu_fused"], outs["xla"]
    assert_close(y_k, y_x, VALUE_RTOL, "y")
    assert_close(tr_k["branch"], tr_x["branch"], VALUE_RTOL, "branch")
    assert_close(tr_k["memory"], tr_x["memory"], VALUE_RTOL, "memory")


@pytest.mark.parametrize("x_axis", [0, None], ids=["per_seed_input", "shared_input"])
def test_kernel_under_vmap_over_seeds_equals_each_seeds_xla_run(x_axis):
    """Two seeds' parameters stacked on a leading axis (and the input with them, or shared):
    each seed's values and gradients equal its own unbatched XLA run."""
    cfg = NeuronConfig(**NEURON_CASES["v2_random_routing_two_layers"])
    setups = [neuron_setup(cfg, batch=5, steps=13, seed=s) for s in (3, 4)]
    stack = lambda *xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    variables = stack(*[v for v, _ in setups])
    x = jnp.stack([x for _, x in setups]) if x_axis == 0 else setups[0][1]
    assert not np.array_equal(variables["params"]["mlp"]["dense_0"]["kernel"][0],
                              variables["params"]["mlp"]["dense_0"]["kernel"][1])  # fmt: skip
    fn = jax.vmap(
        jax.value_and_grad(neuron_loss(cfg, "cpu_fused"), argnums=(0, 2), has_aux=True),
        in_axes=(0, 0, x_axis),
    )
    (_, outs), grads = run_checked(fn, (variables["params"], variables["constants"], x),
                                   kernel=True)  # fmt: skip
    reference = jax.jit(jax.value_and_grad(neuron_loss(cfg, "xla"), argnums=(0, 2), has_aux=True))
    for s in range(2):
        pick = lambda tree, s=s: jax.tree_util.tree_map(lambda a: a[s], tree)  # noqa: E731
        v_s, x_s = pick(variables), x[s] if x_axis == 0 else x
        (_, want_outs), want_grads = reference(v_s["params"], v_s["constants"], x_s)
        for what, have, want in zip(("y", "branch", "memory"), pick(outs), want_outs,
                                    strict=True):  # fmt: skip
            assert_close(have, want, VALUE_RTOL, f"seed {s}: {what}")
        assert_trees_close(pick(grads[0]), want_grads[0], GRAD_RTOL, f"seed {s}: d params")
        if x_axis == 0:
            assert_close(grads[1][s], want_grads[1], GRAD_RTOL, f"seed {s}: d x")


# ----------------------------------------------------------------------------- float64


@pytest.mark.parametrize("name", ["v2_narrow_no_routing", "v1_neuronio_routing_silu_two_layers"])
def test_float64_kernel_equals_xla_to_1e9(name):
    with jax.enable_x64(True):
        cfg = NeuronConfig(**NEURON_CASES[name])
        variables, x = neuron_setup(cfg, batch=3, steps=19, seed=7, dtype=jnp.float64)
        (_, outs_x), grads_x = value_and_grads(cfg, "xla", variables, x)
        (_, outs_k), grads_k = value_and_grads(cfg, "cpu_fused", variables, x)
        for what, have, want in zip(("y", "branch", "memory"), outs_k, outs_x, strict=True):
            assert have.dtype == jnp.float64, what
            assert_close(have, want, F64_RTOL, what)
        for leaf in jax.tree_util.tree_leaves(grads_k):
            assert leaf.dtype == jnp.float64
        assert_trees_close(grads_k[0], grads_x[0], F64_RTOL, "d params")
        assert_close(grads_k[1], grads_x[1], F64_RTOL, "d x")


@pytest.mark.parametrize("extra,activation", [(0, "relu"), (2, "silu")])
def test_float64_memory_scan_passes_check_grads(extra, activation):
    with jax.enable_x64(True):
        args, _ = memory_case(3, extra, batch=3, steps=6, seed=5, dtype=jnp.float64)
        f = lambda *a: fused.memory_scan(*a, activation)  # noqa: E731
        assert f(*args).dtype == jnp.float64
        check_grads(f, args, order=1, modes=["rev"], eps=1e-6)


# ----------------------------------------------------------------------------- fallback, names


def test_bfloat16_products_fall_back_to_xla_exactly_and_say_why(caplog):
    cfg = NeuronConfig(**NEURON_CASES["v2_random_routing_two_layers"])
    variables, x = neuron_setup(cfg, batch=4, steps=11, seed=2)
    outs = {}
    with caplog.at_level(logging.WARNING, logger="elm_jax.network.fused"):
        network_fused._logged.clear()
        for kernel in ("xla", "cpu_fused"):
            module = ELMNeuron(cfg, dtype=jnp.bfloat16, kernel=kernel)
            apply = lambda v, x, module=module: module.apply(v, x, return_traces=True)  # noqa: E731
            text = jax.jit(apply).lower(variables, x).as_text()
            assert network_fused.NEURON_FORWARD_TARGET not in text
            outs[kernel] = jax.jit(apply)(variables, x)
    messages = [r.message for r in caplog.records if "does not cover" in r.message]
    assert len(messages) == 1 and "bfloat16" in messages[0], caplog.text
    (y_k, tr_k), (y_x, tr_x) = outs["cpu_fused"], outs["xla"]
    assert y_k.dtype == jnp.bfloat16 and tr_k["memory"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(y_k, np.float32), np.asarray(y_x, np.float32))
    np.testing.assert_array_equal(np.asarray(tr_k["branch"]), np.asarray(tr_x["branch"]))
    np.testing.assert_array_equal(np.asarray(tr_k["memory"]), np.asarray(tr_x["memory"]))


def test_resolve_names_and_coverage(caplog):
    with pytest.raises(ValueError, match="must be one of") as info:
        fused.resolve("nonsense", None)
    for name in fused.KERNELS:
        assert repr(name) in str(info.value)
    f32, f64 = jnp.float32, jnp.float64
    assert fused.coverage_problem("relu", 3, f32, f32) is None
    assert fused.coverage_problem("silu", network_fused.MAX_MAPS, f64, f64) is None
    assert "affine maps" in fused.coverage_problem("relu", network_fused.MAX_MAPS + 1, f32, f32)
    assert "bfloat16" in fused.coverage_problem("relu", 2, jnp.bfloat16, f32)
    assert fused.resolve("xla", None) == "xla"
    assert fused.resolve("cpu_fused", None) == "cpu_fused"
    assert fused.resolve("auto", None, platform="cpu") == "cpu_fused"
    assert fused.resolve("auto", None, platform="cuda") == "xla"
    with caplog.at_level(logging.WARNING, logger="elm_jax.network.fused"):
        network_fused._logged.clear()
        assert fused.resolve("gpu_pallas", None) == "xla"
    assert any("no Pallas kernel" in r.message for r in caplog.records), caplog.text


# ----------------------------------------------------------------------------- lowering


def _abstract(tree):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def test_memory_scan_lowered_for_cuda_only_is_refused_naming_the_cpu():
    args, cotangent = memory_case(3, 1, batch=2, steps=5, seed=0)
    forward = lambda *a: fused.memory_scan(*a, "relu")  # noqa: E731

    def backward(args, cotangent):
        return jax.vjp(forward, *args)[1](cotangent)

    assert network_fused.NEURON_FORWARD_TARGET in (
        jax.jit(forward).trace(*_abstract(args)).lower(lowering_platforms=("cpu",)).as_text()
    )
    for fn, fn_args in ((forward, args), (backward, (args, cotangent))):
        traced = jax.jit(fn).trace(*_abstract(fn_args))
        with pytest.raises(NotImplementedError, match="CPU") as info:
            traced.lower(lowering_platforms=("cuda",))
        assert "cuda" in str(info.value)


def test_neuron_module_lowering_for_cuda_auto_runs_xla_forced_kernel_is_refused():
    cfg = NeuronConfig(**NEURON_CASES["v2_narrow_no_routing"])
    variables, x = neuron_setup(cfg, batch=2, steps=5, seed=0)
    abstract = (_abstract(variables), _abstract(x))

    def traced(kernel):
        module = ELMNeuron(cfg, kernel=kernel)

        def loss(params, constants, x):
            return jnp.sum(module.apply({"params": params, "constants": constants}, x) ** 2)

        fn = jax.value_and_grad(loss)
        return jax.jit(fn).trace(abstract[0]["params"], abstract[0]["constants"], abstract[1])

    with pytest.raises(NotImplementedError, match="CPU"):
        traced("cpu_fused").lower(lowering_platforms=("cuda",))
    auto = traced("auto")
    cuda_text = auto.lower(lowering_platforms=("cuda",)).as_text()
    for target in TARGETS:
        assert target not in cuda_text
    cpu_text = auto.lower(lowering_platforms=("cpu",)).as_text()
    for target in TARGETS:
        assert target in cpu_text
