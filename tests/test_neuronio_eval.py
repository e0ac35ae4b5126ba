"""The NeuronIO evaluation command on a converted released checkpoint (tests/data/NOTICE.md)."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from neuronio_fakes import fake_experiment, write_fake_dataset, write_pickle
from test_neuronio_metrics import pairwise_auc

from elm_jax import neuronio_eval
from elm_jax.data.neuronio import files as neuronio

CHECKPOINT = os.path.join(os.path.dirname(__file__), "data", "neuronio_num_memory_1.npz")


def test_released_d_m_1_checkpoint_has_the_paper_routing_and_4601_parameters():
    module, variables = neuronio_eval.load_checkpoint(CHECKPOINT)
    with np.load(CHECKPOINT) as f:
        config = json.loads(str(f["config_json"]))  # the released model_config.json
    assert config["input_to_synapse_routing"] == "neuronio_routing"
    assert [config[k] for k in ("num_input", "num_memory", "num_branch")] == [1278, 1, 45]
    assert config["num_synapse_per_branch"] == 100 and module.config.num_input == 1278
    count = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(variables["params"]))
    assert count == 4502 + 95 * 1 + 4 * 1**2  # docs/science.md §2, the released model_stats
    ours = module.init(jax.random.key(0), jnp.zeros((1, 1, 1278)))["constants"]
    for key in ("routing_indices", "routing_mask"):
        np.testing.assert_array_equal(variables["constants"][key], ours[key])


def test_stitched_predictions_are_the_windows_after_their_burn_in(tmp_path):
    module, variables = neuronio_eval.load_checkpoint(CHECKPOINT)
    apply_fn = jax.jit(lambda x: module.apply(variables, x))
    path = write_pickle(str(tmp_path / "a__sim__.p"), fake_experiment(0, num_sims=2, seconds=1.2))
    sims = neuronio.read_simulations(path)
    prob, soma = neuronio_eval.stitched_predictions(apply_fn, sims, batch_size=1)
    np.testing.assert_array_equal(neuronio_eval.eval_window_starts(1200), [0, 350, 700, 1050])
    for start, lo, hi in ((0, 0, 500), (350, 500, 850), (700, 850, 1200)):
        x = np.zeros((2, 500, 1278), np.float32)
        x[:, : min(500, 1200 - start)] = sims.inputs[:, start : start + 500]
        out = np.asarray(apply_fn(jnp.asarray(x)), np.float64)
        np.testing.assert_allclose(
            prob[:, lo:hi], 1 / (1 + np.exp(-out[:, lo - start : hi - start, 0])), rtol=1e-6
        )
        np.testing.assert_allclose(soma[:, lo:hi], 10 * out[:, lo - start : hi - start, 1], 1e-6)


def test_command_scores_auc_and_aligned_rmse_as_independent_computations(tmp_path, capsys):
    write_fake_dataset(str(tmp_path), num_sims=3, seconds=1.2)
    test_file = str(tmp_path / "neuronio_test_data" / "exp__sim__test_0.p")
    exp = fake_experiment(2, num_sims=3, seconds=1.2)
    exp["Results"]["listOfSingleSimulationDicts"][0]["outputSpikeTimes"] = np.arange(30) * 30 + 5.0
    write_pickle(test_file, exp)  # simulation 0 has 30 > 24 spikes: not scored
    out_json = tmp_path / "r.json"
    rc = neuronio_eval.main(
        ["--checkpoint", CHECKPOINT, "--data-dir", str(tmp_path), "--json", str(out_json)]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out_json.read_text())
    assert result["num_simulations"] == 3 and result["num_scored_simulations"] == 2

    module, variables = neuronio_eval.load_checkpoint(CHECKPOINT)
    sims = neuronio.read_simulations(test_file)
    prob, soma = neuronio_eval.stitched_predictions(
        jax.jit(lambda x: module.apply(variables, x)), sims
    )
    target = np.minimum(sims.soma_mv.astype(np.float64), -55.0) + 67.7
    aligned = (soma - soma.mean()) / soma.std() * target.std() + target.mean()
    y, p = sims.spikes[1:, 500:], prob[1:, 500:]
    assert y.sum() > 0
    assert result["auc"] == pytest.approx(pairwise_auc(y.ravel(), p.ravel()), abs=1e-12)
    err = aligned[1:, 500:] - target[1:, 500:]
    assert result["soma_rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-9)
    assert result["input_blind"] == {"auc": 0.5, "soma_rmse": pytest.approx(target[1:, 500:].std())}


def test_command_without_data_or_checkpoint_fails_with_one_line(tmp_path, capsys):
    rc = neuronio_eval.main(["--checkpoint", CHECKPOINT, "--data-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 4 and "does not exist" in err and "Kaggle" in err
    write_fake_dataset(str(tmp_path / "d"), num_sims=2, seconds=1.2)
    rc = neuronio_eval.main(
        ["--checkpoint", str(tmp_path / "x.npz"), "--data-dir", str(tmp_path / "d")]
    )
    assert rc == 2 and "--checkpoint" in capsys.readouterr().err
