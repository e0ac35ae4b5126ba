"""NeuronIO training through the trainer: the paper's configs and a tiny end-to-end run."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from neuronio_fakes import write_fake_dataset

from elm_jax import data
from elm_jax.configs import neuronio_linear, neuronio_routing
from elm_jax.models import ModelConfig
from elm_jax.train.loop import train_and_evaluate


def _params(config) -> int:
    return ModelConfig.from_dict(config.model.to_dict()).elm_config.num_params


def test_configs_count_the_released_checkpoints_parameters():
    assert _params(neuronio_routing.get_config()) == 4502 + 95 * 15 + 4 * 15**2 == 6827
    assert _params(neuronio_routing.get_config("d_m=1")) == 4601  # released num_memory_1
    linear = neuronio_linear.get_config()
    assert (linear.model.num_memory, linear.model.mlp_num_layers) == (1, 0)
    assert _params(linear) == 4500 + (45 + 1) * 1 + 1 + 1 * 2 + 2
    c = neuronio_routing.get_config()
    assert (c.model.routing, c.model.num_branches, c.model.synapses_per_branch) == (
        "neuronio_routing", 45, 100,
    )  # fmt: skip
    assert (c.optim.name, c.optim.learning_rate, c.data.batch_size) == ("adam", 5e-4, 8)
    assert c.num_train_steps == 35 * 10_000


def test_tiny_run_trains_on_windows_and_reports_auc_rmse_and_input_blind(tmp_path):
    write_fake_dataset(str(tmp_path / "data"), num_sims=3, seconds=1.2)
    c = neuronio_linear.get_config("steps=8,lr=1e-2")
    c.data.data_dir = str(tmp_path / "data")
    c.data.batch_size, c.data.eval_batch_size, c.data.val_max_batches = 2, 4, None
    c.eval_every, c.log_every, c.checkpoint_every = 4, 4, 8
    summary = train_and_evaluate(c, str(tmp_path / "run"), devices=jax.devices()[:1])
    assert summary["status"] == "ok" and summary["metric_name"] == "auc"
    assert summary["data"]["source"] == "neuronio" and summary["cost"]["P_total"] == 4551
    ds = data.load("neuronio", data_dir=str(tmp_path / "data"))
    for split in ("validation", "test"):
        assert summary["input_blind"][split] == pytest.approx(ds.input_blind(split))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    val = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in val] == [4, 8]
    assert val[1]["loss"][0] < val[0]["loss"][0]  # training lowers the validation loss
    for r in val:
        assert 0.0 <= r["auc"][0] <= 1.0 and r["soma_rmse"][0] > 0
    row = summary["seeds"][0]
    assert row["final_val_loss"] == pytest.approx(val[1]["loss"][0])
    assert row["final_val_metric"] == pytest.approx(val[1]["auc"][0])
    assert np.isfinite(row["test_loss"]) and 0.0 <= row["test_metric"] <= 1.0
