"""Trial identity (stable hashes), the manifest guard and the results table (schema v2)."""

import hashlib
import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest
import sweep_fakes

from sweeps import points as points_lib
from sweeps import store as store_lib


def _sweep(arg=None):
    config = sweep_fakes.get_config(arg)
    pts = sweep_fakes.get_sweep(config)
    trials = points_lib.make_trials(pts, config.seeds, config.train, config.task)
    return config, pts, trials


def test_stable_hash_is_sha256_of_sorted_compact_json():
    value = {"b": [1, (2, 3)], "a": {"y": 1.5, "x": float("nan")}}
    expected_text = '{"a":{"x":null,"y":1.5},"b":[1,[2,3]]}'
    assert points_lib.canonical_json(value) == expected_text
    assert (
        points_lib.stable_hash(value, length=64)
        == hashlib.sha256(expected_text.encode()).hexdigest()
    )


def test_stable_hash_ignores_dict_order_and_configdict_vs_dict():
    import ml_collections

    a = {"x": 1, "y": {"p": 2, "q": 3}}
    b = {"y": {"q": 3, "p": 2}, "x": 1}
    assert points_lib.stable_hash(a) == points_lib.stable_hash(b)
    assert points_lib.stable_hash(ml_collections.ConfigDict(b)) == points_lib.stable_hash(a)


