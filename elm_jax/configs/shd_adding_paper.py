"""SHD-Adding with the ELM paper's recipe in physical time (docs/science.md §4).

Time constants are in milliseconds with Δt = the bin width (`model.time_unit = "ms"`), so a
change of bin size keeps the physical timescales: τ_b = 5 ms, τ_m initialised log-spaced over
1–150 ms inside the bounds 0–1000 ms (learnable). The paper's training setup: 2 ms bins
(T = 1000 for a digit pair), cross-entropy on the last step, Adamax with peak learning rate 5e-3
and cosine decay, batch 8, input dropout 0.5 during training, 2000 batches per epoch.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/shd_adding_paper.py:N=32,d_m=8,k_c=16 \
        --workdir=runs/shd_adding_paper

Expected run time: at 2 ms bins a step costs about 5× the 10 ms one, so the default 5000 steps
take hours on one CPU core; minutes on a GPU. `bin_ms=25` keeps the same timescales at T = 80.
Which variant the sweeps use, and the measurement behind it: docs/training.md.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import shd_adding
from elm_jax.configs.common import apply_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper-recipe SHD-Adding config; `arg` is a variant string ("N=64,bin_ms=25")."""
    c = shd_adding.get_config()
    c.model.time_unit = "ms"
    c.model.tau_b_value = 5.0
    c.model.memory_tau_min = 0.0
    c.model.memory_tau_max = 1000.0
    c.model.memory_tau_init_min = 1.0
    c.model.memory_tau_init_max = 150.0
    c.model.learn_memory_tau = True
    c.data.bin_ms = 2.0
    c.data.batch_size = 8
    c.data.input_dropout = 0.5
    c.optim.name = "adamax"
    c.optim.learning_rate = 5e-3
    c.optim.schedule = "cosine"
    return apply_variant(c, arg)
