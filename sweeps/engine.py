"""Planning and running a sweep: trials → trial groups → trainer calls → records → table.

The driver (`run_sweep`) turns a sweep definition into trials, checks them against the
directory's manifest, groups the unfinished ones (one architecture + training config, all its
pending seeds: one vmapped trainer call), and hands the groups to a backend. Whatever process
trains a group runs `execute_group`, which

1. takes the group's lock (`flock` on `groups/<group_id>.lock`, released by the kernel when the
   process dies, so a lost worker never leaves a stale lock and two workers never train one group),
2. skips the group if its trials already have records,
3. reuses `groups/<group_id>/summary.json` if the trainer finished before an interruption, or
   calls the trainer on that workdir, which resumes from its own checkpoints,
4. writes one record per trial atomically (failed and diverged trials included).
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import json
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from elm_jax import provenance as provenance_lib
from sweeps import shard as shard_lib
from sweeps import store as store_lib
from sweeps.points import SweepPoint, Trial, apply_point, group_id, make_trials

log = logging.getLogger("sweeps")

DEFAULT_TRAIN_FN = "elm_jax.train.loop:train_and_evaluate"
TrainFn = Callable[[Any, str], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class GroupTask:
    """One trainer call: everything a worker (local, pool process or Ray task) needs."""

    sweep_dir: str
    sweep: str
    task: str
    group_id: str
    config: Any  # ml_collections.ConfigDict with the point's model fields and the seeds
    trials: tuple[Trial, ...]
    train_fn: str | TrainFn = DEFAULT_TRAIN_FN

    @property
    def label(self) -> str:
        seeds = sorted({t.seed for t in self.trials})
        return f"{self.group_id} [{self.trials[0].point.describe()}, seeds {seeds}]"


@dataclasses.dataclass(frozen=True)
class GroupOutcome:
    """What happened to a group: `trained`, `reused` (summary found), `skipped` or `busy`."""

    group_id: str
    kind: str
    statuses: tuple[str, ...] = ()
    wall_s: float = 0.0


class LockBusy(RuntimeError):
    """Another live process holds the group's lock."""


class GroupLock:
    """An exclusive, non-blocking `flock` on a lock file, with owner pid/host written in it."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> GroupLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(self.path) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def resolve_train_fn(train_fn: str | TrainFn) -> TrainFn:
    """Resolves `"module:function"` to the function (callables pass through)."""
    if callable(train_fn):
        return train_fn
    module_name, _, attr = str(train_fn).partition(":")
    if not attr:
        raise ValueError(f"train_fn={train_fn!r}; expected 'module:function'")
    return getattr(importlib.import_module(module_name), attr)


def dataset_label(task: str, config: Any, summary: Mapping[str, Any] | None) -> str:
    """The results table's `dataset`: the source actually used, plus `@<bin>ms` for SHD."""
    from elm_jax.data.registry import DATASETS  # here: importing the engine reads no data module

    info = (summary or {}).get("data") or {}
    source = info.get("source") or str(config.data.get("name", ""))
    if task in DATASETS and DATASETS[task].binned:
        bin_ms = config.data.get("bin_ms", None)
        if bin_ms is not None:
            return f"{source}@{float(bin_ms):g}ms"
    return source


def _metric_name(task: str) -> str:
    """The metric of a sweep task (a dataset name) when no trainer summary names it."""
    from elm_jax.data.registry import DATASETS  # here: importing the engine reads no data module

    return DATASETS[task].kind.metric_name


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


_SPLIT_FIGURES = ("val_loss", "val_metric", "test_loss", "test_metric")


def _wiring_seed(seed_entry: Mapping[str, Any], task: GroupTask, trial: Trial) -> int:
    """The wiring seed the trainer used (as it would use it when it left no summary)."""
    if seed_entry.get("wiring_seed") is not None:
        return int(seed_entry["wiring_seed"])
    model = task.config.model
    base = int(model.get("wiring_seed", 0) or 0)
    return base + trial.seed if task.config.get("wiring_follows_seed", True) else base


