"""Budget accounting: analytic counts == counted leaves, enumeration, sweeps, CLI, bad input."""

import itertools
import json
import math

import jax
import jax.numpy as jnp
import pytest

from elm_jax.budget import cli as budget_cli
from elm_jax.budget.cost import cost, count_params, elm_k_e
from elm_jax.budget.enumeration import (
    EmptyEnumerationError,
    axis_sweep,
    enumerate_points,
    random_sweep,
)
from elm_jax.data import static_info
from elm_jax.models import ModelConfig, build_model

TASKS = ("shd_adding", "shd", "enwik8")


def _cfg(arch, task, n, d_m=2, k_c=8, d_tree=4, **kw):
    return ModelConfig(
        arch=arch, num_neurons=n, num_memory=d_m, synapses_per_neuron=k_c, num_branches=d_tree,
        embed_dim=kw.pop("embed_dim", 16), **static_info(task), **kw,
    )  # fmt: skip


def _shapes(cfg):
    x = (
        jax.ShapeDtypeStruct((1, 1, cfg.input_dim), jnp.float32)
        if cfg.task == "classification"
        else jax.ShapeDtypeStruct((1, 1), jnp.int32)
    )
    return jax.eval_shape(build_model(cfg).init, jax.random.PRNGKey(0), x)


def test_k_e_matches_the_spec_closed_form_with_defaults():
    for d_m in range(1, 40):
        closed = (4 + d_m) * 2 * d_m + 2 * d_m + 2 * d_m * d_m + d_m + (d_m + 1) + d_m
        assert elm_k_e(num_memory=d_m) == closed


def test_single_neuron_cost_equals_the_neuron_parameter_count():
    from elm_jax.neuron.config import num_params

    for d_m, k_c, d_tree, layers in itertools.product((1, 5), (4, 12), (2, 4), (1, 2)):
        n = num_params(
            num_input=700, num_output=1, num_memory=d_m, mlp_num_layers=layers,
            num_branches=d_tree, synapses_per_branch=k_c // d_tree, learn_memory_tau=True,
        )  # fmt: skip
        assert elm_k_e(num_memory=d_m, num_branches=d_tree, mlp_num_layers=layers) + k_c == n


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("arch", ["elm", "lstm", "gru", "leaky"])
def test_analytic_counts_equal_counted_leaves(arch, task):
    # (N, d_m, k_c, d_tree, l_mlp, learn_tau): every value of each axis appears at least once.
    elm_grid = [
        (1, 1, 4, 4, 1, True),
        (7, 3, 8, 2, 2, False),
        (30, 8, 24, 4, 1, True),
        (30, 1, 8, 2, 1, False),
        (7, 8, 4, 4, 2, True),
        (1, 3, 24, 2, 3, True),
    ]
    grid = elm_grid if arch == "elm" else [(n, 1, 4, 4, 1, True) for n in (1, 7, 30)]
    for n, d_m, k_c, d_tree, layers, learn in grid:
        cfg = _cfg(
            arch, task, n, d_m, k_c, d_tree, mlp_num_layers=layers, learn_memory_tau=learn,
            embed_dim=32,
        )  # fmt: skip
        c = cost(cfg)
        counted = count_params(_shapes(cfg), cfg)
        assert counted == {"core": c.P_core, "io": c.P_io, "total": c.P_total}, cfg
        assert c.P_core == n * (c.k_e + c.k_c)


def test_count_params_on_a_real_tree_excludes_constants():
    cfg = _cfg("elm", "shd_adding", 3, 2, 8, learn_memory_tau=False)
    variables = jax.jit(build_model(cfg).init)(jax.random.PRNGKey(0), jnp.zeros((1, 2, 700)))
    assert "proto_tau_m" in variables["constants"]["core"]
    c = cost(cfg)
    assert count_params(variables, cfg) == {"core": c.P_core, "io": c.P_io, "total": c.P_total}
    assert count_params(variables["params"], cfg)["total"] == c.P_total


def test_flops_follow_the_documented_convention_on_a_planted_config():
    cfg = _cfg("elm", "shd_adding", 3, 2, 8)  # d_tree 4, d_mlp 4, 19 classes
    macs = 3 * (8 + (4 + 2) * 4 + 4 * 2 + 2) + 3 * 19
    assert cost(cfg).flops_per_step == 2 * macs
    assert cost(cfg).flops_train_step == 6 * macs
    lstm = _cfg("lstm", "shd_adding", 5)
    assert cost(lstm).flops_per_step == 2 * (4 * (700 + 5) * 5 + 5 * 19)


