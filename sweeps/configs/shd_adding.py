"""The SHD-Adding research sweep: tradeoff slices, axis sweeps, a random scaling-law sweep.

Command line:

    python -m sweeps.run --sweep sweeps/configs/shd_adding.py --dir runs/shd_adding \
        [--workers 4 | --backend ray --ray-address HEAD:6379]

Slices: fixed budgets 1e3, 3e3, 1e4, 3e4, 1e5 core parameters (up to 8 ELM points each over the
d_m x k_c grid, plus LSTM, GRU and leaky baselines at each budget); N, k_e and k_c axis sweeps
around (d_m=8, k_c=16) at 1e4; 24 random points over 1e3..1e6 (three orders of magnitude).
3 seeds each, 5000 steps, 10 ms bins, real SHD files (falling back to the embedded default).
That is 5 x 11 + 3 x ~7 + 24 = ~100 trainer calls (~300 trials).

Expected run time: see docs/sweeps.md (days on 2 CPU cores; about 5-10 GPU-hours on one
GPU, an estimate). Variants (`shd_adding.py:budgets=[1e3,1e4],seeds=[0,1],steps=2000`):
`budgets`, `seeds`, `steps`, `slices`, `max_points`, `baselines`, `data`, `bin_ms`,
`random_points`, `tolerance`.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import shd_adding
from sweeps.slices import apply_options, parse_arg, standard_sweep

VARIANTS = (
    "budgets",
    "seeds",
    "steps",
    "slices",
    "max_points",
    "baselines",
    "data",
    "bin_ms",
    "random_points",
    "tolerance",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The sweep config; `arg`: variant items (see module docstring)."""
    c = ml_collections.ConfigDict()
    c.name = "shd_adding"
    c.task = "shd_adding"
    c.seeds = (0, 1, 2)
    c.slices = ("budget", "axis", "random")
    c.budgets = (1e3, 3e3, 1e4, 3e4, 1e5)
    c.budget_kind = "core"
    c.tolerance = 0.05
    # Dense baselines are coarse in N (one LSTM unit on 700 inputs is ~2.8k parameters).
    c.baseline_tolerance = 0.15
    c.d_m = (1, 2, 4, 8, 16, 32, 64)
    c.k_c = (4, 8, 16, 32, 64, 128)
    c.max_points = 8
    c.baselines = ("lstm", "gru", "leaky")
    c.axis = ml_collections.ConfigDict(
        {"center_budget": 1e4, "d_m": 8, "k_c": 16, "axes": ("N", "k_e", "k_c")}
    )
    c.random = ml_collections.ConfigDict({"num_points": 24, "budget_range": (1e3, 1e6), "seed": 0})
    c.random_points = 24
    c.steps = 5000
    c.data = "shd_adding"
    c.bin_ms = 10.0
    apply_options(c, parse_arg(arg), VARIANTS)
    c.random.num_points = int(c.random_points)

    train = shd_adding.get_config()
    train.data.name = c.data
    train.data.bin_ms = float(c.bin_ms)
    train.num_train_steps = int(c.steps)
    train.eval_every = max(1, int(c.steps) // 10)
    train.checkpoint_every = max(1, int(c.steps) // 10)
    c.train = train
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The frozen points of the sweep (sweeps.slices.standard_sweep)."""
    return standard_sweep(config)
