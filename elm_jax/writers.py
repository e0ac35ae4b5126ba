"""Live curves: TensorBoard event files (one run per seed) and, optionally, W&B offline runs.

Values reach the writers at log time only, from records the training loop has already fetched
for metrics.jsonl, so logging adds no host sync. Layout in a trainer workdir:

    metrics.jsonl
    tensorboard/seed_<seed>/events.out.tfevents.*    one TensorBoard run per seed (= per trial)
    wandb/                                           W&B offline runs (config.logging.wandb)

Tags per run: `train/{loss,<metric>,learning_rate,steps_per_s}`, `validation/{loss,<metric>}`,
`validation/input_blind_{loss,<metric>}` (the input-blind baseline, when the data gives one),
`test/{loss,<metric>}` and `test/input_blind_*` at the last step. Each run carries its
hyperparameters (N, d_m, k_e, k_c, P_core, P_total, seed, lr, arch) through the hparams plugin,
so `tensorboard --logdir SWEEP_DIR` lists and compares every trial of a sweep.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
WANDB_MODES = ("", "offline")


def check_wandb_mode(mode: str) -> str:
    """Validates `config.logging.wandb` ("" off, "offline"); checks the extra is installed.

    Raises:
      ValueError: an unknown mode, or "offline" without the `wandb` package (one line).
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"config.logging.wandb={mode!r} is not valid; valid: {WANDB_MODES}")
    if mode:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ValueError(
                f"config.logging.wandb={mode!r} needs the wandb extra: pip install -e '.[wandb]'"
            ) from None
    return mode


def seed_hparams(cost: Any, model: Any, seeds: Sequence[int], lrs: Sequence[float]) -> list[dict]:
    """One hparams dict per seed: the architecture point (`cost`: elm_jax.budget.cost.Cost) + seed, lr."""
    base = {
        "arch": model.arch,
        "N": int(model.num_neurons),
        "d_m": int(model.num_memory or 0),
        "k_e": int(cost.k_e),
        "k_c": int(cost.k_c),
        "P_core": int(cost.P_core),
        "P_total": int(cost.P_total),
    }
    return [{**base, "seed": int(s), "lr": float(lr)} for s, lr in zip(seeds, lrs, strict=True)]


def _per_seed(value: Any, i: int) -> float | None:
    """Seed i's entry of a per-seed list, or a shared scalar; None when missing (the records
    already hold None for non-finite values)."""
    if isinstance(value, (list, tuple)):
        value = value[i] if i < len(value) else None
    return None if value is None else float(value)


class MetricWriters:
    """Writes log-time records to one TensorBoard run per seed (and W&B offline runs).

    `resume_step` (> 0 when the run continues from a checkpoint) purges events written after it
    by the interrupted run, as metrics.jsonl is truncated there.
    """

    def __init__(
        self,
        workdir: str,
        hparams: Sequence[Mapping[str, Any]],
        metric: str,
        *,
        resume_step: int = 0,
        tensorboard: bool = True,
        wandb_mode: str = "",
    ):
        self.metric = metric
        self.seeds = [int(h["seed"]) for h in hparams]
        self._tb: list[Any] = []
        self._wandb: list[Any] = []
        if tensorboard:
            # Only with logging.tensorboard: the common case writes no event files.
            from tensorboardX import SummaryWriter
            from tensorboardX.summary import hparams as hparams_summary

            metric_tags = [f"{s}/{m}" for s in ("validation", "test") for m in ("loss", metric)]
            for h in hparams:
                logdir = os.path.join(workdir, TENSORBOARD_DIR, f"seed_{int(h['seed'])}")
                # Flushed every 30 s (live curves) and at each checkpoint (see Run._loop), so a
                # kill loses only events after the checkpoint, which the resume writes again.
                writer = SummaryWriter(
                    logdir, purge_step=resume_step + 1 if resume_step else None, flush_secs=30
                )
                exp, ssi, _ = hparams_summary(dict(h), dict.fromkeys(metric_tags, 0.0))
                writer.file_writer.add_summary(exp)
                writer.file_writer.add_summary(ssi)
                self._tb.append(writer)
        if wandb_mode:
            check_wandb_mode(wandb_mode)
            import wandb  # the optional extra `wandb`, checked just above

            directory = os.path.join(workdir, WANDB_DIR)
            os.makedirs(directory, exist_ok=True)
            for h in hparams:
                self._wandb.append(
                    wandb.init(
                        mode=wandb_mode,
                        dir=directory,
                        config=dict(h),
                        name=f"{os.path.basename(workdir)}-seed_{int(h['seed'])}",
                        reinit="create_new",
                    )
                )

    def _scalars(self, step: int, values: Sequence[Mapping[str, float | None]]) -> None:
        for i, row in enumerate(values):
            row = {k: v for k, v in row.items() if v is not None}
            if i < len(self._tb):
                for tag, value in row.items():
                    self._tb[i].add_scalar(tag, value, step)
            if i < len(self._wandb):
                self._wandb[i].log(row, step=step)

    def write_train(
        self, step: int, record: Mapping[str, Any], learning_rates: Sequence[float]
    ) -> None:
        """The train record of metrics.jsonl (per-seed loss/metric, shared steps_per_s)."""
        self._scalars(
            step,
            [
                {
                    "train/loss": _per_seed(record.get("loss"), i),
                    f"train/{self.metric}": _per_seed(record.get(self.metric), i),
                    "train/learning_rate": float(learning_rates[i]),
                    "train/steps_per_s": _per_seed(record.get("steps_per_s"), i),
                }
                for i in range(len(self.seeds))
            ],
        )

    def write_eval(
        self,
        step: int,
        split: str,
        record: Mapping[str, Any],
        input_blind: Mapping[str, Any] | None = None,
    ) -> None:
        """Per-seed loss/metric of `split`, with the split's input-blind baseline when known."""
        baseline = (input_blind or {}).get(split) or {}
        rows = []
        for i in range(len(self.seeds)):
            row = {
                f"{split}/loss": _per_seed(record.get("loss"), i),
                f"{split}/{self.metric}": _per_seed(record.get(self.metric), i),
            }
            if baseline:
                row[f"{split}/input_blind_loss"] = _per_seed(baseline.get("loss"), i)
                row[f"{split}/input_blind_{self.metric}"] = _per_seed(baseline.get("metric"), i)
            rows.append(row)
        self._scalars(step, rows)

    def flush(self) -> None:
        """Writes every pending event to disk (the trainer calls it at each checkpoint)."""
        for writer in self._tb:
            writer.flush()

    def close(self, success: bool = True) -> None:
        """Flushes and closes every run (marks the hparams session ended when `success`)."""
        if success and self._tb:
            from tensorboardX.summary import hparams as hparams_summary  # as in __init__

            _, _, end = hparams_summary({}, {})
            for writer in self._tb:
                writer.file_writer.add_summary(end)
        for writer in self._tb:
            writer.close()
        for run in self._wandb:
            run.finish()
        self._tb, self._wandb = [], []
