"""The fused CPU kernel of the ELM network equals the XLA path (values and every gradient).

Compared: `NetworkConfig(kernel="cpu_fused")` against `NetworkConfig(kernel="xla")` (itself tested
against the NumPy per-step loop and plain autodiff in tests/test_network.py) on random
parameters, inputs and initial state, with a loss that reads every output and the final state
(so the cotangents of y, of the final branch, memory and output all flow back). Tolerances are
float32's: relative 2e-4 of each leaf's largest magnitude for gradients (sums over up to
T * batch terms in a different order), 2e-5 for values; float64 is checked to 1e-9.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.network import fused, fused_build
from elm_jax.network.config import NetworkConfig
from elm_jax.network.dynamics import (
    external_branch_input,
    network_step,
    prepare_recurrent,
)
from elm_jax.network.layers import ELMNetwork
from elm_jax.network.scan import NetworkWeights
from elm_jax.network.wiring import make_wiring, num_recurrent_synapses

# Skipped only on a machine without a C++ compiler; with one, a failed build fails these tests.
pytestmark = pytest.mark.skipif(
    fused_build._compiler() is None, reason="no C++ compiler: the fused kernel cannot be built"
)


def test_the_kernel_builds_and_registers_where_there_is_a_compiler():
    assert fused.available(), fused.unavailable_reason()


def _net(**kw) -> ELMNetwork:
    base = dict(num_neurons=6, num_memory=3, synapses_per_neuron=8, external_dim=7)
    base.update(kw)
    return ELMNetwork(NetworkConfig(**base))


def _setup(net: ELMNetwork, batch: int, steps: int, seed: int = 0, dtype=jnp.float32):
    """Random parameters (some synaptic weights negative), input and initial carry."""
    key = jax.random.PRNGKey(seed)
    e = jax.random.poisson(key, 0.7, (batch, steps, net.config.external_dim)).astype(dtype)
    variables = net.init(key, e[:, :1])
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(
        lambda x: jnp.asarray(0.6 * rng.standard_normal(x.shape), dtype), variables["params"]
    )
    n, m, d = net.config.num_neurons, net.config.num_memory, net.config.num_branches
    carry = {
        "branch": jnp.asarray(rng.standard_normal((batch, n, d)), dtype),
        "memory": jnp.asarray(rng.standard_normal((batch, n, m)), dtype),
        "output": jnp.asarray(rng.standard_normal((batch, n)), dtype),
    }
    return {**variables, "params": params}, e, carry


def _loss(net: ELMNetwork):
    def loss(params, consts, e, carry):
        y, out = net.apply({"params": params, **consts}, e, carry)
        return (
            jnp.sum(jnp.sin(y) * jnp.arange(1, y.shape[-1] + 1, dtype=y.dtype))
            + jnp.sum(jnp.cos(out["branch"]))
            + jnp.sum(out["memory"] ** 2)
            + 1.3 * jnp.sum(out["output"])
        )

    return loss


def _compare(kw: dict, batch: int, steps: int, *, seed: int = 0, rtol: float = 2e-4):
    ref_net, net = _net(kernel="xla", **kw), _net(kernel="cpu_fused", **kw)
    variables, e, carry = _setup(net, batch, steps, seed)
    params = variables["params"]
    consts = {k: v for k, v in variables.items() if k != "params"}
    y_ref, c_ref = jax.jit(ref_net.apply)(variables, e, carry)
    y, c = jax.jit(net.apply)(variables, e, carry)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=2e-5, atol=2e-5)
    for key in c_ref:
        np.testing.assert_allclose(np.asarray(c[key]), np.asarray(c_ref[key]), rtol=2e-5, atol=2e-5)
    grad = lambda n: jax.jit(jax.grad(_loss(n), argnums=(0, 2, 3)))  # noqa: E731
    g_ref = grad(ref_net)(params, consts, e, carry)
    g = grad(net)(params, consts, e, carry)
    flat_ref, tree = jax.tree_util.tree_flatten_with_path(g_ref)
    flat = jax.tree_util.tree_leaves(g)
    assert len(flat) == len(flat_ref)
    for (path, want), have in zip(flat_ref, flat, strict=True):
        scale = float(jnp.max(jnp.abs(want))) or 1.0
        err = float(jnp.max(jnp.abs(have - want))) / scale
        assert err <= rtol, f"{jax.tree_util.keystr(path)}: relative error {err:.2e} > {rtol}"


@pytest.mark.parametrize(
    "kw",
    [
        dict(),  # half recurrent, d_m 3
        dict(num_memory=1, num_neurons=9),  # d_m 1
        dict(num_memory=8, synapses_per_neuron=12, num_branches=3),
        dict(num_memory=24, num_neurons=3, mlp_hidden_size=10),
        dict(mlp_num_layers=2),
        dict(mlp_num_layers=2, num_memory=5, mlp_hidden_size=7),
        dict(recurrent_fraction=0.0),  # no recurrence
        dict(recurrent_fraction=1.0, num_neurons=4),  # all recurrent, repeated sources
        dict(num_neurons=2, synapses_per_neuron=16, external_dim=14),  # repeated sources
        dict(delta_t=10.0, memory_tau_min=0.0, tau_b_value=5.0),  # time constants in ms
        dict(learn_memory_tau=False, lambda_value=3.0),
    ],
)
def test_fused_kernel_equals_xla_path_in_values_and_every_gradient(kw):
    _compare(kw, batch=5, steps=7)


@pytest.mark.parametrize(
    "batch,steps,chunk",
    [(1, 37, 10), (5, 1, 10), (8, 37, 0), (33, 12, 5), (8, 12, 5), (33, 37, 10)],
)
def test_fused_kernel_any_batch_and_length(batch, steps, chunk):
    """Batch sizes that are and are not multiples of the SIMD tile; T = 1, T not a multiple of
    the checkpoint interval, and one chunk over the whole sequence."""
    _compare(dict(remat_chunk=chunk), batch=batch, steps=steps, seed=batch + steps)


@pytest.mark.parametrize("connectivity", ["gather", "dense"])
def test_fused_kernel_equals_either_xla_connectivity(connectivity):
    _compare(dict(connectivity=connectivity, num_neurons=12), batch=3, steps=9)


def test_fused_kernel_under_vmap_over_seeds_with_per_seed_wiring():
    """Seeds as a vmapped axis of the parameters, the wiring constants and the batch: each
    seed's values and gradients equal its own unbatched XLA run."""
    seeds = 3
    net, ref_net = _net(kernel="cpu_fused"), _net(kernel="xla")
    setups = [_setup(_net(wiring_seed=s), 4, 9, seed=s) for s in range(seeds)]
    stack = lambda *xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    variables = stack(*[v for v, _, _ in setups])
    e = jnp.stack([x for _, x, _ in setups])
    carry = stack(*[c for _, _, c in setups])
    params = variables["params"]
    consts = {k: v for k, v in variables.items() if k != "params"}
    assert not np.array_equal(consts["constants"]["synapse_source"][0],
                              consts["constants"]["synapse_source"][1])  # fmt: skip
    fn = jax.jit(jax.vmap(jax.value_and_grad(_loss(net), argnums=(0, 2, 3))))
    values, grads = fn(params, consts, e, carry)
    for s in range(seeds):
        pick = lambda tree, s=s: jax.tree_util.tree_map(lambda a: a[s], tree)  # noqa: E731
        want_v, want_g = jax.value_and_grad(_loss(ref_net), argnums=(0, 2, 3))(
            pick(params), pick(consts), e[s], pick(carry)
        )
        np.testing.assert_allclose(float(values[s]), float(want_v), rtol=2e-5)
        for have, want in zip(jax.tree_util.tree_leaves(pick(grads)),
                              jax.tree_util.tree_leaves(want_g), strict=True):  # fmt: skip
            scale = float(jnp.max(jnp.abs(want))) or 1.0
            assert float(jnp.max(jnp.abs(have - want))) / scale <= 2e-4


