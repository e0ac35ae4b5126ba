"""The converter between the PyTorch reference's state_dict and ELMNeuron variables."""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from neuron_reference import forward as reference_forward
from neuron_reference import random_state

from elm_jax.neuron import convert

VECTORS = os.path.join(os.path.dirname(__file__), "data", "elm_neuron_vectors.npz")
with np.load(VECTORS) as _data:
    CASES = {c["name"]: c for c in json.loads(str(_data["cases_json"]))}


def reference_state(name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/state/"
    with np.load(VECTORS) as data:
        return {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}


@pytest.mark.parametrize("name", list(CASES))
def test_to_reference_inverts_from_reference_exactly(name):
    case, state = CASES[name], reference_state(name)
    with jax.enable_x64(True):
        module, variables = convert.from_reference(state, case["config"], case["version"])
        back = convert.to_reference(variables, case["config"], case["version"])
    routed = case["config"].get("input_to_synapse_routing") is not None
    expected = {k: v for k, v in state.items() if routed or k not in convert.ROUTING_KEYS}
    assert set(back) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(back[key], value.astype(back[key].dtype), err_msg=key)
    assert module.config.neuron_version == case["version"]
    assert ("proto_tau_m" in variables["params"]) == case["config"].get("learn_memory_tau", False)


def test_kernels_are_transposed_torch_weights():
    case, state = CASES["v2_plain_silu_2layer"], reference_state("v2_plain_silu_2layer")
    _, variables = convert.from_reference(state, case["config"], case["version"])
    np.testing.assert_allclose(
        variables["params"]["mlp"]["dense_2"]["kernel"], state["mlp.network.4.weight"].T, 1e-6
    )
    assert variables["params"]["w_y"]["kernel"].shape == (5, 3)


def test_missing_or_unexpected_keys_are_named():
    case, state = CASES["v1_plain"], reference_state("v1_plain")
    broken = {k: v for k, v in state.items() if k != "mlp.network.2.bias"}
    with pytest.raises(ValueError, match="mlp.network.2.bias"):
        convert.from_reference(broken, case["config"], "v1")
    with pytest.raises(ValueError, match="tau_b"):
        convert.from_reference(state, case["config"], "v2")  # a v1 state is not a v2 neuron


def test_wrong_shapes_and_unknown_config_keys_raise():
    case, state = CASES["v1_plain"], reference_state("v1_plain")
    with pytest.raises(ValueError, match="shapes"):
        convert.from_reference(state, {**case["config"], "num_memory": 6}, "v1")
    with pytest.raises(ValueError, match="tau_q_value"):
        convert.from_reference(state, {**case["config"], "tau_q_value": 1.0}, "v1")
    with pytest.raises(ValueError, match="version"):
        convert.from_reference(state, case["config"], "v9")


def test_unequal_v1_synapse_timescales_select_per_synapse_traces():
    config = dict(num_input=12, num_output=2, num_memory=3, num_branch=3, num_synapse_per_branch=4)
    tau_s = np.linspace(2.0, 13.0, 12)
    module, _ = convert.from_reference(random_state(config, "v1", 0, tau_s), config, "v1")
    assert module.config.per_synapse_trace
    module, _ = convert.from_reference(random_state(config, "v1", 0), config, "v1")
    assert not module.config.per_synapse_trace


def test_command_line_writes_npz_that_loads_to_the_same_function(tmp_path, monkeypatch):
    """Everything but torch.load: the state comes from a fake reader."""
    name = "v2_branch_neuronio_small"
    case, state = CASES[name], reference_state(name)
    (tmp_path / "model_config.json").write_text(json.dumps(case["config"]))
    monkeypatch.setattr(convert, "_read_torch_state", lambda path: state)
    (tmp_path / "model.pt").write_bytes(b"")  # read by the fake reader above
    out = tmp_path / "out.npz"
    rc = convert.main([str(tmp_path / "model.pt"), str(out), "--version", "v2"])
    assert rc == 0 and out.exists()
    module, variables = convert.load_npz(str(out))
    with np.load(VECTORS) as data:
        x, y_ref = data[f"{name}/X"], data[f"{name}/Y"]
    y = jax.jit(module.apply)(variables, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4 * np.abs(y_ref).max())
    np.testing.assert_array_equal(
        variables["constants"]["routing_indices"], state["input_to_synapse_indices"]
    )


def test_per_synapse_module_survives_npz_round_trip(tmp_path):
    config = dict(num_input=8, num_output=2, num_memory=3, num_branch=2, num_synapse_per_branch=4)
    state = random_state(config, "v1", 1, np.linspace(1.0, 8.0, 8))
    _, variables = convert.from_reference(state, config, "v1")
    convert.save_npz(str(tmp_path / "m.npz"), config, "v1", variables)
    module, loaded = convert.load_npz(str(tmp_path / "m.npz"))
    assert module.config.per_synapse_trace
    x = np.random.default_rng(0).uniform(0, 1, (2, 6, 8))
    y = module.apply(loaded, jnp.asarray(x, jnp.float32))
    y_ref = reference_forward(state, config, "v1", x)[0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4 * np.abs(y_ref).max())


def test_command_line_without_torch_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "model_config.json").write_text(json.dumps(CASES["v1_plain"]["config"]))
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    (tmp_path / "model.pt").write_bytes(b"")
    rc = convert.main([str(tmp_path / "model.pt"), str(tmp_path / "out.npz")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "torch" in err and "pip install" in err
    assert not (tmp_path / "out.npz").exists()


def test_command_line_without_config_file_fails_clearly(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"")
    rc = convert.main([str(tmp_path / "model.pt"), str(tmp_path / "out.npz")])
    assert rc != 0 and "--config" in capsys.readouterr().err
