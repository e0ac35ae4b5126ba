"""Learning curves within a wall-clock budget: SHD-Adding (embedded default) and enwiki-sample.

Calibrates the seconds per training step of the chosen config (compilation excluded), sets
`num_train_steps` so that training fits `--minutes`, trains with `train_and_evaluate`, and prints
JSON lines: one per validation evaluation (the curve) and a final one with the summary, beside
the input-blind baseline of each split (the loss and metric of predicting the label prior).

    python probes/train_curves.py --task shd_adding --minutes 15 --workdir runs/curve_shd
    python probes/train_curves.py --task enwik8 --minutes 15 --workdir runs/curve_enwik8

Expected run time: `--minutes` plus data loading, compilation and the final test evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

from elm_jax import data, parallel
from elm_jax.config_check import data_options
from elm_jax.configs import enwik8, shd_adding
from elm_jax.runtime import enable_compilation_cache
from elm_jax.train.loop import train_and_evaluate


def _shd_adding(variant: str | None):
    c = shd_adding.get_config(variant or "N=16,d_m=8,k_c=16")
    c.data.name = "shd_adding_default"
    c.data.batch_size = 32
    return c


def _enwik8(variant: str | None):
    c = enwik8.get_config(variant)
    c.data.name = "enwiki_sample"
    return c


CONFIGS = {"shd_adding": _shd_adding, "enwik8": _enwik8}  # --task -> its config


def seconds_per_step(config, dataset) -> float:
    """Median wall time of a training step of `config` (after compilation)."""
    from elm_jax.train.loop import Run

    run = Run.prepare(config, tempfile.mkdtemp(prefix="calib"), dataset=dataset)
    from elm_jax.train.steps import init_state, train_step

    seeds = list(config.seeds)
    state = init_state(run.spec, seeds, run.learning_rates, run.mesh, config.data.batch_size)
    times = []
    for step in range(12):
        t0 = time.perf_counter()
        host = [run._train_batch(step, s) for s in seeds]
        batch = {k: np.stack([b[k] for b in host]) for k in ("inputs", "labels")}
        state = train_step(
            state,
            parallel.put_global(batch, parallel.train_batch_sharding(run.mesh)),
            spec=run.spec,
        )
        jax.block_until_ready(state.step)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[2:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=tuple(CONFIGS), required=True)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--evals", type=int, default=12, help="validation points on the curve")
    args = ap.parse_args()
    enable_compilation_cache()

    config = CONFIGS[args.task](args.variant)
    t0 = time.time()
    dataset = data.load(
        config.data.name, data_dir=config.data.data_dir, **data_options(config.data)
    )
    load_s = time.time() - t0
    sps = seconds_per_step(config, dataset)
    # Leave room for the periodic validations and checkpoints (about a tenth of the budget).
    steps = max(int(0.9 * args.minutes * 60 / sps), 10)
    config.num_train_steps = steps
    config.eval_every = max(steps // args.evals, 1)
    config.checkpoint_every = config.eval_every
    config.log_every = max(steps // 100, 1)
    print(
        json.dumps({"task": args.task, "load_s": load_s, "seconds_per_step": sps, "steps": steps}),
        flush=True,
    )
    t0 = time.time()
    summary = train_and_evaluate(config, args.workdir, dataset=dataset)
    metric = summary["metric_name"]
    with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec["split"] == "validation":
                print(
                    json.dumps(
                        {
                            "step": rec["step"],
                            "seconds": rec["seconds"],
                            "val_loss": rec["loss"][0],
                            f"val_{metric}": rec[metric][0],
                        }
                    )
                )
    seed = summary["seeds"][0]
    print(json.dumps({
        "task": args.task, "data": summary["data"]["source"], "P_core": summary["cost"]["P_core"],
        "P_total": summary["cost"]["P_total"], "steps": summary["steps"], "wall_s": time.time() - t0,
        "status": summary["status"], "best_step": seed["best_step"], f"val_{metric}": seed["val_metric"],
        f"test_{metric}": seed["test_metric"], "val_loss": seed["val_loss"], "test_loss": seed["test_loss"],
        "input_blind": summary["input_blind"],
    }))  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
