"""Loading and validating results tables (schema v2), seed aggregation, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.info import model as info_model
from analysis.load import (
    MixedDataError,
    SchemaError,
    aggregate_seeds,
    load_sweeps,
    not_ok_trials,
    ok_points,
    require_single,
    split_by_dataset,
    validate,
)
from analysis.stats.pareto import budget_optima
from analysis.stats.scaling import bootstrap
from analysis.synthetic.trials import synthetic_trials


@pytest.fixture(scope="module")
def trials():
    return synthetic_trials(
        budgets=(1e3, 1e4), d_m_values=(1, 2, 4), k_c_values=(16,), seeds=(0, 1, 2)
    )


def _write(tmp_path, df, name="sweep"):
    d = tmp_path / name
    d.mkdir()
    df.to_parquet(d / "results.parquet", index=False)
    return d


def test_load_reads_parquet_and_keeps_every_row_and_column(tmp_path, trials):
    d = _write(tmp_path, trials)
    out = load_sweeps(d)
    assert len(out) == len(trials)
    assert out["source"].unique().tolist() == [str(d)]
    np.testing.assert_allclose(out["val_loss"], trials["val_loss"])


def test_load_rebuilds_from_trial_json_records_when_parquet_is_missing(tmp_path, trials):
    d = tmp_path / "sweep" / "trials"
    d.mkdir(parents=True)
    for rec in trials.to_dict("records"):
        rec = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
        # extra keys the sweep engine writes into its records
        rec.update(group_id="g0", best_step=None, diverged_step=None)
        (d / f"{rec['trial_id']}.json").write_text(json.dumps(rec))
    out = load_sweeps(tmp_path / "sweep").sort_values("trial_id").reset_index(drop=True)
    ref = trials.sort_values("trial_id").reset_index(drop=True)
    np.testing.assert_allclose(out["val_loss"], ref["val_loss"])
    assert (out["status"] == ref["status"]).all()


@pytest.mark.parametrize("version", [1, 3])
def test_other_schema_version_is_refused_naming_the_version(trials, version):
    # Version 1 tables used another SHD split and pairing: never pooled with version 2.
    with pytest.raises(SchemaError, match=rf"schema_version=\[{version}\].*version 2"):
        validate(trials.assign(schema_version=version))


def test_empty_table_is_refused(trials):
    with pytest.raises(SchemaError, match="empty"):
        validate(trials.iloc[:0])


def test_missing_column_is_named(trials):
    with pytest.raises(SchemaError, match=r"missing required columns \['val_loss'\]"):
        validate(trials.drop(columns=["val_loss"]))


def test_unknown_status_and_duplicate_trial_ids_are_refused(trials):
    with pytest.raises(SchemaError, match="status.*'weird'"):
        validate(trials.assign(status="weird"))
    with pytest.raises(SchemaError, match="trial_id values repeat"):
        validate(pd.concat([trials, trials.iloc[:1]]))


def test_missing_directory_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.parquet"):
        load_sweeps(tmp_path)


def test_aggregation_matches_a_numpy_loop_and_excludes_non_ok_seeds(trials):
    t = trials.copy()
    i = t.index[(t["arch"] == "elm") & (t["slice"] == "budget")][0]
    t.loc[i, "status"] = "failed"
    t.loc[i, "reason"] = "out of memory"
    points = aggregate_seeds(t)
    for _, p in points.iterrows():
        g = t[(t["point_id"] == p["point_id"]) & (t["slice"] == p["slice"])]
        good = g[g["status"] == "ok"]["val_loss"].to_numpy()
        assert p["n_trials"] == len(g) and p["n_ok"] == len(good)
        assert p["val_loss_mean"] == pytest.approx(np.mean(good))
        assert p["val_loss_sd"] == pytest.approx(np.std(good, ddof=1))
    bad = points[points["n_not_ok"] > 0]
    assert "failed (out of memory)" in " ".join(bad["not_ok_reasons"])
    excluded = not_ok_trials(t)
    assert set(excluded["status"]) == {"failed", "diverged"}
    assert len(ok_points(points)) == len(points)  # every point still has an ok seed


def test_mixed_datasets_are_never_pooled(tmp_path, trials):
    other = trials.assign(dataset="shd", trial_id=trials["trial_id"] + "x")
    both = load_sweeps([_write(tmp_path, trials, "a"), _write(tmp_path, other, "b")])
    assert set(split_by_dataset(both)) == {"shd", "shd-default"}
    points = aggregate_seeds(both)
    with pytest.raises(MixedDataError, match=r"'dataset' holds \['shd', 'shd-default'\]"):
        budget_optima(points)
    with pytest.raises(MixedDataError, match="dataset"):
        info_model.fit(points)
    with pytest.raises(MixedDataError, match="dataset"):
        bootstrap(both, n_resamples=1)
    with pytest.raises(MixedDataError, match="budget_kind"):
        require_single(trials.assign(budget_kind=np.where(trials.index % 2, "core", "total")))