@pytest.mark.parametrize("kind", ["core", "total"])
@pytest.mark.parametrize("task,value", [("shd_adding", 1e4), ("enwik8", 3e5), ("shd", 2e3)])
def test_enumerated_points_are_within_tolerance_and_satisfy_the_budget_identity(task, value, kind):
    tol = 0.05
    points = enumerate_points(value, task, budget_kind=kind, tolerance=tol)
    assert len(points) >= 10
    key = "P_core" if kind == "core" else "P_total"
    d_ext = static_info(task)["input_dim"] if task != "enwik8" else 64
    for p in points:
        assert abs(getattr(p, key) - value) <= tol * value
        assert p.P_core == p.N * (p.k_e + p.k_c)
        assert p.P_total == p.P_core + p.P_io
        assert p.k_c % p.d_tree == 0 and p.k_c <= d_ext + p.N
        assert p.k_e == elm_k_e(num_memory=p.d_m) and p.budget == value and p.budget_kind == kind
        assert cost(p.model_config()).P_total == p.P_total
    ids = [(p.d_m, p.k_c) for p in points]
    assert ids == sorted(set(ids))  # deterministic order, no duplicates
    assert points == enumerate_points(value, task, budget_kind=kind, tolerance=tol)


def test_enumeration_finds_every_grid_pair_that_has_a_point_in_tolerance():
    d_ms, k_cs, value, tol = (1, 2, 3, 5, 8, 13), (4, 8, 12, 20, 40), 3000.0, 0.03
    found = {
        (p.d_m, p.k_c)
        for p in enumerate_points(value, "shd_adding", d_m=d_ms, k_c=k_cs, tolerance=tol)
    }
    brute = {
        (d_m, k_c)
        for d_m, k_c in itertools.product(d_ms, k_cs)
        for n in range(1, 400)
        if abs(n * (elm_k_e(num_memory=d_m) + k_c) - value) <= tol * value
    }
    assert found == brute


@pytest.mark.parametrize("arch", ["lstm", "gru", "leaky"])
def test_baselines_enumerate_the_n_closest_to_the_budget(arch):
    for task, value in (("enwik8", 1e5), ("shd_adding", 1e5)):
        (p,) = enumerate_points(value, task, arch=arch, tolerance=0.05)
        assert abs(p.P_core - value) <= 0.05 * value and p.P_core == p.N * (p.k_e + p.k_c)
        size = lambda n, p=p: cost(p.model_config(num_neurons=n)).P_core  # noqa: E731
        assert abs(size(p.N) - value) <= min(abs(size(p.N - 1) - value), abs(size(p.N + 1) - value))


def test_budget_below_the_smallest_point_raises_value_error():
    with pytest.raises(ValueError, match=r"budget=10 is below the smallest point"):
        enumerate_points(10, "shd_adding")
    with pytest.raises(ValueError, match=r"budget=1000 is below the smallest point"):
        enumerate_points(1000, "shd_adding", arch="lstm")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k_c=[4, 6]), r"k_c=6 .*multiple of d_tree=4"),
        (dict(d_m=[0]), r"d_m=0"),
        (dict(tolerance=-0.1), r"tolerance=-0.1"),
        (dict(budget_kind="params"), r"budget_kind='params'"),
        (dict(arch="rnn"), r"arch='rnn'"),
    ],
)
def test_invalid_enumeration_requests_raise_value_error_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        enumerate_points(1e4, "shd_adding", **kwargs)
    with pytest.raises(ValueError, match=r"task='mnist'"):
        enumerate_points(1e4, "mnist")


