"""Simple-unit baselines against NumPy loops, and the task models (carry, shapes, bad input)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.baselines import GRULayer, LeakyLayer, LSTMLayer
from elm_jax.models import ModelConfig, build_core, build_model, initial_carry
from elm_jax.network.wiring import make_wiring

D, N, B, T = 6, 4, 2, 7


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_params(shapes, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), jnp.float32), shapes
    )


def _run(layer, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), (B, T, D))
    shapes = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
    params = _random_params(shapes["params"], seed + 1)
    y, carry = jax.jit(layer.apply)({"params": params}, x)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    return np.asarray(x, np.float64), p, np.asarray(y), carry


def test_lstm_layer_matches_numpy_lstm_loop():
    x, p, y, carry = _run(LSTMLayer(N, D))
    c = p["cell"]
    h, cell = np.zeros((B, N)), np.zeros((B, N))
    ref = np.zeros((B, T, N))
    for t in range(T):
        gate = {
            g: x[:, t] @ c["i" + g]["kernel"] + h @ c["h" + g]["kernel"] + c["h" + g]["bias"]
            for g in "ifgo"
        }
        cell = _sig(gate["f"]) * cell + _sig(gate["i"]) * np.tanh(gate["g"])
        h = _sig(gate["o"]) * np.tanh(cell)
        ref[:, t] = h
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry["c"], cell, rtol=1e-5, atol=1e-5)


def test_gru_layer_matches_numpy_gru_loop():
    x, p, y, carry = _run(GRULayer(N, D), seed=2)
    c = p["cell"]
    h = np.zeros((B, N))
    ref = np.zeros((B, T, N))
    for t in range(T):
        xt = x[:, t]
        r = _sig(xt @ c["ir"]["kernel"] + c["ir"]["bias"] + h @ c["hr"]["kernel"])
        z = _sig(xt @ c["iz"]["kernel"] + c["iz"]["bias"] + h @ c["hz"]["kernel"])
        n = np.tanh(
            xt @ c["in"]["kernel"] + c["in"]["bias"] + r * (h @ c["hn"]["kernel"] + c["hn"]["bias"])
        )
        h = (1 - z) * n + z * h
        ref[:, t] = h
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry["h"], h, rtol=1e-5, atol=1e-5)


def test_leaky_layer_matches_numpy_leaky_loop():
    layer = LeakyLayer(N, D, tau_min=1.0, tau_max=50.0, delta_t=1.0)
    x, p, y, carry = _run(layer, seed=4)
    tau = 49.0 * _sig(p["proto_tau"]) + 1.0
    a = np.exp(-1.0 / tau)
    h = np.zeros((B, N))
    ref = np.zeros((B, T, N))
    for t in range(T):
        h = a * h + (1 - a) * np.tanh(x[:, t] @ p["w_in"] + h @ p["w_rec"] + p["bias"])
        ref[:, t] = h
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_leaky_time_constants_start_log_spaced_over_the_range():
    v = jax.jit(LeakyLayer(5, D, tau_min=1.0, tau_max=1000.0).init)(
        jax.random.PRNGKey(0), jnp.zeros((1, 2, D))
    )
    tau = 999.0 * jax.nn.sigmoid(v["params"]["proto_tau"]) + 1.0
    np.testing.assert_allclose(np.log10(tau), np.linspace(0, 3, 5), atol=1e-3)


def _model_cfg(arch, task):
    cls = task == "classification"
    return ModelConfig(
        arch=arch, task=task, input_dim=12 if cls else 256, num_classes=5 if cls else 256,
        embed_dim=8, num_neurons=6, num_memory=2, synapses_per_neuron=8,
    )  # fmt: skip


def _inputs(cfg, t=8):
    key = jax.random.PRNGKey(3)
    if cfg.task == "classification":
        return jax.random.poisson(key, 0.5, (2, t, cfg.input_dim)).astype(jnp.float32)
    return jax.random.randint(key, (2, t), 0, 256)


def _variables(cfg, x):
    """Random params and the model's constants without compiling the random init.

    tests/test_network.py proves `init` stores exactly these wiring constants.
    """
    model = build_model(cfg)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    variables = {"params": _random_params(shapes["params"], 5)}
    if cfg.arch == "elm":
        w = make_wiring(
            num_neurons=cfg.num_neurons, synapses_per_neuron=cfg.synapses_per_neuron,
            num_branches=cfg.num_branches, external_dim=cfg.external_dim,
            recurrent_fraction=cfg.recurrent_fraction, seed=cfg.wiring_seed,
        )  # fmt: skip
        tau_b = jnp.full((cfg.num_neurons, cfg.num_branches), cfg.tau_b_value, jnp.float32)
        core = {"synapse_source": w.source, "synapse_branch": w.branch, "tau_b": tau_b}
        variables["constants"] = {"core": jax.tree_util.tree_map(jnp.asarray, core)}
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(shapes)
    return variables


@pytest.mark.parametrize("task", ["classification", "lm"])
@pytest.mark.parametrize("arch", ["elm", "lstm", "gru", "leaky"])
def test_task_model_carry_continues_a_stream_exactly(arch, task):
    cfg = _model_cfg(arch, task)
    model = build_model(cfg)
    x = _inputs(cfg)
    variables = _variables(cfg, x)
    apply = jax.jit(model.apply)
    zero = initial_carry(cfg, 2)
    logits, carry = apply(variables, x, zero)
    assert logits.shape == (2, 8, cfg.num_classes)
    # Without a carry the model starts from the same zero state (shapes and dtypes).
    _, default = jax.eval_shape(model.apply, variables, x)
    assert jax.tree_util.tree_structure(zero) == jax.tree_util.tree_structure(default)
    for a, b in zip(
        jax.tree_util.tree_leaves(zero), jax.tree_util.tree_leaves(default), strict=True
    ):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.float32 and not np.any(a)
    first, c1 = apply(variables, x[:, :4], zero)
    second, c2 = apply(variables, x[:, 4:], c1)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), logits, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(c2), jax.tree_util.tree_leaves(carry), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # The last step depends on the first input (the state really carries information).
    x2 = x.at[:, 0].set(x[:, 0] + 1 if task == "classification" else (x[:, 0] + 1) % 256)
    assert np.abs(np.asarray(apply(variables, x2, zero)[0][:, -1] - logits[:, -1])).max() > 0


@pytest.mark.parametrize("arch", ["elm", "lstm"])
def test_classifier_is_identity_encoder_then_core_then_per_step_decoder(arch):
    cfg = _model_cfg(arch, "classification")
    model = build_model(cfg)
    x = _inputs(cfg)
    variables = _variables(cfg, x)
    logits, _ = jax.jit(model.apply)(variables, x)
    core_vars = {k: v["core"] for k, v in variables.items()}
    y, _ = jax.jit(build_core(cfg).apply)(core_vars, x)  # spike counts fed directly
    dec = variables["params"]["decoder"]
    np.testing.assert_allclose(logits, y @ dec["kernel"] + dec["bias"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "task,bad",
    [
        ("classification", jnp.zeros((2, 5, 11))),
        ("classification", jnp.zeros((2, 5))),
        ("lm", jnp.zeros((2, 5), jnp.float32)),
        ("lm", jnp.zeros((2, 5, 3), jnp.int32)),
    ],
)
def test_task_model_rejects_inputs_of_the_wrong_shape_or_dtype(task, bad):
    cfg = _model_cfg("elm", task)
    with pytest.raises(ValueError, match="inputs shape"):
        jax.eval_shape(build_model(cfg).init, jax.random.PRNGKey(0), bad)


def test_lm_requires_one_logit_per_byte():
    with pytest.raises(ValueError, match="num_classes=10"):
        ModelConfig(task="lm", input_dim=256, num_classes=10, embed_dim=8)
