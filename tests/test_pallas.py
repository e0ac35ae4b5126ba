"""The Pallas GPU kernel of the ELM network equals the XLA path (values and every gradient).

No GPU is needed: the kernel runs in Pallas's interpreter (`ELMNetwork(config, pallas_interpret=True)`),
which executes the same kernel code (loops, gathers, loads and stores of the program's blocks)
with XLA on the CPU; only the barriers between a program's threads are left out (the
interpreter runs each program's steps in order). tests/test_lowering.py checks that the kernel
lowers to Triton for cuda.

Compared: `NetworkConfig(kernel="gpu_pallas")` against `NetworkConfig(kernel="xla")` (itself tested
against the NumPy per-step loop and plain autodiff in tests/test_network.py) on random
parameters and branch time constants, inputs and initial state, with a loss that reads every
output and the final state (so the cotangents of y and of the final branch, memory and output
all flow back), jitted. The gradients are those of every weight the kernel reads (through the
parameters and tau_b: decays, gain, MLP, readout, synaptic weights), of the input and of the
initial state.
Tolerances are float32's: 2e-5 on values; each gradient to 2e-4 of its largest magnitude (sums
over up to T * batch terms in another order); the differences seen are about 1e-7. float64 is
checked against plain autodiff of the step to 1e-12. Interpret mode compiles slowly, so each
case combines several options and the shapes are small; every case prints its largest
differences.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.models import ModelConfig
from elm_jax.network import fused, pallas_gpu
from elm_jax.network.config import NetworkConfig
from elm_jax.network.layers import ELMNetwork
from elm_jax.ops import elm_macs_per_neuron
from sweeps import run as sweep_run

VALUE_TOL, GRAD_TOL = 2e-5, 2e-4


@pytest.fixture(autouse=True, scope="module")
def quick_compiles():
    """The interpreted kernel is a long XLA program; XLA's optimisations roughly double its
    compile time here and change nothing these tests check."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def _net(pallas_interpret: bool = False, **kw) -> ELMNetwork:
    base = dict(num_neurons=6, num_memory=3, synapses_per_neuron=8, external_dim=7)
    base.update(kw)
    return ELMNetwork(NetworkConfig(**base), pallas_interpret=pallas_interpret)


def _setup(net: ELMNetwork, batch: int, steps: int, seed: int = 0):
    """Random parameters (some synaptic weights negative), input and initial carry."""
    key = jax.random.PRNGKey(seed)
    e = jax.random.poisson(key, 0.7, (batch, steps, net.config.external_dim)).astype(jnp.float32)
    variables = net.init(key, e[:, :1])
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(
        lambda x: jnp.asarray(0.6 * rng.standard_normal(x.shape), jnp.float32),
        variables["params"],
    )
    n, m, d = net.config.num_neurons, net.config.num_memory, net.config.num_branches
    constants = {**variables["constants"], "tau_b": jnp.asarray(rng.uniform(2, 8, (n, d)))}
    carry = {
        "branch": jnp.asarray(rng.standard_normal((batch, n, d)), jnp.float32),
        "memory": jnp.asarray(rng.standard_normal((batch, n, m)), jnp.float32),
        "output": jnp.asarray(rng.standard_normal((batch, n)), jnp.float32),
    }
    return {**variables, "params": params, "constants": constants}, e, carry


def _split(variables):
    """(the weights differentiated: the parameters and the branch time constants tau_b, which
    are constants of the model but give the branch decay's gradient; the other variables)."""
    consts = {k: v for k, v in variables.items() if k != "params"}
    return {"params": variables["params"], "tau_b": consts["constants"]["tau_b"]}, consts


def _loss(net: ELMNetwork):
    """A loss of every output and the final state; the outputs come back as aux."""

    def loss(weights, consts, e, carry):
        constants = {**consts["constants"], "tau_b": weights["tau_b"]}
        variables = {**consts, "params": weights["params"], "constants": constants}
        y, out = net.apply(variables, e, carry)
        value = (
            jnp.sum(jnp.sin(y) * jnp.arange(1, y.shape[-1] + 1, dtype=y.dtype))
            + jnp.sum(jnp.cos(out["branch"]))
            + jnp.sum(out["memory"] ** 2)
            + 1.3 * jnp.sum(out["output"])
        )
        return value, (y, out)

    return loss


def _value_and_grad(net: ELMNetwork):
    return jax.value_and_grad(_loss(net), argnums=(0, 2, 3), has_aux=True)


