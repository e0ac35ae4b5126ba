"""Trials per hour of a sweep's shapes, and the share of that time spent compiling.

For each point of the sweep (default: `sweeps/configs/default.py`), with its batch size, its
sequence length (2 s of SHD-Adding at the sweep's bin width) and its number of seeds S:

* ``vmapped``: one program trains the S seeds together (what one trainer call does): one
  compile, then ``steps`` S-seed steps;
* ``sequential``: the S seeds one after another in one process: one compile (the shapes are
  equal, so the program is reused), then S x ``steps`` one-seed steps;

each timed on fixed synthetic batches with the real `elm_jax.train.steps.train_step` (data loading,
evaluation and checkpoints excluded). Compilation is measured cold (an empty persistent cache)
and again after `jax.clear_caches()` with the persistent cache filled (what a second process,
e.g. a ``--workers`` pool member or a rerun, pays). Prints one JSON line per point and mode and a
summary line: trials per hour of the whole sweep for each mode, with a cold and a warm cache,
and the compile share.

    python bench/sweep_throughput.py                          # the default sweep, all points
    python bench/sweep_throughput.py --max-points 3 --timed-steps 5
    python bench/sweep_throughput.py --sweep sweeps/configs/default.py:steps=3000

Run time: about (compile + 10 steps) per point and mode, 20-60 s per point on 2 CPU cores.

Measured (shared 2-core CPU, load ~8; `--max-points 2 --timed-steps 3` on the default sweep's
shapes: batch 32, T = 40, 3 seeds, 1,500 steps): vmapped 119 trials/h with a cold cache (17 %
of the time compiling), 139 warm; sequential 96 and 105. The persistent cache took the compile
from 19.2 to 2.8 s and from 11.6 to 2.2 s (what every further process pays for the same shapes).
With `bench/sweep_workers.py` two pool workers on the same 2 cores were 0.87x one worker
(docs/sweeps.md). The rule these give:

* always train a point's seeds together (vmapped, one trainer call): one compile, and the
  S-seed step costs less than S one-seed steps;
* keep the persistent compilation cache on (the default): reruns, resumed sweeps and pool
  workers then pay about a sixth of the cold compile;
* ``--workers 1`` on a CPU machine (one process already uses every core through XLA);
  ``--workers K`` with K accelerators, one per worker;
* the compile share grows as steps shrink: below a few hundred steps per trial, compiling is a
  large part of a cold sweep, and sharing shapes across points (same N, d_m, k_c) pays most.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweep", default="sweeps/configs/default.py", help="config path[:arg]")
    p.add_argument("--max-points", type=int, default=0, help="0: every point of the sweep")
    p.add_argument("--timed-steps", type=int, default=5, help="steps timed per mode (median)")
    p.add_argument("--modes", default="vmapped,sequential")
    args = p.parse_args(argv)
    unknown = set(args.modes.split(",")) - {"vmapped", "sequential"}
    if unknown:
        p.error(f"--modes: unknown {sorted(unknown)}; valid: vmapped, sequential")
    return args


def load_sweep(spec: str):
    """(sweep config, its points) from ``path[:arg]``."""
    import importlib.util

    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("sweep_config", os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    return config, module.get_sweep(config)


def step_spec(config, point):
    from elm_jax.configs.merge import resolve_config
    from elm_jax.models import ModelConfig
    from elm_jax.optim import OptimConfig
    from elm_jax.train.steps import StepSpec

    train = resolve_config(config.train)
    model = {**train.model.to_dict(), **dict(point.model)}
    optim = OptimConfig.from_dict(train.optim.to_dict(), train.num_train_steps)
    return StepSpec.create(ModelConfig.from_dict(model), optim), train


def time_mode(spec, seeds: int, batch_size: int, seq_len: int, timed_steps: int) -> dict:
    """Cold compile, warm (persistent cache) compile and median step time of an S-seed step."""
    import jax

    from elm_jax import parallel
    from elm_jax.train.steps import init_state, train_step

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from seed_parallel import fixed_batch

    device = jax.devices()[0]
    mesh = parallel.make_mesh(seeds, [device])
    batch = parallel.put_global(
        fixed_batch(spec, seeds, batch_size, seq_len), parallel.train_batch_sharding(mesh)
    )

    def fresh_state():
        return init_state(spec, list(range(seeds)), [spec.optim.learning_rate] * seeds, mesh)

    def first_call() -> float:
        state = fresh_state()
        jax.block_until_ready(state)
        start = time.perf_counter()
        jax.block_until_ready(train_step(state, batch, spec=spec))
        return time.perf_counter() - start

    cold = first_call()
    state = fresh_state()
    times = []
    for _ in range(timed_steps):
        start = time.perf_counter()
        state = train_step(state, batch, spec=spec)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
    step_s = sorted(times)[len(times) // 2]
    jax.clear_caches()
    warm = first_call()
    return {
        "compile_cold_s": round(max(cold - step_s, 0.0), 3),
        "compile_warm_s": round(max(warm - step_s, 0.0), 3),
        "step_s": round(step_s, 5),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax

    cache = tempfile.mkdtemp(prefix="jax_cache_")  # empty: the first compile of each is cold
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

    config, points = load_sweep(args.sweep)
    points = points[: args.max_points] if args.max_points else points
    seeds = len(config.seeds)
    totals = {m: {"cold": 0.0, "warm": 0.0, "compile_cold": 0.0} for m in args.modes.split(",")}
    for point in points:
        spec, train = step_spec(config, point)
        batch_size = int(train.data.batch_size)
        seq_len = int(round(2000.0 / float(train.data.bin_ms)))
        steps = int(train.num_train_steps)
        for mode in totals:
            s = seeds if mode == "vmapped" else 1
            row = time_mode(spec, s, batch_size, seq_len, args.timed_steps)
            train_s = steps * row["step_s"] * (1 if mode == "vmapped" else seeds)
            totals[mode]["cold"] += row["compile_cold_s"] + train_s
            totals[mode]["warm"] += row["compile_warm_s"] + train_s
            totals[mode]["compile_cold"] += row["compile_cold_s"]
            print(json.dumps({
                "bench": "sweep_throughput", "mode": mode, "arch": point.arch, "N": point.N,
                "d_m": point.d_m, "k_c": point.k_c, "seeds": seeds, "batch": batch_size,
                "T": seq_len, "steps": steps, **row, "trial_group_s": round(
                    row["compile_cold_s"] + train_s, 2),
                "compile_share": round(row["compile_cold_s"] / (row["compile_cold_s"] + train_s), 3),
            }), flush=True)  # fmt: skip
    trials = len(points) * seeds
    for mode, t in totals.items():
        print(json.dumps({
            "bench": "sweep_throughput", "summary": mode, "points": len(points), "trials": trials,
            "steps": int(config.steps) if "steps" in config else None,
            "trials_per_hour_cold_cache": round(3600 * trials / t["cold"], 1),
            "trials_per_hour_warm_cache": round(3600 * trials / t["warm"], 1),
            "compile_share_cold_cache": round(t["compile_cold"] / t["cold"], 3),
            "device": jax.devices()[0].device_kind, "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
