"""Sharded sweeps (`sweeps.run --shard I/K`), merging shard directories, reading several as one.

The assignment is checked on the shipped sweeps (a partition, balanced by estimated cost, the
same in every process); the engine paths with the planted trainer of tests/sweep_fakes.py; and
end to end with the real trainer on the tiny sweep: two shard processes, merged, give the
unsharded run's table, and a shard killed mid-run and rerun loses nothing and touches nothing of
the other shard.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import sweep_fakes

from analysis.load import SchemaError, load_sweeps
from analysis.report import build as report
from sweeps import backends, engine, merge, run, shard
from sweeps.points import group_id, make_trials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(os.path.dirname(__file__), "sweep_fakes.py")
FAKE = "sweep_fakes:fake_train"


def _trials(loaded):
    c = loaded.config
    return make_trials(loaded.points, list(c.seeds), c.train, c.task)


def _fake(directory, *extra, arg="npoints=5,seeds=2", train_fn=FAKE):
    return run.main(
        ["--sweep", f"{FAKES}:{arg}", "--dir", str(directory), "--train-fn", train_fn]
        + ["--quiet", "--workers", "1", *extra]
    )


def _calls(directory):
    calls = os.path.join(str(directory), "fake_calls")
    names = os.listdir(calls) if os.path.isdir(calls) else []
    return {n: len(open(os.path.join(calls, n)).read().split()) for n in names}


# --- the assignment ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    """The trials and training config of two realistic sweeps (default: CPU size; science)."""
    out = {}
    for name in ("default", "science"):
        loaded = run.load_sweep(name)
        out[name] = (_trials(loaded), loaded.config.train)
    return out


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 40])
def test_shards_partition_the_trainer_calls_every_call_exactly_once(shipped, count):
    for trials, train in shipped.values():
        assignment = shard.assign(trials, train, count)
        keys = [c.group_key for i in range(count) for c in assignment.calls_of(i)]
        assert sorted(keys) == sorted({t.group_key for t in trials})
        ids = [
            t.trial_id
            for i in range(count)
            for t in shard.select(trials, train, shard.Shard(i, count))
        ]
        assert sorted(ids) == sorted(t.trial_id for t in trials)


def test_assignment_depends_on_the_definition_only_not_on_order_or_process(shipped, tmp_path):
    trials, train = shipped["science"]
    shuffled = list(trials)
    random.Random(3).shuffle(shuffled)
    for count in (3, 8):
        a, b = shard.assign(trials, train, count), shard.assign(shuffled, train, count)
        assert [c.group_key for c in a.calls] == [c.group_key for c in b.calls]
        assert a.owners == b.owners
    # Other processes (other hash seeds) print the same assignment as this one; the planted
    # points all cost the same, so the order rests on the tie-break by group key alone.
    spec = f"{FAKES}:npoints=7,seeds=3"
    args = ["--sweep", spec, "--dir", str(tmp_path / "x"), "--train-fn", FAKE, "--check"]
    expected = run.shard_summary(run.load_sweep(spec), shard.Shard(1, 3))
    assert expected[0].startswith("shard 1/3: 2 of 7 trainer calls (6 of 21 trials)")
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=os.path.dirname(FAKES))
        proc = subprocess.run(
            [sys.executable, "-m", "sweeps.run", *args, "--shard", "1/3"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[1:] == expected
    assert not (tmp_path / "x").exists()


def test_shards_are_balanced_by_estimated_training_flops(shipped):
    for name, (trials, train) in shipped.items():
        for count in range(1, 17):
            assignment = shard.assign(trials, train, count)
            loads = assignment.loads()
            mean = sum(loads) / count
            # Greedy longest-processing-time: never above the mean by more than one call.
            assert max(loads) <= mean + max(c.cost for c in assignment.calls) + 1e-9, (name, count)
    trials, train = shipped["science"]
    for count in (2, 4, 8):  # 77 calls: every shard within 2 % of the mean
        loads = shard.assign(trials, train, count).loads()
        assert max(loads) <= 1.02 * sum(loads) / count, count
    # The cost is the budget module's FLOPs: 3 x forward FLOPs x batch x steps x seeds.
    call = shard.assign(trials, train, 1).calls[0]
    point = call.trials[0].point
    batch, steps = train.data.batch_size, train.num_train_steps
    assert call.cost == 3 * point.flops_per_step * batch * steps * len(call.seeds)
    assert call.cost == max(c.cost for c in shard.assign(trials, train, 1).calls)


@pytest.mark.parametrize(
    "value, message",
    [
        ("2/2", "--shard=2/2: the shard index I=2 must be in 0..1 for K=2"),
        ("5/3", "--shard=5/3: the shard index I=5 must be in 0..2 for K=3"),
        ("0/0", "--shard=0/0: the shard count K=0 must be >= 1"),
        ("--shard=-1/4", "--shard=-1/4: the shard index I=-1 must be in 0..3 for K=4"),
        ("1", "--shard=1: expected I/K, two integers with 0 <= I < K"),
        ("a/b", "--shard=a/b: expected I/K"),
    ],
)
def test_bad_shard_is_refused_with_one_line_naming_it_and_what_is_valid(
    value, message, tmp_path, capsys
):
    flag = [value] if value.startswith("--") else ["--shard", value]
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--sweep", "tiny", "--dir", str(tmp_path / "s"), *flag])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sweeps.run: error: {message}")
    assert "valid: I/K with 0 <= I < K" in line or "0 <= I < K (e.g. 0/4" in line
    assert not (tmp_path / "s").exists()


def test_shard_and_add_points_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run.main(["--sweep", "tiny", "--dir", str(tmp_path), "--shard", "0/2", "--add-points"])
    assert "--add-points cannot be combined with --shard" in capsys.readouterr().err


# --- the engine with the planted trainer ------------------------------------------------------


def test_shards_sharing_one_directory_train_each_call_once_and_end_with_the_whole_table(tmp_path):
    assert _fake(tmp_path, "--shard", "0/2") == 0
    first = pd.read_parquet(tmp_path / "results.parquet")
    assert len(first) == 6 and sorted(_calls(tmp_path).values()) == [1, 1, 1]
    # Already finished trials of shard 0 change nothing of shard 1's assignment.
    assert _fake(tmp_path, "--shard", "1/2") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 10 and frame.trial_id.is_unique
    assert sorted(_calls(tmp_path).values()) == [1] * 5
    for row in frame.itertuples():
        assert row.val_metric == pytest.approx(sweep_fakes.planted_metric(row.N, row.d_m, row.seed))
    assert _fake(tmp_path, "--shard", "1/2") == 0 and sorted(_calls(tmp_path).values()) == [1] * 5


def test_plan_of_a_shard_holds_only_its_own_calls_whatever_the_directory_holds(tmp_path):
    config = sweep_fakes.get_config("npoints=5,seeds=2")
    points = sweep_fakes.get_sweep(config)
    trials = make_trials(points, config.seeds, config.train, config.task)
    assignment = shard.assign(trials, config.train, 2)
    assert _fake(tmp_path, "--shard", "0/2") == 0  # shard 0 done in this directory
    for index in (0, 1):
        plan = engine.plan_sweep(
            name="fake", task="shd_adding", source="t", train_config=config.train, points=points,
            seeds=config.seeds, directory=str(tmp_path), train_fn=FAKE,
            shard=shard.Shard(index, 2),
        )  # fmt: skip
        own = {t.trial_id for t in assignment.trials_of(index)}
        assert {t.trial_id for t in plan.trials} == own
        assert sorted(plan.sweep_trial_ids) == sorted(t.trial_id for t in trials)
        assert len(plan.groups) == (0 if index == 0 else len(assignment.calls_of(1)))


def test_merge_refuses_duplicates_other_sweeps_and_a_used_out_naming_the_directories(
    tmp_path, capsys
):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _fake(a, "--shard", "0/2") == 0 and _fake(b, "--shard", "1/2") == 0
    assert _fake(c, "--shard", "1/2", arg="npoints=5,seeds=2,steps=9") == 0

    def refused(*dirs):
        assert merge.main([str(tmp_path / "out"), *map(str, dirs)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("sweeps.merge: error: ")
        assert not (tmp_path / "out").exists()
        return line

    line = refused(a, b, a)
    trial = line.split("trial ")[1].split()[0]
    assert f"has a record in both {a} and {a}" in line and os.path.exists(
        a / "trials" / f"{trial}.json"
    )
    line = refused(a, c)
    assert f"{c} holds a different sweep than {a}" in line
    assert "training config num_train_steps: 5 -> 9" in line and "trials added" not in line
    assert "no manifest.json" in refused(a, tmp_path / "a" / "trials")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert merge.main([str(tmp_path / "used"), str(a), str(b)]) == 2
    assert "is not an empty directory" in capsys.readouterr().err
    # A merge of part of the sweep succeeds and names what is missing.
    assert merge.main([str(tmp_path / "part"), str(a)]) == 0
    assert "4 trials of the sweep have no record in any directory" in capsys.readouterr().err
    assert merge.main([str(tmp_path / "out"), str(a), str(b)]) == 0
    merged = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(merged) == 10 and merged.trial_id.is_unique
    assert len(list((tmp_path / "out" / "groups").iterdir())) == 5
    # The merged directory resumes as one sweep: nothing left to train.
    assert _fake(tmp_path / "out") == 0 and _calls(tmp_path / "out") == {}


def test_report_reads_shard_directories_as_one_sweep_and_refuses_overlaps(tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _fake(a, "--shard", "0/2") == 0 and _fake(b, "--shard", "1/2") == 0
    assert _fake(c, "--shard", "1/2", arg="npoints=5,seeds=2,steps=9") == 0
    both = load_sweeps([a, b])
    assert len(both) == 10 and set(both.source) == {str(a), str(b)}
    with pytest.raises(SchemaError, match=f"is in both {a} and {a}"):
        load_sweeps([a, b, a])
    with pytest.raises(SchemaError, match=f"{c} and {a} both hold sweep 'fake'.*num_train_steps"):
        load_sweeps([a, c])
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(a), str(b), str(b), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis.report: error: trial ") and f"in both {b} and {b}" in err
    report.main([str(a), str(b), "--out", str(tmp_path / "r"), "--n-boot", "0"])
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"{a}, {b}" in page and "10 / 10" in page  # directories and trials (ok / all)


# --- devices --------------------------------------------------------------------------------


def test_each_pool_worker_gets_one_tpu_chip_of_its_own():
    env = backends.worker_env(2, [], ["0", "1", "2", "3"])
    assert env["TPU_VISIBLE_CHIPS"] == "2" and env["TPU_PROCESS_PORT"] == "8478"
    assert env["TPU_CHIPS_PER_PROCESS_BOUNDS"] == env["TPU_PROCESS_BOUNDS"] == "1,1,1"
    ports = {backends.worker_env(i, [], ["0", "1", "2", "3"])["TPU_PROCESS_PORT"] for i in range(4)}
    assert len(ports) == 4


def test_local_devices_are_found_without_jax(tmp_path, monkeypatch):
    for name, vendor, device in [
        ("0000:00:04.0", "0x1ae0", "0x0063"),  # TPU v5e
        ("0000:00:05.0", "0x1ae0", "0x0063"),
        ("0000:00:06.0", "0x1ae0", "0x0042"),  # Google's network card, not a TPU
        ("0000:00:07.0", "0x10de", "0x2330"),  # an NVIDIA GPU
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "vendor").write_text(vendor + "\n")
        (tmp_path / name / "device").write_text(device + "\n")
    monkeypatch.delenv("TPU_VISIBLE_CHIPS", raising=False)
    assert backends.detect_tpu_chips(str(tmp_path)) == ["0", "1"]
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", "1,3")
    assert backends.detect_tpu_chips(str(tmp_path)) == ["1", "3"]
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_foo=1 --xla_force_host_platform_device_count=3")
    assert backends.local_devices() == ("cpu", ["0", "1", "2"])
    assert run.local_workers(None, shard.Shard(0, 2)) == 3 and run.local_workers("auto", None) == 3
    assert run.local_workers(None, None) == 1 and run.local_workers(2, shard.Shard(0, 2)) == 2
    monkeypatch.setenv("XLA_FLAGS", "")
    assert backends.local_devices() == ("cpu", ["0"])


def test_a_shard_trains_one_group_per_local_device_pinned(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    args = ["--sweep", f"{FAKES}:npoints=3", "--dir", str(tmp_path), "--shard", "0/1"]
    assert run.main([*args, "--train-fn", "sweep_fakes:device_train", "--quiet"]) == 0
    seen = [json.loads(p.read_text()) for p in (tmp_path / "groups").glob("*/devices.json")]
    assert len(seen) == 3
    assert len({s["pid"] for s in seen}) == 2 and os.getpid() not in {s["pid"] for s in seen}
    assert {(s["platform"], s["local_device_count"]) for s in seen} == {("cpu", 1)}
    assert all("--xla_force_host_platform_device_count=1" in s["XLA_FLAGS"] for s in seen)


# --- end to end with the real trainer -------------------------------------------------------


def _same_table(frame, reference):
    """Same trials, each once, with the same values: metrics to float tolerance, wall time aside."""
    assert frame.trial_id.is_unique and sorted(frame.trial_id) == sorted(reference.trial_id)
    a = frame.sort_values("trial_id").reset_index(drop=True)
    b = reference.sort_values("trial_id").reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for column in a.columns.drop("wall_s"):
        if a[column].dtype == "float64":
            np.testing.assert_allclose(a[column], b[column], rtol=1e-6, err_msg=column)
        else:
            assert a[column].tolist() == b[column].tolist(), column


def _snapshot(directory):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*"))


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    """The tiny sweep's two shards run as two processes at the same time; the one with two
    trainer calls is SIGKILLed once its first call is recorded, then rerun with the same command
    after the other has finished. Meanwhile the unsharded run, in this process."""
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    spec = f"tiny:data=shd_adding,data_dir={data_dir},steps=4,checkpoint_every=2"
    loaded = run.load_sweep(spec)
    assignment = shard.assign(_trials(loaded), loaded.config.train, 2)
    killed = max((0, 1), key=lambda i: len(assignment.calls_of(i)))
    assert [len(assignment.calls_of(i)) for i in (killed, 1 - killed)] == [2, 1]
    dirs = [tmp_path_factory.mktemp(f"shard{i}") for i in (0, 1)]
    commands = [
        ["--sweep", spec, "--dir", str(d), "--shard", f"{i}/2", "--workers", "1", "--quiet"]
        for i, d in enumerate(dirs)
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeps.run", *c], cwd=ROOT, stdout=subprocess.DEVNULL
        )
        for c in commands
    ]
    trials_dir = dirs[killed] / "trials"
    deadline = time.time() + 600
    while procs[killed].poll() is None and time.time() < deadline:
        if len(list(trials_dir.glob("*.json"))) >= 2:  # the first call's two seeds are recorded
            procs[killed].send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    unsharded = tmp_path_factory.mktemp("unsharded")
    assert run.main(["--sweep", spec, "--dir", str(unsharded), "--quiet"]) == 0
    assert procs[killed].wait(timeout=600) == -signal.SIGKILL
    assert procs[1 - killed].wait(timeout=600) == 0
    before_kill = {p.stem for p in trials_dir.glob("*.json")}
    other_before = _snapshot(dirs[1 - killed])
    assert run.main(commands[killed]) == 0  # the killed shard's command again
    return {
        "reference": pd.read_parquet(unsharded / "results.parquet"),
        "dirs": dirs,
        "killed": killed,
        "assignment": assignment,
        "before_kill": before_kill,
        "other_before": other_before,
    }


def test_two_shard_processes_merged_give_the_unsharded_table(tiny_shards, tmp_path):
    reference, dirs = tiny_shards["reference"], tiny_shards["dirs"]
    parts = [pd.read_parquet(d / "results.parquet") for d in dirs]
    assert len(parts[0]) + len(parts[1]) == len(reference) == 6
    assert not set(parts[0].trial_id) & set(parts[1].trial_id)
    assert merge.main([str(tmp_path / "merged"), *map(str, dirs)]) == 0
    _same_table(pd.read_parquet(tmp_path / "merged" / "results.parquet"), reference)
    # analysis.report reads the two directories as the one sweep.
    _same_table(load_sweeps(dirs).drop(columns="source"), reference)


def test_a_killed_shard_rerun_loses_nothing_and_leaves_the_other_shard_alone(tiny_shards):
    index, assignment = tiny_shards["killed"], tiny_shards["assignment"]
    directory, other = tiny_shards["dirs"][index], tiny_shards["dirs"][1 - index]
    own = {t.trial_id for t in assignment.trials_of(index)}
    assert tiny_shards["before_kill"] and tiny_shards["before_kill"] < own
    assert {p.stem for p in (directory / "trials").glob("*.json")} == own
    # The rerun trained the one call the kill interrupted, and no group of the other shard.
    log = (directory / "sweep.log").read_text()
    assert log.split(f"(shard {index}/2 of the sweep's")[-1].count(" INFO start ") == 1
    own_groups = {group_id(c.group_key, c.seeds) for c in assignment.calls_of(index)}
    assert {p.name for p in (directory / "groups").iterdir() if p.is_dir()} == own_groups
    assert _snapshot(other) == tiny_shards["other_before"]