def validation_drops(workdir: str, seeds: Sequence[int]) -> dict[int, tuple[float, int]]:
    """Per seed, (loss at the second-last validation minus the last, steps between them) from
    the group's metrics.jsonl; {} when fewer than two validations were logged. A positive drop
    means the point was still improving when training stopped (near the plateau? docs/science.md
    §8)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    evals: dict[int, list[float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill; the trainer rewrites it on resume
            if rec.get("split") == "validation" and isinstance(rec.get("loss"), list):
                evals[int(rec["step"])] = rec["loss"]
    if len(evals) < 2:
        return {}
    (s0, prev), (s1, last) = sorted(evals.items())[-2:]
    out = {}
    for i, seed in enumerate(seeds):
        if i < len(prev) and i < len(last):
            out[int(seed)] = (_nan(prev[i]) - _nan(last[i]), s1 - s0)
    return out


def trial_record(
    task: GroupTask,
    trial: Trial,
    summary: Mapping[str, Any] | None,
    reason: str = "",
    provenance: Mapping[str, Any] | None = None,
    drops: Mapping[int, tuple[float, int]] | None = None,
) -> dict[str, Any]:
    """Builds one trial's record (schema v2 columns + `group_id` and the training config).

    Provenance (versions, git commit, backend, device) comes from the trainer's summary, which
    recorded it where the trial trained; without one, from `provenance`, else from this process
    without touching its devices. `data_files` repeats the summary's data checksums.
    """
    p: SweepPoint = trial.point
    summary = summary or {}
    origin = summary.get("provenance") or provenance or provenance_lib.collect(devices=False)
    seed_entry = next(
        (s for s in summary.get("seeds", ()) if int(s.get("seed", -1)) == trial.seed), None
    )
    if seed_entry is None:
        status = "failed"
        reason = reason or summary.get("reason") or f"trainer summary has no seed {trial.seed}"
        seed_entry = {}
    else:
        status = seed_entry.get("status") or summary.get("status") or "failed"
        reason = seed_entry.get("reason") or ""
        if status != "ok" and not reason:
            reason = summary.get("reason") or status
    cost = summary.get("cost") or {}
    baseline = summary.get("input_blind") or {}
    blind = {
        f"{short}_{key}": (baseline.get(split) or {}).get(key)
        for short, split in (("val", "validation"), ("test", "test"))
        for key in ("loss", "metric")
    }
    steps = int(summary.get("steps") or 0)
    # flops_train_step is per sample and time step (elm_jax.budget): x batch x T x steps.
    seq_len = (summary.get("data") or {}).get("seq_len")
    batch = task.config.data.get("batch_size", None)
    per_step = cost.get("flops_train_step")
    train_flops = math.nan
    if per_step is not None and seq_len is not None and batch is not None:
        train_flops = float(per_step) * int(batch) * int(seq_len) * steps
    return {
        "schema_version": store_lib.SCHEMA_VERSION,
        "sweep": task.sweep,
        "trial_id": trial.trial_id,
        "point_id": trial.point_id,
        "arch": p.arch,
        "task": task.task,
        "dataset": dataset_label(task.task, task.config, summary),
        "slice": p.slice,
        "budget": p.budget,
        "budget_kind": p.budget_kind,
        "N": p.N,
        "d_m": p.d_m,
        "k_c": p.k_c,
        "k_e": p.k_e,
        "d_tree": p.d_tree,
        "P_core": int(cost.get("P_core", p.P_core)),
        "P_io": int(cost.get("P_io", p.P_io)),
        "P_total": int(cost.get("P_total", p.P_total)),
        "flops_per_step": float(cost.get("flops_per_step", p.flops_per_step)),
        "train_flops": train_flops,
        "seed": trial.seed,
        "status": status,
        "reason": reason or "",
        "steps": steps,
        "val_loss": _nan(seed_entry.get("val_loss")),
        "val_metric": _nan(seed_entry.get("val_metric")),
        "test_loss": _nan(seed_entry.get("test_loss")),
        "test_metric": _nan(seed_entry.get("test_metric")),
        **{f"final_{k}": _nan(seed_entry.get(f"final_{k}")) for k in _SPLIT_FIGURES},
        **{f"input_blind_{k}": _nan(blind.get(k)) for k in _SPLIT_FIGURES},
        "wiring_seed": _wiring_seed(seed_entry, task, trial),
        "metric_name": summary.get("metric_name") or _metric_name(task.task),
        "wall_s": _nan(summary.get("wall_s")),
        "group_id": task.group_id,
        "diverged_step": seed_entry.get("diverged_step"),
        "best_step": seed_entry.get("best_step"),
        "val_last_drop": (drops or {}).get(trial.seed, (math.nan, 0))[0],
        "val_last_drop_steps": (drops or {}).get(trial.seed, (math.nan, math.nan))[1],
        **{field: origin.get(field) for field in provenance_lib.FIELDS},
        "kernel": (summary.get("model") or {}).get("kernel") or "",
        "data_files": [
            {k: f.get(k) for k in ("path", "sha256", "bytes")}
            for f in (summary.get("data") or {}).get("files") or []
        ],
    }


def write_group_failure(task: GroupTask, reason: str) -> None:
    """Records every trial of a group as failed (e.g. its worker was lost too often)."""
    st = store_lib.SweepStore(task.sweep_dir)
    for trial in task.trials:
        st.write_record(trial_record(task, trial, None, reason=reason))


def execute_group(task: GroupTask) -> GroupOutcome:
    """Trains one group under its lock and writes its trial records (see module docstring).

    Returns an outcome of kind `busy` without training when another live process holds the lock.
    """
    st = store_lib.SweepStore(task.sweep_dir)
    try:
        lock = GroupLock(st.lock_path(task.group_id)).__enter__()
    except LockBusy:
        return GroupOutcome(task.group_id, "busy")
    try:
        return _execute_locked(task, st)
    finally:
        lock.__exit__()


def _execute_locked(task: GroupTask, st: store_lib.SweepStore) -> GroupOutcome:
    ids = [t.trial_id for t in task.trials]
    if set(ids) <= st.finished_ids():
        return GroupOutcome(task.group_id, "skipped")
    workdir = st.group_dir(task.group_id)
    os.makedirs(workdir, exist_ok=True)
    summary_path = os.path.join(workdir, "summary.json")
    start = time.time()
    summary: Mapping[str, Any] | None = None
    reason = ""
    kind = "trained"
    if os.path.exists(summary_path):
        # The trainer finished but the records were not all written: do not train again.
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        kind = "reused"
    else:
        if os.listdir(workdir):
            log.info("continuing group %s in its workdir (trainer checkpoints)", task.group_id)
        try:
            summary = resolve_train_fn(task.train_fn)(task.config, workdir)
        except Exception as e:  # a trainer error is a result (status failed), not a crash
            log.error("group %s failed:\n%s", task.label, traceback.format_exc())
            reason = f"{type(e).__name__}: {e}"

    here = None if (summary or {}).get("provenance") else provenance_lib.collect()  # this worker
    seeds = [int(s.get("seed", -1)) for s in (summary or {}).get("seeds", ())]
    drops = validation_drops(workdir, seeds)
    records = [trial_record(task, t, summary, reason, here, drops) for t in task.trials]
    for record in records:
        st.write_record(record)
    return GroupOutcome(
        task.group_id, kind, tuple(r["status"] for r in records), time.time() - start
    )


@dataclasses.dataclass
class Plan:
    """A sweep definition matched against its directory.

    `trials` are the trials this run is responsible for (the shard's, with `--shard`), of which
    `finished` have records; `sweep_trial_ids` are every trial of the sweep (the table holds
    those that have records in the directory).
    """

    store: store_lib.SweepStore
    trials: list[Trial]
    groups: list[GroupTask]
    finished: set[str]
    sweep_trial_ids: list[str] = dataclasses.field(default_factory=list)


def plan_sweep(
    *,
    name: str,
    task: str,
    source: str,
    train_config: Any,
    points: Sequence[SweepPoint],
    seeds: Sequence[int],
    directory: str,
    add_points: bool = False,
    retry_failed: bool = False,
    train_fn: str | TrainFn = DEFAULT_TRAIN_FN,
    shard: shard_lib.Shard | None = None,
) -> Plan:
    """Builds the trials, reconciles the manifest and groups the unfinished trials.

    With `shard`, only the trials of that shard's trainer calls are planned (sweeps.shard: the
    assignment depends on the definition alone); the manifest is still the whole sweep's, so
    the directories of all shards record the same definition and merge into one.

    Raises:
      ValueError: no points, or an unwritable directory.
      DefinitionChangedError: the directory holds a different sweep (see SweepStore).
    """

    if not points:
        raise ValueError(f"sweep {name!r} defines no points; check its budgets and grids")
    root = store_lib.check_writable(directory)
    st = store_lib.SweepStore(root)
    trials = make_trials(points, seeds, train_config, task)
    st.reconcile_manifest(
        store_lib.manifest_for(name, task, source, train_config, trials), add_points
    )
    st.create_dirs()
    sweep_trial_ids = [t.trial_id for t in trials]
    if shard is not None:
        trials = shard_lib.select(trials, train_config, shard)
    finished = st.finished_ids() & {t.trial_id for t in trials}
    if retry_failed:
        failed = {t for t in finished if st.read_record(t)["status"] == "failed"}
        for trial_id in sorted(failed):
            # A trainer that reported failure left a summary: set it aside so the group trains
            # again (from its checkpoints) instead of reusing the failed summary.
            summary = os.path.join(
                st.group_dir(st.read_record(trial_id)["group_id"]), "summary.json"
            )
            if os.path.exists(summary):
                os.replace(summary, summary + f".failed-{int(time.time())}")
            os.unlink(st.trial_path(trial_id))
        finished -= failed
    by_key: dict[str, list[Trial]] = {}
    for trial in trials:
        if trial.trial_id not in finished:
            by_key.setdefault(trial.group_key, []).append(trial)
    groups = []
    for members in by_key.values():
        seeds_here = sorted({t.seed for t in members})
        gid = group_id(members[0].group_key, seeds_here)
        config = apply_point(train_config, members[0].point, seeds_here)
        groups.append(GroupTask(root, name, task, gid, config, tuple(members), train_fn))
    # Biggest models first: the long trainer calls start early, so parallel workers end together.
    groups.sort(key=lambda g: (-g.trials[0].point.P_total, g.group_id))
    return Plan(st, trials, groups, finished, sweep_trial_ids)


class SweepValidationError(ValueError):
    """A sweep's trials have invalid configs; nothing was trained (the message lists them all)."""


