"""Wall time of the docs/science.md §8 claim tests on a planted sweep table. Prints JSON lines.

    python bench/analysis_claims.py [--n-boot 200] [--budgets 7] [--seeds 3] [--repeats 1]

The table is `analysis.synthetic.trials.tradeoff_trials` (budget, axis and random slices; 10 d_m
values per budget); the time covers seed tables, the seeds-only bootstrap, every parabola and
the scaling-law refits (the largest part).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from analysis.claims.decide import decide_claims
from analysis.load import validate
from analysis.synthetic.trials import tradeoff_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--budgets", type=int, default=7, help="budgets from 1e3 to 1e6")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    trials = validate(
        tradeoff_trials(
            budgets=tuple(np.geomspace(1e3, 1e6, args.budgets)),
            seeds=tuple(range(args.seeds)),
            n_random=20,
        )
    )
    for r in range(args.repeats):
        t0 = time.perf_counter()
        [block] = decide_claims(trials, n_boot=args.n_boot, seed=r)
        wall = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "bench": "decide_claims",
                    "trials": len(trials),
                    "budgets": args.budgets,
                    "seeds": args.seeds,
                    "n_boot": args.n_boot,
                    "wall_s": round(wall, 3),
                    "decisions": {n: c.decision for n, c in block.claims.items()},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
