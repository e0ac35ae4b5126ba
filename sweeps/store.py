"""The sweep directory: manifest, atomic per-trial records, the results table (schema v2).

Layout of SWEEP_DIR:

    manifest.json            the sweep definition (trials + training config); guards resume
    trials/<trial_id>.json   one record per finished trial (ok, diverged or failed)
    groups/<group_id>/       the trainer's workdir for one trainer call (checkpoints, summary.json)
    groups/<group_id>.lock   held (flock) by the process training that group
    results.parquet          rebuilt from trials/*.json, one row per trial
    sweep.log                the sweep's log

Every file that an interruption could leave half-written is written to a temporary file in the
same directory and then renamed over the target (os.replace is atomic on POSIX).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from sweeps.points import Trial, canonical_json, train_config_identity

# 2: the official SHD validation split and evaluation pairing (docs/science.md §4), final-step
# losses, input-blind baselines and per-seed wiring; tables of version 1 are never pooled with
# these.
SCHEMA_VERSION = 2

# Column order and dtype of the results table (docs/interfaces.md, schema version 2).
COLUMNS: dict[str, str] = {
    "schema_version": "int64",
    "sweep": "string",
    "trial_id": "string",
    "point_id": "string",
    "arch": "string",
    "task": "string",
    "dataset": "string",
    "slice": "string",
    "budget": "float64",
    "budget_kind": "string",
    "N": "int64",
    "d_m": "int64",
    "k_c": "int64",
    "k_e": "int64",
    "d_tree": "int64",
    "P_core": "int64",
    "P_io": "int64",
    "P_total": "int64",
    "flops_per_step": "float64",
    "train_flops": "float64",
    "seed": "int64",
    "status": "string",
    "reason": "string",
    "steps": "int64",
    "val_loss": "float64",
    "val_metric": "float64",
    "test_loss": "float64",
    "test_metric": "float64",
    # At the final parameters (docs/science.md §8 decides claims on these; val_/test_ are the best
    # checkpoint's, chosen on validation).
    "final_val_loss": "float64",
    "final_val_metric": "float64",
    "final_test_loss": "float64",
    "final_test_metric": "float64",
    # Predicting the label prior of exactly the examples evaluated (elm_jax.data input_blind).
    "input_blind_val_loss": "float64",
    "input_blind_val_metric": "float64",
    "input_blind_test_loss": "float64",
    "input_blind_test_metric": "float64",
    "wiring_seed": "int64",
    # Convergence (sweeps.engine.validation_drops): the step of the best validation loss, and
    # how much the validation loss fell between the last two evaluations (> 0: still falling).
    "best_step": "float64",
    "val_last_drop": "float64",
    "val_last_drop_steps": "float64",
    "metric_name": "string",
    "wall_s": "float64",
    # Provenance (elm_jax.provenance): where the trial trained; "" / <NA> in older tables.
    "package_version": "string",
    "git_commit": "string",
    "git_dirty": "boolean",
    "backend": "string",
    "device_kind": "string",
    # The ELM recurrence's implementation the trial ran (elm_jax.network.fused): "cpu_fused",
    # "gpu_pallas" or "xla"; "" for baselines and in older tables.
    "kernel": "string",
}
STATUSES = ("ok", "diverged", "failed")


class DefinitionChangedError(ValueError):
    """The sweep definition differs from the one recorded in the sweep directory."""


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    # ".<name>.<random>.tmp": a leftover never matches "*.json" or "*.parquet".
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, value: Any) -> None:
    """Writes `value` as indented JSON atomically (NaN written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(value), indent=1, sort_keys=True) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def check_writable(directory: str) -> str:
    """Creates `directory` if needed and proves it is writable; returns its absolute path.

    Raises:
      ValueError: naming the directory and why it cannot be used.
    """
    path = os.path.abspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--dir={directory!r} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"--dir={directory!r} is not a writable directory ({e.strerror}); "
            "choose a directory you can write to"
        ) from e
    return path