def _check(have, want, label: str) -> None:
    """Values to VALUE_TOL; every gradient leaf to GRAD_TOL of its largest magnitude. Prints
    the largest absolute and relative differences."""
    (_, (y, out)), grads = have
    (_, (y_ref, out_ref)), grads_ref = want
    value_err = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in [(y, y_ref), *((out[k], out_ref[k]) for k in out_ref)]
    )
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=VALUE_TOL, atol=VALUE_TOL)
    for key, value in out_ref.items():
        np.testing.assert_allclose(
            np.asarray(out[key]), np.asarray(value), rtol=VALUE_TOL, atol=VALUE_TOL
        )
    flat_ref, _ = jax.tree_util.tree_flatten_with_path(grads_ref)
    flat = jax.tree_util.tree_leaves(grads)
    assert len(flat) == len(flat_ref)
    worst_abs = worst_rel = 0.0
    for (path, want_leaf), have_leaf in zip(flat_ref, flat, strict=True):
        scale = float(jnp.max(jnp.abs(want_leaf))) or 1.0
        err = float(jnp.max(jnp.abs(have_leaf - want_leaf)))
        worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, err / scale)
        assert err / scale <= GRAD_TOL, (
            f"{label} {jax.tree_util.keystr(path)}: relative error {err / scale:.2e} > {GRAD_TOL}"
        )
    print(
        f"\n{label}: values max abs diff {value_err:.2e}; gradients max abs diff "
        f"{worst_abs:.2e}, max diff relative to the leaf's largest magnitude {worst_rel:.2e}"
    )


def _compare(
    kw: dict, batch: int, steps: int, *, seed: int = 0, seeds: int = 0, interpret: bool = True
) -> None:
    """The kernel against the XLA path on one network, or with ``seeds`` > 0 under `jax.vmap`
    over that many seeds (parameters, wiring, input and state all batched; the grid gains a
    seed axis), each seed against its own unbatched XLA run."""
    ref_net = _net(kernel="xla", **kw)
    net = _net(kernel="gpu_pallas", pallas_interpret=interpret, **kw)
    label = f"{kw}, batch {batch}, T {steps}"
    if not seeds:
        variables, e, carry = _setup(ref_net, batch, steps, seed)
        weights, consts = _split(variables)
        want = jax.jit(_value_and_grad(ref_net))(weights, consts, e, carry)
        have = jax.jit(_value_and_grad(net))(weights, consts, e, carry)
        _check(have, want, label)
        return
    setups = [_setup(_net(wiring_seed=s, **kw), batch, steps, seed + s) for s in range(seeds)]
    stack = lambda *xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    variables = stack(*[v for v, _, _ in setups])
    e = jnp.stack([x for _, x, _ in setups])
    carry = stack(*[c for _, _, c in setups])
    weights, consts = _split(variables)
    sources = consts["constants"]["synapse_source"]
    assert not np.array_equal(sources[0], sources[1])
    have = jax.jit(jax.vmap(_value_and_grad(net)))(weights, consts, e, carry)
    want_one = jax.jit(_value_and_grad(ref_net))
    for s in range(seeds):
        pick = lambda tree, s=s: jax.tree_util.tree_map(lambda a: a[s], tree)  # noqa: E731
        want = want_one(pick(weights), pick(consts), e[s], pick(carry))
        _check(pick(have), want, f"{label}, seed {s} of {seeds} under vmap")


# (options, batch, steps, seeds under vmap). Each case combines options; together they cover
# d_m 1/3/8/24, 1 and 2 MLP layers, recurrence 0 / 0.5 / 1, repeated external and recurrent
# sources, batch 1/5/33 (one program; two programs of 32 with padding), T = 1, T not a multiple
# of the checkpoint interval and one chunk over the whole sequence, time constants in ms, and
# vmap over seeds with per-seed wiring. Narrow MLPs keep the interpreter quick.
CASES = {
    # half recurrent; T = 7 in checkpoint chunks of 3 (a shorter last chunk); two seeds
    "d_m 3, vmap over seeds": (dict(remat_chunk=3), 5, 7, 2),
    # all recurrent, each neuron reading some neurons twice; T = 37 in chunks of 10
    "d_m 1, all recurrent, batch 33": (
        dict(num_memory=1, num_neurons=4, recurrent_fraction=1.0), 33, 37, 0,
    ),
    "d_m 8, two hidden layers, no recurrence, one step": (
        dict(num_memory=8, mlp_num_layers=2, mlp_hidden_size=3, recurrent_fraction=0.0), 1, 1, 0,
    ),
    # 9 external synapses on 5 channels; three branches; milliseconds
    "d_m 24, repeated external sources, one chunk": (
        dict(num_memory=24, mlp_hidden_size=2, num_neurons=8, synapses_per_neuron=12,
             num_branches=3, external_dim=5, recurrent_fraction=0.25, delta_t=10.0,
             memory_tau_min=0.0, remat_chunk=0), 5, 12, 0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_pallas_kernel_equals_xla_path_in_values_and_every_gradient(case):
    kw, batch, steps, seeds = CASES[case]
    _compare(kw, batch=batch, steps=steps, seed=batch + steps, seeds=seeds)


def test_pallas_kernel_float64_equals_plain_autodiff_to_1e12():
    """`run_pallas` itself in double precision, against plain autodiff of the step: values and
    the gradient of every weight it takes (each `NetworkWeights` leaf, the synaptic weights),
    of the input and of the initial state, to 1e-12 (float32's tolerances above could hide a
    small error in the math; this could not). Two hidden layers, half the synapses recurrent."""
    from test_fused import _f64_case, _f64_loss, _f64_reference  # the CPU kernel's f64 case

    with jax.enable_x64(True):
        case = _f64_case(n=4, m=2, layers=2, batch=3, steps=7)

        def run(*args):
            return pallas_gpu.run_pallas(*args, remat_chunk=3, interpret=True)

        (out, y), (ref_out, ref_y) = jax.jit(run)(*case), _f64_reference(*case)
        assert y.dtype == jnp.float64
        for have, want in [(y, ref_y), *((out[k], ref_out[k]) for k in ref_out)]:
            np.testing.assert_allclose(np.asarray(have), np.asarray(want), rtol=1e-12, atol=1e-12)
        g = jax.jit(jax.grad(_f64_loss(run), argnums=(0, 1, 2, 3)))(*case)
        g_ref = jax.grad(_f64_loss(_f64_reference), argnums=(0, 1, 2, 3))(*case)
        leaves, leaves_ref = jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)
        assert len(leaves) == len(leaves_ref) == 17
        for have, want in zip(leaves, leaves_ref, strict=True):
            assert have.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(have), np.asarray(want), rtol=1e-12, atol=1e-12)
        worst = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves, leaves_ref, strict=True))
        print(f"\nfloat64: gradients max abs diff {worst:.2e}")


