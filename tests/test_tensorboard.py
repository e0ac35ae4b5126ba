"""Live curves: the event files of a sweep, read back with TensorBoard's reader, hold exactly
the values of metrics.jsonl and the trial records, one run per trial with its hparams; a
resumed run's curves have one value per step; W&B offline is optional and fails in one line."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
import sweep_fakes
import train_helpers as th
from tensorboard.backend.event_processing import event_accumulator, event_multiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from elm_jax.optim import OptimConfig, unit_schedule
from elm_jax.train.loop import train_and_evaluate
from elm_jax.writers import check_wandb_mode
from sweeps import run

EVERYTHING = {
    event_accumulator.SCALARS: 0,
    event_accumulator.TENSORS: 0,
}


def _accumulator(path: str) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(path, size_guidance=EVERYTHING)
    acc.Reload()
    return acc


def _scalars(acc, tag) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def _session_hparams(acc) -> dict:
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: (v.string_value or v.number_value) for k, v in info.hparams.items()}


def _lines(workdir: str, split: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def _f32(x) -> float:
    return float(np.float32(x))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    directory = tmp_path_factory.mktemp("tb_sweep")
    spec = f"tiny:data=shd_adding,data_dir={data_dir},steps=4,checkpoint_every=2"
    assert run.main(["--sweep", spec, "--dir", str(directory), "--quiet"]) == 0
    assert set(pd.read_parquet(directory / "results.parquet").status) == {"ok"}
    return directory


def test_sweep_logdir_lists_one_run_per_trial_with_its_hparams(sweep_dir):
    frame = pd.read_parquet(sweep_dir / "results.parquet")
    trials = {
        os.path.join("groups", json.load(open(p))["group_id"], "tensorboard", f"seed_{t.seed}"): t
        for p in (sweep_dir / "trials").glob("*.json")
        for t in frame[frame.trial_id == p.stem].itertuples()
    }
    mux = event_multiplexer.EventMultiplexer(size_guidance=EVERYTHING)
    mux.AddRunsFromDirectory(str(sweep_dir))
    mux.Reload()
    assert sorted(mux.Runs()) == sorted(trials) and len(trials) == len(frame) == 6
    for name, trial in trials.items():
        acc = _accumulator(os.path.join(sweep_dir, name))
        hp = _session_hparams(acc)
        assert hp["arch"] == trial.arch
        for key in ("N", "d_m", "k_e", "k_c", "P_core", "P_total", "seed"):
            assert hp[key] == getattr(trial, key), key
        config = json.load(open(sweep_dir / "groups" / name.split(os.sep)[1] / "config.json"))
        assert hp["lr"] == pytest.approx(config["optim"]["learning_rate"])
        # The final test values equal the trial record (best-validation parameters).
        ((step, test_loss),) = _scalars(acc, "test/loss").items()
        assert step == trial.steps and test_loss == _f32(trial.test_loss)
        assert _scalars(acc, "test/accuracy")[step] == _f32(trial.test_metric)


def test_event_values_equal_metrics_jsonl(sweep_dir):
    for workdir in sorted((sweep_dir / "groups").glob("*/")):
        config = json.load(open(workdir / "config.json"))
        optim = OptimConfig.from_dict(config["optim"], config["num_train_steps"])
        train, val = _lines(str(workdir), "train"), _lines(str(workdir), "validation")
        assert [r["step"] for r in train] == [2, 4] and [r["step"] for r in val] == [4]
        for i, seed in enumerate(config["seeds"]):
            acc = _accumulator(str(workdir / "tensorboard" / f"seed_{seed}"))
            for tag, key, lines in (
                ("train/loss", "loss", train),
                ("train/accuracy", "accuracy", train),
                ("validation/loss", "loss", val),
                ("validation/accuracy", "accuracy", val),
            ):
                assert _scalars(acc, tag) == {r["step"]: _f32(r[key][i]) for r in lines}, tag
            assert _scalars(acc, "train/steps_per_s") == {
                r["step"]: _f32(r["steps_per_s"]) for r in train
            }
            lr = _scalars(acc, "train/learning_rate")
            peak = config["optim"]["learning_rate"]
            for step in (2, 4):
                expected = peak * float(unit_schedule(optim)(step - 1))
                assert lr[step] == pytest.approx(expected, rel=1e-6)
            assert lr[4] < lr[2]  # cosine decay reaches the curves
            # The input-blind baseline of the evaluated examples, as in the summary.
            blind = json.load(open(workdir / "summary.json"))["input_blind"]
            for split, step in (("validation", 4), ("test", 4)):
                for key, tag in (("loss", "loss"), ("metric", "accuracy")):
                    got = _scalars(acc, f"{split}/input_blind_{tag}")
                    assert got == {step: _f32(blind[split][key])}


class _Interrupt(Exception):
    pass


class _WithBaseline:
    """A dataset whose info carries the input-blind baseline of each split."""

    BASELINE = {"validation": {"loss": 5.5, "metric": 7.875}, "test": {"loss": 5.25, "metric": 7.5}}

    def __init__(self, dataset):
        self._dataset = dataset
        self.info = dict(dataset.info, input_blind=self.BASELINE)

    def input_blind(self, split, max_examples=None):
        return self.BASELINE[split]

    def __getattr__(self, name):
        return getattr(self._dataset, name)


def test_resumed_run_has_one_value_per_step_and_logs_the_input_blind_baseline(tmp_path):
    config = th.lm_config(
        num_train_steps=6, log_every=1, eval_every=3, checkpoint_every=3, seeds=(0, 1)
    )
    ds = _WithBaseline(th.byte_dataset())
    workdir = str(tmp_path / "run")

    on_disk_during_step_4 = {}

    def stop(step):
        if step == 4:  # the checkpoint at 3 flushed the curves so far: a kill would keep them
            for seed in (0, 1):
                acc = _accumulator(os.path.join(workdir, "tensorboard", f"seed_{seed}"))
                on_disk_during_step_4[seed] = sorted(_scalars(acc, "train/loss"))
        if step == 5:  # after the checkpoint at 3: steps 4 and 5 are redone on resume
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_and_evaluate(config, workdir, dataset=ds, step_hook=stop)
    assert {seed: steps[:3] for seed, steps in on_disk_during_step_4.items()} == {
        0: [1, 2, 3],
        1: [1, 2, 3],
    }
    train_and_evaluate(config, workdir, dataset=ds)
    train, val = _lines(workdir, "train"), _lines(workdir, "validation")
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    for i, seed in enumerate((0, 1)):
        acc = _accumulator(os.path.join(workdir, "tensorboard", f"seed_{seed}"))
        events = acc.Scalars("train/loss")
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]  # the stale 4, 5 are purged
        assert [e.value for e in events] == [_f32(r["loss"][i]) for r in train]
        assert _scalars(acc, "validation/loss") == {r["step"]: _f32(r["loss"][i]) for r in val}
        base = _WithBaseline.BASELINE
        assert _scalars(acc, "validation/input_blind_loss") == {3: 5.5, 6: 5.5}
        assert _scalars(acc, "validation/input_blind_bpc") == {3: 7.875, 6: 7.875}
        assert _scalars(acc, "test/input_blind_loss") == {6: base["test"]["loss"]}


def test_tensorboard_off_writes_no_event_files(tmp_path):
    config = th.lm_config(num_train_steps=2, eval_every=2, checkpoint_every=2)
    config.logging.tensorboard = False
    train_and_evaluate(config, str(tmp_path / "run"), dataset=th.byte_dataset())
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_wandb_offline_without_the_extra_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ValueError) as err:
        check_wandb_mode("offline")
    assert "\n" not in str(err.value) and "pip install -e '.[wandb]'" in str(err.value)
    config = th.lm_config()
    config.logging.wandb = "offline"
    with pytest.raises(ValueError, match=r"config.logging.wandb='offline' needs the wandb"):
        train_and_evaluate(config, str(tmp_path / "run"), dataset=th.byte_dataset())
    assert not (tmp_path / "run").exists()  # failed before writing anything
    with pytest.raises(ValueError, match=r"config.logging.wandb='online' is not valid"):
        check_wandb_mode("online")


def test_wandb_offline_logs_the_same_values_per_seed(monkeypatch, tmp_path):
    runs = []

    class FakeRun:
        def __init__(self, **kwargs):
            self.init, self.logged, self.finished = kwargs, [], False
            runs.append(self)

        def log(self, row, step):
            self.logged.append((step, dict(row)))

        def finish(self):
            self.finished = True

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=FakeRun))
    config = th.lm_config(num_train_steps=2, log_every=1, eval_every=2, checkpoint_every=2)
    config.seeds = (3, 4)
    config.logging.wandb = "offline"
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir, dataset=th.byte_dataset())
    assert [r.init["mode"] for r in runs] == ["offline", "offline"]
    assert [r.init["config"]["seed"] for r in runs] == [3, 4] and all(r.finished for r in runs)
    train = _lines(workdir, "train")
    for i, fake in enumerate(runs):
        assert fake.init["dir"] == os.path.join(workdir, "wandb")
        logged = {s: row["train/loss"] for s, row in fake.logged if "train/loss" in row}
        assert logged == {r["step"]: r["loss"][i] for r in train}


def test_sweep_wandb_flag_fails_in_one_line_without_the_extra_and_keeps_trial_ids(
    monkeypatch, tmp_path, capsys
):
    from sweeps.configs import tiny
    from sweeps.points import train_config_identity

    monkeypatch.setitem(sys.modules, "wandb", None)
    code = run.main(["--sweep", "tiny", "--dir", str(tmp_path), "--wandb", "offline", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "config.logging.wandb='offline' needs the wandb extra" in err
    assert len(err.splitlines()) == 1 and not list((tmp_path / "trials").glob("*.json"))
    plain, logged = tiny.get_config().train, tiny.get_config().train
    run.set_wandb(logged, "offline")
    logged.logging.tensorboard = False
    assert train_config_identity(logged) == train_config_identity(plain)
