"""The science sweep: every docs/science.md §8 claim on SHD-Adding, on P_core and P_total budgets.

Command line (one GPU; the real SHD files in $ELM_DATA_DIR, or the embedded default with
`science.py:data=shd_adding_default`):

    python -m sweeps.run --sweep sweeps/configs/science.py --dir runs/science

Slices (k_c = 16 unless varied; the default sweep's design, scaled up):

* fixed budgets 1e3, 3e3, 1e4, 3e4 and 1e5 (two decades, five budgets: the scaling law and its
  leave-largest-out check), counted once on P_core and once on P_total (docs/science.md §8: at
  d_m = 1 the decoder adds 56 % of P_core, which favours many simple neurons under a P_core
  budget), up to 6 points each over d_m in 1, 2, 3, 4, 6, 8, 12, 16, 24, 32;
* axis slices around d_m = 4, k_c = 16 at 1e4 (N = 75): N in 19, 38, 75, 150, 300; d_m in 1,
  2, 4, 8, 16; k_c in 4, 8, 16, 32, 64;
* 16 random points over 1e3..1e5 (on or above the fitted law?).

4 seeds, 25 ms bins (T = 80), batch 32, Adamax with peak learning rate 4e-2 and cosine decay
(the default sweep's, checked at its budget extremes at 1,000 steps and 50 ms bins, where 1e-2
lost 0.05-0.2 nats everywhere; not re-checked at these shapes: run `python probes/lr_check.py
--sweep sweeps/configs/science.py --points ...` first on the GPU), points within 5 % of budget,
4,000 steps, validation on the first 2,048 official pairs, test on the first 4,096.
77 trainer calls (P_core and P_total slices share the points they have in common), 344
trials. Expected run time on one GPU: a few hours (an estimate from the default sweep's CPU
figures in docs/sweeps.md: the largest points, N up to ~3,000 at 1e5, dominate); days on 2 CPU
cores. Variants: `steps`, `seeds`, `budgets`, `data`, `bin_ms`, `lr`, `batch`, `max_points`,
`slices`, `random_points` (`science.py:budgets=[1e3,1e4,1e5],steps=2000`).
"""

from __future__ import annotations

import ml_collections

from sweeps.configs import default
from sweeps.slices import apply_options, parse_arg, standard_sweep

VARIANTS = (
    "steps", "seeds", "budgets", "data", "bin_ms", "lr", "batch", "max_points", "slices",
    "random_points",
)  # fmt: skip


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The science sweep's config; `arg`: variant items (see module docstring)."""
    c = default.get_config()
    c.name = "science"
    c.tolerance = 0.05
    c.seeds = (0, 1, 2, 3)
    c.slices = ("budget", "axis", "random")
    c.budgets = (1e3, 3e3, 1e4, 3e4, 1e5)
    c.budget_kinds = ("core", "total")
    c.d_m = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    c.max_points = 6
    c.axis.center_budget = 1e4
    c.axis.values = {
        "N": (19, 38, 75, 150, 300),
        "k_e": (1, 2, 4, 8, 16),
        "k_c": (4, 8, 16, 32, 64),
    }
    c.random = ml_collections.ConfigDict({"num_points": 16, "budget_range": (1e3, 1e5), "seed": 0})
    c.random_points = 16
    c.steps = 4000
    c.data = "shd_adding"
    c.bin_ms = 25.0
    apply_options(c, parse_arg(arg), VARIANTS)
    c.random.num_points = int(c.random_points)

    train = c.train
    train.data.name = c.data
    train.data.bin_ms = float(c.bin_ms)
    train.data.batch_size = int(c.batch)
    train.data.val_max_batches = 8
    train.data.test_max_batches = 16
    train.optim.learning_rate = float(c.lr)
    train.num_train_steps = int(c.steps)
    train.log_every = max(1, int(c.steps) // 20)
    train.eval_every = max(1, int(c.steps) // 8)
    train.checkpoint_every = max(1, int(c.steps) // 8)
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The frozen points of the sweep (sweeps.slices.standard_sweep)."""
    return standard_sweep(config)
