"""The NeuronIO reader and windows, on small simulation files the tests write (tests/neuronio_fakes.py)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from neuronio_fakes import fake_experiment, write_fake_dataset, write_pickle

from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.data.neuronio import files as neuronio
from elm_jax.data.neuronio.tasks import (
    NeuronIODataset,
    eval_windows,
    find_split_files,
    load_neuronio,
)


def test_inputs_are_binned_per_ms_with_excitatory_first_and_signed(tmp_path):
    exp = fake_experiment(1, num_sims=2)
    sim = exp["Results"]["listOfSingleSimulationDicts"][1]
    sim["exInputSpikeTimes"] = {0: np.array([3.0, 3.0, 10.7]), 638: np.array([1199])}
    sim["inhInputSpikeTimes"] = {0: np.array([3]), 5: np.array([0.2, 500.0])}
    sims = neuronio.read_simulations(write_pickle(str(tmp_path / "a__sim__1.p"), exp))
    x = sims.inputs[1]
    assert x.dtype == np.int8 and x.shape == (1200, 1278)
    expected = np.zeros((1200, 1278), np.int8)
    expected[3, 0] = expected[10, 0] = expected[1199, 638] = 1  # two spikes in one ms count once
    expected[3, 639] = expected[0, 644] = expected[500, 644] = -1
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(neuronio.synapse_signs()[[0, 638, 639, 1277]], [1, 1, -1, -1])


def test_every_input_spike_of_the_file_lands_in_its_channel(tmp_path):
    exp = fake_experiment(2, num_sims=2)
    sims = neuronio.read_simulations(write_pickle(str(tmp_path / "b__sim__.p"), exp))
    for k, sim in enumerate(exp["Results"]["listOfSingleSimulationDicts"]):
        for key, offset, sign in (("exInputSpikeTimes", 0, 1), ("inhInputSpikeTimes", 639, -1)):
            for seg, times in sim[key].items():
                assert np.all(sims.inputs[k, times.astype(int), offset + seg] == sign)
        total = sum(len(np.unique(t)) for t in sim["exInputSpikeTimes"].values())
        assert (sims.inputs[k] == 1).sum() == total


def test_output_spikes_use_the_half_ms_shift_and_soma_is_preprocessed(tmp_path):
    exp = fake_experiment(3, num_sims=1)
    sim = exp["Results"]["listOfSingleSimulationDicts"][0]
    sim["outputSpikeTimes"] = np.array([0.2, 10.4, 10.6, 99.5])
    v = np.full(1200, -70.0)
    v[:4] = [-55.0, -40.0, -67.7, 30.0]
    sim["somaVoltageLowRes"] = v
    sims = neuronio.read_simulations(write_pickle(str(tmp_path / "c__sim__.p"), exp))
    assert sorted(np.flatnonzero(sims.spikes[0])) == [0, 9, 10, 99]
    np.testing.assert_allclose(sims.soma[0, :5], [1.27, 1.27, 0.0, 1.27, -0.23], atol=1e-6)
    np.testing.assert_array_equal(sims.soma_mv[0, :4], v[:4].astype(np.float32))


def test_training_windows_skip_500_ms_and_weight_out_the_burn_in(tmp_path):
    paths = write_fake_dataset(str(tmp_path), num_sims=3, seconds=1.2)
    ds = NeuronIODataset(find_split_files(str(tmp_path)))
    sims = neuronio.read_simulations(paths["train"])
    batch = ds.train_batch(5, 3, seed=1)
    assert batch["inputs"].shape == (3, 500, 1278) and batch["labels"].shape == (3, 500, 3)
    np.testing.assert_array_equal(batch["labels"][:, :150, 2], 0.0)
    np.testing.assert_array_equal(batch["labels"][:, 150:, 2], 1.0)
    for j in range(3):  # each row is one simulation at one start in [500, 700)
        hits = [
            (k, s)
            for k in range(3)
            for s in range(500, 700)
            if np.array_equal(sims.inputs[k, s : s + 500], batch["inputs"][j])
        ]
        assert len(hits) == 1
        k, s = hits[0]
        np.testing.assert_array_equal(batch["labels"][j, :, 0], sims.spikes[k, s : s + 500])
        np.testing.assert_allclose(batch["labels"][j, :, 1], sims.soma[k, s : s + 500])
    again = ds.train_batch(5, 3, seed=1)
    np.testing.assert_array_equal(again["inputs"], batch["inputs"])
    assert not np.array_equal(ds.train_batch(6, 3, seed=1)["inputs"], batch["inputs"])


def test_eval_windows_tile_the_steps_after_500_ms_exactly_once(tmp_path):
    np.testing.assert_array_equal(eval_windows(6000)[:3], [350, 700, 1050])
    scored = np.concatenate([np.arange(s + 150, min(s + 500, 6000)) for s in eval_windows(6000)])
    np.testing.assert_array_equal(scored, np.arange(500, 6000))
    write_fake_dataset(str(tmp_path), num_sims=3, seconds=1.2)
    ds = NeuronIODataset(find_split_files(str(tmp_path)))
    batches = list(ds.eval_batches("validation", 4))
    weights = np.concatenate([b["labels"][..., 2] * b["mask"][:, None] for b in batches])
    assert weights.sum() == 3 * 700  # 3 simulations x steps 500..1199
    assert batches[-1]["mask"].tolist() == [1, 1, 0, 0]


def test_input_blind_predicts_the_training_rate_and_mean_soma(tmp_path):
    paths = write_fake_dataset(str(tmp_path), num_sims=3, seconds=1.2)
    ds = NeuronIODataset(find_split_files(str(tmp_path)))
    train = neuronio.read_simulations(paths["train"])
    val = neuronio.read_simulations(paths["validation"])
    p, m = train.spikes[:, 500:].mean(), train.soma[:, 500:].mean()
    y, v = val.spikes[:, 500:].astype(np.float64), val.soma[:, 500:].astype(np.float64)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    blind = ds.input_blind("validation")
    assert blind["loss"] == pytest.approx(0.5 * bce + 0.5 * ((v - m) ** 2).mean(), rel=1e-5)
    assert blind["metric"] == 0.5
    assert blind["soma_rmse"] == pytest.approx(10 * np.sqrt(((v - m) ** 2).mean()), rel=1e-5)
    assert blind["bce"] == pytest.approx(bce, rel=1e-5)


def test_eval_batches_run_across_files_and_a_cap_matches_the_input_blind_prefix(tmp_path):
    paths = write_fake_dataset(str(tmp_path), num_sims=3, seconds=1.2)
    second = str(tmp_path / "full_ergodic_train_batch_1" / "exp__sim__valid_1.p")
    write_pickle(second, fake_experiment(7, num_sims=3, seconds=1.2))
    ds = NeuronIODataset(find_split_files(str(tmp_path)))
    batches = list(ds.eval_batches("validation", 5))
    assert [b["mask"].tolist() for b in batches][-1] == [1, 1, 0, 0, 0]  # 12 windows, 5 a batch
    assert len(batches) == 3
    first, other = neuronio.read_simulations(paths["validation"]), neuronio.read_simulations(second)
    np.testing.assert_array_equal(batches[1]["inputs"][0], first.inputs[2, 700:1200])
    np.testing.assert_array_equal(batches[1]["inputs"][1, :500], other.inputs[0, 350:850])
    rate, soma = ds.train_statistics()
    y, v, w = (batches[0]["labels"][..., i].astype(np.float64) for i in range(3))
    bce = -(y * np.log(rate) + (1 - y) * np.log(1 - rate))
    expected = 0.5 * (bce * w).sum() / w.sum() + 0.5 * ((v - soma) ** 2 * w).sum() / w.sum()
    assert ds.input_blind("validation", max_examples=5)["loss"] == pytest.approx(expected, 1e-5)


def test_npz_arrays_read_back_equal(tmp_path):
    sims = neuronio.read_simulations(write_pickle(str(tmp_path / "d__sim__.p"), fake_experiment(4)))
    neuronio.write_npz(tmp_path / "d.npz", sims)
    back = neuronio.read_simulations(tmp_path / "d.npz")
    for name in ("inputs", "spikes", "soma_mv"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sims, name))


def test_missing_directory_or_files_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        find_split_files(str(tmp_path / "absent"))
    os.makedirs(tmp_path / "full_ergodic_train_batch_2")
    write_pickle(str(tmp_path / "full_ergodic_train_batch_2" / "x__sim__.p"), fake_experiment(0))
    with pytest.raises(DataNotFoundError, match=r"\['validation', 'test'\]"):
        find_split_files(str(tmp_path))
    with pytest.raises(DataNotFoundError, match="no data directory"):
        load_neuronio("neuronio", None)


def test_truncated_or_misshapen_files_name_the_file_and_key(tmp_path):
    path = write_pickle(str(tmp_path / "e__sim__.p"), fake_experiment(5, num_sims=1))
    raw = open(path, "rb").read()
    (tmp_path / "cut__sim__.p").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataCorruptError, match="cut__sim__.p: not a readable pickle"):
        neuronio.read_simulations(tmp_path / "cut__sim__.p")
    exp = fake_experiment(5, num_sims=1)
    del exp["Results"]["listOfSingleSimulationDicts"][0]["somaVoltageLowRes"]
    bad = write_pickle(str(tmp_path / "f__sim__.p"), exp)
    with pytest.raises(
        DataCorruptError,
        match=r"f__sim__.p: listOfSingleSimulationDicts\[0\] has no key 'somaVoltageLowRes'",
    ):
        neuronio.read_simulations(bad)
    exp = fake_experiment(5, num_sims=1)
    exp["Results"]["listOfSingleSimulationDicts"][0]["exInputSpikeTimes"] = {3: np.array([1200])}
    with pytest.raises(DataCorruptError, match=r"exInputSpikeTimes\[3\]: spike time"):
        neuronio.read_simulations(write_pickle(str(tmp_path / "g__sim__.p"), exp))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_pickles_naming_other_objects_are_refused_before_construction(tmp_path):
    exp = fake_experiment(6, num_sims=1)
    exp["Params"]["payload"] = _Evil()
    path = tmp_path / "h__sim__.p"
    path.write_bytes(pickle.dumps(exp, protocol=2))
    with pytest.raises(DataCorruptError, match=r"refusing to load (posix|os)\.system"):
        neuronio.read_simulations(path)


def test_load_by_name_reads_the_named_directory_and_never_substitutes(tmp_path, monkeypatch):
    from elm_jax import data

    write_fake_dataset(str(tmp_path), num_sims=2, seconds=1.2)
    ds = data.load("neuronio", data_dir=str(tmp_path))
    assert ds.info["source"] == "neuronio" and ds.info["num_files"] == {
        "train": 1, "validation": 1, "test": 1,
    }  # fmt: skip
    assert len(ds.info["files"]) == 3 and all(len(f["sha256"]) == 64 for f in ds.info["files"])
    assert data.static_info("neuronio") == {"task": "neuronio", "input_dim": 1278, "num_classes": 2}
    monkeypatch.delenv("ELM_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="never replaced"):
        data.load("neuronio")
    with pytest.raises(ValueError, match="takes no data options"):
        data.load("neuronio", data_dir=str(tmp_path), input_dropout=0.5)


def test_the_baselines_command_reports_neuronio_auc_of_its_evaluation_splits(tmp_path, capsys):
    from elm_jax.data import baselines

    write_fake_dataset(str(tmp_path), num_sims=2, seconds=1.2)
    assert baselines.main(["neuronio", "--data-dir", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ds = NeuronIODataset(find_split_files(str(tmp_path)))
    assert [row["split"] for row in rows] == ["validation", "test"]
    for row in rows:
        want = ds.input_blind(row["split"])
        assert row["metric_name"] == "auc" and row["metric"] == 0.5
        assert row["loss"] == pytest.approx(want["loss"], abs=1e-6)
        assert row["soma_rmse"] == pytest.approx(want["soma_rmse"], abs=1e-6)
