"""A tiny SHD-Adding sweep for tests and smoke checks: 2 budgets, 3 points, 2 seeds, 6 steps.

Command line:

    python -m sweeps.run --sweep sweeps/configs/tiny.py --dir runs/tiny

Data: the embedded SHD default (`shd_adding_default`) at 50 ms bins (T = 40 for a digit pair).
Expected run time: about 1-2 minutes on 2 CPU cores (mostly compilation, 3 trainer calls);
under a minute on one GPU (estimate). Variants: `steps`, `seeds`, `budgets`, `bin_ms`,
`checkpoint_every`, `data` (dataset name), `data_dir`, e.g. `tiny.py:steps=20,seeds=[0,1,2]`
or `tiny.py:data=shd_adding,data_dir=/path/to/shd` for SHD-format files.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import smoke
from sweeps.slices import apply_options, budget_slice, parse_arg

VARIANTS = ("steps", "seeds", "budgets", "bin_ms", "checkpoint_every", "data", "data_dir")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The tiny sweep's config; `arg`: variant items (see module docstring)."""
    c = ml_collections.ConfigDict()
    c.name = "tiny"
    c.task = "shd_adding"
    c.seeds = (0, 1)
    c.budgets = (200.0, 400.0)
    c.budget_kind = "core"
    # Grids chosen so that budget 200 has two points and budget 400 one.
    c.d_m = (1,)
    c.k_c = (4, 8)
    c.max_points = (2, 1)
    c.steps = 6
    c.bin_ms = 50.0
    c.checkpoint_every = 2
    c.data = "shd_adding_default"
    c.data_dir = ""
    apply_options(c, parse_arg(arg), VARIANTS)

    train = smoke.get_config("classification")
    train.data.name = c.data
    if c.data_dir:
        train.data.data_dir = c.data_dir
    train.data.bin_ms = float(c.bin_ms)
    train.data.eval_batch_size = 16
    train.data.val_max_batches = 1
    train.data.test_max_batches = 1
    train.num_train_steps = int(c.steps)
    train.log_every = 2
    train.eval_every = int(c.steps)
    train.checkpoint_every = int(c.checkpoint_every)
    c.train = train
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The fixed-budget slices of `config.budgets` (frozen SweepPoints)."""
    points = []
    for i, budget in enumerate(config.budgets):
        points += budget_slice(
            budget,
            config.task,
            d_m=config.d_m,
            k_c=config.k_c,
            budget_kind=config.budget_kind,
            max_points=config.max_points[min(i, len(config.max_points) - 1)],
        )
    return points
