"""The run loop `train_and_evaluate` over the jitted steps: config checks, resume, logs, summary.

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

from elm_jax import data, files, parallel, provenance
from elm_jax import metrics as metrics_lib
from elm_jax.budget.cost import cost
from elm_jax.checkpoint import Checkpointer
from elm_jax.config_check import check_config, data_options
from elm_jax.configs.common import to_plain
from elm_jax.configs.merge import config_diff
from elm_jax.data.enwik8.stream import stream_train_batch
from elm_jax.models import elm_kernel_ran
from elm_jax.optim import unit_schedule
from elm_jax.train.steps import StepSpec, TrainState, evaluate, init_state, train_step, update_best
from elm_jax.writers import MetricWriters, seed_hparams

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, PROGRESS_FILE = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "progress.json",
)
CHECKPOINT_DIR = "checkpoints"


def _load_data(cfg: ml_collections.ConfigDict) -> Any:
    return data.load(cfg.data.name, data_dir=cfg.data.data_dir, **data_options(cfg.data))


@dataclasses.dataclass(frozen=True)
class SeedResult:
    """One seed's outcome: a row of the summary's "seeds" (docs/interfaces.md).

    `val_*` / `test_*` are the best checkpoint's (chosen on validation; None when no finite
    validation loss was seen), `final_*` the last parameters'.
    """

    seed: int
    learning_rate: float
    wiring_seed: int
    status: str  # "ok" | "diverged"
    reason: str | None
    diverged_step: int | None
    best_step: int | None
    val_loss: float | None
    val_metric: float | None
    test_loss: float | None
    test_metric: float | None
    final_val_loss: float | None
    final_val_metric: float | None
    final_test_loss: float | None
    final_test_metric: float | None


@dataclasses.dataclass
class _Clock:
    """Wall time of the run, including the time before a resume (`prior_wall`)."""

    t_start: float
    prior_wall: float = 0.0

    def elapsed(self) -> float:
        return self.prior_wall + time.time() - self.t_start


@dataclasses.dataclass
class _Logs:
    """What the loop writes besides checkpoints: JSON lines, the progress bar, throughput."""

    jsonl: metrics_lib.JsonLinesWriter
    progress: metrics_lib.Progress
    timer: metrics_lib.Timer
    metric: str  # the task kind's metric_name: "accuracy" | "bpc" | "auc"
    input_blind: dict | None
    steps_since_log: int = 0


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
    _writers: MetricWriters | None = None  # while a loop runs

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
            diff = config_diff(
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
            model_cfg.task_kind.streams and callable(getattr(ds, "split", None))
        ):
            raise ValueError(
                "config.data.carry_train_state=True needs a language-modelling dataset with a "
                f"split(name) -> bytes method (got task {model_cfg.task!r}, "
                f"{type(ds).__name__}); set it to False"
            )
        is_writer = jax.process_index() == 0
        if is_writer:
            os.makedirs(workdir, exist_ok=True)
            files.write_json_atomic(config_path, plain)
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
        clock = _Clock(time.time())
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
                        clock.prior_wall = float(json.load(f).get("wall_s", 0.0))
            summary = self._loop(state, ckpt, clock, step_hook)
        except Exception as err:
            if self.is_writer:
                self._write_summary(
                    status="failed",
                    reason=f"{type(err).__name__}: {err}",
                    steps=0,
                    wall_s=clock.elapsed(),
                    seeds=[],
                )
            raise
        finally:
            ckpt.close()
            if self._writers is not None:
                self._writers.close(success=False)
                self._writers = None
        return summary

    def _loop(
        self,
        state: TrainState,
        ckpt: Checkpointer,
        clock: _Clock,
        step_hook: Callable[[int], None] | None,
    ) -> dict:
        """Trains to `num_train_steps`, evaluates the best and final parameters, writes the
        summary."""
        step = int(parallel.fetch(state.step)[0])
        logs = self._open_logs(step)
        state, step, val = self._train(state, step, ckpt, logs, clock, step_hook)
        logs.progress.close()
        ckpt.wait()
        results = self._seed_results(state, val)
        if self._writers is not None:
            best_test = {k: [getattr(r, f"test_{k}") for r in results] for k in ("loss", "metric")}
            self._writers.write_eval(
                step,
                "test",
                {"loss": best_test["loss"], logs.metric: best_test["metric"]},
                logs.input_blind,
            )
            self._writers.close(success=True)
            self._writers = None
        diverged = [r.seed for r in results if r.status == "diverged"]
        return self._write_summary(
            status="diverged" if diverged else "ok",
            reason=f"seeds {diverged} diverged" if diverged else None,
            steps=step,
            wall_s=clock.elapsed(),
            seeds=results,
        )

    def _open_logs(self, step: int) -> _Logs:
        """The JSON lines (cut back to `step` on resume), progress bar, timer and writers."""
        jsonl = metrics_lib.JsonLinesWriter(self._path(METRICS_FILE))
        if self.is_writer:
            jsonl.truncate_after(step)
        metric = self.spec.model.task_kind.metric_name
        total = self.cfg.num_train_steps
        progress = metrics_lib.Progress(total, step, enabled=None if self.is_writer else False)
        self._writers = self._open_writers(step, metric)
        # The baseline of exactly the examples evaluated (the summary's), else the data's own.
        input_blind = self._input_blind() or (self.dataset.info or {}).get("input_blind")
        return _Logs(jsonl, progress, metrics_lib.Timer(), metric, input_blind)

    def _all_diverged(self, state: TrainState) -> bool:
        return bool(np.all(parallel.fetch(state.diverged_step) >= 0))

    def _train(
        self,
        state: TrainState,
        step: int,
        ckpt: Checkpointer,
        logs: _Logs,
        clock: _Clock,
        step_hook: Callable[[int], None] | None,
    ) -> tuple[TrainState, int, dict | None]:
        """The update loop: train, log, validate, checkpoint. Returns the state, the step reached
        and the last validation (at the final parameters; None when no step was left)."""
        cfg, total = self.cfg, self.cfg.num_train_steps
        train_sharding = parallel.train_batch_sharding(self.mesh)
        stopped = self._all_diverged(state)
        val = None
        while step < total and not stopped:
            per_seed = [self._train_batch(step, s) for s in cfg.seeds]
            host = {k: np.stack([b[k] for b in per_seed]) for k in ("inputs", "labels")}
            state = train_step(state, parallel.put_global(host, train_sharding), spec=self.spec)
            step += 1
            logs.steps_since_log += 1
            # Bounded queue of dispatched steps: all-reduce loops on fake CPU devices can
            # deadlock if too many are in flight; a tiny device_get every few steps prevents it.
            if step == total or any(
                step % every == 0
                for every in (cfg.parallel.sync_every, cfg.eval_every, cfg.checkpoint_every)
            ):
                stopped = self._all_diverged(state)  # never checkpoint a run all diverged
            if step % cfg.log_every == 0 or step == total or stopped:
                state = self._log_train(state, step, logs, clock)
            if step % cfg.eval_every == 0 or step == total or stopped:
                state, val = self._validate(state, step, logs, clock)
            if (step % cfg.checkpoint_every == 0 or step == total) and not stopped:
                self._checkpoint(state, step, ckpt, logs, clock)
            if step_hook is not None:
                step_hook(step)
        return state, step, val

    def _log_train(self, state: TrainState, step: int, logs: _Logs, clock: _Clock) -> TrainState:
        """Writes the training metrics since the last log and resets their sums."""
        acc = parallel.fetch(state.metrics)
        # x * 0 keeps each array's sharding, so train_step is not recompiled.
        state = state.replace(metrics=jax.tree.map(lambda x: x * 0, state.metrics))
        dt = logs.timer.lap()
        done = logs.steps_since_log
        rec = {"step": step, "split": "train", "seconds": round(clock.elapsed(), 3)}
        rec.update(self.spec.model.task_kind.summarize(acc))
        rec["steps_per_s"] = done / dt
        rec["examples_per_s"] = done * self.cfg.data.batch_size * len(self.cfg.seeds) / dt
        logs.steps_since_log = 0
        if self.is_writer:
            logs.jsonl.write(rec)
            if self._writers is not None:
                self._writers.write_train(step, rec, self._current_lrs(step))
        logs.progress.update(step, {"loss": rec["loss"][0]})
        return state

    def _validate(
        self, state: TrainState, step: int, logs: _Logs, clock: _Clock
    ) -> tuple[TrainState, dict]:
        """Evaluates the current parameters on validation and keeps each seed's best."""
        val = self._evaluate(state, "params", "validation", self.cfg.data.val_max_batches)
        state = update_best(state, *self._as_state_arrays(val["loss"], val[logs.metric]))
        logs.timer.lap()  # throughput counts training only
        if self.is_writer:
            record = {"step": step, "split": "validation", "seconds": round(clock.elapsed(), 3)}
            logs.jsonl.write({**record, **val})
            if self._writers is not None:
                self._writers.write_eval(step, "validation", val, logs.input_blind)
        return state, val

    def _checkpoint(
        self, state: TrainState, step: int, ckpt: Checkpointer, logs: _Logs, clock: _Clock
    ) -> None:
        ckpt.save(step, state)
        if self.is_writer:
            files.write_json_atomic(
                self._path(PROGRESS_FILE), {"step": step, "wall_s": clock.elapsed()}
            )
        if self._writers is not None:  # curves up to a checkpoint survive any kill
            self._writers.flush()
        logs.timer.lap()

    def _seed_results(self, state: TrainState, val: dict | None) -> list[SeedResult]:
        """Each seed's best-checkpoint and final-parameter figures.

        docs/science.md §8 decides claims on the final parameters (the best checkpoint's figures
        carry a winner's curse). A diverged seed keeps its last finite parameters, so its final
        figures are those of the step before it diverged.
        """
        d, metric = self.cfg.data, self.spec.model.task_kind.metric_name
        test = self._evaluate(state, "best_params", "test", d.test_max_batches)
        if val is None:  # resumed after the last step: nothing was evaluated in the loop
            val = self._evaluate(state, "params", "validation", d.val_max_batches)
        final = {"val": val, "test": self._evaluate(state, "params", "test", d.test_max_batches)}
        host = parallel.fetch(
            {
                k: getattr(state, k)
                for k in ("best_val", "best_metric", "best_step", "diverged_step")
            }
        )
        finite = files.finite_or_none
        results = []
        for i, seed in enumerate(self.cfg.seeds):
            div = int(host["diverged_step"][i])
            has_best = int(host["best_step"][i]) >= 0
            reason = f"non-finite loss or gradient at update {div}; parameters kept from step {div}"
            results.append(
                SeedResult(
                    seed=seed,
                    learning_rate=self.learning_rates[i],
                    wiring_seed=self.wiring_seeds[i]
                    if self.cfg.wiring_follows_seed
                    else self.spec.model.wiring_seed,
                    status="diverged" if div >= 0 else "ok",
                    reason=None if div < 0 else reason,
                    diverged_step=div if div >= 0 else None,
                    best_step=int(host["best_step"][i]) if has_best else None,
                    val_loss=finite(host["best_val"][i]) if has_best else None,
                    val_metric=finite(host["best_metric"][i]) if has_best else None,
                    test_loss=test["loss"][i] if has_best else None,
                    test_metric=test[metric][i] if has_best else None,
                    final_val_loss=finite(final["val"]["loss"][i]),
                    final_val_metric=finite(final["val"][metric][i]),
                    final_test_loss=finite(final["test"]["loss"][i]),
                    final_test_metric=finite(final["test"][metric][i]),
                )
            )
        return results

    def _open_writers(self, step: int, metric: str) -> MetricWriters | None:
        """TensorBoard (and W&B) runs, one per seed, on the writing process; None when off."""
        log = self.cfg.logging
        if not self.is_writer or not (log.tensorboard or log.wandb):
            return None
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
            if cap is not None and not self.spec.model.task_kind.streams:
                examples = cap * d.eval_batch_size
            out[split] = baseline(split, max_examples=examples)
        return out

    def _write_summary(
        self,
        *,
        status: str,
        reason: str | None,
        steps: int,
        wall_s: float,
        seeds: list[SeedResult],
    ) -> dict:
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
                "embed_dim": m.embed_dim if m.task_kind.token_inputs else None,
                "task": m.task,
                # The ELM recurrence's implementation this process ran ("cpu_fused",
                # "gpu_pallas" or "xla").
                "kernel": elm_kernel_ran(m),
            },
            "cost": dataclasses.asdict(cost(m)),
            "data": self.dataset.info,
            "steps": int(steps),
            "wall_s": float(wall_s),
            "seeds": [dataclasses.asdict(r) for r in seeds],
            "metric_name": m.task_kind.metric_name,
            "provenance": provenance.collect(),  # versions, git commit, backend, device
            "input_blind": self._input_blind(),
        }
        summary = files.jsonable(summary)
        if self.is_writer:
            files.write_json_atomic(self._path(SUMMARY_FILE), summary)
        return summary


def train_and_evaluate(
    config: Any,
    workdir: str,
    *,
    dataset: Any | None = None,
    devices: list[jax.Device] | None = None,
    step_hook: Callable[[int], None] | None = None,
) -> dict:
    """Trains `config.seeds` of one architecture together and writes `workdir/summary.json`.

    `dataset` replaces `elm_jax.data.load(config.data...)` (tests, sweeps that hold data in
    memory); `devices` restricts the mesh; `step_hook(step)` runs after each update (tests use it
    to interrupt a run). Bad configs raise ValueError before any work; the summary follows
    docs/interfaces.md, with status "diverged" when any seed diverged.
    """
    run = Run.prepare(config, workdir, dataset=dataset, devices=devices)
    return run.execute(step_hook=step_hook)


__all__ = ["Run", "SeedResult", "train_and_evaluate"]
