"""Wall time of a small real sweep with `--workers 1` (in-process) and `--workers K` (pool).

    python bench/sweep_workers.py [--workers 2] [--steps 40] [--budgets 200,400,800]

Runs the `tiny` sweep (SHD-Adding, 50 ms bins, 2 seeds) on random SHD-format files written to a
temporary folder, first untimed with each setting to warm the persistent compilation cache,
then timed with one worker and with K workers into fresh directories. Prints one JSON line per run and one with the
speedup. The trainer and data are real; only the spikes are random.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_random_shd(directory: str, num_train: int = 64, num_test: int = 24) -> None:
    """Small SHD-format files: random spikes in [0, 1) s, labels 0..19."""
    from elm_jax.data.shd.files import write_shd

    rng = np.random.default_rng(0)
    for name, count in (("shd_train", num_train), ("shd_test", num_test)):
        labels = rng.integers(0, 20, size=count)
        sizes = rng.integers(50, 150, size=count)
        units = [
            ((lab * 35 + rng.integers(0, 60, size=n)) % 700)
            for lab, n in zip(labels, sizes, strict=True)
        ]
        times = [np.sort(rng.uniform(0, 0.99, size=n)) for n in sizes]
        write_shd(os.path.join(directory, f"{name}.h5"), times, units, labels)


def run_sweep(spec: str, directory: str, workers: int) -> float:
    cmd = [sys.executable, "-m", "sweeps.run", "--sweep", spec, "--dir", directory, "--quiet"]
    cmd += ["--workers", str(workers)]
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--budgets", default="200,400,800")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_random_shd(tmp)
        spec = (
            f"tiny:data=shd_adding,data_dir={tmp},steps={args.steps},"
            f"budgets=[{args.budgets}],checkpoint_every={args.steps}"
        )
        # Pool workers run XLA with other flags (one single-threaded device), which are part
        # of the compilation cache key: warm the cache for both settings before timing.
        run_sweep(spec, os.path.join(tmp, "warmup1"), 1)
        run_sweep(spec, os.path.join(tmp, "warmup2"), args.workers)
        walls = {}
        for workers in (1, args.workers):
            walls[workers] = run_sweep(spec, os.path.join(tmp, f"w{workers}"), workers)
            groups = len(os.listdir(os.path.join(tmp, f"w{workers}", "groups"))) // 2
            print(json.dumps({"bench": "sweep_workers", "workers": workers, "groups": groups,
                              "steps": args.steps, "wall_s": round(walls[workers], 2),
                              "cpus": os.cpu_count()}), flush=True)  # fmt: skip
        speedup = walls[1] / walls[args.workers]
        print(json.dumps({"bench": "sweep_workers", "speedup": round(speedup, 3),
                          "workers": args.workers}))  # fmt: skip


if __name__ == "__main__":
    main()