def validate_sweep(
    train_config: Any, points: Sequence[SweepPoint], seeds: Sequence[int] = (0,)
) -> None:
    """Checks every trial's full trainer config before anything trains.

    Each point's config (its model fields and the sweep's seeds applied) goes through the
    trainer's own check (`elm_jax.config_check.config_problems`: schema and types, model,
    optimizer, data name, options and task fit); no data is built and nothing is compiled.

    Raises:
      SweepValidationError: listing every distinct problem once, with the points it affects.
    """
    # Here: the config check loads jax and flax, which a sweep that only resumes never needs.
    from elm_jax.config_check import config_problems

    affected: dict[str, list[str]] = {}
    for point in points:
        problems, _ = config_problems(apply_point(train_config, point, point.seeds or seeds))
        for problem in problems:
            affected.setdefault(problem, []).append(point.describe())
    if not affected:
        return
    lines = []
    for problem, where in affected.items():
        if len(where) == len(points) > 1:
            scope = f"all {len(points)} points"
        else:
            scope = "; ".join(f"point {w}" for w in where[:3])
            scope += f"; +{len(where) - 3} more points" if len(where) > 3 else ""
        lines.append(f"  - {problem} [{scope}]")
    raise SweepValidationError(
        f"the sweep's trainer configs are invalid; nothing was trained ({len(affected)} "
        f"problem(s) over {len(points)} points x {len(seeds)} seeds):\n" + "\n".join(lines)
    )


def run_groups(
    groups: Sequence[GroupTask],
    backend: Any,
    progress: Any,
    *,
    busy_poll_s: float = 2.0,
) -> list[GroupOutcome]:
    """Runs groups on a backend until every group is finished or recorded as failed.

    Groups whose lock is held by another live process (another sweep process on the same
    directory) are tried again every `busy_poll_s` seconds until that process finishes or dies.
    """
    outcomes: list[GroupOutcome] = []
    pending = list(groups)
    while pending:
        busy = []
        for task, outcome in backend.run(pending, progress):
            if outcome.kind == "busy":
                busy.append(task)
            else:
                outcomes.append(outcome)
        if busy:
            log.info("%d groups are held by another process; waiting", len(busy))
            time.sleep(busy_poll_s)
        pending = busy
    return outcomes
