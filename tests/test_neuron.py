"""The ELM neuron against the published PyTorch reference (stored vectors), a NumPy transcription
of the reference, and its own step function; parameter counts; configuration errors."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from neuron_reference import forward as reference_forward
from neuron_reference import random_state

from elm_jax.neuron import convert, dynamics
from elm_jax.neuron.config import NeuronConfig, neuronio_routing, num_params, random_routing
from elm_jax.neuron.dynamics import loop
from elm_jax.neuron.layers import ELMNeuron
from elm_jax.ops import scaled_sigmoid

DATA = os.path.join(os.path.dirname(__file__), "data")
# The published reference's vectors, and the reference at the edges of its configuration space
# (tau_min = 0, tau_max = tau_min, tau_b = 0, tau_m under the clamp; tests/fixtures/
# make_edge_vectors.py wrote them with the reference itself).
VECTOR_FILES = ("elm_neuron_vectors.npz", "elm_neuron_edge_vectors.npz")
CASES = []
for _file in VECTOR_FILES:
    with np.load(os.path.join(DATA, _file)) as _data:
        CASES += [{**c, "file": _file} for c in json.loads(str(_data["cases_json"]))]
CASE_NAMES = [c["name"] for c in CASES]


@pytest.fixture
def x64():
    """float64 inside the test only; the previous setting is restored afterwards."""
    with jax.enable_x64(True):
        yield


def load_case(name: str) -> tuple[dict, dict, dict]:
    """(case, reference state_dict, arrays X Y G grad/...) of one stored case."""
    case = next(c for c in CASES if c["name"] == name)
    with np.load(os.path.join(DATA, case["file"])) as data:
        arrays = {k[len(name) + 1 :]: data[k] for k in data.files if k.startswith(name + "/")}
    state = {k[len("state/") :]: v for k, v in arrays.items() if k.startswith("state/")}
    return case, state, arrays


def neuron(*, dtype=None, param_dtype=jnp.float32, **config) -> ELMNeuron:
    """The module of the `NeuronConfig` with these fields."""
    return ELMNeuron(NeuronConfig(**config), dtype=dtype, param_dtype=param_dtype)


def init(module: ELMNeuron, x, seed: int = 0):
    """Variables of `module` (jitted: eager initialisation dispatches every op separately)."""
    return jax.jit(module.init)(jax.random.key(seed), x)


def apply(module: ELMNeuron, variables, x, return_traces: bool = False):
    return jax.jit(module.apply, static_argnames="return_traces")(
        variables, x, return_traces=return_traces
    )


def assert_close(actual, expected, rtol: float, what: str) -> None:
    """Relative error against the array's scale (exact zeros, e.g. masked synapses, stay exact)."""
    expected = np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=rtol, atol=rtol * scale, err_msg=what
    )


def outputs_and_grads(module, variables, x, cotangent):
    """y and the gradients of sum(y * G) wrt x, every parameter and every float constant."""
    float_constants = {
        k: v for k, v in variables["constants"].items() if jnp.issubdtype(v.dtype, jnp.floating)
    }

    @jax.jit
    def run(params, consts, x):
        def loss(params, consts, x):
            merged = {"params": params, "constants": {**variables["constants"], **consts}}
            y = module.apply(merged, x)
            return jnp.sum(y * cotangent), y

        return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(params, consts, x)

    (g_params, g_consts, g_x), y = run(variables["params"], float_constants, x)
    return y, g_x, {"params": g_params, "constants": g_consts}


def check_case_against_vectors(name: str, rtol: float, expected_dtype) -> None:
    case, state, arrays = load_case(name)
    module, variables = convert.from_reference(state, case["config"], case["version"])
    x, cotangent = jnp.asarray(arrays["X"]), jnp.asarray(arrays["G"])
    y, g_x, grads = outputs_and_grads(module, variables, x, cotangent)
    assert y.dtype == expected_dtype
    assert_close(y, arrays["Y"], rtol, f"{name}: Y")
    assert_close(g_x, arrays["grad/X"], rtol, f"{name}: grad X")
    ours = convert.to_reference(grads, case["config"], case["version"])
    trainable = convert.to_reference({"params": grads["params"]}, case["config"], case["version"])
    expected_keys = {k[len("grad/") :] for k in arrays if k.startswith("grad/") and k != "grad/X"}
    assert set(ours) == expected_keys, "every floating-point reference parameter is compared"
    assert trainable, "trainable parameters present"
    for key, value in ours.items():
        assert_close(value, arrays[f"grad/{key}"], rtol, f"{name}: grad {key}")