class SweepStore:
    """Reads and writes one sweep directory."""

    def __init__(self, directory: str):
        self.root = os.path.abspath(directory)
        self.trials_dir = os.path.join(self.root, "trials")
        self.groups_dir = os.path.join(self.root, "groups")
        self.manifest_path = os.path.join(self.root, "manifest.json")
        self.results_path = os.path.join(self.root, "results.parquet")
        self.log_path = os.path.join(self.root, "sweep.log")

    def create_dirs(self) -> None:
        """Creates the directory layout (idempotent)."""
        os.makedirs(self.trials_dir, exist_ok=True)
        os.makedirs(self.groups_dir, exist_ok=True)

    def group_dir(self, group_id: str) -> str:
        return os.path.join(self.groups_dir, group_id)

    def lock_path(self, group_id: str) -> str:
        return os.path.join(self.groups_dir, group_id + ".lock")

    def trial_path(self, trial_id: str) -> str:
        return os.path.join(self.trials_dir, trial_id + ".json")

    # --- manifest -------------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        """The recorded sweep definition, or None for a new directory."""
        if not os.path.exists(self.manifest_path):
            return None
        with open(self.manifest_path, encoding="utf-8") as f:
            return json.load(f)

    def reconcile_manifest(self, manifest: dict[str, Any], add_points: bool = False) -> list[str]:
        """Records `manifest`, or checks it against the recorded one.

        Returns the ids of trials new to this directory (all of them for a new directory).

        Raises:
          DefinitionChangedError: the definition changed (naming what changed), unless the only
            change is new trials and `add_points` is set.
        """
        old = self.read_manifest()
        new_ids = sorted(manifest["trials"])
        if old is None:
            atomic_write_json(self.manifest_path, manifest)
            return new_ids
        changes = describe_changes(old, manifest)
        added = sorted(set(manifest["trials"]) - set(old["trials"]))
        removed = sorted(set(old["trials"]) - set(manifest["trials"]))
        if not changes:
            return []
        only_added = not removed and _same_except_trials(old, manifest)
        if add_points and only_added:
            atomic_write_json(self.manifest_path, manifest)
            return added
        hint = (
            "--add-points only adds trials; it cannot remove or change existing ones. "
            if add_points
            else "Run with --add-points to add only the new trials, or "
        )
        raise DefinitionChangedError(
            f"the sweep definition differs from the one recorded in {self.manifest_path}:\n  "
            + "\n  ".join(changes)
            + f"\n{hint}use a new --dir for a different sweep."
        )

    # --- trial records --------------------------------------------------------------------

    def finished_ids(self) -> set[str]:
        """Ids of trials with a record (finished: ok, diverged or failed)."""
        if not os.path.isdir(self.trials_dir):
            return set()
        names = os.listdir(self.trials_dir)
        # Dot files are temporaries of an interrupted atomic write, never records.
        return {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}

    def read_record(self, trial_id: str) -> dict[str, Any]:
        with open(self.trial_path(trial_id), encoding="utf-8") as f:
            return json.load(f)

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Writes one trial record atomically; the record must carry every schema column."""
        missing = [c for c in COLUMNS if c not in record]
        if missing:
            raise ValueError(f"trial record lacks columns {missing}")
        if record["status"] not in STATUSES:
            raise ValueError(f"record status={record['status']!r}; valid: {STATUSES}")
        atomic_write_json(self.trial_path(record["trial_id"]), record)

    def records(self, trial_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All records (or those of `trial_ids` that exist), sorted by trial id."""
        ids = self.finished_ids() if trial_ids is None else set(trial_ids) & self.finished_ids()
        return [self.read_record(t) for t in sorted(ids)]

    def rebuild_table(self, trial_ids: Iterable[str] | None = None):
        """Rebuilds results.parquet from the records (one row per trial); returns the frame."""
        rows = [{c: r.get(c) for c in COLUMNS} for r in self.records(trial_ids)]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        for column, dtype in COLUMNS.items():
            if dtype == "int64":
                frame[column] = frame[column].fillna(0).astype("int64")
            elif dtype == "float64":
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            elif dtype == "boolean":
                frame[column] = frame[column].astype("boolean")  # None: unknown (<NA>)
            else:
                frame[column] = frame[column].fillna("").astype(str)
        fd, tmp = tempfile.mkstemp(prefix=".results.parquet.", suffix=".tmp", dir=self.root)
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, self.results_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return frame


def manifest_for(
    name: str, task: str, source: str, train_config: Any, trials: Sequence[Trial]
) -> dict[str, Any]:
    """The manifest of a sweep definition: what a later run must match to resume."""
    base = train_config_identity(train_config)
    base.pop("model", None)  # per-trial model fields are recorded with each trial
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep": name,
        "task": task,
        "source": source,
        "train_config": json.loads(canonical_json(base)),
        "trials": {
            t.trial_id: {
                "point_id": t.point_id,
                "describe": t.point.describe(),
                "seed": t.seed,
                "model": json.loads(canonical_json(t.point.model_dict)),
                # a point's own trainer fields (the length slice), only when it has some
                **(
                    {"train": json.loads(canonical_json(dict(t.point.train)))}
                    if t.point.train
                    else {}
                ),
            }
            for t in trials
        },
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def _same_except_trials(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = ("sweep", "task", "train_config")
    return all(canonical_json(old.get(k)) == canonical_json(new.get(k)) for k in keys)


def describe_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 5, trials: bool = True
) -> list[str]:
    """Human-readable differences between two manifests (empty when they define one sweep);
    `trials=False` compares the sweep, task and training config only."""
    changes: list[str] = []
    for key in ("sweep", "task"):
        if old.get(key) != new.get(key):
            changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    flat_old = _flatten(old.get("train_config", {}))
    flat_new = _flatten(new.get("train_config", {}))
    for key in sorted(set(flat_old) | set(flat_new)):
        if canonical_json(flat_old.get(key)) != canonical_json(flat_new.get(key)):
            changes.append(
                f"training config {key}: {flat_old.get(key, '<absent>')!r} -> "
                f"{flat_new.get(key, '<absent>')!r}"
            )
    for verb, a, b in (("added", new, old), ("removed", old, new)) if trials else ():
        ids = sorted(set(a["trials"]) - set(b["trials"]))
        if ids:
            shown = [f"{a['trials'][t]['describe']} seed {a['trials'][t]['seed']}" for t in ids]
            more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
            changes.append(f"{len(ids)} trials {verb}: " + "; ".join(shown[:limit]) + more)
    return changes