def _f64_case(n=5, m=3, d=4, k=8, ext_dim=6, layers=2, batch=5, steps=13, seed=3):
    """Random float64 recurrence weights, carry, input and wiring (half the synapses recurrent)."""
    rng = np.random.default_rng(seed)
    r = lambda *shape: jnp.asarray(0.5 * rng.standard_normal(shape), jnp.float64)  # noqa: E731
    u = lambda *shape: jnp.asarray(rng.uniform(0.3, 0.95, shape), jnp.float64)  # noqa: E731
    h = 2 * m
    sizes = [h] * layers + [m]
    more = tuple((r(n, a, b), r(n, 1, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    weights = NetworkWeights(
        kappa_b=u(n, 1, d), kappa_m=u(n, 1, m), memory_gain=u(n, 1, m), k_branch=r(n, d, h),
        k_memory=r(n, m, h), bias0=r(n, 1, h), layers=more, w_y=r(n, 1, m), b_y=r(n, 1),
        rec=None,
    )  # fmt: skip
    wiring = make_wiring(num_neurons=n, synapses_per_neuron=k, num_branches=d,
                         external_dim=ext_dim, recurrent_fraction=0.5, seed=seed)  # fmt: skip
    carry = {"branch": r(batch, n, d), "memory": r(batch, n, m), "output": r(batch, n)}
    e, w_s = r(batch, steps, ext_dim), jnp.abs(r(n, k))
    return weights, carry, e, w_s, jnp.asarray(wiring.source), jnp.asarray(wiring.branch)


def _f64_reference(weights, carry, e, w_s, source, branch):
    """Plain autodiff of `network_step` over `lax.scan`, dense connectivity, in e's dtype."""
    n, k = w_s.shape
    d, ext_dim = weights.kappa_b.shape[-1], e.shape[-1]
    k_ext = k - num_recurrent_synapses(k, 0.5)
    ext = external_branch_input(e, w_s[:, :k_ext], source[:, :k_ext], branch[:, :k_ext], d, "dense")
    rec, _ = prepare_recurrent(w_s[:, k_ext:], source[:, k_ext:] - ext_dim, branch[:, k_ext:], n,
                               d, "dense")  # fmt: skip
    full = weights._replace(rec=rec)
    state = {key: jnp.swapaxes(v, 0, 1) for key, v in carry.items()}
    step = lambda c, x: network_step(full, c, x, src=None, mode="dense")  # noqa: E731
    state, ys = jax.lax.scan(step, state, ext)
    return {key: jnp.swapaxes(v, 0, 1) for key, v in state.items()}, jnp.transpose(ys, (2, 0, 1))


def _f64_loss(run):
    def loss(weights, carry, e, w_s, source, branch):
        out, y = run(weights, carry, e, w_s, source, branch)
        return (jnp.sum(jnp.sin(y)) + jnp.sum(jnp.cos(out["branch"])) + jnp.sum(out["memory"] ** 2)
                + 1.3 * jnp.sum(out["output"]))  # fmt: skip

    return loss


def test_fused_kernel_float64_equals_plain_autodiff_to_1e9():
    """The double-precision kernel: values and gradients (weights, carry, input, synaptic
    weights) equal plain autodiff of the step in float64 to 1e-9."""
    with jax.enable_x64(True):
        case = _f64_case()

        def fused_run(*args):
            return fused.run_fused(*args, remat_chunk=4)

        (out, y), (ref_out, ref_y) = fused_run(*case), _f64_reference(*case)
        assert y.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(y), np.asarray(ref_y), rtol=1e-9, atol=1e-9)
        for key, value in ref_out.items():
            np.testing.assert_allclose(
                np.asarray(out[key]), np.asarray(value), rtol=1e-9, atol=1e-9
            )
        g = jax.grad(_f64_loss(fused_run), argnums=(0, 1, 2, 3))(*case)
        g_ref = jax.grad(_f64_loss(_f64_reference), argnums=(0, 1, 2, 3))(*case)
        for have, want in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref),
                              strict=True):  # fmt: skip
            assert have.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(have), np.asarray(want), rtol=1e-9, atol=1e-9)