@pytest.mark.parametrize("name", CASE_NAMES)
def test_outputs_and_all_gradients_match_reference_to_1e9_in_float64(name, x64):
    check_case_against_vectors(name, 1e-9, jnp.float64)


# In float32 the gradients of timescales that sit at the 1e-6 clamp with tau_max = 1 lose about
# 5 % to rounding (they agree to 1e-9 in float64 above), so that case is checked in float64 only.
FLOAT32_CASES = [n for n in CASE_NAMES if n != "v2_tau_below_clamp"]


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_outputs_and_all_gradients_match_reference_to_1e4_in_float32(name):
    check_case_against_vectors(name, 1e-4, jnp.float32)


SCAN_CONFIGS = {
    "v2_neuronio": (
        "v2",
        dict(num_input=40, num_output=3, num_memory=5, num_branches=6, synapses_per_branch=9,
             routing="neuronio_routing", learn_memory_tau=True),
    ),
    "v1_random_two_layer_silu": (
        "v1",
        dict(num_input=20, num_output=2, num_memory=4, num_branches=5, synapses_per_branch=3,
             routing="random_routing", mlp_num_layers=2, mlp_activation="silu"),
    ),
    "v1_unequal_tau_s": (
        "v1",
        dict(num_input=10, num_output=2, num_memory=3, num_branches=4, synapses_per_branch=3,
             routing="random_routing", tau_s_value=tuple(np.linspace(1.5, 9, 12)),
             mlp_num_layers=0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCAN_CONFIGS))
def test_scan_equals_python_loop_over_step(name, x64):
    version, kwargs = SCAN_CONFIGS[name]
    module = neuron(**kwargs, neuron_version=version, param_dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(1), (2, 12, kwargs["num_input"]), jnp.float64)
    variables = init(module, x)
    y, traces = apply(module, variables, x, return_traces=True)
    tree = {**variables["params"], **variables["constants"]}
    y_loop, branch_loop, memory_loop = loop(tree, module.config, x)
    assert traces["memory"].dtype == jnp.float64
    assert_close(y, y_loop, 1e-12, "y")
    assert_close(traces["branch"], branch_loop, 1e-12, "branch")
    assert_close(traces["memory"], memory_loop, 1e-12, "memory")


NUMPY_CONFIGS = {
    # Per-synapse timescales that differ inside a branch: the traces cannot be merged.
    "v1_unequal_tau_s_neuronio": (
        "v1",
        dict(num_input=30, num_output=2, num_memory=4, num_branch=5, num_synapse_per_branch=8,
             input_to_synapse_routing="neuronio_routing"),
        np.random.default_rng(7).uniform(1.0, 20.0, 40),
    ),
    # Equal timescales inside each branch, different across branches: merged exactly.
    "v1_branchwise_tau_s_random": (
        "v1",
        dict(num_input=15, num_output=3, num_memory=6, num_branch=4, num_synapse_per_branch=5,
             input_to_synapse_routing="random_routing", delta_t=2.0),
        np.repeat([2.0, 4.0, 8.0, 16.0], 5),
    ),
    "v1_no_routing_grouped": (
        "v1",
        dict(num_input=12, num_output=2, num_memory=3, num_branch=3, num_synapse_per_branch=4),
        None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NUMPY_CONFIGS))
def test_v1_synaptic_traces_match_numpy_reference(name, x64):
    version, config, tau_s = NUMPY_CONFIGS[name]
    state = random_state(config, version, seed=3, tau_s=tau_s)
    module, variables = convert.from_reference(state, config, version)
    per_synapse = tau_s is not None and np.any(
        tau_s.reshape(config["num_branch"], -1) != tau_s.reshape(config["num_branch"], -1)[:, :1]
    )
    assert module.config.per_synapse_trace == bool(per_synapse)
    x = np.random.default_rng(4).uniform(0, 1, (3, 31, config["num_input"]))
    y_ref, branch_ref, memory_ref = reference_forward(state, config, version, x)
    y, traces = apply(module, variables, jnp.asarray(x), return_traces=True)
    assert_close(y, y_ref, 1e-9, "y")
    assert_close(traces["branch"], branch_ref, 1e-9, "branch")
    assert_close(traces["memory"], memory_ref, 1e-9, "memory")


def test_merging_unequal_synapse_timescales_would_be_wrong(x64):
    """Guards the per-synapse path: forcing one trace per branch changes the result."""
    version, config, tau_s = NUMPY_CONFIGS["v1_unequal_tau_s_neuronio"]
    state = random_state(config, version, seed=3, tau_s=tau_s)
    _, variables = convert.from_reference(state, config, version)
    merged = ELMNeuron(convert.neuron_config(config, "v1"))  # scalar tau_s: one trace per branch
    x = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (3, 31, config["num_input"])))
    y_ref = reference_forward(state, config, version, np.asarray(x))[0]
    assert np.max(np.abs(np.asarray(apply(merged, variables, x)) - y_ref)) > 1e-6


