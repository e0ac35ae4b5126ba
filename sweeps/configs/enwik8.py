"""The Enwik8 research sweep: tradeoff slices, axis sweeps, a random scaling-law sweep.

Command line:

    python -m sweeps.run --sweep sweeps/configs/enwik8.py --dir runs/enwik8 \
        [--workers 4 | --backend ray --ray-address HEAD:6379]

Slices: fixed budgets 1e4, 3e4, 1e5, 3e5 core parameters (up to 8 ELM points each, plus LSTM,
GRU and leaky baselines; P_io, the byte embedding and decoder, is reported separately), axis
sweeps around (d_m=16, k_c=32) at 1e5, and 24 random points over 1e4..1e7. 2 seeds, 3000
steps of 128-byte windows; real enwik8.zip when present, else the embedded enwiki-sample.

Expected run time: far beyond a laptop. On 2 CPU cores about 190 hours, a rough estimate from

    python probes/sweep_time.py --sweep enwik8 --calls 3 --fraction 0.02 --max-flops 3e5

(3 of its 83 trainer calls, up to 2.8e5 FLOPs per step, ran 60 of their 3,000 steps: 0.10-0.45
s per step; the other calls scaled along FLOPs per step, the dearest 100x beyond the measured
range, so the figure is an order of magnitude, not a measurement; the embedded enwiki-sample
stood in for enwik8.zip). On GPUs: not measured (no GPU was available); use a GPU cluster. Variants as in shd_adding.py:
`budgets`, `seeds`, `steps`, `slices`, `max_points`, `baselines`, `data`, `seq_len`,
`random_points`, `tolerance`.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import enwik8
from sweeps.slices import apply_options, parse_arg, standard_sweep

VARIANTS = (
    "budgets",
    "seeds",
    "steps",
    "slices",
    "max_points",
    "baselines",
    "data",
    "seq_len",
    "random_points",
    "tolerance",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The sweep config; `arg`: variant items (see module docstring)."""
    c = ml_collections.ConfigDict()
    c.name = "enwik8"
    c.task = "enwik8"
    c.seeds = (0, 1)
    c.slices = ("budget", "axis", "random")
    c.budgets = (1e4, 3e4, 1e5, 3e5)
    c.budget_kind = "core"
    c.tolerance = 0.05
    # Dense baselines are coarse in N (one LSTM unit on 700 inputs is ~2.8k parameters).
    c.baseline_tolerance = 0.15
    c.d_m = (2, 4, 8, 16, 32, 64, 128)
    c.k_c = (8, 16, 32, 64, 128, 256)
    c.max_points = 8
    c.baselines = ("lstm", "gru", "leaky")
    c.axis = ml_collections.ConfigDict(
        {"center_budget": 1e5, "d_m": 16, "k_c": 32, "axes": ("N", "k_e", "k_c")}
    )
    c.random = ml_collections.ConfigDict({"num_points": 24, "budget_range": (1e4, 1e7), "seed": 0})
    c.random_points = 24
    c.steps = 3000
    c.data = "enwik8"
    c.seq_len = 128
    apply_options(c, parse_arg(arg), VARIANTS)
    c.random.num_points = int(c.random_points)

    train = enwik8.get_config()
    train.data.name = c.data
    train.data.seq_len = int(c.seq_len)
    train.num_train_steps = int(c.steps)
    train.eval_every = max(1, int(c.steps) // 6)
    train.checkpoint_every = max(1, int(c.steps) // 6)
    c.train = train
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The frozen points of the sweep (sweeps.slices.standard_sweep)."""
    return standard_sweep(config)
