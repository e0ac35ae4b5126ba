"""Data- and seed-parallel sharding: the 8-device program equals the 1-device one; vmapped seeds
equal separate runs; a batch that does not divide the data axis fails before any work."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import train_helpers as th

from elm_jax import parallel
from elm_jax.configs.merge import resolve_config
from elm_jax.models import ModelConfig
from elm_jax.optim import OptimConfig
from elm_jax.train.loop import train_and_evaluate
from elm_jax.train.steps import StepSpec, init_state, train_step


def _spec(config) -> StepSpec:
    cfg = resolve_config(config)
    return StepSpec.create(
        ModelConfig.from_dict(cfg.model.to_dict()),
        OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps),
    )


def _run_steps(spec, seeds, lrs, mesh, ds, num_steps=3, batch_size=8):
    state = init_state(spec, seeds, lrs, mesh)
    for step in range(num_steps):
        batches = [ds.train_batch(step, batch_size, s) for s in seeds]
        host = {k: np.stack([b[k] for b in batches]) for k in ("inputs", "labels")}
        state = train_step(
            state, parallel.put_global(host, parallel.train_batch_sharding(mesh)), spec=spec
        )
        jax.block_until_ready(state.step)  # sync each step (fake-device all-reduce loops)
    return jax.device_get(state)


def _assert_trees_close(a, b, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


@pytest.mark.parametrize("seeds", [(0,), (0, 1)], ids=["data8", "replica2xdata4"])
def test_sharded_step_on_8_devices_equals_single_device_step(seeds):
    assert jax.device_count() == 8
    config = th.lm_config()
    spec = _spec(config)
    ds = th.byte_dataset()
    lrs = [1e-2] * len(seeds)
    mesh8 = parallel.make_mesh(len(seeds))
    assert dict(mesh8.shape) == {"replica": len(seeds), "data": 8 // len(seeds)}
    sharded = _run_steps(spec, list(seeds), lrs, mesh8, ds)
    single = _run_steps(
        spec, list(seeds), lrs, parallel.make_mesh(len(seeds), jax.devices()[:1]), ds
    )
    _assert_trees_close(sharded.params, single.params, atol=1e-6)
    _assert_trees_close(sharded.opt_state, single.opt_state, atol=1e-6)
    np.testing.assert_allclose(sharded.metrics["loss_sum"], single.metrics["loss_sum"], rtol=1e-6)


def test_vmapped_seeds_with_their_own_learning_rates_equal_separate_runs(tmp_path):
    ds = th.byte_dataset()
    together = train_and_evaluate(
        th.lm_config(**{"seeds": (0, 5), "optim.seed_learning_rates": (1e-2, 3e-2)}),
        str(tmp_path / "both"),
        dataset=ds,
    )
    state_both = th.load_saved_state(str(tmp_path / "both"))
    for i, (seed, lr) in enumerate([(0, 1e-2), (5, 3e-2)]):
        alone = train_and_evaluate(
            th.lm_config(**{"seeds": (seed,), "optim.learning_rate": lr}),
            str(tmp_path / f"s{seed}"),
            dataset=ds,
        )
        state_alone = th.load_saved_state(str(tmp_path / f"s{seed}"))
        _assert_trees_close(
            jax.tree.map(lambda x, i=i: x[i], state_both["params"]),
            jax.tree.map(lambda x: x[0], state_alone["params"]),
            atol=1e-6,
        )
        row_both, row_alone = together["seeds"][i], alone["seeds"][0]
        assert row_both["seed"] == seed and row_both["learning_rate"] == pytest.approx(lr)
        for key in ("val_loss", "test_loss", "test_metric"):
            np.testing.assert_allclose(row_both[key], row_alone[key], rtol=1e-5)


def test_batch_that_does_not_divide_the_data_axis_fails_before_any_work(tmp_path):
    ds = th.CountingDataset(th.byte_dataset())
    with pytest.raises(ValueError, match=r"data.batch_size=12 does not divide the 8 devices"):
        train_and_evaluate(th.lm_config(**{"data.batch_size": 12}), str(tmp_path / "w"), dataset=ds)
    # Two seeds on 8 devices: replica 2 x data 4, so 4 divides but 6 does not.
    with pytest.raises(ValueError, match=r"data.eval_batch_size=6 does not divide the 4 devices"):
        train_and_evaluate(
            th.lm_config(**{"seeds": (0, 1), "data.eval_batch_size": 6}),
            str(tmp_path / "w"),
            dataset=ds,
        )
    assert ds.calls == 0


def test_replica_devices_must_divide_seeds_and_devices():
    with pytest.raises(ValueError, match="parallel.replica_devices=3"):
        parallel.make_mesh(4, replica_devices=3)
    assert dict(parallel.make_mesh(6).shape) == {"replica": 2, "data": 4}