def test_fused_kernel_float64_gradients_pass_check_grads():
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        weights, carry, e, w_s, source, branch = _f64_case(n=4, m=2, layers=1, batch=3, steps=6)
        f = lambda w, c, x, ws: _f64_loss(  # noqa: E731
            lambda *a: fused.run_fused(*a, remat_chunk=4)
        )(w, c, x, ws, source, branch)
        check_grads(f, (weights, carry, e, w_s), order=1, modes=["rev"], eps=1e-6)


def test_uncovered_configuration_falls_back_to_xla_and_says_why(caplog):
    maps = fused.MAX_MAPS  # hidden layers: MAX_MAPS + 1 affine maps
    net = _net(kernel="cpu_fused", mlp_num_layers=maps)
    with caplog.at_level(logging.WARNING, logger="elm_jax.network.fused"):
        fused._logged.clear()
        assert fused.resolve_kernel("cpu_fused", maps + 1) == "xla"
    assert any("does not cover an MLP of 9 affine maps" in r.message for r in caplog.records)
    _compare(dict(mlp_num_layers=maps), batch=2, steps=3)  # the fallback's values are the XLA's
    assert net.config.kernel == "cpu_fused"


def test_kernel_name_is_checked():
    with pytest.raises(ValueError, match="kernel='fast' is invalid: must be one of"):
        fused.resolve_kernel("fast", 2)
