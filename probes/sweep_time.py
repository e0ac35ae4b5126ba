"""A sweep's run time on this machine: a few of its trainer calls measured, the rest scaled.

    python probes/sweep_time.py --sweep enwiki_overnight --calls 4 --fraction 0.1

The sweep's trainer calls are its points with their seeds (trained together, vmapped, as the
sweep trains them; a point shared by two slices is one call). ``--calls`` of them, spread over
the sweep's range of FLOPs per step (the cheapest, the dearest and evenly between), run with the
real trainer at ``--fraction`` of their steps, with their evaluation, logging and checkpoint
intervals scaled alike, so a short run evaluates as often as the full one. Each measured run
splits into its steady training rate (seconds per step over the logged intervals after the
first) and the rest (start-up, compilation, data, evaluations, checkpoints). A full call is then
that rest plus all its steps at its rate; a call not measured takes the seconds per step of a
line through the measured calls in FLOPs per step (`--max-flops` keeps the measured calls
below a size; a line carried far beyond the measured range is a rough guess, and the summary
gives both ranges), and the measured calls' median rest. Prints
one JSON line per measured call and a summary line with the sweep's estimate in hours: an
estimate, scaled from a part, on this machine only.

A sequential sweep's placed budgets are not known before it runs: only its static points
(`get_sweep`) are counted, and the summary says so.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from elm_jax.train.loop import train_and_evaluate
from sweeps import run
from sweeps.points import apply_point, make_trials


def _calls(loaded) -> list[tuple]:
    """(point, seeds) of every trainer call of the sweep's static points."""
    cfg = loaded.config
    trials = make_trials(loaded.points, list(cfg.seeds), cfg.train, cfg.task)
    calls: dict[str, tuple] = {}
    for t in trials:
        point, seeds = calls.get(t.group_key, (t.point, set()))
        seeds.add(t.seed)
        calls[t.group_key] = (point, seeds)
    return [(p, tuple(sorted(s))) for p, s in calls.values()]


def _spread(order: list[int], count: int) -> list[int]:
    if count >= len(order):
        return order
    if count == 1:
        return [order[len(order) // 2]]
    step = (len(order) - 1) / (count - 1)
    return sorted({order[round(i * step)] for i in range(count)})


def _measure(config, fraction: float) -> dict:
    steps = int(config.num_train_steps)
    short = max(1, round(steps * fraction))
    with config.unlocked():
        config.num_train_steps = short
        for name in ("eval_every", "log_every", "checkpoint_every"):
            if name in config:
                config[name] = max(1, round(int(config[name]) * fraction))
        if "warmup_steps" in config.optim:
            config.optim.warmup_steps = min(int(config.optim.warmup_steps), short)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as workdir:
        train_and_evaluate(config, workdir)
        with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
    wall = time.time() - t0
    train = [r for r in records if r["split"] == "train" and r.get("steps_per_s")]
    rates = [r["steps_per_s"] for r in train[1:]] or [r["steps_per_s"] for r in train]
    s_per_step = 1.0 / float(np.median(rates))
    return {
        "steps_full": steps,
        "steps_run": short,
        "wall_s": round(wall, 1),
        "s_per_step": s_per_step,
        "rest_s": max(0.0, wall - short * s_per_step),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", required=True, help="a sweep name or config file, with :variant")
    p.add_argument("--calls", type=int, default=4, help="trainer calls to run (>= 2)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of each call's steps run")
    p.add_argument(
        "--max-flops", type=float, default=None,
        help="measure only calls up to this many FLOPs per step (the dearer ones are scaled)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.calls < 2 or not 0 < args.fraction <= 1:
        p.error(
            f"--calls {args.calls} --fraction {args.fraction}: need calls >= 2, 0 < fraction <= 1"
        )
    loaded = run.load_sweep(args.sweep)
    cfg = loaded.config
    calls = _calls(loaded)
    flops = np.array([float(p.flops_per_step) for p, _ in calls])
    order = [int(i) for i in np.argsort(flops, kind="stable")]
    if args.max_flops is not None:
        order = [i for i in order if flops[i] <= args.max_flops]
        if len(order) < 2:
            p.error(f"--max-flops {args.max_flops:g}: fewer than 2 calls of the sweep are below it")
    chosen = _spread(order, args.calls)
    measured = {}
    for i in chosen:
        point, seeds = calls[i]
        got = _measure(apply_point(cfg.train, point, seeds), args.fraction)
        measured[i] = got
        print(json.dumps({"point": point.describe(), "seeds": len(seeds),
                          "flops_per_step": flops[i], **got}), flush=True)  # fmt: skip
    x = np.array([flops[i] for i in measured])
    y = np.array([m["s_per_step"] for m in measured.values()])
    slope, intercept = np.polyfit(x, y, 1) if len(set(x)) > 1 else (0.0, float(y.mean()))
    rest = float(np.median([m["rest_s"] for m in measured.values()]))
    total = 0.0
    for i, (point, seeds) in enumerate(calls):
        steps = int(apply_point(cfg.train, point, seeds).num_train_steps)
        if i in measured:
            total += measured[i]["rest_s"] + steps * measured[i]["s_per_step"]
        else:
            total += rest + steps * max(float(slope * flops[i] + intercept), float(y.min()))
    print(json.dumps({
        "sweep": cfg.name, "calls": len(calls), "measured_calls": len(measured),
        "fraction": args.fraction, "measured_part_s": round(sum(m["wall_s"] for m in measured.values()), 1),
        "estimate_h": round(total / 3600, 2), "label": "estimate: a part measured, scaled",
        "flops_measured": [float(x.min()), float(x.max())], "flops_sweep": [float(flops.min()), float(flops.max())],
        "static_points_only": bool(cfg.get("sequential", None)),
    }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
