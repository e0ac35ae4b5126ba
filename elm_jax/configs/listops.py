"""ListOps (Long Range Arena): the value 0-9 of a nested MAX / MIN / MED / SUM_MOD expression.

An ELM network reads the expression one token per step (15 one-hot channels, front-padded to
`data.seq_len` so the closing bracket is the last step) and is trained with cross-entropy on
the last step. Data: `listops_default` is the project's generated stand-in (LRA's grammar and
depth, 11-99 tokens so that a CPU run takes minutes; docs/data.md); `listops` reads LRA's
`basic_{train,val,test}.tsv` from `data.data_dir` (no fallback), with `data.seq_len=1999`.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/listops.py --workdir=runs/listops_default

For LRA's files, use the variant `seq_len=1999` and set `data.name` to `listops` and
`data.data_dir` to the folder that holds them.

Expected run time: the default 1,500 steps took 3 min 16 s on a shared 2-core CPU (measured;
validation 38.3 % against the 15.8 % class prior); on LRA's files (T = 1,999, 20x longer
steps) hours on CPU, minutes to an hour on a GPU (an estimate, not measured).
Variants: `N`, `d_m`, `k_c`, `lr`, `batch`, `steps`, `seq_len`.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The ListOps config; `arg` is a variant string such as "N=64,d_m=8,k_c=16"."""
    c = base_config()
    c.model.arch = "elm"
    c.model.task = "classification"
    c.model.input_dim = 15
    c.model.num_classes = 10
    c.model.num_neurons = 32
    c.model.num_memory = 8
    c.model.synapses_per_neuron = 16
    c.model.num_branches = 4

    c.data.name = "listops_default"
    c.data.seq_len = 99
    c.data.batch_size = 32
    c.data.eval_batch_size = 100

    c.optim.name = "adamax"
    c.optim.learning_rate = 2e-2
    c.optim.schedule = "cosine"

    c.num_train_steps = 1500
    c.log_every = 100
    c.eval_every = 500
    c.checkpoint_every = 500
    c.seeds = (0,)
    return apply_variant(c, arg)