def test_gradients_of_scan_equal_gradients_of_step_loop_with_per_synapse_traces(x64):
    """The reference vectors cover gradients of the merged-trace path; this covers the other."""
    version, kwargs = SCAN_CONFIGS["v1_unequal_tau_s"]
    module = neuron(
        **kwargs, neuron_version=version, learn_memory_tau=True, param_dtype=jnp.float64
    )
    assert module.config.per_synapse_trace
    x = jax.random.uniform(jax.random.key(2), (2, 9, kwargs["num_input"]), jnp.float64)
    variables = init(module, x, seed=5)
    consts, cfg = variables["constants"], module.config

    def loss_scan(params, x):
        return jnp.sum(module.apply({"params": params, "constants": consts}, x) ** 2)

    def loss_loop(params, x):
        return jnp.sum(loop({**params, **consts}, cfg, x)[0] ** 2)

    g_scan = jax.jit(jax.grad(loss_scan, argnums=(0, 1)))(variables["params"], x)
    g_loop = jax.grad(loss_loop, argnums=(0, 1))(variables["params"], x)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(g_scan), jax.tree_util.tree_leaves(g_loop), strict=True
    ):
        assert_close(a, b, 1e-11, jax.tree_util.keystr(path))


# The custom gradients of the scans (`linear_trace`, `memory_scan`, `input_memory_scan`) against
# plain autodiff of the step loop, for every option: v1/v2, routing or none (a narrow input takes
# the fused input-trace loop, a wide one the separate trace), one or two MLP layers (relu, silu),
# learnable tau_m or not; gradients wrt the parameters, every float constant and the input.
CUSTOM_VJP_OPTIONS = [
    (version, routing, layers, learn_tau, num_input)
    for version in ("v1", "v2")
    for routing, num_input in (("none", 6), ("random_routing", 7))
    for layers in (1, 2)
    for learn_tau in (False, True)
] + [(version, "none", 2, True, dynamics.FUSED_INPUT_MAX + 2) for version in ("v1", "v2")]  # fmt: skip


@pytest.mark.parametrize("version,routing,layers,learn_tau,num_input", CUSTOM_VJP_OPTIONS)
def test_custom_gradients_equal_autodiff_of_step_loop(
    version, routing, layers, learn_tau, num_input, x64
):
    kwargs = dict(num_input=num_input, num_output=2, num_memory=3, mlp_num_layers=layers,
                  mlp_activation="silu" if layers == 2 else "relu", learn_memory_tau=learn_tau,
                  routing=routing, delta_t=2.0)  # fmt: skip
    if routing != "none":
        kwargs.update(num_branches=3, synapses_per_branch=4)
    module = neuron(**kwargs, neuron_version=version, param_dtype=jnp.float64)
    cfg = module.config
    assert dynamics.fuse_input_trace(cfg) == (routing == "none" and num_input <= 128)
    x = jax.random.uniform(jax.random.key(3), (2, 7, num_input), jnp.float64)
    variables = init(module, x, seed=6)
    consts = {
        k: v for k, v in variables["constants"].items() if jnp.issubdtype(v.dtype, jnp.floating)
    }
    fixed = {k: v for k, v in variables["constants"].items() if k not in consts}
    cot = jax.random.normal(jax.random.key(4), (2, 7, 2), jnp.float64)

    def loss_scan(params, consts, x):
        y, traces = module.apply(
            {"params": params, "constants": {**consts, **fixed}}, x, return_traces=True
        )
        return jnp.sum(y * cot) + jnp.sum(traces["branch"] ** 2) + jnp.sum(traces["memory"])

    def loss_loop(params, consts, x):
        y, branch, memory = loop({**params, **consts, **fixed}, cfg, x)
        return jnp.sum(y * cot) + jnp.sum(branch**2) + jnp.sum(memory)

    g_scan = jax.jit(jax.grad(loss_scan, argnums=(0, 1, 2)))(variables["params"], consts, x)
    g_loop = jax.jit(jax.grad(loss_loop, argnums=(0, 1, 2)))(variables["params"], consts, x)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(g_scan), jax.tree_util.tree_leaves(g_loop), strict=True
    ):
        assert_close(a, b, 1e-11, jax.tree_util.keystr(path))


