"""The byte-level sweep of `make sweep SWEEP=enwiki`: the docs/science.md §8 claims on next-byte
prediction for 2 CPU cores, with an LSTM and a GRU of the same budget at every budget.

Command line (what `make sweep SWEEP=enwiki` runs):

    python -m sweeps.run --sweep sweeps/configs/enwiki.py --dir sweep_runs/enwiki

Data: the embedded enwiki-sample (6.1 MB of English Wikipedia XML; unigram input-blind loss
3.548 nats, 5.12 bits per byte, on validation); `data=enwik8` reads enwik8.zip from
$ELM_DATA_DIR instead. Training: 16 contiguous streams x 64 bytes per step with the state
carried between steps (truncated BPTT), Adam at peak 3e-2 with 100 warm-up steps and cosine
decay, gradient norm clipped at 1, 1,000 steps (1 M training bytes); validation on 10 chunks of
32 streams x 256 bytes of the contiguous split with the state carried, test on 20.

Points (sequential, every budget on the fixed grid: sweeps/sequential.py adds each budget's two
best points again at twice the steps once it has trained):
* P_core budgets 1e3, 3e3 and 1e4 (within 8 %), 5 points each at k_c = 16 spread over d_m in
  1..32 from many simple to few complex neurons: the interior-optimum and moving-optimum claims;
* at each budget an LSTM and a GRU of the same P_core (within 25 %: N is coarse for dense
  units), each at its own checked learning rate (LSTM 3e-2, GRU 1e-2);
* axis slices around N = 23, d_m = 4, k_c = 16 (the 3e3 point): N in 12, 23, 46; d_m in 2, 4,
  8; k_c in 8, 16, 32: the three monotonicity claims;
* training-length check: each budget's two best points and the six axis ends again at 2,000
  steps with seeds 0 and 1.
3 seeds; 30 static points and 12 length points. The byte embedding (256 x 32) and decoder
(256 (N + 1)) are P_io, counted apart: the budgets are P_core. On P_total the points of one
budget are not one budget (a many-simple point's decoder is 8x its core), so P_total is checked
on the report's frontier over P_total, not by its own slices.

Why these choices (measured on 2 CPU cores, one seed per learning rate, final validation loss
in nats, unigram 3.548):

    python probes/lr_check.py --sweep sweeps/configs/enwiki.py \
        --points 294/1/16,4/24/16,29/1/16,4/6/16,lstm/36,gru/43 --lrs 3e-3,1e-2,3e-2
    python probes/lr_check.py --sweep sweeps/configs/enwiki.py \
        --points 294/1/16,4/24/16,29/1/16,4/6/16,lstm/36 --lrs 3e-2,6e-2,1.2e-1

  | point | 3e-3 | 1e-2 | 3e-2 | 6e-2 | 1.2e-1 |
  |---|---|---|---|---|---|
  | 1e4, N 294 d_m 1 | 2.660 | 2.385 | 2.307, 2.309 | 2.338 | 2.689 |
  | 1e4, N 4 d_m 24 | 3.123 | 2.863 | 2.773, 2.819 | 2.876 | 4.016 |
  | 1e3, N 29 d_m 1 | 2.995 | 2.713 | 2.570, 2.562 | 2.579 | 2.626 |
  | 1e3, N 4 d_m 6 | 3.205 | 2.922 | 2.840, 2.823 | 2.784 | 2.832 |
  | 1e4, LSTM N 36 | 2.734 | 2.421 | 2.275, 2.304 | 2.295 | 2.387 |
  | 1e4, GRU N 43 | 2.502 | 2.208 | 2.297 | | |

  3e-2 is best or within the seed spread (about 0.05) of the best at every ELM end; the
  enwik8 config's 3e-3 loses 0.3-0.4 nats in 1,000 steps. The LSTM ties at 3e-2 and 6e-2;
  the GRU is best at 1e-2.
* 16 x 64 bytes per step: the first probe at the enwik8 config's 32 x 128 bytes and 3e-3 cost
  2.2 s per step at N = 882 and, after 200 steps, left every d_m >= 4 point above the unigram;
  a quarter of the bytes per step gives four times the updates for the same compute.
* budgets 1e3..1e4: the many-simple point costs most (N = 294 at 1e4: 163-188 s of the
  probe's 1,000 steps with 3 seeds, against 33-70 s for the others); a fourth budget, 3e4
  (N = 882 at d_m = 1), was left out by this estimate before the sweep was measured (below:
  34 minutes, so it would likely have fitted).
Three budgets over one decade leave the scaling law not testable (it needs 5 budgets over two
decades).

Measured run time: `make sweep SWEEP=enwiki` from a fresh clone on the 2-core AMD EPYC (AVX2)
33 min 36 s wall (user CPU 49.5 min), all 114 trials ok: install and kernel build about 3 min
(enwiki-sample was already in the user's data cache; a new machine downloads it once, a few
seconds to a minute), the 33 trainer calls known before it starts (the axis ends' length
points included) 23.4 min, the 6 length calls of the budgets' best points 6.1 min, table and
report 1.1 min. Niced test runs shared the machine. The hour has room for about as much again:
a fourth budget, or more seeds for the k_c axis (see below).

Measured outcome (final validation loss in nats; unigram 3.548 validation, 5.07 bits per byte
on test; every point learned, the best at each budget 2.56, 2.42, 2.31 nats, 3.68, 3.49,
3.34 bits per byte on test):
* monotone N supported, slope -0.170 [-0.285, -0.065]; monotone k_e supported, -0.077
  [-0.146, -0.022]; monotone k_c not testable, +0.036 [-0.019, 0.081];
* interior optimum not testable at every budget: the best point is the many-simple end (d_m = 1,
  the smallest memory there is at k_c = 16) at 1e3, 3e3 and 1e4, and each parabola's curvature
  interval holds 0 (c [-0.055, 0.043], [-0.016, 0.038], [-0.015, 0.043]); so the optimum's
  movement and the information model are not testable either. On text at this length, many
  simple neurons are best, and the grid cannot go simpler at this k_c;
* training length (2,000 steps, seeds 0 and 1): monotone N holds (-0.159 at 2x); monotone k_e
  does not (not testable at 2x: the d_m = 8 end gained nothing, +0.014, the d_m = 2 end 0.086),
  so it is decided by where training stopped; the rest stay not testable;
* against the units of the same P_core (test loss, 95 % interval of the difference): the best
  ELM point beats the GRU and the LSTM at 1e3 (by 0.144 [0.122, 0.167] and 0.176 [0.141,
  0.211] nats) and at 3e3 (0.054 [0.024, 0.083] and 0.077 [0.047, 0.107]), and loses to both
  at 1e4 (by 0.082 [0.048, 0.117] and 0.040 [0.029, 0.051]); its P_total is 1.5x to 3.4x
  theirs (the decoder of N = 29 to 294 neurons). Wall seconds per step, compilation and
  evaluation included: 0.8-0.9x the units' at 1e3, 1.4-1.5x at 3e3, 2.3-2.4x at 1e4.
Variants: `steps`, `seeds`, `budgets`, `d_m`, `max_points`, `data`, `seq_len`, `batch`, `lr`
(the ELM networks'), `baselines`, `slices`, `length` (`enwiki.py:steps=500,length=False`).
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import enwik8
from sweeps.slices import apply_options, parse_arg, sequential_static_points

VARIANTS = (
    "steps", "seeds", "budgets", "d_m", "max_points", "data", "seq_len", "batch", "lr",
    "baselines", "slices", "length",
)  # fmt: skip


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The enwiki sweep's config; `arg`: variant items (see module docstring)."""
    c = ml_collections.ConfigDict()
    c.name = "enwiki"
    c.task = "enwik8"
    c.seeds = (0, 1, 2)
    c.slices = ("budget", "axis")
    c.budgets = (1e3, 3e3, 1e4)
    c.budget_kind = "core"
    c.tolerance = 0.08
    c.d_m = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    c.k_c = (16,)
    c.max_points = 5
    c.baselines = ("lstm", "gru")
    c.baseline_tolerance = 0.25
    c.baseline_lr = {"lstm": 3e-2, "gru": 1e-2}
    c.axis = ml_collections.ConfigDict()
    c.axis.center_budget = 3e3
    c.axis.d_m = 4
    c.axis.k_c = 16
    c.axis.axes = ("N", "k_e", "k_c")
    c.axis.values = {"N": (12, 23, 46), "k_e": (2, 4, 8), "k_c": (8, 16, 32)}
    c.steps = 1000
    c.data = "enwiki_sample"
    c.seq_len = 64
    c.batch = 16
    c.lr = 3e-2
    c.length = True
    apply_options(c, parse_arg(arg), VARIANTS)
    c.baseline_train = {
        arch: (("optim.learning_rate", float(lr)),)
        for arch, lr in c.baseline_lr.items()
        if arch in tuple(c.baselines)
    }

    train = enwik8.get_config()
    train.data.name = c.data
    train.data.seq_len = int(c.seq_len)
    train.data.batch_size = int(c.batch)
    train.data.eval_batch_size = 32
    train.data.eval_chunk_len = 256
    train.data.val_max_batches = 10
    train.data.test_max_batches = 20
    train.optim.learning_rate = float(c.lr)
    train.optim.warmup_steps = min(100, int(c.steps) // 10)
    train.num_train_steps = int(c.steps)
    train.log_every = max(1, int(c.steps) // 10)
    train.eval_every = max(1, int(c.steps) // 2)
    train.checkpoint_every = max(1, int(c.steps) // 2)
    c.train = train
    # Every budget on the fixed grid and no held-out prediction (3 budgets do not test the
    # scaling law); sequential only so that each budget's two best points, known once it has
    # trained, train again at twice the steps (the training-length check).
    c.sequential = ml_collections.ConfigDict(
        {
            "budgets": tuple(float(b) for b in c.budgets),
            "fixed": len(c.budgets),
            "points": int(c.max_points),
            "spread": 2.83,
            "k_c": int(c.k_c[0]),
            "d_m_max": max(int(d) for d in c.d_m),
            "predictions": False,
            "length": ml_collections.ConfigDict({"factor": 2, "seeds": (0, 1), "points": 2})
            if c.length
            else None,
        }
    )
    return c


def get_sweep(config: ml_collections.ConfigDict) -> list:
    """The points known before the sweep starts (sweeps.slices.sequential_static_points); the
    length points join as each budget's results arrive (sweeps/sequential.py)."""
    return sequential_static_points(config)
