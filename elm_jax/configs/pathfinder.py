"""Pathfinder (32 x 32): are the two markers joined by one dashed contour? Read pixel by pixel.

An ELM network reads the image row by row, one pixel per step (1,024 steps, 16 grey levels
one-hot) and is trained with cross-entropy on the last step. Data: `pathfinder32_default` is
the project's generated Pathfinder-style stand-in at LRA's hardest contour length (14 dashes;
docs/data.md), `pathfinder32_medium_default` and `pathfinder32_easy_default` the shorter ones
(9 and 6 dashes); `pathfinder32` reads the LRA release from `data.data_dir`.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/pathfinder.py --workdir=runs/pathfinder32

and for an easier level `--config.data.name=pathfinder32_easy_default`.

Expected run time: the default 400 steps of batch 32 (with evaluation on 1,000 validation and
1,000 test images) took 8 min 45 s (hard) and 12 min 13 s (easy) on a shared 2-core CPU
(measured, docs/data.md); the first run also generates the data (210 / 42 CPU seconds). What
they reach: chance, 50.6 % on validation against a 50.6 % input-blind baseline, at both levels,
and at the easy level also after 800 steps at lr 1e-2 and at lr 5e-3 (49.7 % and 52.6 % on
validation and test against 50.6 % and 50.9 %, 8 min 53 s). The network trains about 1.7 steps
per second here; the single ELM neuron (`neuron_pathfinder.py:short_cpu`, 15 steps per second)
leaves chance only after 2,000-3,000 steps (500-750 at the easy level) and reaches 56.8 % / 59.0 %
in 6,000 steps (6 min 29 s), so a short CPU run above chance is that one, not this. The
paper's ELM neuron figure (71.2 %) needs far longer, GPU-scale training (hours, an estimate,
not measured).
Variants: `N`, `d_m`, `k_c`, `lr`, `batch`, `steps`.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Pathfinder config; `arg` is a variant string such as "N=64,d_m=8,k_c=16"."""
    c = base_config()
    c.model.arch = "elm"
    c.model.task = "classification"
    c.model.input_dim = 16
    c.model.num_classes = 2
    c.model.num_neurons = 32
    c.model.num_memory = 8
    c.model.synapses_per_neuron = 16
    c.model.num_branches = 4

    c.data.name = "pathfinder32_default"
    c.data.batch_size = 32
    c.data.eval_batch_size = 100
    c.data.val_max_batches = 10
    c.data.test_max_batches = 10

    c.optim.name = "adamax"
    c.optim.learning_rate = 2e-2
    c.optim.schedule = "cosine"

    c.num_train_steps = 400
    c.log_every = 50
    c.eval_every = 200
    c.checkpoint_every = 200
    c.seeds = (0,)
    return apply_variant(c, arg)
