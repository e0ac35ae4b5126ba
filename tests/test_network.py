"""ELM network layer: NumPy per-step reference, gather == dense, wiring, reduction to one neuron."""

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.network import fused, fused_build
from elm_jax.network.config import NetworkConfig
from elm_jax.network.layers import ELMNetwork
from elm_jax.network.wiring import make_wiring, num_recurrent_synapses


def _net(**kw):
    """A small network on the XLA path unless ``kernel`` is given: connectivity, layout and the
    custom-gradient scans tested here are the XLA path's (the fused kernel reads none of them;
    tests/test_fused.py compares it with this path)."""
    base = dict(num_neurons=5, num_memory=3, synapses_per_neuron=8, external_dim=7, kernel="xla")
    base.update(kw)
    return ELMNetwork(NetworkConfig(**base))


def _randomize(variables, seed=1):
    """Random params (some w_s negative so the relu matters), constants untouched."""
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(
        lambda x: jnp.asarray(0.7 * rng.standard_normal(x.shape), jnp.float32), variables["params"]
    )
    return {**variables, "params": params}


def _variables(net, e, seed=1):
    """Random params and the network's constants, without compiling the (slow) random init.

    `test_wiring_is_deterministic_in_the_seed_and_stored_in_constants` proves that `net.init`
    stores exactly these constants.
    """
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), e)
    w = make_wiring(
        num_neurons=net.config.num_neurons, synapses_per_neuron=net.config.synapses_per_neuron,
        num_branches=net.config.num_branches, external_dim=net.config.external_dim,
        recurrent_fraction=net.config.recurrent_fraction, seed=net.config.wiring_seed,
    )  # fmt: skip
    constants = {
        "synapse_source": jnp.asarray(w.source),
        "synapse_branch": jnp.asarray(w.branch),
        "tau_b": jnp.full(
            (net.config.num_neurons, net.config.num_branches), net.config.tau_b_value, jnp.float32
        ),
    }
    assert jax.tree_util.tree_structure(constants) == jax.tree_util.tree_structure(
        shapes["constants"]
    )
    return _randomize({"params": shapes["params"], "constants": constants}, seed)


def _inputs(b, t, d, seed=0):
    return jax.random.poisson(jax.random.PRNGKey(seed), 0.7, (b, t, d)).astype(jnp.float32)


