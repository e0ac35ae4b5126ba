"""The byte-level sweep that decides the docs/science.md §8 claims overnight on a CPU.

On a GPU it takes about an hour.

Command line (the embedded enwiki-sample; `data=enwik8` with enwik8.zip in $ELM_DATA_DIR for
the real corpus):

    python -m sweeps.run --sweep sweeps/configs/enwiki_overnight.py --dir runs/enwiki_overnight

The default sweep's design on next-byte prediction: fixed P_core budgets 3e3, 1e4 and 3e4
(the byte embedding and decoder, P_io, are reported apart), 5 points each (4 at 3e3) over d_m
in 1, 2, 4, 8, 16, 32 at k_c = 16; axis slices around d_m = 4, k_c = 16 at 1e4 (N in 38, 75,
150; d_m in 2, 4, 8; k_c in 8, 16, 32); 3 seeds, 2,000 steps of 32 streams × 128 bytes with the state carried
(truncated BPTT), Adam 3e-3 with warm-up and cosine decay; validation on 20 chunks of the
contiguous split, test on 40. Claims are decided on the final validation bits per character
against the split's unigram baseline (about 5.1 bits on enwiki-sample).

Expected run time, measured on a part and scaled (an estimate, not a run of the whole): about
3.2 hours on 2 CPU cores (the 2-core AMD EPYC, AVX2) from

    python probes/sweep_time.py --sweep enwiki_overnight --calls 3 --fraction 0.05

3 of its 20 trainer calls (N 8 d_m 8, N 75 d_m 4 k_c 32, N 882 d_m 1: the cheapest, a middle
and the dearest in FLOPs per step) ran 100 of their 2,000 steps with 3 seeds: 0.083, 0.21 and
0.98 s per step, plus 36-152 s each for compilation, data and the four evaluations; the other
calls were scaled along FLOPs per step. A report ran beside it at lower priority for part of
the time. The N = 882 call alone is about 35 min. On one GPU: not measured (no GPU was
available). Variants: `steps`, `seeds`, `budgets`,
`data`, `seq_len`, `max_points`, `slices` (`enwiki_overnight.py:budgets=[3e3,1e4],steps=500`).
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import enwik8
from sweeps.slices import apply_options, parse_arg, standard_sweep

VARIANTS = ("steps", "seeds", "budgets", "data", "seq_len", "max_points", "slices")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The overnight byte-level sweep's config; `arg`: variant items (see module docstring)."""
    c = ml_collections.ConfigDict()
    c.name = "enwiki_overnight"
    c.task = "enwik8"
    c.seeds = (0, 1, 2)
    c.slices = ("budget", "axis")
    c.budgets = (3e3, 1e4, 3e4)
    c.budget_kind = "core"
    c.tolerance = 0.05
    c.d_m = (1, 2, 4, 8, 16, 32)
    c.k_c = (16,)
    c.max_points = 5
    c.baselines = ()
    c.axis = ml_collections.ConfigDict()
    c.axis.center_budget = 1e4
    c.axis.d_m = 4
    c.axis.k_c = 16
    c.axis.axes = ("N", "k_e", "k_c")
    c.axis.values = {"N": (38, 75, 150), "k_e": (2, 4, 8), "k_c": (8, 16, 32)}
    c.steps = 2000
    c.data = "enwiki_sample"
    c.seq_len = 128
    apply_options(c, parse_arg(arg), VARIANTS)

    train = enwik8.get_config()
    train.data.name = c.data
    train.data.seq_len = int(c.seq_len)
    train.data.val_max_batches = 20
    train.data.test_max_batches = 40
    train.num_train_steps = int(c.steps)
    train.log_every = max(1, int(c.steps) // 20)
    train.eval_every = max(1, int(c.steps) // 4)
    train.checkpoint_every = max(1, int(c.steps) // 4)
    c.train = train
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The frozen points of the sweep (sweeps.slices.standard_sweep)."""
    return standard_sweep(config)