def test_trial_ids_are_identical_in_a_fresh_process():
    _, _, trials = _sweep()
    code = (
        "import sys, sweep_fakes; from sweeps.points import make_trials;"
        "c = sweep_fakes.get_config(None);"
        "print(' '.join(t.trial_id for t in make_trials(sweep_fakes.get_sweep(c), c.seeds,"
        " c.train, c.task)))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.path.dirname(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == [t.trial_id for t in trials]


def test_trial_ids_differ_by_seed_slice_and_training_config_but_groups_share_seeds():
    config, pts, trials = _sweep()
    assert len({t.trial_id for t in trials}) == len(pts) * len(config.seeds)
    # Seeds of one point share the point id and the group key; points do not.
    by_point = {}
    for t in trials:
        by_point.setdefault(t.point_id, set()).add(t.group_key)
    assert len(by_point) == len(pts) and all(len(keys) == 1 for keys in by_point.values())
    config2 = sweep_fakes.get_config("steps=6")
    trials2 = points_lib.make_trials(pts, config2.seeds, config2.train, config2.task)
    assert not {t.trial_id for t in trials} & {t.trial_id for t in trials2}
    moved = [
        points_lib.SweepPoint(**{**p.__dict__, "slice": "random", "budget": math.nan}) for p in pts
    ]
    trials3 = points_lib.make_trials(moved, config.seeds, config.train, config.task)
    assert {t.point_id for t in trials3} == {t.point_id for t in trials}
    assert not {t.trial_id for t in trials} & {t.trial_id for t in trials3}


def test_a_late_model_field_at_its_default_leaves_the_ids_of_earlier_sweeps_unchanged():
    from sweeps import run

    loaded = run.load_sweep("tiny")
    config, pts = loaded.config, loaded.points
    ids = [t.trial_id for t in points_lib.make_trials(pts, config.seeds, config.train, config.task)]
    for name, default in points_lib.LATE_MODEL_FIELDS.items():
        assert config.train.model[name] == default  # the base config holds it, at its default
        before = config.train.copy_and_resolve_references()
        with before.model.unlocked():
            del before.model[name]  # the config as it was before the field existed
        old = points_lib.make_trials(pts, config.seeds, before, config.task)
        assert [t.trial_id for t in old] == ids
        changed = config.train.copy_and_resolve_references()
        changed.model[name] = default + 1.0
        new = points_lib.make_trials(pts, config.seeds, changed, config.task)
        assert not {t.trial_id for t in new} & set(ids)


def test_group_id_is_independent_of_seed_order():
    assert points_lib.group_id("k", [1, 0]) == points_lib.group_id("k", [0, 1])
    assert points_lib.group_id("k", [0]) != points_lib.group_id("k", [0, 1])


def test_sweep_point_rejects_unknown_slice_naming_the_field():
    with pytest.raises(ValueError, match="slice='diagonal'"):
        points_lib.SweepPoint(
            slice="diagonal", budget=1.0, budget_kind="core", arch="elm", N=1, d_m=1, k_c=4,
            k_e=1, d_tree=4, P_core=1, P_io=1, P_total=2, flops_per_step=1.0, model=(),
        )  # fmt: skip


def _manifest(arg=None):
    config, _, trials = _sweep(arg)
    return store_lib.manifest_for(config.name, config.task, "fake", config.train, trials)


def test_manifest_same_definition_is_accepted_and_reports_no_new_trials(tmp_path):
    st = store_lib.SweepStore(str(tmp_path))
    first = st.reconcile_manifest(_manifest())
    assert len(first) == 6
    assert st.reconcile_manifest(_manifest()) == []


def test_changed_training_config_is_refused_naming_the_field(tmp_path):
    st = store_lib.SweepStore(str(tmp_path))
    st.reconcile_manifest(_manifest())
    with pytest.raises(store_lib.DefinitionChangedError, match="num_train_steps: 5 -> 7"):
        st.reconcile_manifest(_manifest("steps=7"))
    with pytest.raises(store_lib.DefinitionChangedError, match="--add-points only adds"):
        st.reconcile_manifest(_manifest("steps=7"), add_points=True)


def test_added_points_are_refused_unless_add_points_then_only_new_ids(tmp_path):
    st = store_lib.SweepStore(str(tmp_path))
    old = set(st.reconcile_manifest(_manifest()))
    with pytest.raises(
        store_lib.DefinitionChangedError, match="2 trials added: budget 2000 elm N=5"
    ):
        st.reconcile_manifest(_manifest("npoints=4"))
    added = st.reconcile_manifest(_manifest("npoints=4"), add_points=True)
    assert len(added) == 2 and not set(added) & old
    assert set(st.read_manifest()["trials"]) == old | set(added)
    with pytest.raises(store_lib.DefinitionChangedError, match="2 trials removed"):
        st.reconcile_manifest(_manifest(), add_points=True)


def _record(trial_id, status="ok", **changes):
    row = {c: 0 for c, t in store_lib.COLUMNS.items() if t == "int64"}
    row.update({c: 0.5 for c, t in store_lib.COLUMNS.items() if t == "float64"})
    row.update({c: "x" for c, t in store_lib.COLUMNS.items() if t == "string"})
    row.update({c: True for c, t in store_lib.COLUMNS.items() if t == "boolean"})
    row.update(trial_id=trial_id, status=status, reason="" if status == "ok" else "boom")
    row.update(changes)
    return row


def test_table_has_one_typed_row_per_record_including_failed(tmp_path):
    st = store_lib.SweepStore(str(tmp_path))
    st.create_dirs()
    st.write_record(_record("a", seed=3))
    st.write_record(_record("b", "failed", val_metric=math.nan, N=7))
    st.write_record(_record("a", seed=4))  # rewriting a trial replaces it, never duplicates
    frame = st.rebuild_table()
    again = pd.read_parquet(st.results_path)
    assert list(again.columns) == list(store_lib.COLUMNS)
    assert again["trial_id"].tolist() == ["a", "b"]
    assert again["seed"].tolist() == [4, 0] and again["N"].tolist() == [0, 7]
    assert again["status"].tolist() == ["ok", "failed"] and again["reason"].tolist() == ["", "boom"]
    assert math.isnan(again["val_metric"][1]) and again["val_metric"][0] == 0.5
    assert str(again["seed"].dtype) == "int64" and str(again["budget"].dtype) == "float64"
    assert str(again["git_dirty"].dtype) == "boolean" and again["git_dirty"].tolist() == [True] * 2
    assert frame.equals(again)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_record_without_a_schema_column_is_rejected(tmp_path):
    st = store_lib.SweepStore(str(tmp_path))
    st.create_dirs()
    row = _record("a")
    del row["test_metric"]
    with pytest.raises(ValueError, match="test_metric"):
        st.write_record(row)


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    path = str(tmp_path / "x.json")
    store_lib.atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        store_lib.atomic_write_json(path, {"v": object()})
    assert json.load(open(path)) == {"v": 1}
    assert os.listdir(tmp_path) == ["x.json"]


def test_unwritable_directory_is_refused_naming_it(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    # root ignores permission bits; /proc refuses new directories to everyone.
    target = "/proc/elm_sweep_dir" if os.access(str(ro), os.W_OK) else str(ro / "sweep")
    try:
        with pytest.raises(ValueError, match="is not a writable directory") as info:
            store_lib.check_writable(target)
        assert repr(target) in str(info.value)
    finally:
        os.chmod(ro, 0o700)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        store_lib.check_writable(str(tmp_path / "file"))
