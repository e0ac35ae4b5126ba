"""Cost of a sweep's pre-flight config check (`sweeps.engine.validate_sweep`). Prints JSON lines.

    python bench/sweep_validation.py [--sweeps default shd_adding] [--repeats 3]

One line per sweep: its points, the best-of-`repeats` wall time of checking every trial's
config, the time per point, and whether the check started a JAX backend (it must not).
"""

from __future__ import annotations

import argparse
import json
import logging
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", nargs="+", default=["tiny", "default", "shd_adding"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("sweeps").setLevel(logging.ERROR)  # baseline-budget notices

    import jax

    from sweeps import engine, run

    for spec in args.sweeps:
        loaded = run.load_sweep(spec)
        seeds = list(loaded.config.seeds)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            engine.validate_sweep(loaded.config.train, loaded.points, seeds)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(
            json.dumps(
                {
                    "bench": "sweep_validation",
                    "sweep": spec,
                    "points": len(loaded.points),
                    "trials": len(loaded.points) * len(seeds),
                    "seconds": round(best, 4),
                    "ms_per_point": round(1000 * best / len(loaded.points), 2),
                    "backend_started": bool(jax._src.xla_bridge._backends),  # noqa: SLF001
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
