"""Load sweep results (schema v2, docs/interfaces.md) into one validated, tidy DataFrame.

Two frames are used throughout the analysis:

* the **trial frame** (:func:`load_sweeps`): one row per trial (point x seed x training config),
  exactly the columns of the results table, validated;
* the **point frame** (:func:`aggregate_seeds`): one row per architecture point, with the seeds
  aggregated (``<col>_mean``, ``<col>_sd``, ``n_ok``) over the trials whose status is ``ok``.
  Frontiers and fits always use the point frame (seeds are aggregated *before* any frontier).

Results on different data (the ``dataset`` column, e.g. ``shd`` vs ``shd-default``) are never
mixed: loading keeps them apart and every function that compares points across budgets calls
:func:`require_single` first, which raises :class:`MixedDataError` naming the values found.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sweeps.store import COLUMNS as _STORE_COLUMNS
from sweeps.store import SCHEMA_VERSION, SweepStore, describe_changes

# Whole-number columns that must read back as integers; the other integer columns of the store
# may come back as floats (NaN where a field means nothing, e.g. d_m of a baseline).
_INTEGER_COLUMNS = frozenset({"schema_version", "seed"})


def _dtype_family(column: str, store_dtype: str) -> str:
    if store_dtype == "string":
        return "str"
    if store_dtype == "float64":
        return "float"
    return "int" if column in _INTEGER_COLUMNS else "num"


#: Numeric columns a results table may lack (last-step losses, the input-blind baseline of each
#: split, the wiring seed, the convergence check; added over time): tables written without them
#: still load, with these columns NaN, and the claim tests (analysis.claims.decide) say what they fell
#: back to.
OPTIONAL_COLUMNS = (
    "final_val_loss",
    "final_val_metric",
    "final_test_loss",
    "final_test_metric",
    "input_blind_val_loss",
    "input_blind_val_metric",
    "input_blind_test_loss",
    "input_blind_test_metric",
    "wiring_seed",
    "best_step",
    "val_last_drop",
    "val_last_drop_steps",
)

#: Provenance columns added to the table later (elm_jax.provenance, and the ELM recurrence's
#: kernel): text, except git_dirty (nullable boolean); tables written before them load with ""
#: and <NA>.
PROVENANCE_COLUMNS = (
    "package_version",
    "git_commit",
    "git_dirty",
    "backend",
    "device_kind",
    "kernel",
)

#: Columns of the results table (schema v2, as `sweeps.store` writes it) and the dtype family
#: each must have.
REQUIRED_COLUMNS: dict[str, str] = {
    c: _dtype_family(c, t)
    for c, t in _STORE_COLUMNS.items()
    if c not in OPTIONAL_COLUMNS and c not in PROVENANCE_COLUMNS
}

STATUSES = ("ok", "diverged", "failed")
#: Columns describing an architecture point (identical for all seeds of a point).
POINT_COLUMNS = (
    "N",
    "d_m",
    "k_c",
    "k_e",
    "d_tree",
    "P_core",
    "P_io",
    "P_total",
    "flops_per_step",
    "train_flops",
    "task",
    "metric_name",
)
#: The key of one aggregated point: results differing in any of these are never pooled.
POINT_KEY = ("dataset", "sweep", "arch", "point_id", "slice", "budget", "budget_kind")
#: Seed-level quantities that are aggregated per point.
VALUE_COLUMNS = (
    "val_loss",
    "val_metric",
    "test_loss",
    "test_metric",
    "final_val_loss",
    "final_val_metric",
    "final_test_loss",
    "final_test_metric",
)


class SchemaError(ValueError):
    """The results table is not schema v2 (wrong version, missing or mistyped columns, empty)."""


class MixedDataError(ValueError):
    """Rows from different data sets (or budget kinds) were given to one frontier or fit."""


def _read_trials_dir(trials_dir: Path) -> pd.DataFrame:
    """Rebuild the table from ``trials/<trial_id>.json`` (one flat record per file)."""
    records = []
    for path in sorted(trials_dir.glob("*.json")):
        if path.name.startswith("."):
            continue  # the temporary of an interrupted atomic write, never a record
        try:
            with open(path) as f:
                record = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise SchemaError(
                f"trial record {path}: not valid JSON ({err}); delete it (resuming the sweep "
                "trains that trial again)"
            ) from err
        if not isinstance(record, dict):
            raise SchemaError(
                f"trial record {path.name}: expected a JSON object, got {type(record).__name__}"
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


def read_sweep_dir(sweep_dir: str | Path) -> pd.DataFrame:
    """Read one sweep directory: ``results.parquet``, else the per-trial JSON records.

    Raises:
      FileNotFoundError: neither ``results.parquet`` nor ``trials/*.json`` exists.
      SchemaError: a corrupt ``results.parquet`` or a trial record that is not valid JSON.
    """
    sweep_dir = Path(sweep_dir)
    parquet = sweep_dir / "results.parquet"
    if parquet.is_file():
        try:
            return pd.read_parquet(parquet)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise SchemaError(
                f"{parquet}: not a readable parquet file ({' '.join(str(err).split())}); "
                "delete it to rebuild the table from trials/*.json"
            ) from err
    trials = sweep_dir / "trials"
    if trials.is_dir() and any(trials.glob("*.json")):
        return _read_trials_dir(trials)
    raise FileNotFoundError(
        f"sweep_dir={str(sweep_dir)!r}: no results.parquet and no trials/*.json records; "
        "pass a directory written by the sweep engine"
    )


def validate(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """Check a results table against schema v2 and return it with normalised dtypes.

    Raises:
      SchemaError: empty table, missing columns, a schema_version other than 2, unknown status
        values, or columns of the wrong type; the message names the column and the values.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise SchemaError(f"{source}: the results table is empty (0 rows); nothing to analyse")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if "schema_version" in missing:
        raise SchemaError(
            f"{source}: column 'schema_version' is missing; this reader understands schema "
            f"version {SCHEMA_VERSION} only (docs/interfaces.md)"
        )
    versions = sorted(pd.unique(df["schema_version"]).tolist())
    if versions != [SCHEMA_VERSION]:
        raise SchemaError(
            f"{source}: schema_version={versions}; this reader understands schema version "
            f"{SCHEMA_VERSION} only (docs/interfaces.md); re-export the sweep or update analysis/load.py"
        )
    if missing:
        raise SchemaError(
            f"{source}: missing required columns {missing} (schema v{SCHEMA_VERSION})"
        )
    out = df.copy()
    for col in OPTIONAL_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
        try:
            out[col] = pd.to_numeric(out[col], errors="raise").astype(float)
        except (ValueError, TypeError) as err:
            raise SchemaError(f"{source}: column {col!r} must be numeric: {err}") from err
    for col in PROVENANCE_COLUMNS:
        if col == "git_dirty":
            values = out[col] if col in out.columns else pd.Series(pd.NA, index=out.index)
            try:
                out[col] = values.astype("boolean")
            except (ValueError, TypeError) as err:
                raise SchemaError(f"{source}: column {col!r} must be boolean: {err}") from err
        else:
            out[col] = out[col].fillna("").astype(str) if col in out.columns else ""
    for col, kind in REQUIRED_COLUMNS.items():
        if kind == "str":
            if out[col].isna().any() and col != "reason":
                raise SchemaError(
                    f"{source}: column {col!r} has missing values; it must be a string"
                )
            out[col] = out[col].fillna("").astype(str)
        else:
            try:
                out[col] = pd.to_numeric(out[col], errors="raise").astype(float)
            except (ValueError, TypeError) as err:
                raise SchemaError(
                    f"{source}: column {col!r} must be numeric ({kind}): {err}"
                ) from err
    bad_status = sorted(set(out["status"]) - set(STATUSES))
    if bad_status:
        raise SchemaError(
            f"{source}: column 'status' has values {bad_status}; valid: {list(STATUSES)}"
        )
    for col in ("seed", "schema_version"):
        out[col] = out[col].astype(int)
    dup = out["trial_id"].duplicated(keep=False)
    if dup.any():
        raise SchemaError(
            f"{source}: trial_id values repeat: {sorted(out.loc[dup, 'trial_id'].unique())[:5]}; "
            "each trial must appear once"
        )
    return out.reset_index(drop=True)


def _read_manifest(sweep_dir: Path) -> dict | None:
    """The sweep definition a directory records (manifest.json), None when it has none."""
    store = SweepStore(str(sweep_dir))
    try:
        return store.read_manifest()
    except (ValueError, UnicodeDecodeError) as err:
        raise SchemaError(f"{store.manifest_path}: not valid JSON ({err})") from err


def _check_one_sweep_per_name(sweep_dirs: Sequence[Path]) -> None:
    """Directories of one sweep name (the shards of a sweep) must record one definition: their
    trials would otherwise be pooled as one sweep's."""
    first: dict[str, tuple[Path, dict]] = {}
    for d in sweep_dirs:
        manifest = _read_manifest(d)
        if manifest is None:
            continue
        name = str(manifest.get("sweep"))
        if name not in first:
            first[name] = (d, manifest)
            continue
        other_dir, other = first[name]
        changes = describe_changes(other, manifest, trials=False)
        if changes:
            raise SchemaError(
                f"{d} and {other_dir} both hold sweep {name!r} but with different definitions "
                f"(from {other_dir} to {d}: {'; '.join(changes)}); their trials would be pooled "
                "as one sweep's: report them separately"
            )


def _check_no_repeated_trials(frames: Sequence[pd.DataFrame], sweep_dirs: Sequence[Path]) -> None:
    """A trial in two directories (a shard's directory passed twice, or shards that overlap)."""
    seen: dict[str, Path] = {}
    for d, frame in zip(sweep_dirs, frames, strict=True):
        for row in frame.itertuples(index=False):
            if row.trial_id in seen:
                raise SchemaError(
                    f"trial {row.trial_id} ({row.slice} {row.arch} N={row.N:g} d_m={row.d_m:g} "
                    f"k_c={row.k_c:g} seed {row.seed}) is in both {seen[row.trial_id]} and {d}; "
                    "each trial must come from one directory: pass each shard's directory once"
                )
            seen[row.trial_id] = d


def load_sweeps(sweep_dirs: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Load one or several sweep directories into one validated trial frame.

    Rows keep their ``dataset``; use :func:`split_by_dataset` or :func:`require_single` before
    comparing points. A ``source`` column records the directory each row came from. The shard
    directories of one sweep (``sweeps.run --shard``) read as that sweep; directories that hold
    one sweep name with different definitions, or one trial twice, raise :class:`SchemaError`
    naming both directories.
    """
    if isinstance(sweep_dirs, (str, Path)):
        sweep_dirs = [sweep_dirs]
    if len(sweep_dirs) == 0:
        raise ValueError("sweep_dirs is empty; pass at least one sweep directory")
    dirs = [Path(d) for d in sweep_dirs]
    _check_one_sweep_per_name(dirs)
    frames = []
    for d in dirs:
        frame = validate(read_sweep_dir(d), source=str(d))
        frame["source"] = str(d)
        frames.append(frame)
    _check_no_repeated_trials(frames, dirs)
    out = pd.concat(frames, ignore_index=True)
    return validate(out, source="+".join(str(d) for d in sweep_dirs))


def require_single(df: pd.DataFrame, columns: Iterable[str] = ("dataset", "budget_kind")) -> None:
    """Raise :class:`MixedDataError` if ``df`` holds more than one value in any of ``columns``."""
    if len(df) == 0:
        raise SchemaError("the frame is empty (0 rows); nothing to analyse")
    for col in columns:
        values = sorted(pd.unique(df[col]).tolist())
        if len(values) > 1:
            raise MixedDataError(
                f"column {col!r} holds {values}: results on different {col} values are never "
                f"mixed in one frontier or fit; select one, e.g. df[df[{col!r}] == {values[0]!r}], "
                "or use analysis.load.split_by_dataset"
            )


def split_by_dataset(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a frame into one frame per ``dataset`` value (sorted by name)."""
    return {str(k): g.reset_index(drop=True) for k, g in df.groupby("dataset", sort=True)}


def aggregate_seeds(trials: pd.DataFrame) -> pd.DataFrame:
    """Aggregate the seeds of each architecture point (key: :data:`POINT_KEY`).

    Only trials with ``status == "ok"`` enter the means; the others are counted in
    ``n_not_ok`` and their reasons joined in ``not_ok_reasons`` so reports can list them.
    ``<col>_sd`` is the sample standard deviation (ddof=1; NaN with one seed). Points whose
    seeds all failed have ``n_ok == 0`` and NaN means; :func:`ok_points` drops them.
    """
    trials = validate(trials.drop(columns=["source"], errors="ignore"))
    ok = trials["status"] == "ok"
    rows = []
    for key, g in trials.groupby(list(POINT_KEY), dropna=False, sort=True):
        row = dict(zip(POINT_KEY, key, strict=True))
        first = g.iloc[0]
        for col in POINT_COLUMNS:
            row[col] = first[col]
        good = g[ok.loc[g.index]]
        row["n_trials"] = len(g)
        row["n_ok"] = len(good)
        row["n_not_ok"] = len(g) - len(good)
        row["not_ok_reasons"] = "; ".join(
            f"seed {int(s)}: {st} ({r})" if r else f"seed {int(s)}: {st}"
            for s, st, r in zip(g["seed"], g["status"], g["reason"], strict=True)
            if st != "ok"
        )
        for col in VALUE_COLUMNS:
            vals = good[col].to_numpy(dtype=float)
            row[f"{col}_mean"] = float(np.mean(vals)) if len(vals) else np.nan
            row[f"{col}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def ok_points(points: pd.DataFrame, loss: str = "val_loss") -> pd.DataFrame:
    """The aggregated points with at least one ok seed and a finite seed-mean ``loss``."""
    col = f"{loss}_mean"
    if col not in points.columns:
        raise ValueError(
            f"loss={loss!r}: column {col!r} not in the point frame; valid: {list(VALUE_COLUMNS)}"
        )
    keep = (points["n_ok"] > 0) & np.isfinite(points[col].to_numpy(dtype=float))
    return points[keep].reset_index(drop=True)


def not_ok_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials excluded from every fit (status other than ok), for reporting."""
    cols = [
        "dataset",
        "arch",
        "point_id",
        "slice",
        "budget",
        "N",
        "k_e",
        "k_c",
        "seed",
        "status",
        "reason",
    ]
    return trials.loc[trials["status"] != "ok", cols].reset_index(drop=True)