def test_neuronio_routing_reproduces_reference_indices_and_mask():
    case, state, _ = load_case("v2_branch_neuronio_small")
    c = case["config"]
    indices, mask = neuronio_routing(
        num_input=c["num_input"],
        num_branches=c["num_branch"],
        synapses_per_branch=c["num_synapse_per_branch"],
    )
    np.testing.assert_array_equal(indices, state["input_to_synapse_indices"])
    np.testing.assert_array_equal(mask, state["valid_indices_mask"].astype(bool))
    module = ELMNeuron(convert.neuron_config(c, case["version"]))
    variables = init(module, jnp.zeros((1, 1, c["num_input"])))
    np.testing.assert_array_equal(variables["constants"]["routing_indices"], indices)


def test_neuronio_routing_at_full_size_reaches_every_input_once_per_window():
    indices, mask = neuronio_routing(num_input=1278, num_branches=45, synapses_per_branch=100)
    assert indices.shape == mask.shape == (4500,)
    assert set(indices[mask].tolist()) == set(range(1278))
    # stride ceil(1278/45) = 29: the last branch starts at interleaved position 1276
    assert mask.reshape(45, 100)[-1].sum() == 2
    assert mask.reshape(45, 100)[:-4].all()
    np.testing.assert_array_equal(indices[:4], [0, 639, 1, 640])  # excitatory/inhibitory halves


def test_random_routing_is_drawn_from_the_seed_and_stored_as_constants():
    kwargs = dict(num_input=30, num_output=2, num_memory=3, num_branches=10,
                  synapses_per_branch=4, routing="random_routing")  # fmt: skip
    x = jnp.zeros((1, 1, 30))

    def draw(seed: int, init_key: int) -> np.ndarray:
        variables = init(neuron(**kwargs, wiring_seed=seed), x, init_key)
        assert "routing_indices" not in variables["params"]
        assert variables["constants"]["routing_mask"].all()
        return np.asarray(variables["constants"]["routing_indices"])

    first = draw(0, 0)
    np.testing.assert_array_equal(first, draw(0, 1))  # weight seed does not move the wiring
    assert not np.array_equal(first, draw(1, 0))
    np.testing.assert_array_equal(first, random_routing(num_input=30, num_synapses=40, seed=0)[0])
    assert first.min() >= 0 and first.max() < 30


def count_trainable(module: ELMNeuron) -> int:
    shapes = jax.eval_shape(
        module.init, jax.random.key(0), jnp.zeros((1, 1, module.config.num_input), jnp.float32)
    )
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(shapes["params"]))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_input=10, num_output=3, num_memory=5),
        dict(num_input=10, num_output=3, num_memory=5, learn_memory_tau=True, neuron_version="v1"),
        dict(num_input=12, num_output=1, num_memory=4, num_branches=3, synapses_per_branch=4),
        dict(num_input=7, num_output=2, num_memory=6, mlp_num_layers=3, mlp_hidden_size=9),
        dict(num_input=7, num_output=2, num_memory=6, mlp_num_layers=0),
        dict(num_input=64, num_output=2, num_memory=6, num_branches=8, synapses_per_branch=12,
             routing="neuronio_routing", learn_memory_tau=True),
    ],
)  # fmt: skip
def test_param_count_formula_equals_counted_trainable_leaves(kwargs):
    module = neuron(**kwargs)
    assert module.config.num_params == count_trainable(module)


