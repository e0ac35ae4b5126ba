"""How often more seeds would decide the interior-optimum test at given budgets: a parametric
resample of a finished sweep's own points, before spending the compute.

    python probes/seed_power.py sweep_runs/law --budgets 400,950 --seeds 8 --draws 200

For each draw, every ELM point of the named budgets keeps its recorded seeds and gains seeds up
to ``--seeds`` drawn from a normal distribution at the point's seed mean with the budget's
pooled seed spread (final validation loss); the claims are then decided on the whole table as
the report decides them (``analysis.claims.decide_claims``, information model off). Prints one
JSON line per budget: how often its interior test came out supported, not testable or
contradicted. What it assumes: the recorded means are the truth and the seed spread is normal
and equal across a budget's points; it cannot see a point that the extra seeds would move.
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np
import pandas as pd

from analysis.claims.decide import decide_claims
from analysis.load import load_sweeps


def with_drawn_seeds(
    trials: pd.DataFrame, budgets: list[float], seeds: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``trials`` plus drawn rows up to ``seeds`` seeds per ELM point of ``budgets``."""
    at = trials[
        (trials["slice"] == "budget") & (trials["arch"] == "elm") & trials["budget"].isin(budgets)
    ]
    extra = []
    for _, g in at.groupby("budget"):
        sd = float(np.sqrt(g.groupby("point_id")["final_val_loss"].var().mean()))
        for _, pg in g.groupby("point_id"):
            mean = float(pg["final_val_loss"].mean())
            first = int(pg["seed"].max()) + 1
            for seed in range(first, first + max(0, seeds - len(pg))):
                row = pg.iloc[0].copy()
                value = mean + sd * rng.standard_normal()
                row["seed"], row["trial_id"] = seed, f"{row['trial_id']}-drawn{seed}"
                row["final_val_loss"] = row["val_loss"] = value
                extra.append(row)
    return pd.concat([trials, pd.DataFrame(extra)], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", help="a finished sweep's directory (its results table)")
    p.add_argument("--budgets", required=True, help="budgets, comma-separated: 400,950")
    p.add_argument("--seeds", type=int, required=True, help="seeds per point after drawing")
    p.add_argument("--draws", type=int, default=200, help="simulated sweeps")
    p.add_argument("--n-boot", type=int, default=200, help="resamples per decision")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    args = p.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    trials = load_sweeps(args.sweep_dir)
    missing = sorted(set(budgets) - set(trials.loc[trials["slice"] == "budget", "budget"]))
    if missing or args.seeds < 2 or args.draws < 1:
        p.error(
            f"--budgets={args.budgets} --seeds={args.seeds} --draws={args.draws}: budgets must "
            f"be in the sweep (missing {missing}), --seeds >= 2 and --draws >= 1"
        )
    rng = np.random.default_rng(args.seed)
    counts = {P: collections.Counter() for P in budgets}
    for r in range(args.draws):
        frame = with_drawn_seeds(trials, budgets, args.seeds, rng)
        [block] = decide_claims(frame, n_boot=args.n_boot, seed=r, information_model=False)
        for row in block.budgets.to_dict(orient="records"):
            if row["budget"] in counts:
                counts[row["budget"]][row["decision"]] += 1
    for P, c in counts.items():
        print(json.dumps({"budget": P, "seeds": args.seeds, "draws": args.draws,
                          **{k: v / args.draws for k, v in sorted(c.items())}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
