"""Trainer: steps, optimizer, evaluation, divergence, summary, smoke run, bad input."""

from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_helpers as th

from elm_jax import data, parallel
from elm_jax.budget.cost import cost
from elm_jax.configs import smoke
from elm_jax.configs.merge import resolve_config
from elm_jax.data.enwik8.stream import stream_train_batch
from elm_jax.models import ModelConfig, build_model, initial_carry
from elm_jax.optim import OptimConfig, make_optimizer, set_learning_rate, unit_schedule
from elm_jax.train.loop import train_and_evaluate
from elm_jax.train.steps import StepSpec, evaluate, init_state, train_step

SUMMARY_KEYS = {
    "status", "reason", "config", "model", "cost", "data", "steps", "wall_s", "seeds", "metric_name",
    "input_blind",
}  # fmt: skip
SEED_KEYS = {
    "seed", "status", "reason", "diverged_step", "best_step", "val_loss", "val_metric",
    "test_loss", "test_metric", "final_val_loss", "final_val_metric", "final_test_loss",
    "final_test_metric", "wiring_seed",
}  # fmt: skip


def _spec(config) -> StepSpec:
    cfg = resolve_config(config)
    return StepSpec.create(
        ModelConfig.from_dict(cfg.model.to_dict()),
        OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps),
    )


def _one_device_mesh(num_seeds: int = 1):
    return parallel.make_mesh(num_seeds, jax.devices()[:1])


def _loss_on(spec: StepSpec, state, batch) -> float:
    model = build_model(spec.model)
    params = jax.tree.map(lambda x: x[0], state.params)
    extra = jax.tree.map(lambda x: x[0], state.extra)
    logits, _ = model.apply({"params": params, **extra}, jnp.asarray(batch["inputs"][0]))
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"][0]).mean())


def test_one_train_step_lowers_the_loss_on_a_fixed_batch():
    config = th.lm_config()
    spec = _spec(config)
    mesh = _one_device_mesh()
    ds = th.byte_dataset()
    batch = {k: v[None] for k, v in ds.train_batch(0, 8, 0).items()}
    state = init_state(spec, [0], [1e-2], mesh)
    before = _loss_on(spec, state, batch)
    state = train_step(
        state, parallel.put_global(batch, parallel.train_batch_sharding(mesh)), spec=spec
    )
    after = _loss_on(spec, state, batch)
    assert after < before - 1e-3, (before, after)
    assert int(state.step[0]) == 1
    # The step's own loss sum is the loss before the update.
    np.testing.assert_allclose(float(state.metrics["loss_sum"][0]) / (8 * 16), before, rtol=1e-5)


def test_schedule_matches_warmup_then_cosine_formula():
    cfg = OptimConfig(learning_rate=1.0, schedule="cosine", warmup_steps=10, num_steps=110)
    f = unit_schedule(cfg)
    for count in (0, 4, 9, 10, 35, 60, 109, 200):
        if count < 10:
            want = (count + 1) / 10
        else:
            want = 0.5 * (1 + math.cos(math.pi * min((count - 10) / 100, 1.0)))
        np.testing.assert_allclose(float(f(count)), want, atol=1e-6)


def test_adamax_update_matches_numpy_reference_with_per_seed_learning_rate():
    cfg = OptimConfig(name="adamax", learning_rate=5e-3, schedule="constant", num_steps=10)
    tx = make_optimizer(cfg)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = [np.array([0.1, -0.3, 0.2]), np.array([-0.2, 0.1, 0.4])]
    state = set_learning_rate(tx.init(params), 2e-2)
    p = params
    m, u, w = np.zeros(3), np.zeros(3), np.array([1.0, -2.0, 3.0])
    for t, g in enumerate(grads, start=1):
        updates, state = tx.update({"w": jnp.asarray(g)}, state, p)
        p = optax.apply_updates(p, updates)
        m = 0.9 * m + 0.1 * g
        u = np.maximum(0.999 * u, np.abs(g) + 1e-8)
        w = w - 2e-2 * (m / (1 - 0.9**t)) / u
    np.testing.assert_allclose(np.asarray(p["w"]), w, rtol=1e-6)


