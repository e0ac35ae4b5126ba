"""SHD-Adding (docs/science.md §4): the sum of two spoken digits, 19 classes, loss on the last step.

The ELM paper's recipe: Adamax, peak learning rate 5e-3 with cosine decay, batch 8, input
dropout 0.5 during training. Bins default to 10 ms (T = 200 for the digit pair) for CPU budgets;
`bin_ms=2` gives the paper's T = 1000. Data: `shd_adding` reads the real SHD files from
`data.data_dir` (or $ELM_DATA_DIR; an error when that directory lacks them) and falls back to
the embedded default only when no directory is named.

Command line (a few-thousand-parameter network, ~6k P_core):

    python -m elm_jax.main --config=elm_jax/configs/shd_adding.py:N=16,d_m=8,k_c=16 \
        --workdir=runs/shd_adding_N16

Expected run time: about 15 minutes on one CPU core for the default 5000 steps at N=16 with
10 ms bins (roughly 0.1-0.2 s per step there); seconds to minutes on a GPU.
Variants: `N`, `d_m`, `k_c`, `d_tree`, `arch`, `bin_ms`, `batch`, `lr`, `steps` (see
elm_jax/configs/common.py); any field also with `--config.<group>.<field>=value`.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The SHD-Adding config; `arg` is a variant string such as "N=64,d_m=8,k_c=16"."""
    c = base_config()
    c.model.arch = "elm"
    c.model.task = "classification"
    c.model.input_dim = 700
    c.model.num_classes = 19
    c.model.num_neurons = 32
    c.model.num_memory = 8
    c.model.synapses_per_neuron = 16
    c.model.num_branches = 4

    c.data.name = "shd_adding"
    c.data.bin_ms = 10.0
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.data.input_dropout = 0.5

    c.optim.name = "adamax"
    c.optim.learning_rate = 5e-3
    c.optim.schedule = "cosine"

    c.num_train_steps = 5000
    c.log_every = 50
    c.eval_every = 500
    c.checkpoint_every = 500
    c.seeds = (0,)
    return apply_variant(c, arg)
