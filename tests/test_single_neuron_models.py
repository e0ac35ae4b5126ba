"""Task models of the paper's single-neuron recipes: arch "elm_neuron" (the reference port as a
classifier) and the Chrono-LSTM option of the LSTM baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.baselines import ChronoLSTMLayer
from elm_jax.budget.cost import cost, count_params
from elm_jax.models import ModelConfig, build_model, initial_carry
from elm_jax.neuron.layers import ELMNeuron


def _neuron_cfg(**kw):
    base = dict(arch="elm_neuron", num_neurons=1, input_dim=12, num_classes=3, num_memory=4)
    return ModelConfig(**{**base, **kw})


def test_elm_neuron_logits_are_the_reference_neurons_outputs():
    cfg = _neuron_cfg(
        routing="neuronio_routing", num_branches=3, synapses_per_branch=6, mlp_activation="silu"
    )
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 7, 12))
    model = build_model(cfg)
    variables = model.init(jax.random.PRNGKey(0), x)
    logits, carry = model.apply(variables, x)
    neuron = ELMNeuron(cfg.elm_config)
    direct = neuron.apply(
        {"params": variables["params"]["core"], "constants": variables["constants"]["core"]}, x
    )
    np.testing.assert_allclose(logits, direct, rtol=1e-6, atol=1e-6)
    assert logits.shape == (2, 7, 3) and carry == {} and initial_carry(cfg, 2) == {}
    assert variables["constants"]["core"]["routing_indices"].shape == (18,)


def test_elm_neuron_cost_counts_the_trained_parameters_and_the_spec_branch_elm():
    cfg = _neuron_cfg(routing="random_routing", num_branches=4, synapses_per_branch=3)
    variables = build_model(cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 12)))
    c = cost(cfg)
    assert count_params(variables, cfg) == {"core": c.P_core, "io": 0, "total": c.P_total}
    assert c.k_c == 12
    # docs/science.md §2: the NeuronIO Branch-ELM (1278 inputs, 45 x 100 synapses, 2 outputs) has
    # 4502 + 95 d_m + 4 d_m^2 parameters: 8002 at d_m = 20.
    branch_elm = _neuron_cfg(
        input_dim=1278, num_classes=2, num_memory=20, routing="neuronio_routing",
        num_branches=45, synapses_per_branch=100, learn_memory_tau=False,
    )  # fmt: skip
    assert cost(branch_elm).P_core == 8002


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_neurons": 4}, "one classifying neuron: num_neurons=4 \\(must be 1\\)"),
        ({"routing": "tree"}, "routing='tree' is invalid"),
        ({"task": "lm", "input_dim": 3}, "task='lm' \\(must be 'classification'"),
        # one timescale field per dynamics: a value set for the other one would go unused
        (
            {"neuron_version": "v1", "tau_b_value": 2.0},
            "tau_b_value=2.0 has no effect on the v1 neuron: its timescale is tau_s_value",
        ),
        (
            {"neuron_version": "v2", "tau_s_value": 2.0},
            "tau_s_value=2.0 has no effect on arch='elm_neuron' \\(v2 dynamics\\)",
        ),
    ],
)
def test_elm_neuron_bad_fields_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        _neuron_cfg(**change)


def test_the_v1_neuron_takes_its_timescale_from_tau_s_value():
    cfg = _neuron_cfg(neuron_version="v1", tau_s_value=2.0)
    assert cfg.elm_config.tau_s_value == 2.0
    assert ModelConfig(tau_b_value=2.0).elm_config.tau_b_value == 2.0  # the network: tau_b


def _lstm_reference(x, w_in, w_rec, bias):
    """Plain NumPy LSTM loop, gate order (i, f, g, o)."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    n = w_rec.shape[0]
    c = h = np.zeros((x.shape[0], n))
    ys = []
    for t in range(x.shape[1]):
        z = x[:, t] @ w_in + h @ w_rec + bias
        i, f, g, o = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1)


def test_chrono_lstm_biases_follow_tallec_ollivier_and_the_scan_matches_a_loop():
    t_max = 50.0
    cfg = ModelConfig(arch="lstm", num_neurons=64, input_dim=5, num_classes=2, chrono_t_max=t_max)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 9, 5))
    model = build_model(cfg)
    variables = model.init(jax.random.PRNGKey(0), x)
    core = variables["params"]["core"]
    b = np.asarray(core["bias"]).reshape(4, 64)
    assert np.all(b[1] >= 0) and np.all(b[1] <= np.log(t_max - 1) + 1e-6)
    assert b[1].max() > np.log(t_max / 2)  # drawn over the range, not a constant
    np.testing.assert_array_equal(b[0], -b[1])
    np.testing.assert_array_equal(b[2:], 0)
    layer = ChronoLSTMLayer(64, 5, t_max)
    y, _ = layer.apply({"params": core}, x)
    ref = _lstm_reference(
        np.asarray(x, np.float64),
        *(np.asarray(core[k], np.float64) for k in ("w_in", "w_rec", "bias")),
    )
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    plain = ModelConfig(arch="lstm", num_neurons=64, input_dim=5, num_classes=2)
    assert cost(cfg) == cost(plain)
    assert count_params(variables, cfg) == count_params(
        build_model(plain).init(jax.random.PRNGKey(0), x), plain
    )


def test_chrono_t_max_is_refused_outside_the_lstm():
    with pytest.raises(ValueError, match="chrono_t_max=10.0 is invalid for arch='gru'"):
        ModelConfig(arch="gru", chrono_t_max=10.0)
    with pytest.raises(ValueError, match="chrono_t_max=2 is invalid"):
        ModelConfig(arch="lstm", chrono_t_max=2)