@pytest.mark.parametrize(
    "d_m, expected", [(1, 4601), (10, 5852), (20, 8002), (50, 19252), (100, 54002)]
)
def test_param_count_reproduces_neuronio_branch_elm(d_m, expected):
    kwargs = dict(num_input=1278, num_output=2, num_memory=d_m, num_branches=45,
                  synapses_per_branch=100, routing="neuronio_routing")  # fmt: skip
    assert (
        num_params(
            num_input=1278, num_output=2, num_memory=d_m, num_branches=45, synapses_per_branch=100
        )
        == expected
    )
    assert 4502 + 95 * d_m + 4 * d_m**2 == expected  # docs/science.md §2 closed form
    assert count_trainable(neuron(**kwargs)) == expected


def test_initialisation_follows_the_reference():
    module = neuron(num_input=6, num_output=2, num_memory=5, memory_tau_min=2.0,
                    memory_tau_max=200.0, w_s_value=0.25)  # fmt: skip
    variables = init(module, jnp.zeros((1, 1, 6)))
    np.testing.assert_array_equal(variables["params"]["proto_w_s"], np.full(6, 0.25))
    tau_m = scaled_sigmoid(variables["constants"]["proto_tau_m"], 2.0, 200.0)
    np.testing.assert_allclose(tau_m, np.logspace(np.log10(2.0), np.log10(200.0), 5), rtol=1e-4)
    np.testing.assert_array_equal(variables["constants"]["tau_b"], np.full(6, 5.0))
    kernel = variables["params"]["mlp"]["dense_0"]["kernel"]
    assert kernel.shape == (11, 10) and np.abs(kernel).max() <= 1 / np.sqrt(11)


def test_state_stays_float32_when_computing_in_bfloat16():
    kwargs = dict(num_input=16, num_output=2, num_memory=8, num_branches=4, synapses_per_branch=4)
    x = jax.random.uniform(jax.random.key(0), (2, 40, 16))
    variables = init(neuron(**kwargs), x, 1)
    y32, t32 = apply(neuron(**kwargs), variables, x, return_traces=True)
    y16, t16 = apply(neuron(**kwargs, dtype=jnp.bfloat16), variables, x.astype(jnp.bfloat16), True)
    assert t16["memory"].dtype == jnp.float32 and t16["branch"].dtype == jnp.float32
    assert y16.dtype == jnp.bfloat16
    assert_close(t16["memory"], t32["memory"], 5e-2, "bfloat16 memory")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_input=10, num_output=2, num_memory=3, num_branches=4), "routing"),
        (dict(num_input=10, num_output=2, num_memory=3, memory_tau_min=5.0, memory_tau_max=4.0),
         "memory_tau_min"),
        (dict(num_input=10, num_output=2, num_memory=3, memory_tau_min=5.0, memory_tau_max=5.0,
              neuron_version="v1"), "memory_tau_max"),
        (dict(num_input=10, num_output=2, num_memory=3, memory_tau_min=-1.0), "memory_tau_min"),
        (dict(num_input=10, num_output=2, num_memory=3, tau_b_value=-1.0), "tau_b_value"),
        (dict(num_input=10, num_output=2, num_memory=3, mlp_activation="gelu"), "mlp_activation"),
        (dict(num_input=10, num_output=2, num_memory=3, num_branches=2, synapses_per_branch=5,
              routing="grid_routing"), "routing"),
        (dict(num_input=10, num_output=2, num_memory=3, neuron_version="v3"), "neuron_version"),
        (dict(num_input=10, num_output=2, num_memory=0), "num_memory"),
        (dict(num_input=100, num_output=2, num_memory=3, num_branches=4, synapses_per_branch=5,
              routing="neuronio_routing"), "synapses_per_branch"),
    ],
)  # fmt: skip
def test_bad_configuration_raises_value_error_naming_field_and_choices(kwargs, field):
    with pytest.raises(ValueError, match=field) as err:
        neuron(**kwargs)
    if field in ("mlp_activation", "routing", "neuron_version"):
        assert "valid choices" in str(err.value)


def test_wrong_input_width_raises_value_error():
    module = neuron(num_input=10, num_output=2, num_memory=3)
    variables = init(module, jnp.zeros((1, 2, 10)))
    with pytest.raises(ValueError, match="num_input=10"):
        module.apply(variables, jnp.zeros((1, 2, 11)))
    with pytest.raises(ValueError, match="num_input=10"):
        module.apply(variables, jnp.zeros((2, 10)))