def test_empty_enumeration_names_the_constraint_that_emptied_it():
    with pytest.raises(EmptyEnumerationError, match=r"tolerance=0.0.*nearest is N="):
        enumerate_points(1e4 + 1, "shd_adding", d_m=[7], k_c=[12], tolerance=0.0)
    with pytest.raises(EmptyEnumerationError, match=r"exceeds the pool"):
        enumerate_points(2e3, "enwik8", d_m=[1], k_c=[400], embed_dim=16)
    with pytest.raises(EmptyEnumerationError, match=r"widen the tolerance"):
        enumerate_points(1e4, "shd_adding", arch="lstm", tolerance=0.05)


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(num_neurons=0), "num_neurons"),
        (dict(synapses_per_neuron=10), "synapses_per_neuron"),
        (
            dict(task="lm", input_dim=256, num_classes=256, embed_dim=8, synapses_per_neuron=80),
            "pool",
        ),
        (dict(recurrent_fraction=1.2), "recurrent_fraction"),
        (dict(recurrent_fraction=-0.5), "recurrent_fraction"),
        (dict(arch="transformer"), "arch"),
        (dict(connectivity="csr"), "connectivity"),
        (dict(memory_tau_max=0.5), "memory_tau_max"),
    ],
)
def test_invalid_model_configs_raise_value_error_naming_field_and_value(changes, field):
    with pytest.raises(ValueError, match=field) as err:
        ModelConfig.from_dict({**ModelConfig().to_dict(), **changes})
    assert str(list(changes.values())[-1]) in str(err.value)  # the offending value


def test_model_config_from_dict_rejects_unknown_fields_and_round_trips():
    cfg = ModelConfig.from_dict({"num_neurons": 12.0, "num_memory": 3})
    assert cfg.num_neurons == 12 and ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown ModelConfig fields \['neurons'\]"):
        ModelConfig.from_dict({"neurons": 3})


@pytest.mark.parametrize("axis,field", [("N", "N"), ("k_e", "d_m"), ("k_c", "k_c")])
def test_axis_sweep_varies_only_its_axis(axis, field):
    base = enumerate_points(1e4, "shd_adding", d_m=[4], k_c=[16])[0]
    points = axis_sweep(base, axis)
    assert len(points) >= 5
    others = {"N", "d_m", "k_c"} - {field}
    for p in points:
        assert all(getattr(p, f) == getattr(base, f) for f in others)
        assert p.P_core == p.N * (p.k_e + p.k_c) and p.budget is None
    values = [getattr(p, field) for p in points]
    assert values == sorted(set(values)) and getattr(base, field) in values
    if axis == "k_e":
        assert [p.k_e for p in points] == sorted({p.k_e for p in points})
    with pytest.raises(ValueError, match="axis='d_tree'"):
        axis_sweep(base, "d_tree")


def test_axis_sweep_rejects_k_c_beyond_the_pool_or_off_the_branch_grid():
    base = enumerate_points(2e3, "enwik8", d_m=[2], k_c=[8], embed_dim=16)[0]
    with pytest.raises(ValueError, match="larger than the pool"):
        axis_sweep(base, "k_c", [8, 4 * math.ceil((16 + base.N + 1) / 4)])
    with pytest.raises(ValueError, match=r"k_c=10 .*multiple of d_tree=4"):
        axis_sweep(base, "k_c", [10])


def test_random_sweep_is_seeded_log_uniform_over_three_orders_of_magnitude():
    points = random_sweep("shd_adding", 40, budget_range=(1e3, 1e6), seed=3)
    again = random_sweep("shd_adding", 40, budget_range=(1e3, 1e6), seed=3)
    assert points == again
    assert points != random_sweep("shd_adding", 40, budget_range=(1e3, 1e6), seed=4)
    budgets = [p.budget for p in points]
    assert all(1e3 <= b <= 1e6 for b in budgets)
    assert math.log10(max(budgets) / min(budgets)) > 2.0
    assert len({(p.N, p.d_m, p.k_c) for p in points}) == len(points)
    for p in points:
        assert abs(p.P_core - p.budget) <= 0.05 * p.budget


def test_command_line_prints_exact_json_fields_and_verified_counts(capsys):
    rc = budget_cli.main(
        ["points", "--budget", "1e4", "--task", "shd_adding", "--d-m", "2,4", "--k-c", "8,16",
         "--json", "--verify"]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4
    fields = ["N", "d_m", "k_c", "k_e", "P_core", "P_io", "P_total", "flops_per_step", "P_counted"]
    for row in rows:
        assert list(row) == fields
        assert row["P_counted"] == row["P_total"]
        assert abs(row["P_core"] - 1e4) <= 500


def test_command_line_reports_impossible_requests_as_errors(capsys):
    assert budget_cli.main(["points", "--budget", "5", "--task", "shd_adding"]) == 2
    assert "below the smallest point" in capsys.readouterr().err
