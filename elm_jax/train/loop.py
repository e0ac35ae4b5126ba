"""The training loop of `elm_jax.train.train_and_evaluate`: config checks, resume, logs, summary.

Order of work: resolve and validate the config, check the workdir, build the mesh and check the
batch divides it, load the data and check it fits the model, and only then initialise, restore
the latest checkpoint and train. Every file is written by process 0, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from elm_jax import metrics as metrics_lib
from elm_jax import parallel, provenance
from elm_jax.checkpoint import Checkpointer
from elm_jax.configs.common import base_config, to_plain
from elm_jax.optim import unit_schedule
from elm_jax.train import StepSpec, evaluate, init_state, train_step, update_best

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, PROGRESS_FILE = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "progress.json",
)
CHECKPOINT_DIR = "checkpoints"


def _merge(base: ml_collections.ConfigDict, given: Any, prefix: str = "") -> None:
    keys = given.keys() if hasattr(given, "keys") else []
    for key in keys:
        value = given[key]
        path = f"{prefix}{key}"
        if key not in base:
            raise ValueError(
                f"unknown config field {path!r}; valid fields here: {sorted(base.keys())}"
            )
        if isinstance(base[key], ml_collections.ConfigDict):
            if not hasattr(value, "keys"):
                raise ValueError(f"config field {path!r} must be a group, got {value!r}")
            _merge(base[key], value, prefix=f"{path}.")
            continue
        if isinstance(value, list):
            value = tuple(value)
        try:
            base[key] = value
        except TypeError as err:
            raise ValueError(f"config field {path!r}={value!r} has the wrong type: {err}") from err


def field_problems(full: ml_collections.ConfigDict) -> list[str]:
    """Every out-of-range trainer field of a merged config (counts, seeds, batch sizes)."""
    problems = []
    for name in ("num_train_steps", "log_every", "eval_every", "checkpoint_every"):
        if not isinstance(full[name], int) or full[name] < 1:
            problems.append(f"config.{name}={full[name]!r} must be an integer >= 1")
    if full.keep_checkpoints < 1:
        problems.append(f"config.keep_checkpoints={full.keep_checkpoints!r} must be >= 1")
    seeds = list(full.seeds)
    if (
        not seeds
        or len(set(seeds)) != len(seeds)
        or any(not isinstance(s, int) or s < 0 for s in seeds)
    ):
        problems.append(f"config.seeds={seeds!r} must be a non-empty list of distinct ints >= 0")
    for name in ("batch_size", "eval_batch_size"):
        if full.data[name] < 1:
            problems.append(f"config.data.{name}={full.data[name]!r} must be >= 1")
    if full.parallel.sync_every < 1:
        problems.append(f"config.parallel.sync_every={full.parallel.sync_every!r} must be >= 1")
    return problems


def resolve_config(config: Any) -> ml_collections.ConfigDict:
    """`config` merged over the full schema (`base_config`) and checked; raises ValueError."""
    full = base_config()
    _merge(full, config)
    problems = field_problems(full)
    if problems:
        raise ValueError("; ".join(problems))
    _resolve_time_unit(full)
    if not isinstance(full.logging.tensorboard, bool):
        raise ValueError(f"config.logging.tensorboard={full.logging.tensorboard!r} must be a bool")
    from elm_jax.writers import check_wandb_mode

    check_wandb_mode(full.logging.wandb)
    return full


def _resolve_time_unit(cfg: ml_collections.ConfigDict) -> None:
    """model.time_unit = "ms": time constants in milliseconds, Δt = the bin width data.bin_ms
    (SPEC §4), so a change of bin size keeps the physical timescales."""
    if cfg.model.time_unit != "ms":
        return
    if cfg.model.task != "classification":
        raise ValueError(
            "config.model.time_unit='ms' needs binned spike data (SHD, SHD-Adding) with "
            f"data.bin_ms; task {cfg.model.task!r} has no bin width: use time_unit='steps'"
        )
    bin_ms = float(cfg.data.bin_ms)
    if cfg.model.delta_t not in (1.0, bin_ms):
        raise ValueError(
            f"config.model.delta_t={cfg.model.delta_t!r} conflicts with time_unit='ms', where "
            f"delta_t is the bin width data.bin_ms={bin_ms!r}: leave delta_t at its default"
        )
    cfg.model.delta_t = bin_ms


def _config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _config_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return metrics_lib.finite_or_none(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def _load_data(cfg: ml_collections.ConfigDict) -> Any:
    from elm_jax import data
    from elm_jax.config_check import data_options

    return data.load(cfg.data.name, data_dir=cfg.data.data_dir, **data_options(cfg.data))


def stream_train_batch(
    train: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int
) -> dict:
    """Training batch `step` of `batch_size` contiguous streams over the training bytes.

    Stream j reads segment j of `batch_size` equal segments, starting at a seed-dependent
    offset and advancing `seq_len` bytes per step (wrapping inside its segment), so with the
    state carried from step to step every prediction has the context of the bytes before it,
    as in the contiguous evaluation. Deterministic in (step, seed).
    """
    segment = len(train) // batch_size
    span = segment - seq_len - 1
    if span < 1:
        raise ValueError(
            f"data.seq_len={seq_len} with data.batch_size={batch_size} needs training segments "
            f"longer than seq_len + 1; the training split has {len(train)} bytes"
        )
    offset = int(np.random.default_rng([int(seed), 7]).integers(0, span))
    start = (offset + int(step) * seq_len) % span
    rows = np.arange(batch_size)[:, None] * segment + start + np.arange(seq_len + 1)[None, :]
    windows = train[rows].astype(np.int32)
    return {"inputs": windows[:, :-1], "labels": windows[:, 1:]}


@dataclasses.dataclass
class Run:
    """One prepared run: everything checked, nothing trained yet."""

    cfg: ml_collections.ConfigDict
    workdir: str
    spec: StepSpec
    learning_rates: list[float]
    mesh: jax.sharding.Mesh
    dataset: Any
    is_writer: bool
    _train_bytes: np.ndarray | None = None
    _writers: Any = None  # elm_jax.writers.MetricWriters while a loop runs

    @classmethod
    def prepare(
        cls,
        config: Any,
        workdir: str,
        *,
        dataset: Any | None = None,
        devices: list[jax.Device] | None = None,
    ) -> Run:
        """Validates everything that can fail before training (ValueError naming the field)."""
        from elm_jax.config_check import check_config  # the sweep's pre-flight check too

        checked = check_config(config, check_data=dataset is None)
        cfg, model_cfg, optim_cfg = checked.cfg, checked.model, checked.optim
        seeds = list(cfg.seeds)
        lrs = checked.learning_rates
        plain = to_plain(cfg)

        workdir = os.path.abspath(workdir)
        config_path = os.path.join(workdir, CONFIG_FILE)
        if os.path.exists(config_path):
            with open(config_path) as f:
                old = json.load(f)
            # Logging settings (TensorBoard, W&B) may change between a run and its resume.
            diff = _config_diff(
                {k: v for k, v in old.items() if k != "logging"},
                {k: v for k, v in json.loads(json.dumps(plain)).items() if k != "logging"},
            )
            if diff:
                raise ValueError(
                    f"workdir {workdir} holds a run with a different config ({'; '.join(diff)}); "
                    "resuming would mix two runs: use a new workdir or delete this one"
                )

        parallel.maybe_initialize_distributed(cfg.parallel.distributed)
        mesh = parallel.make_mesh(len(seeds), devices, cfg.parallel.replica_devices)
        parallel.check_batch_divides(mesh, cfg.data.batch_size, "data.batch_size")
        parallel.check_batch_divides(mesh, cfg.data.eval_batch_size, "data.eval_batch_size")

        ds = dataset if dataset is not None else _load_data(cfg)
        info = ds.info
        checks = {
            "task": model_cfg.task,
            "input_dim": model_cfg.input_dim,
            "num_classes": model_cfg.num_classes,
        }
        for key, want in checks.items():
            if key in info and info[key] != want:
                raise ValueError(
                    f"config.model.{key}={want!r} does not fit the data {info.get('name')!r} "
                    f"({key}={info[key]!r}); set config.model.{key}={info[key]!r}"
                )

        if cfg.data.carry_train_state and not (
            model_cfg.task == "lm" and callable(getattr(ds, "split", None))
        ):
            raise ValueError(
                "config.data.carry_train_state=True needs a language-modelling dataset with a "
                f"split(name) -> bytes method (got task {model_cfg.task!r}, "
                f"{type(ds).__name__}); set it to False"
            )
        is_writer = jax.process_index() == 0
        if is_writer:
            os.makedirs(workdir, exist_ok=True)
            metrics_lib.write_json_atomic(config_path, plain)
        spec = StepSpec.create(model_cfg, optim_cfg, carry_state=cfg.data.carry_train_state)
        return cls(cfg, workdir, spec, lrs, mesh, ds, is_writer)

    @property
    def wiring_seeds(self) -> list[int]:
        """Each seed's wiring seed when `wiring_follows_seed`: model.wiring_seed + seed."""
        return [self.spec.model.wiring_seed + int(seed) for seed in self.cfg.seeds]

    def _train_batch(self, step: int, seed: int) -> dict:
        d = self.cfg.data
        if not d.carry_train_state:
            return self.dataset.train_batch(step, d.batch_size, seed)
        if self._train_bytes is None:
            self._train_bytes = np.asarray(self.dataset.split("train"))
        return stream_train_batch(self._train_bytes, step, d.batch_size, d.seq_len, seed)

    def _path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def _evaluate(self, state: Any, params_key: str, split: str, max_batches: int | None) -> dict:
        d = self.cfg.data
        return evaluate(
            state,
            params_key,
            self.dataset,
            split,
            self.spec,
            self.mesh,
            d.eval_batch_size,
            d.eval_chunk_len or d.seq_len,
            max_batches,
        )

    def execute(self, step_hook: Callable[[int], None] | None = None) -> dict:
        """Trains (resuming from the latest checkpoint) and writes the summary; returns it."""
        t_start = time.time()
        prior_wall = 0.0
        ckpt = Checkpointer(self._path(CHECKPOINT_DIR), keep=self.cfg.keep_checkpoints)
        try:
            state = init_state(
                self.spec,
                list(self.cfg.seeds),
                self.learning_rates,
                self.mesh,
                batch_size=self.cfg.data.batch_size,
                wiring_seeds=self.wiring_seeds if self.cfg.wiring_follows_seed else None,
            )
            latest = ckpt.latest_step()
            if latest is not None:
                state = ckpt.restore(latest, state)
                if os.path.exists(self._path(PROGRESS_FILE)):
                    with open(self._path(PROGRESS_FILE)) as f:
                        prior_wall = float(json.load(f).get("wall_s", 0.0))
            summary = self._loop(state, ckpt, t_start, prior_wall, step_hook)
        except Exception as err:
            if self.is_writer:
                self._write_summary(
                    status="failed",
                    reason=f"{type(err).__name__}: {err}",
                    steps=0,
                    wall_s=prior_wall + time.time() - t_start,
                    seeds=[],
                )
            raise
        finally:
            ckpt.close()
            if self._writers is not None:
                self._writers.close(success=False)
                self._writers = None
        return summary

    def _loop(self, state, ckpt, t_start, prior_wall, step_hook) -> dict:
        cfg, task = self.cfg, self.spec.model.task
        seeds = list(cfg.seeds)
        total = cfg.num_train_steps
        step = int(parallel.fetch(state["step"])[0])
        writer = metrics_lib.JsonLinesWriter(self._path(METRICS_FILE))
        if self.is_writer:
            writer.truncate_after(step)
        train_sharding = parallel.train_batch_sharding(self.mesh)
        progress = metrics_lib.Progress(total, step, enabled=None if self.is_writer else False)
        timer, steps_since_log = metrics_lib.Timer(), 0
        metric = metrics_lib.metric_name(task)
        self._writers = self._open_writers(step, metric)
        # The baseline of exactly the examples evaluated (the summary's), else the data's own.
        input_blind = self._input_blind() or (self.dataset.info or {}).get("input_blind")

        def elapsed() -> float:
            return prior_wall + time.time() - t_start

        def all_diverged() -> bool:
            return bool(np.all(parallel.fetch(state["diverged_step"]) >= 0))

        stopped = all_diverged()
        val = None  # the latest validation; the loop's last one is at the final parameters
        while step < total and not stopped:
            per_seed = [self._train_batch(step, s) for s in seeds]
            host = {k: np.stack([b[k] for b in per_seed]) for k in ("inputs", "labels")}
            state = train_step(state, parallel.put_global(host, train_sharding), spec=self.spec)
            step += 1
            steps_since_log += 1
            # Bounded queue of dispatched steps: all-reduce loops on fake CPU devices can
            # deadlock if too many are in flight; a tiny device_get every few steps prevents it.
            if step == total or any(
                step % every == 0
                for every in (cfg.parallel.sync_every, cfg.eval_every, cfg.checkpoint_every)
            ):
                stopped = all_diverged()  # never checkpoint a run whose every seed diverged
            if step % cfg.log_every == 0 or step == total or stopped:
                acc = parallel.fetch(state["metrics"])
                # x * 0 keeps each array's sharding, so train_step is not recompiled.
                state = dict(state, metrics=jax.tree.map(lambda x: x * 0, state["metrics"]))
                dt = timer.lap()
                rec = {"step": step, "split": "train", "seconds": round(elapsed(), 3)}
                rec.update(metrics_lib.summarize(acc, task))
                rec["steps_per_s"] = steps_since_log / dt
                rec["examples_per_s"] = steps_since_log * cfg.data.batch_size * len(seeds) / dt
                steps_since_log = 0
                if self.is_writer:
                    writer.write(rec)
                    if self._writers is not None:
                        self._writers.write_train(step, rec, self._current_lrs(step))
                progress.update(step, {"loss": rec["loss"][0]})
            if step % cfg.eval_every == 0 or step == total or stopped:
                val = self._evaluate(state, "params", "validation", cfg.data.val_max_batches)
                state = update_best(state, *self._as_state_arrays(val["loss"], val[metric]))
                timer.lap()  # throughput counts training only
                if self.is_writer:
                    writer.write(
                        {"step": step, "split": "validation", "seconds": round(elapsed(), 3), **val}
                    )
                    if self._writers is not None:
                        self._writers.write_eval(step, "validation", val, input_blind)
            if (step % cfg.checkpoint_every == 0 or step == total) and not stopped:
                ckpt.save(step, state)
                if self.is_writer:
                    metrics_lib.write_json_atomic(
                        self._path(PROGRESS_FILE), {"step": step, "wall_s": elapsed()}
                    )
                if self._writers is not None:  # curves up to a checkpoint survive any kill
                    self._writers.flush()
                timer.lap()
            if step_hook is not None:
                step_hook(step)
        progress.close()
        ckpt.wait()

        test = self._evaluate(state, "best_params", "test", cfg.data.test_max_batches)
        # The final parameters on both splits (SPEC §8 decides claims on final losses; the best
        # checkpoint's figures carry a winner's curse). A diverged seed keeps its last finite
        # parameters, so its final figures are those of the step before it diverged.
        if val is None:  # resumed after the last step: nothing was evaluated in the loop
            val = self._evaluate(state, "params", "validation", cfg.data.val_max_batches)
        final = {
            "val": val,
            "test": self._evaluate(state, "params", "test", cfg.data.test_max_batches),
        }
        host = parallel.fetch(
            {k: state[k] for k in ("best_val", "best_metric", "best_step", "diverged_step")}
        )
        seed_rows = []
        for i, seed in enumerate(seeds):
            div = int(host["diverged_step"][i])
            has_best = int(host["best_step"][i]) >= 0
            best_val = metrics_lib.finite_or_none(host["best_val"][i]) if has_best else None
            seed_rows.append(
                {
                    "seed": seed,
                    "learning_rate": self.learning_rates[i],
                    "wiring_seed": self.wiring_seeds[i]
                    if cfg.wiring_follows_seed
                    else self.spec.model.wiring_seed,
                    "status": "diverged" if div >= 0 else "ok",
                    "reason": None
                    if div < 0
                    else f"non-finite loss or gradient at update {div}; parameters kept from step {div}",
                    "diverged_step": div if div >= 0 else None,
                    "best_step": int(host["best_step"][i]) if has_best else None,
                    "val_loss": best_val,
                    "val_metric": metrics_lib.finite_or_none(host["best_metric"][i])
                    if has_best
                    else None,
                    "test_loss": test["loss"][i] if has_best else None,
                    "test_metric": test[metric][i] if has_best else None,
                    **{
                        f"final_{split}_{key}": metrics_lib.finite_or_none(final[split][name][i])
                        for split in ("val", "test")
                        for key, name in (("loss", "loss"), ("metric", metric))
                    },
                }
            )
        if self._writers is not None:
            best_test = {k: [r[f"test_{k}"] for r in seed_rows] for k in ("loss", "metric")}
            self._writers.write_eval(
                step, "test", {"loss": best_test["loss"], metric: best_test["metric"]}, input_blind
            )
            self._writers.close(success=True)
            self._writers = None
        diverged = [r["seed"] for r in seed_rows if r["status"] == "diverged"]
        return self._write_summary(
            status="diverged" if diverged else "ok",
            reason=f"seeds {diverged} diverged" if diverged else None,
            steps=step,
            wall_s=elapsed(),
            seeds=seed_rows,
        )

    def _open_writers(self, step: int, metric: str) -> Any:
        """TensorBoard (and W&B) runs, one per seed, on the writing process; None when off."""
        log = self.cfg.logging
        if not self.is_writer or not (log.tensorboard or log.wandb):
            return None
        from elm_jax.budget import cost
        from elm_jax.writers import MetricWriters, seed_hparams

        m = self.spec.model
        hparams = seed_hparams(cost(m), m, list(self.cfg.seeds), self.learning_rates)
        return MetricWriters(
            self.workdir,
            hparams,
            metric,
            resume_step=step,
            tensorboard=log.tensorboard,
            wandb_mode=log.wandb,
        )

    def _current_lrs(self, step: int) -> list[float]:
        """Per-seed learning rate of update `step - 1` (the last one done), on the host."""
        unit = float(unit_schedule(self.spec.optim)(max(step - 1, 0)))
        return [lr * unit for lr in self.learning_rates]

    def _as_state_arrays(self, *per_seed: list) -> list[jax.Array]:
        sharding = parallel.state_sharding(self.mesh)
        return [
            parallel.put_global(
                np.array([np.nan if v is None else v for v in xs], np.float32), sharding
            )
            for xs in per_seed
        ]

    def _input_blind(self) -> dict | None:
        """The input-blind baseline of exactly the examples evaluated on each split (a capped
        evaluation sees a prefix of the split's fixed order); None for data without one."""
        baseline = getattr(self.dataset, "input_blind", None)
        if baseline is None:
            return None
        d = self.cfg.data
        out = {}
        for split, cap in (("validation", d.val_max_batches), ("test", d.test_max_batches)):
            examples = None
            if cap is not None and self.spec.model.task == "classification":
                examples = cap * d.eval_batch_size
            out[split] = baseline(split, max_examples=examples)
        return out

    def _write_summary(
        self, *, status: str, reason: str | None, steps: int, wall_s: float, seeds: list
    ) -> dict:
        from elm_jax.budget import cost

        m = self.spec.model
        summary = {
            "status": status,
            "reason": reason,
            "config": to_plain(self.cfg),
            "model": {
                "arch": m.arch,
                "N": m.num_neurons,
                "d_m": m.num_memory,
                "k_c": m.synapses_per_neuron,
                "d_tree": m.num_branches,
                "embed_dim": m.embed_dim if m.task == "lm" else None,
                "task": m.task,
            },
            "cost": dataclasses.asdict(cost(m)),
            "data": self.dataset.info,
            "steps": int(steps),
            "wall_s": float(wall_s),
            "seeds": seeds,
            "metric_name": metrics_lib.metric_name(m.task),
            "provenance": provenance.collect(),  # versions, git commit, backend, device
            "input_blind": self._input_blind(),
        }
        summary = _jsonable(summary)
        if self.is_writer:
            metrics_lib.write_json_atomic(self._path(SUMMARY_FILE), summary)
        return summary
