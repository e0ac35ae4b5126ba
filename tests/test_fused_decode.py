"""The per-step decoder read from the fused network kernel's layout equals the plain product.

`elm_jax.network.fused.decode` computes logits [b, t, o] = y_t W + b from the kernel's outputs
[t, n, bp] and skips, in its reverse, the steps whose cotangent is zero in a whole tile of 8
sequences. Compared with the plain product on the transposed outputs: values and the gradients of
y, W and b for a dense cotangent, one on the last step only (a classification loss), a sparse one
(zero in some of a step's sequences only) and none, batches that do and do not fill the last tile,
float32 and float64, and vmap over seeds. Then the whole network with a decoder handed in
(`ELMNetwork(..., readout=(W, b))`, as `TaskModel` does) on the kernel against the XLA path, and
`TaskModel`'s decoder variables against `nn.Dense`'s.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.models import DecoderParams, ModelConfig, build_model
from elm_jax.network import fused, fused_build
from elm_jax.network.config import NetworkConfig
from elm_jax.network.layers import ELMNetwork

pytestmark = pytest.mark.skipif(
    fused_build._compiler() is None, reason="no C++ compiler: the fused kernel cannot be built"
)

TARGETS = (fused.DECODE_TARGET, fused.DECODE_GRAD_TARGET)


def assert_close(have, want, rtol: float, what: str) -> None:
    """max |have - want| <= rtol * max |want| (an all-zero `want` must be matched to rtol)."""
    have, want = np.asarray(have, np.float64), np.asarray(want, np.float64)
    assert have.shape == want.shape, f"{what}: shape {have.shape} != {want.shape}"
    scale = float(np.max(np.abs(want))) or 1.0
    err = float(np.max(np.abs(have - want))) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:g}"


def cotangent_of(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    g = rng.standard_normal(shape)
    if kind == "last step":
        g[:, :-1] = 0.0
    elif kind == "sparse":
        g[:, ::2] = 0.0
        g *= rng.random(shape) < 0.3  # some steps zero in some sequences only
    elif kind == "zero":
        g[:] = 0.0
    return g


@pytest.mark.parametrize(
    "kind,batch,n,o,dtype",
    [
        ("dense", 13, 7, 5, jnp.float32),
        ("last step", 16, 30, 19, jnp.float32),
        ("sparse", 13, 4, 1, jnp.float32),
        ("zero", 3, 5, 6, jnp.float32),
        ("last step", 13, 6, 4, jnp.float64),
        ("dense", 8, 9, 3, jnp.float64),
    ],
)
def test_decode_on_the_kernels_layout_equals_the_product(kind, batch, n, o, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        check_decode(kind, batch, n, o, dtype)


def check_decode(kind, batch, n, o, dtype):
    assert fused.available(), fused.unavailable_reason()
    rng = np.random.default_rng(batch * n + o)
    steps, bp = 11, -(-batch // fused.LANES) * fused.LANES
    arr = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    ys = arr(rng.standard_normal((steps, n, bp)))
    w, b = arr(rng.standard_normal((n, o))), arr(rng.standard_normal(o))
    g = arr(cotangent_of(kind, (batch, steps, o), rng))

    def plain(ys, w, b):
        return jnp.transpose(ys[..., :batch], (2, 0, 1)) @ w + b

    def vjp_of(fn):
        def run(ys, w, b):
            out, pullback = jax.vjp(fn, ys, w, b)
            return out, pullback(g)

        return jax.jit(run)

    kernel = lambda ys, w, b: fused.decode(ys, w, b, batch)  # noqa: E731
    text = vjp_of(kernel).lower(ys, w, b).as_text()
    assert all(target in text for target in TARGETS), "the decoder's targets are not called"
    rtol = (2e-5, 2e-4) if dtype == jnp.float32 else (1e-9, 1e-9)
    want, want_grads = vjp_of(plain)(ys, w, b)
    have, have_grads = vjp_of(kernel)(ys, w, b)
    assert have.dtype == dtype
    assert_close(have, want, rtol[0], "logits")
    for name, h, wg in zip(("d ys", "d W", "d b"), have_grads, want_grads, strict=True):
        assert_close(h, wg, rtol[1], name)
    # Padded sequences get no cotangent.
    assert not np.any(np.asarray(have_grads[0])[..., batch:])
    seeds = jnp.stack([ys, 2.0 * ys]), jnp.stack([w, -w]), jnp.stack([b, 3.0 * b])
    mapped = jax.jit(jax.vmap(kernel))(*seeds)
    want = jnp.stack([plain(ys, w, b), plain(2.0 * ys, -w, 3.0 * b)])
    assert_close(mapped, want, rtol[0], "vmapped logits")


def _network(kernel: str, **kw) -> ELMNetwork:
    base = dict(num_neurons=9, num_memory=2, synapses_per_neuron=8, external_dim=7, kernel=kernel)
    return ELMNetwork(NetworkConfig(**{**base, **kw}))


@pytest.mark.parametrize("kind,o,batch", [("last step", 5, 5), ("dense", 3, 9), ("dense", 40, 4)])
def test_network_with_a_decoder_on_the_kernel_equals_xla(kind, o, batch):
    """`ELMNetwork(e, carry, readout=(W, b))`: logits, final state and the gradients of every
    parameter, W, b, the input and the initial state, kernel against XLA. o = 40 is wider than
    `fused.DECODE_MAX_OUTPUTS`: the kernel path decodes with XLA's product then."""
    steps = 12
    rng = np.random.default_rng(o + batch)
    e = jnp.asarray(rng.poisson(0.7, (batch, steps, 7)), jnp.float32)
    net_x, net_k = _network("xla"), _network("cpu_fused")
    variables = net_x.init(jax.random.PRNGKey(0), e)
    params = jax.tree_util.tree_map(
        lambda x: jnp.asarray(0.6 * rng.standard_normal(x.shape), jnp.float32),
        variables["params"],
    )
    consts = {k: v for k, v in variables.items() if k != "params"}
    w = jnp.asarray(rng.standard_normal((9, o)) / 3.0, jnp.float32)
    b = jnp.asarray(rng.standard_normal(o), jnp.float32)
    weight = jnp.asarray(cotangent_of(kind, (batch, steps, o), rng), jnp.float32)

    def loss(net):
        def f(params, w, b, e):
            logits, out = net.apply({"params": params, **consts}, e, readout=(w, b))
            return jnp.sum(jnp.sin(logits) * weight) + jnp.sum(out["memory"] ** 2), logits

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3), has_aux=True))

    text = loss(net_k).lower(params, w, b, e).as_text()
    assert (fused.DECODE_TARGET in text) == (o <= fused.DECODE_MAX_OUTPUTS)
    assert fused.FORWARD_TARGET in text
    (value_x, logits_x), grads_x = loss(net_x)(params, w, b, e)
    (value_k, logits_k), grads_k = loss(net_k)(params, w, b, e)
    assert logits_k.shape == (batch, steps, o)
    assert_close(logits_k, logits_x, 2e-5, "logits")
    np.testing.assert_allclose(float(value_k), float(value_x), rtol=2e-5)
    flat_x, _ = jax.tree_util.tree_flatten_with_path(grads_x)
    for (path, want), have in zip(flat_x, jax.tree_util.tree_leaves(grads_k), strict=True):
        assert_close(have, want, 2e-4, f"d{jax.tree_util.keystr(path)}")