def test_unknown_optimizer_and_bad_schedule_name_the_field():
    with pytest.raises(ValueError, match="optim.name='rmsprop'"):
        resolve_and_build(th.lm_config(**{"optim.name": "rmsprop"}))
    with pytest.raises(ValueError, match="optim.schedule"):
        resolve_and_build(th.lm_config(**{"optim.schedule": "step"}))


def resolve_and_build(config):
    cfg = resolve_config(config)
    return OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps)


def test_classification_eval_equals_numpy_over_the_evaluated_examples(tmp_path):
    ds = data.load("shd_adding", data_dir=th.write_tiny_shd(str(tmp_path)), bin_ms=100.0)
    spec = _spec(th.cls_config())
    mesh = parallel.make_mesh(1)
    state = init_state(spec, [3], [5e-3], mesh)
    # The first 5 batches of 8 of the fixed validation pairing (a capped evaluation).
    got = evaluate(state, "params", ds, "validation", spec, mesh, 8, 20, 5)
    model = build_model(spec.model)
    variables = {
        "params": jax.tree.map(lambda x: x[0], state.params),
        **jax.tree.map(lambda x: x[0], state.extra),
    }
    ce, hits = [], []
    for batch in ds.eval_batches("validation", 6):  # another batch size: other boundaries
        if len(ce) >= 40:
            break
        logits = np.asarray(
            model.apply(variables, jnp.asarray(batch["inputs"]))[0][:, -1], np.float64
        )
        logp = (
            logits
            - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
            - logits.max(-1, keepdims=True)
        )
        real = batch["mask"] > 0
        ce += list(-logp[np.arange(len(logp)), batch["labels"]][real])
        hits += list((logits.argmax(-1) == batch["labels"])[real])
    ce, hits = ce[:40], hits[:40]
    np.testing.assert_allclose(got["loss"][0], np.mean(ce), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"][0], np.mean(hits), rtol=1e-6)


def test_lm_eval_with_carried_state_equals_one_pass_over_the_whole_split():
    ds = th.byte_dataset(repeats=20)
    spec = _spec(th.lm_config())
    mesh = parallel.make_mesh(1)
    state = init_state(spec, [1], [1e-2], mesh)
    # 8 streams of chunks of 16 bytes, state carried across chunks.
    got = evaluate(state, "params", ds, "validation", spec, mesh, 8, 16, None)
    split = ds.split("validation").astype(np.int32)
    model = build_model(spec.model)
    variables = {
        "params": jax.tree.map(lambda x: x[0], state.params),
        **jax.tree.map(lambda x: x[0], state.extra),
    }
    # Reference: the same 8 contiguous streams, each in one pass with no chunking.
    n = len(split) - 1
    stream_len = -(-n // 8)
    ce = []
    for s in range(8):
        lo, hi = s * stream_len, min((s + 1) * stream_len, n)
        logits, _ = model.apply(
            variables, jnp.asarray(split[None, lo:hi]), carry=initial_carry(spec.model, 1)
        )
        logp = jax.nn.log_softmax(logits[0].astype(jnp.float32))
        ce += list(np.asarray(-logp[np.arange(hi - lo), split[lo + 1 : hi + 1]]))
    assert len(ce) == n
    np.testing.assert_allclose(got["loss"][0], np.mean(ce), rtol=1e-5)
    np.testing.assert_allclose(got["bpc"][0], np.mean(ce) / math.log(2), rtol=1e-5)


def test_forced_nan_gives_diverged_with_its_step_and_keeps_last_good_checkpoint(tmp_path):
    ds = data.load("shd_adding", data_dir=th.write_tiny_shd(str(tmp_path)), bin_ms=100.0)
    workdir = str(tmp_path / "run")
    config = th.cls_config(**{"num_train_steps": 8, "checkpoint_every": 2, "eval_every": 2})
    summary = train_and_evaluate(config, workdir, dataset=th.NonFiniteAt(ds, step=4))
    assert summary["status"] == "diverged"
    seed = summary["seeds"][0]
    assert seed["status"] == "diverged" and seed["diverged_step"] == 4
    # Update 4 (step 4 -> 5) failed: step 4 is the last good checkpoint, nothing after it saved.
    assert th.saved_steps(workdir) == [2, 4]
    saved = th.load_saved_state(workdir)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(saved["params"]))

    # No NaN anywhere in the results (a strict parse rejects NaN/Infinity).
    def strict(text: str) -> None:
        json.loads(text, parse_constant=lambda c: pytest.fail(f"results hold {c}"))

    strict(open(os.path.join(workdir, "summary.json")).read())
    for line in open(os.path.join(workdir, "metrics.jsonl")):
        strict(line)
    assert seed["val_loss"] is not None and math.isfinite(seed["test_loss"])


def test_summary_matches_interface_and_the_best_checkpoint(tmp_path):
    ds = data.load("shd_adding", data_dir=th.write_tiny_shd(str(tmp_path)), bin_ms=100.0)
    config = th.cls_config(**{"seeds": (0, 1)})
    workdir = str(tmp_path / "run")
    summary = train_and_evaluate(config, workdir, dataset=ds)
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == summary
    assert SUMMARY_KEYS <= set(summary) and summary["status"] == "ok" and summary["steps"] == 6
    spec = _spec(config)
    assert summary["cost"] == {k: v for k, v in cost(spec.model).__dict__.items()}
    assert summary["metric_name"] == "accuracy" and summary["data"]["source"] == "shd"
    assert [s["seed"] for s in summary["seeds"]] == [0, 1]
    saved = th.load_saved_state(workdir)
    mesh = parallel.make_mesh(2)
    # The trainer drew each seed's wiring from wiring_seed + seed (= the seed here).
    state = init_state(spec, [0, 1], [5e-3, 5e-3], mesh, wiring_seeds=[0, 1])
    state = state.replace(
        best_params=parallel.put_global(saved["best_params"], parallel.state_sharding(mesh))
    )
    test = evaluate(state, "best_params", ds, "test", spec, mesh, 8, 20, 2)
    for i, row in enumerate(summary["seeds"]):
        assert SEED_KEYS <= set(row) and row["status"] == "ok"
        assert row["best_step"] == int(saved["best_step"][i]) in (3, 6)
        np.testing.assert_allclose(row["val_loss"], saved["best_val"][i], rtol=1e-6)
        np.testing.assert_allclose(row["test_loss"], test["loss"][i], rtol=1e-6)
        np.testing.assert_allclose(row["test_metric"], test["accuracy"][i], rtol=1e-6)
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    train_lines = [x for x in lines if x["split"] == "train"]
    assert [x["step"] for x in train_lines] == [2, 4, 6]
    assert {"loss", "accuracy", "steps_per_s", "examples_per_s", "seconds"} <= set(train_lines[0])
    assert [x["step"] for x in lines if x["split"] == "validation"] == [3, 6]
    assert os.path.exists(os.path.join(workdir, "config.json"))


def test_smoke_config_trains_end_to_end(tmp_path):
    start = time.time()
    config = smoke.get_config()
    summary = train_and_evaluate(config, str(tmp_path), dataset=th.byte_dataset(seq_len=32))
    seconds = time.time() - start
    print(f"smoke run: {seconds:.1f} s")  # reported, not asserted (timings are for bench/)
    assert summary["status"] == "ok" and summary["steps"] == config.num_train_steps
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    bpc = [x["bpc"][0] for x in lines if x["split"] == "train"]
    assert bpc[-1] < bpc[0] - 1.0  # it learns: from ~8 bits towards the text's statistics
    assert summary["seeds"][0]["test_metric"] < 8.0


def test_unknown_config_field_fails_before_any_work(tmp_path):
    ds = th.CountingDataset(th.byte_dataset())
    config = th.lm_config()
    config.unlock()
    config.optim.momentum = 0.9
    with pytest.raises(ValueError, match=r"unknown config field 'optim.momentum'"):
        train_and_evaluate(config, str(tmp_path / "w"), dataset=ds)
    config = th.lm_config()
    config.unlock()
    config.model.num_layers = 2
    with pytest.raises(ValueError, match="num_layers"):
        train_and_evaluate(config, str(tmp_path / "w"), dataset=ds)
    assert ds.calls == 0 and not os.path.exists(tmp_path / "w")


def test_workdir_with_a_different_config_fails_before_any_work(tmp_path):
    workdir = str(tmp_path / "w")
    train_and_evaluate(th.lm_config(num_train_steps=2), workdir, dataset=th.byte_dataset())
    ds = th.CountingDataset(th.byte_dataset())
    with pytest.raises(ValueError, match=r"different config \(optim.learning_rate: 0.01 -> 0.02"):
        train_and_evaluate(
            th.lm_config(num_train_steps=2, **{"optim.learning_rate": 0.02}), workdir, dataset=ds
        )
    assert ds.calls == 0


def test_model_that_does_not_fit_the_data_fails_with_the_field(tmp_path):
    with pytest.raises(ValueError, match="config.model.task='classification'"):
        train_and_evaluate(th.cls_config(), str(tmp_path / "w"), dataset=th.byte_dataset())
    assert not (tmp_path / "w").exists()


def test_stream_batches_continue_each_stream_where_the_previous_batch_ended():
    train = np.arange(1000, dtype=np.int64)  # byte value = position, to read positions back
    a = stream_train_batch(train, 3, 4, 10, seed=0)
    b = stream_train_batch(train, 4, 4, 10, seed=0)
    # Each stream's next window starts at the byte its previous window predicted last.
    np.testing.assert_array_equal(b["inputs"][:, 0], a["labels"][:, -1])
    np.testing.assert_array_equal(a["inputs"][:, 1:], a["labels"][:, :-1])
    # Stream j stays inside segment j (of 4 segments of 250 bytes).
    for x in (a["inputs"], a["labels"], b["inputs"], b["labels"]):
        np.testing.assert_array_equal(x // 250, np.repeat(np.arange(4)[:, None], 10, axis=1))
    c = stream_train_batch(train, 3, 4, 10, seed=1)
    assert not np.array_equal(a["inputs"], c["inputs"])


def test_carried_training_state_equals_a_manual_carry_through_the_model(tmp_path):
    config = th.lm_config(**{"data.carry_train_state": True})
    cfg = resolve_config(config)
    spec = StepSpec.create(
        ModelConfig.from_dict(cfg.model.to_dict()),
        OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps),
        carry_state=True,
    )
    mesh = _one_device_mesh()
    ds = th.byte_dataset()
    state = init_state(spec, [0], [1e-2], mesh, batch_size=8)
    params0 = jax.tree.map(lambda x: x[0], jax.device_get(state.params))
    extra0 = jax.tree.map(lambda x: x[0], jax.device_get(state.extra))
    train = ds.split("train")
    batch = stream_train_batch(train, 0, 8, 16, 0)
    state = train_step(
        state,
        parallel.put_global(
            {k: v[None] for k, v in batch.items()}, parallel.train_batch_sharding(mesh)
        ),
        spec=spec,
    )
    _, carry = build_model(spec.model).apply(
        {"params": params0, **extra0},
        jnp.asarray(batch["inputs"]),
        carry=initial_carry(spec.model, 8),
    )
    got = jax.tree.map(lambda x: np.asarray(x)[0], state.carry)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(carry), strict=True):
        np.testing.assert_allclose(x, np.asarray(y), atol=1e-6)
    with pytest.raises(ValueError, match="carry_train_state=True needs a language-modelling"):
        train_and_evaluate(
            th.lm_config(**{"data.carry_train_state": True}),
            str(tmp_path / "w"),
            dataset=th.CountingDataset(th.byte_dataset()),  # no split(): cannot stream
        )
    assert not (tmp_path / "w").exists()


def test_each_seed_draws_its_wiring_from_its_own_wiring_seed():
    from elm_jax.network.wiring import make_wiring

    config = th.lm_config()
    spec = _spec(config)
    m = spec.model
    state = init_state(spec, [0, 1], [1e-2, 1e-2], _one_device_mesh(2), wiring_seeds=[5, 9])
    core = parallel.fetch(state.extra["constants"]["core"])
    for replica, seed in enumerate((5, 9)):
        w = make_wiring(
            num_neurons=m.num_neurons, synapses_per_neuron=m.synapses_per_neuron,
            num_branches=m.num_branches, external_dim=m.external_dim,
            recurrent_fraction=m.recurrent_fraction, seed=seed,
        )  # fmt: skip
        np.testing.assert_array_equal(core["synapse_source"][replica], w.source)
        np.testing.assert_array_equal(core["synapse_branch"][replica], w.branch)
    assert not np.array_equal(core["synapse_source"][0], core["synapse_source"][1])
    shared = parallel.fetch(init_state(spec, [0, 1], [1e-2, 1e-2], _one_device_mesh(2)))
    src = shared.extra["constants"]["core"]["synapse_source"]
    np.testing.assert_array_equal(src[0], src[1])  # without wiring_seeds: model.wiring_seed
