"""The default sweep run by `make sweep`: SHD-Adding tradeoff slices on the embedded default.

Command line (what `make sweep` runs):

    python -m sweeps.run --sweep sweeps/configs/default.py --dir sweep_runs/default

SHD-Adding at 10 ms bins (T = 200 for a digit pair) on the embedded SHD default, three budgets
1e3, 3e3 and 1e4 core parameters, the fixed-budget slice at each (3 ELM points spread from
many simple to few complex neurons, k_c = 16), two seeds, 200 training steps each: 8 trainer
calls, 16 trials. Run time: `make sweep` measured 11 min 17 s on 2 CPU cores with the data already
prepared (the first run adds about 3 minutes of data preparation); a few minutes on one GPU
(estimate). At 200 steps the networks learn little (validation loss about 2.83 nats against
ln 19 = 2.94 at chance, accuracy 6-9 %): this sweep exercises the whole pipeline end to end;
conclusions about the optimum need `steps=5000` or the `shd_adding` sweep.
Variants: `steps`, `seeds`, `budgets`, `max_points`, `d_m`, `k_c`, `data`, `bin_ms`
(`default.py:steps=1000,max_points=5`).
"""

from __future__ import annotations

import ml_collections

from sweeps.slices import apply_options, parse_arg, standard_sweep

VARIANTS = ("steps", "seeds", "budgets", "max_points", "d_m", "k_c", "data", "bin_ms")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The default sweep's config; `arg`: variant items (see module docstring)."""
    from elm_jax.configs import shd_adding

    c = ml_collections.ConfigDict()
    c.name = "default"
    c.task = "shd_adding"
    c.seeds = (0, 1)
    c.slices = ("budget",)
    c.budgets = (1e3, 3e3, 1e4)
    c.budget_kind = "core"
    c.tolerance = 0.05
    c.d_m = (1, 2, 4, 8, 16)
    c.k_c = (16,)
    c.max_points = 3
    c.baselines = ()
    c.steps = 200
    c.data = "shd_adding_default"
    c.bin_ms = 10.0
    apply_options(c, parse_arg(arg), VARIANTS)

    train = shd_adding.get_config()
    train.data.name = c.data
    train.data.bin_ms = float(c.bin_ms)
    train.data.eval_batch_size = 128
    train.num_train_steps = int(c.steps)
    train.log_every = max(1, int(c.steps) // 10)
    train.eval_every = max(1, int(c.steps) // 2)
    train.checkpoint_every = max(1, int(c.steps) // 2)
    c.train = train
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The frozen points of the sweep (sweeps.slices.standard_sweep)."""
    return standard_sweep(config)