def test_task_model_decoder_variables_are_those_of_nn_dense():
    """`TaskModel` hands an ELM core its decoder as `DecoderParams`: the same variable names,
    shapes and initial values as the `nn.Dense` it replaces (checkpoints stay readable), and the
    model's lowered CPU program decodes on the kernel."""

    class WithDense(nn.Module):
        @nn.compact
        def __call__(self, y):
            return nn.Dense(19, name="decoder")(y)

    class WithParams(nn.Module):
        @nn.compact
        def __call__(self, y):
            return DecoderParams(19, name="decoder")(y.shape[-1])

    y = jnp.ones((2, 3, 11))
    dense = WithDense().init(jax.random.PRNGKey(4), y)
    ours = WithParams().init(jax.random.PRNGKey(4), y)
    assert jax.tree_util.tree_structure(dense) == jax.tree_util.tree_structure(ours)
    for a, b in zip(jax.tree_util.tree_leaves(dense), jax.tree_util.tree_leaves(ours), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    x = jnp.ones((3, 5, 12))
    logits = {}
    for kernel in ("cpu_fused", "auto", "xla"):
        cfg = ModelConfig(arch="elm", num_neurons=10, num_memory=2, input_dim=12,
                          num_classes=19, kernel=kernel)  # fmt: skip
        model = build_model(cfg)
        variables = model.init(jax.random.PRNGKey(0), x)
        assert variables["params"]["decoder"]["kernel"].shape == (10, 19)
        assert variables["params"]["decoder"]["bias"].shape == (19,)
        text = jax.jit(model.apply).lower(variables, x).as_text()
        assert (fused.DECODE_TARGET in text) == (kernel != "xla"), kernel
        logits[kernel], _ = jax.jit(model.apply)(variables, x)
        assert logits[kernel].shape == (3, 5, 19)
    assert_close(logits["cpu_fused"], logits["xla"], 2e-5, "logits")
    assert_close(logits["auto"], logits["xla"], 2e-5, "logits")
