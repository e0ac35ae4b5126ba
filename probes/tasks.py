"""Short CPU runs of the neuron paper's single-neuron recipes, one JSON line per task.

Each recipe (elm_jax/configs/neuron_*.py, chrono_lstm.py) runs its `short_cpu` variant on its
embedded or default data with the project's trainer, and prints

    {"task", "config", "status", "dataset", "steps", "metric_name", "metric", "loss",
     "input_blind_loss", "input_blind_metric", "wall_s", "steps_per_10_min",
     "train_steps_per_10_min"}

with the final parameters' validation figures (a capped evaluation: `input_blind_*` is the
baseline of exactly the examples evaluated) and `steps_per_10_min` extrapolated from the run's
own wall time (compilation and evaluation included, so an underestimate) and
`train_steps_per_10_min` from the last logged interval's training speed (neither included).
A recipe whose data or task is not available (its config check fails, or its data cannot be
loaded) prints `"status": "unavailable"` with the reason; nothing is run for it.

    python probes/tasks.py                               # every recipe (make bench-tasks)
    python probes/tasks.py --tasks scifar,listops --steps 100
    python probes/tasks.py --full --steps 30             # the recipes themselves: time per step

`--full` trains the recipe as configured (not its short version) on the short version's data
and evaluates one batch, to time the recipe's own steps (`train_steps_per_10_min`).

Expected run time: a few minutes per available task on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from elm_jax.config_check import check_config
from elm_jax.configs import (
    chrono_lstm,
    neuron_listops,
    neuron_neuronio,
    neuron_pathfinder,
    neuron_pathfinder_x,
    neuron_scifar,
    neuron_shd,
    neuron_shd_adding,
)
from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.runtime import enable_compilation_cache
from elm_jax.train.loop import train_and_evaluate

RECIPES = {
    "neuronio": (neuron_neuronio, "short_cpu"),
    "shd": (neuron_shd, "short_cpu"),
    "shd_adding": (neuron_shd_adding, "short_cpu"),
    "scifar": (neuron_scifar, "short_cpu"),
    "pathfinder": (neuron_pathfinder, "short_cpu"),
    "pathfinder_x": (neuron_pathfinder_x, "short_cpu"),
    "listops": (neuron_listops, "short_cpu"),
    "chrono_lstm_scifar": (chrono_lstm, "scifar,short_cpu"),
}


def run_task(task: str, steps: int | None, workdir: str, full: bool = False) -> dict:
    """Trains one recipe's short CPU version (or, `full`, the recipe itself on that version's
    data with a one-batch evaluation); the JSON row described in the module docstring."""
    module, variant = RECIPES[task]
    if full:
        data_name = module.get_config(variant).data.name
        variant = variant.replace("short_cpu", "").strip(",")
        variant += f",data.name={data_name},data.val_max_batches=1,data.test_max_batches=1"
        variant = variant.strip(",")
    if steps is not None:
        variant += f",num_train_steps={steps},eval_every={steps},checkpoint_every={steps}"
        variant += f",log_every={max(steps // 3, 1)}"
    name = f"{module.__name__.rsplit('.', 1)[1]}.py:{variant}"
    row = {"task": task, "config": name}
    try:
        config = module.get_config(variant)
        check_config(config)
    except ValueError as err:
        return {**row, "status": "unavailable", "reason": str(err)}
    start = time.perf_counter()
    try:
        summary = train_and_evaluate(config, workdir)
    except (DataNotFoundError, DataCorruptError) as err:
        return {**row, "status": "unavailable", "reason": f"{type(err).__name__}: {err}"}
    wall = time.perf_counter() - start
    seed = summary["seeds"][0]
    blind = (summary.get("input_blind") or {}).get("validation") or {}
    return {
        **row,
        "status": summary["status"],
        "dataset": summary["data"].get("source"),
        "steps": summary["steps"],
        "metric_name": summary["metric_name"],
        "metric": seed.get("final_val_metric"),
        "loss": seed.get("final_val_loss"),
        "input_blind_loss": blind.get("loss"),
        "input_blind_metric": blind.get("metric"),
        "val_examples": _evaluated(config, summary),
        "wall_s": round(wall, 1),
        "steps_per_10_min": int(600 * summary["steps"] / wall) if wall > 0 else None,
        "train_steps_per_10_min": _train_rate(workdir),
    }


def _train_rate(workdir: str) -> int | None:
    """600 x the training steps per second of the last logged interval (compilation, which
    falls in the first interval, and evaluation excluded); None when only one was logged."""
    with open(os.path.join(workdir, "metrics.jsonl")) as handle:
        rates = [r["steps_per_s"] for r in map(json.loads, handle) if r.get("split") == "train"]
    return int(600 * rates[-1]) if len(rates) > 1 else None


def _evaluated(config, summary: dict) -> int | None:
    """Validation examples evaluated: the split, or its capped prefix."""
    total = summary["data"].get("eval_examples", {}).get("validation")
    cap = config.data.val_max_batches
    if total is None or cap is None:
        return total
    return min(total, cap * config.data.eval_batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(RECIPES), help="comma-separated recipes")
    parser.add_argument("--steps", type=int, default=None, help="training steps per task")
    parser.add_argument("--full", action="store_true", help="the recipes, not their short versions")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in RECIPES]
    if unknown:
        parser.error(f"--tasks: unknown task {unknown[0]!r}; valid: {', '.join(RECIPES)}")
    if args.full and args.steps is None:
        parser.error("--full needs --steps (the recipes train for tens of thousands of steps)")
    enable_compilation_cache()
    for task in tasks:
        with tempfile.TemporaryDirectory(prefix=f"bench_tasks_{task}_") as workdir:
            print(json.dumps(run_task(task, args.steps, workdir, args.full)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