@pytest.mark.skipif(
    jax.default_backend() != "gpu",
    reason="no GPU: the compiled kernel runs on an NVIDIA GPU only (the interpreter checks it here)",
)
@pytest.mark.parametrize("case", ["d_m 3, vmap over seeds", "d_m 1, all recurrent, batch 33"])
def test_pallas_kernel_compiled_for_the_gpu_equals_xla_path(case):
    """On an NVIDIA GPU (``JAX_PLATFORMS=cuda pytest tests/test_pallas.py -k compiled``; the
    conftest picks the CPU otherwise): the Triton-compiled kernel against the XLA path, which
    runs its products in full float32 here (not TF32)."""
    kw, batch, steps, seeds = CASES[case]
    with jax.default_matmul_precision("highest"):
        _compare(kw, batch=batch, steps=steps, seed=batch + steps, seeds=seeds, interpret=False)


def test_forced_pallas_kernel_on_a_cpu_without_interpret_mode_fails_in_one_line():
    """kernel="gpu_pallas" runs on cuda only: on a CPU, without the interpreter, the step
    refuses to lower, naming the kernel, the platform and what to use instead."""
    net = _net(kernel="gpu_pallas")
    variables, e, carry = _setup(_net(kernel="xla"), 2, 3)
    with pytest.raises(NotImplementedError) as info:  # lowered for the CPU on any machine
        jax.jit(net.apply).trace(variables, e, carry).lower(lowering_platforms=("cpu",))
    message = str(info.value)
    assert "\n" not in message.strip(), message
    assert pallas_gpu.KERNEL_NAME in message and "cpu" in message, message
    assert "kernel='auto' or 'xla'" in message, message


def test_uncovered_configurations_take_the_xla_path_and_say_why(caplog):
    maps = pallas_gpu.MAX_MAPS + 1
    big = elm_macs_per_neuron(num_memory=64, synapses_per_neuron=0)
    assert big > pallas_gpu.MAX_NEURON_MACS
    with caplog.at_level(logging.WARNING, logger="elm_jax.network.fused"):
        fused._logged.clear()
        assert fused.resolve_kernel("gpu_pallas", maps) == "xla"
        assert fused.resolve_kernel("gpu_pallas", 2, neuron_macs=big) == "xla"
        assert fused.resolve_kernel("gpu_pallas", 2, neuron_macs=100) == "gpu_pallas"
        # "auto" on cuda, resolved from this CPU process: the same choice, without a warning
        assert fused.resolve_kernel("auto", 2, neuron_macs=big, platform="cuda") == "xla"
        assert fused.resolve_kernel("auto", 2, neuron_macs=100, platform="cuda") == "gpu_pallas"
        assert fused.resolve_kernel("auto", 2, platform="tpu") == "xla"
    messages = [r.message for r in caplog.records]
    assert any(f"Pallas GPU kernel does not cover an MLP of {maps} affine maps" in m
               for m in messages), messages  # fmt: skip
    assert any(f"{big} multiply-adds per neuron" in m for m in messages), messages
    assert len(messages) == 2, messages


def test_gpu_pallas_is_a_valid_model_kernel_and_sweep_kernel():
    assert "gpu_pallas" in fused.KERNELS
    assert ModelConfig(kernel="gpu_pallas").kernel == "gpu_pallas"
    with pytest.raises(ValueError, match="kernel='gpu' is invalid: must be one of"):
        ModelConfig(kernel="gpu")
    # sweeps.run --kernel offers exactly the model's kernels
    for kernel in fused.KERNELS:
        args = sweep_run.parse_args(["--sweep", "tiny", "--dir", "unused", "--kernel", kernel])
        assert args.kernel == kernel