def numpy_network(variables, net, e):
    """Plain per-step, per-neuron, per-synapse loop of docs/science.md §3 in float64, with the
    reference neuron's edges (docs/science.md §4): tau_max widened to tau_min + 3e-6, every tau
    clamped at 1e-6."""
    lambda_value, dt = net.config.lambda_value, net.config.delta_t
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    c = variables["constants"]
    src, br = np.asarray(c["synapse_source"]), np.asarray(c["synapse_branch"])
    tau_b = np.asarray(c["tau_b"], np.float64)
    lo, hi = (
        net.config.memory_tau_min,
        max(net.config.memory_tau_min + 3e-6, net.config.memory_tau_max),
    )
    tau_m = np.maximum((hi - lo) / (1 + np.exp(-p["proto_tau_m"])) + lo, 1e-6)
    tau_b = np.maximum(tau_b, 1e-6)
    w_s = np.maximum(p["proto_w_s"], 0.0)
    e = np.asarray(e, np.float64)
    b_sz, t_sz, d_ext = e.shape
    n, m, d = net.config.num_neurons, net.config.num_memory, net.config.num_branches
    n_layers = len(p["mlp"])
    out = np.zeros((b_sz, t_sz, n))
    for b in range(b_sz):
        branch, mem, y_prev = np.zeros((n, d)), np.zeros((n, m)), np.zeros(n)
        for t in range(t_sz):
            pool = np.concatenate([e[b, t], y_prev])
            y_new = np.zeros(n)
            for i in range(n):
                syn = np.zeros(d)
                for s in range(src.shape[1]):
                    syn[br[i, s]] += w_s[i, s] * pool[src[i, s]]
                branch[i] = np.exp(-dt / tau_b[i]) * branch[i] + syn
                k_m = np.exp(-dt / tau_m[i])
                h = np.concatenate([branch[i], k_m * mem[i]])
                for li in range(n_layers):
                    layer = p["mlp"][f"dense_{li}"]
                    h = h @ layer["kernel"][i] + layer["bias"][i]
                    if li < n_layers - 1:
                        h = np.maximum(h, 0.0)
                dm = 1.7159 * np.tanh(2.0 / 3.0 * h)
                mem[i] = k_m * mem[i] + (1 - np.exp(-dt * lambda_value / tau_m[i])) * dm
                y_new[i] = mem[i] @ p["w_y"]["kernel"][i] + p["w_y"]["bias"][i]
            y_prev = y_new
            out[b, t] = y_new
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(),  # balanced: half recurrent
        dict(num_neurons=3, synapses_per_neuron=8, recurrent_fraction=0.75, mlp_num_layers=2),
        dict(num_neurons=2, synapses_per_neuron=12, recurrent_fraction=1.0, external_dim=10),
        # the paper's SHD bounds in milliseconds at 10 ms bins, and a zero branch timescale
        dict(memory_tau_min=0.0, memory_tau_max=1000.0, delta_t=10.0, tau_b_value=0.0),
        dict(memory_tau_min=4.0, memory_tau_max=4.0),  # widened to 4 + 3e-6, as the reference
    ],
)
@pytest.mark.parametrize(
    "connectivity,layout,kernel",
    [
        ("gather", "neuron_major", "xla"),
        ("dense", "neuron_major", "xla"),
        ("gather", "neuron_minor", "xla"),
        ("dense", "neuron_minor", "xla"),
        ("auto", "auto", "cpu_fused"),  # the fused kernel reads neither option
    ],
)
def test_network_matches_numpy_per_step_loop(kw, connectivity, layout, kernel):
    if kernel == "cpu_fused":  # only without a compiler; a failed build fails here
        if fused_build._compiler() is None:
            pytest.skip("no C++ compiler: the fused kernel cannot be built")
        assert fused.available(), fused.unavailable_reason()
    net = _net(connectivity=connectivity, layout=layout, kernel=kernel, **kw)
    e = _inputs(2, 6, net.config.external_dim)
    variables = _variables(net, e)
    y, carry = jax.jit(net.apply)(variables, e)
    ref = numpy_network(variables, net, e)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(carry["output"]), ref[:, -1], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    "kw",
    [
        dict(num_neurons=2, synapses_per_neuron=16, external_dim=14),  # repeated recurrent sources
        dict(num_neurons=9, synapses_per_neuron=12, num_branches=3, external_dim=20),
    ],
)
def test_gather_and_dense_give_equal_outputs_and_gradients(kw):
    gather, dense = _net(connectivity="gather", **kw), _net(connectivity="dense", **kw)
    e = _inputs(3, 5, gather.config.external_dim, seed=2)
    variables = _variables(gather, e, seed=3)

    def loss(params, x, model):
        y, carry = model.apply({**variables, "params": params}, x)
        weights = jnp.linspace(-1.0, 1.0, y.size).reshape(y.shape)
        return jnp.sum(weights * y) + jnp.sum(carry["memory"] ** 2), y

    outs = {}
    for name, model in (("gather", gather), ("dense", dense)):
        grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2)
        (val, y), (gp, gx) = grad_fn(variables["params"], e, model)
        outs[name] = (val, gp, gx, y)
    np.testing.assert_allclose(outs["gather"][3], outs["dense"][3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs["gather"][0], outs["dense"][0], rtol=1e-5)
    np.testing.assert_allclose(outs["gather"][2], outs["dense"][2], rtol=1e-4, atol=1e-6)
    flat_g = jax.tree_util.tree_leaves_with_path(outs["gather"][1])
    flat_d = jax.tree_util.tree_leaves(outs["dense"][1])
    for (path, a), b in zip(flat_g, flat_d, strict=True):
        assert np.abs(np.asarray(a)).max() > 0, jax.tree_util.keystr(path)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("n,s,d,i", [(5, 6, 3, 4), (7, 16, 4, 30), (3, 9, 2, 2)])
def test_branch_slots_hold_each_synapse_once_and_slot_sums_equal_the_dense_product(n, s, d, i):
    """Any sources and branches (unsorted, repeated sources, empty branches)."""
    from elm_jax.network import dynamics

    rng = np.random.default_rng(n * s)
    source = rng.integers(0, i, (n, s)).astype(np.int32)
    branch = rng.integers(0, d, (n, s)).astype(np.int32)
    branch[0] = 0  # one neuron with everything on one branch, the others empty
    slot, src = map(np.asarray, dynamics.branch_slots(source, branch, d, pad_source=i))
    for k in range(n):
        filled = slot[k][slot[k] < s]
        assert sorted(filled.tolist()) == list(range(s))
        for j in range(d):
            used = slot[k, j][slot[k, j] < s]
            assert (branch[k, used] == j).all() and (np.diff(used) > 0).all()
            np.testing.assert_array_equal(src[k, j][slot[k, j] < s], source[k, used])
            assert (src[k, j][slot[k, j] == s] == i).all()
    e = jnp.asarray(rng.normal(size=(2, 5, i)), jnp.float32)
    w_s = jnp.asarray(rng.uniform(size=(n, s)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(5, n, 2, d)), jnp.float32)
    outs = {}
    for mode in ("gather", "dense"):
        f = lambda w, x: dynamics.external_branch_input(x, w, source, branch, d, mode)  # noqa: B023, E731
        out, vjp = jax.vjp(f, w_s, e)
        outs[mode] = (out, *vjp(g))
    for a, b in zip(outs["gather"], outs["dense"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("slots_max", [0, 16])  # forward by row gathers, or slot by slot
@pytest.mark.parametrize("chunk", [1, 2, 3])  # T = 7: chunks with and without a remainder
def test_time_chunked_external_gather_equals_the_whole_sequence_and_dense(
    monkeypatch, chunk, slots_max
):
    from elm_jax.network import dynamics

    monkeypatch.setattr(dynamics, "BRANCH_SLOTS_MAX", slots_max)

    net = _net(num_neurons=6, synapses_per_neuron=12, external_dim=9)
    e = _inputs(2, 7, net.config.external_dim, seed=4)
    variables = _variables(net, e, seed=5)
    c = variables["constants"]
    k_ext = net.config.synapses_per_neuron - num_recurrent_synapses(
        12, net.config.recurrent_fraction
    )
    source, branch = c["synapse_source"][:, :k_ext], c["synapse_branch"][:, :k_ext]
    w_s = jax.nn.relu(variables["params"]["proto_w_s"][:, :k_ext])
    g = jax.random.normal(jax.random.PRNGKey(6), (7, 6, 2, net.config.num_branches))

    def run(mode):
        def f(w, x):
            return dynamics.external_branch_input(
                x, w, source, branch, net.config.num_branches, mode
            )

        out, vjp = jax.vjp(f, w_s, e)
        return (out, *vjp(g))

    whole = run("dense")
    # The chunk holds GATHER_CHUNK_ELEMENTS // (synapses * batch) steps.
    monkeypatch.setattr(dynamics, "GATHER_CHUNK_ELEMENTS", chunk * source.size * 2)
    chunked = run("gather")
    monkeypatch.setattr(dynamics, "GATHER_CHUNK_ELEMENTS", 10**9)
    unchunked = run("gather")
    for a, b, ref in zip(chunked, unchunked, whole, strict=True):
        assert np.abs(np.asarray(ref)).max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "n,k_c,d,d_ext,frac",
    [
        (5, 8, 4, 7, 0.5),
        (40, 24, 4, 700, 0.5),
        (3, 16, 4, 14, 0.75),
        (6, 12, 3, 8, 1 / 3),
        (4, 8, 2, 9, 0.0),
    ],
)
def test_each_neuron_has_exactly_k_c_synapses_with_the_requested_recurrent_share(
    n, k_c, d, d_ext, frac
):
    w = make_wiring(
        num_neurons=n, synapses_per_neuron=k_c, num_branches=d, external_dim=d_ext,
        recurrent_fraction=frac, seed=7,
    )  # fmt: skip
    k_rec = num_recurrent_synapses(k_c, frac)
    assert w.source.shape == w.branch.shape == (n, k_c)
    assert w.num_external == k_c - k_rec
    is_rec = w.source >= d_ext
    np.testing.assert_array_equal(is_rec.sum(1), k_rec)
    assert not is_rec[:, : w.num_external].any() and is_rec[:, w.num_external :].all()
    assert w.source.min() >= 0 and w.source.max() < d_ext + n
    for i in range(n):
        np.testing.assert_array_equal(np.bincount(w.branch[i], minlength=d), k_c // d)
        ext, rec = w.source[i, : w.num_external], w.source[i, w.num_external :]
        # Without replacement while the pool allows, then balanced repeats.
        for part, pool in ((ext, d_ext), (rec, n)):
            counts = np.bincount(part - (0 if part is ext else d_ext), minlength=pool)
            assert counts.max() - (counts.min() if len(part) >= pool else 0) <= 1


def _small_wiring(seed: int):
    return make_wiring(
        num_neurons=10, synapses_per_neuron=16, num_branches=4, external_dim=30,
        recurrent_fraction=0.5, seed=seed,
    )  # fmt: skip


def test_wiring_is_deterministic_in_the_seed_and_stored_in_constants():
    a, b, c = (_small_wiring(s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.branch, b.branch)
    assert not np.array_equal(a.source, c.source)
    net = _net(num_neurons=10, synapses_per_neuron=16, external_dim=30, wiring_seed=3)
    init = jax.jit(net.init)
    v = init(jax.random.PRNGKey(123), jnp.zeros((1, 2, 30)))
    np.testing.assert_array_equal(v["constants"]["synapse_source"], a.source)
    np.testing.assert_array_equal(v["constants"]["synapse_branch"], a.branch)
    # Init key does not change the wiring.
    v2 = init(jax.random.PRNGKey(7), jnp.zeros((1, 2, 30)))
    np.testing.assert_array_equal(v2["constants"]["synapse_source"], a.source)


def test_wiring_is_identical_in_a_fresh_process():
    code = (
        "import json, numpy as np; from elm_jax.network.wiring import make_wiring;"
        "w = make_wiring(num_neurons=10, synapses_per_neuron=16, num_branches=4, "
        "external_dim=30, recurrent_fraction=0.5, seed=3);"
        "print(json.dumps([w.source.tolist(), w.branch.tolist()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    src, br = json.loads(out.stdout)
    w = _small_wiring(3)
    np.testing.assert_array_equal(src, w.source)
    np.testing.assert_array_equal(br, w.branch)


def test_single_neuron_without_recurrence_reduces_to_elm_neuron():
    from elm_jax.neuron import layers
    from elm_jax.neuron.config import NeuronConfig

    d_ext, k_c, d, m = 11, 8, 4, 3
    net = ELMNetwork(NetworkConfig(
        num_neurons=1, num_memory=m, synapses_per_neuron=k_c, external_dim=d_ext,
        num_branches=d, recurrent_fraction=0.0, tau_b_value=3.0,
    ))  # fmt: skip
    e = _inputs(2, 9, d_ext, seed=4)
    v = _variables(net, e)
    neuron = layers.ELMNeuron(NeuronConfig(
        num_input=d_ext, num_output=1, num_memory=m, num_branches=d,
        synapses_per_branch=k_c // d, routing="random_routing",
        learn_memory_tau=True, tau_b_value=3.0, neuron_version="v2",
    ))  # fmt: skip
    nv = jax.eval_shape(neuron.init, jax.random.PRNGKey(1), e)
    p = v["params"]
    n_params = {
        "proto_w_s": p["proto_w_s"][0],
        "proto_tau_m": p["proto_tau_m"][0],
        "mlp": jax.tree_util.tree_map(lambda a: a[0], p["mlp"]),
        "w_y": {"kernel": p["w_y"]["kernel"][0][:, None], "bias": p["w_y"]["bias"][:1]},
    }
    assert jax.tree_util.tree_structure(n_params) == jax.tree_util.tree_structure(nv["params"])
    assert set(nv["constants"]) == {"tau_b", "routing_indices", "routing_mask"}
    consts = {
        "routing_indices": v["constants"]["synapse_source"][0],
        "routing_mask": jnp.ones((k_c,), bool),
        "tau_b": v["constants"]["tau_b"][0],
    }
    # Same synapse -> branch layout as the neuron (contiguous blocks of d_brch).
    np.testing.assert_array_equal(v["constants"]["synapse_branch"][0], np.arange(k_c) // (k_c // d))
    y_neuron = jax.jit(neuron.apply)({"params": n_params, "constants": consts}, e)
    y_net, _ = jax.jit(net.apply)(v, e)
    np.testing.assert_allclose(np.asarray(y_net), np.asarray(y_neuron), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw,field",
    [
        (dict(num_neurons=0), "num_neurons"),
        (dict(synapses_per_neuron=6), "synapses_per_neuron"),
        (dict(synapses_per_neuron=16, external_dim=7, num_neurons=5), "pool"),
        (dict(recurrent_fraction=1.5), "recurrent_fraction"),
        (dict(recurrent_fraction=-0.1), "recurrent_fraction"),
        (dict(connectivity="sparse"), "connectivity"),
    ],
)
def test_invalid_network_arguments_raise_value_error_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        jax.eval_shape(
            _net(**kw).init, jax.random.PRNGKey(0), jnp.zeros((1, 2, kw.get("external_dim", 7)))
        )


def test_wrong_input_width_raises_value_error():
    with pytest.raises(ValueError, match="expected"):
        jax.eval_shape(_net().init, jax.random.PRNGKey(0), jnp.zeros((1, 2, 6)))


def test_auto_connectivity_is_dense_until_the_dense_product_would_dominate_the_step():
    # Shapes of bench/network_speed.py's SHD-Adding points (P_core = 3e4, k_c = 32).
    few = _net(num_neurons=11, num_memory=24, synapses_per_neuron=32, external_dim=700)
    many = _net(num_neurons=600, num_memory=1, synapses_per_neuron=32, external_dim=700)
    assert few.config.connectivity_modes == ("dense", "dense")
    assert many.config.connectivity_modes == ("gather", "gather")
    dense = dataclasses.replace(many.config, connectivity="dense")
    assert dense.connectivity_modes == ("dense", "dense")
    # No recurrent synapses: nothing to gather, the (empty) recurrent part reports dense.
    assert _net(recurrent_fraction=0.0).config.connectivity_modes[1] == "dense"


@pytest.mark.parametrize(
    "kw",
    [
        dict(connectivity="gather", remat_chunk=0),
        dict(connectivity="dense", mlp_num_layers=2, remat_chunk=0),
        dict(num_neurons=2, synapses_per_neuron=16, external_dim=14, connectivity="gather"),
        dict(num_neurons=4, recurrent_fraction=0.0, num_memory=2),
        dict(num_neurons=3, recurrent_fraction=1.0, connectivity="dense", num_branches=2),
        dict(connectivity="gather", layout="neuron_minor"),
        dict(connectivity="dense", mlp_num_layers=2, layout="neuron_minor"),
        dict(num_neurons=2, synapses_per_neuron=16, external_dim=14, layout="neuron_minor"),
        dict(num_neurons=4, recurrent_fraction=0.0, num_memory=2, layout="neuron_minor"),
        dict(num_neurons=3, recurrent_fraction=1.0, num_branches=2, layout="neuron_minor"),
        dict(connectivity="gather", mlp_num_layers=2, remat_chunk=1),
        dict(connectivity="dense", layout="neuron_minor", remat_chunk=7),
    ],
)
def test_custom_gradient_scan_equals_plain_autodiff(kw):
    from elm_jax.network import dynamics, layers

    net = _net(**kw)
    e = _inputs(3, 7, net.config.external_dim, seed=5)
    variables = _variables(net, e, seed=6)
    rng = np.random.default_rng(0)
    carry0 = jax.tree_util.tree_map(
        lambda a: jnp.asarray(0.3 * rng.standard_normal(a.shape), jnp.float32),
        dynamics.zero_carry(
            batch_size=3,
            num_neurons=net.config.num_neurons,
            num_memory=net.config.num_memory,
            num_branches=net.config.num_branches,
        ),
    )

    def loss(params, x, c0, custom):
        original = layers.run_network
        layers.run_network = lambda *args, **kw: original(*args, **kw, custom_grad=custom)
        try:
            y, carry = net.apply({**variables, "params": params}, x, c0)
        finally:
            layers.run_network = original
        weights = jnp.linspace(-1.0, 1.0, y.size).reshape(y.shape)
        terms = [jnp.sum(weights * y)] + [
            jnp.sum(jnp.sin(v)) for v in jax.tree_util.tree_leaves(carry)
        ]
        return sum(terms), y

    results = {}
    for custom in (False, True):
        fn = jax.jit(
            jax.value_and_grad(
                lambda p, x, c, custom=custom: loss(p, x, c, custom),
                argnums=(0, 1, 2),
                has_aux=True,
            )
        )
        results[custom] = fn(variables["params"], e, carry0)
    (v_ref, y_ref), g_ref = results[False]
    (v_cus, y_cus), g_cus = results[True]
    np.testing.assert_allclose(y_cus, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_cus, v_ref, rtol=1e-5)
    flat_ref = jax.tree_util.tree_leaves_with_path(g_ref)
    flat_cus = jax.tree_util.tree_leaves(g_cus)
    k_rec = num_recurrent_synapses(net.config.synapses_per_neuron, net.config.recurrent_fraction)
    assert len(flat_ref) == len(flat_cus)
    for (path, a), b in zip(flat_ref, flat_cus, strict=True):
        # Without recurrent synapses the initial output does not reach the loss, and without
        # external ones the input does not (exact zeros in both implementations).
        key = jax.tree_util.keystr(path)
        feeds_loss = not (
            (key == "[2]['output']" and k_rec == 0)
            or (key == "[1]" and k_rec == net.config.synapses_per_neuron)
        )
        assert (np.abs(np.asarray(a)).max() > 0) == feeds_loss, jax.tree_util.keystr(path)
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-6, err_msg=jax.tree_util.keystr(path))


def _grads(net, variables, e, carry0):
    def loss(params, x, c0):
        y, carry = net.apply({**variables, "params": params}, x, c0)
        weights = jnp.linspace(-1.0, 1.0, y.size).reshape(y.shape)
        return jnp.sum(weights * y) + sum(jnp.sum(jnp.sin(v)) for v in carry.values()), y

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        variables["params"], e, carry0
    )


@pytest.mark.parametrize("layout", ["neuron_major", "neuron_minor"])
@pytest.mark.parametrize("connectivity", ["gather", "dense"])
def test_rematerialised_scan_gives_the_same_values_and_gradients(layout, connectivity):
    from elm_jax.network import dynamics

    base = dict(num_neurons=6, mlp_num_layers=2, connectivity=connectivity, layout=layout)
    no_remat = _net(remat_chunk=0, **base)
    e = _inputs(3, 12, 7, seed=8)
    variables = _variables(no_remat, e, seed=9)
    rng = np.random.default_rng(1)
    carry0 = jax.tree_util.tree_map(
        lambda a: jnp.asarray(0.3 * rng.standard_normal(a.shape), jnp.float32),
        dynamics.zero_carry(batch_size=3, num_neurons=6, num_memory=3, num_branches=4),
    )
    (v_ref, y_ref), g_ref = _grads(no_remat, variables, e, carry0)
    for chunk in (3, 4, 5, 12, 20):  # 5: a last chunk of 2 steps; 20: one chunk of all 12
        (v, y), g = _grads(_net(remat_chunk=chunk, **base), variables, e, carry0)
        np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(v, v_ref, rtol=1e-6)
        flat_ref = jax.tree_util.tree_leaves_with_path(g_ref)
        for (path, a), b in zip(flat_ref, jax.tree_util.tree_leaves(g), strict=True):
            assert np.abs(np.asarray(a)).max() > 0, jax.tree_util.keystr(path)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=f"{chunk} {path}")


def test_invalid_layout_raises_value_error_naming_the_field():
    with pytest.raises(ValueError, match="layout='rows'"):
        jax.eval_shape(_net(layout="rows").init, jax.random.PRNGKey(0), jnp.zeros((1, 2, 7)))


@pytest.mark.parametrize("bin_ms", [2.0, 25.0])
def test_time_unit_ms_reaches_the_network_the_trainer_builds(tmp_path, bin_ms):
    """`model.time_unit="ms"`: the module `Run.prepare` trains steps with Δt = data.bin_ms, and
    its forward pass equals the NumPy loop at that Δt (not at 1 step)."""
    import types

    from elm_jax.configs import shd_adding_paper
    from elm_jax.models import build_core
    from elm_jax.train.loop import Run

    config = shd_adding_paper.get_config(f"bin_ms={bin_ms:g},N=4,d_m=2,k_c=8")
    config.seeds = [0]
    dataset = types.SimpleNamespace(info={"name": "in-memory", "task": "classification"})
    run = Run.prepare(config, str(tmp_path / "run"), dataset=dataset)
    core = build_core(run.spec.model)
    assert isinstance(core, ELMNetwork) and core.config.delta_t == bin_ms
    e = _inputs(2, 5, core.config.external_dim)
    variables = _variables(core, e)
    y, _ = jax.jit(core.apply)(variables, e)
    np.testing.assert_allclose(
        np.asarray(y), numpy_network(variables, core, e), rtol=2e-5, atol=2e-5
    )
    in_steps = core.clone(config=dataclasses.replace(core.config, delta_t=1.0))
    one_step = numpy_network(variables, in_steps, e)
    assert np.abs(np.asarray(y) - one_step).max() > 1e-3  # the test can tell the two apart


def test_time_unit_ms_reaches_the_neuron_the_trainer_builds(tmp_path):
    import types

    from elm_jax.configs import neuron_shd
    from elm_jax.models import build_core
    from elm_jax.train.loop import Run

    config = neuron_shd.get_config()
    config.seeds = [0]
    dataset = types.SimpleNamespace(info={"name": "in-memory", "task": "classification"})
    run = Run.prepare(config, str(tmp_path / "run"), dataset=dataset)
    assert run.cfg.model.time_unit == "ms"
    assert build_core(run.spec.model).config.delta_t == run.cfg.data.bin_ms != 1.0
