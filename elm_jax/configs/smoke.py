"""A tiny end-to-end run (seconds): a small ELM byte model on `enwiki_sample`.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/smoke.py --workdir=/tmp/elm_smoke

Expected run time: under a minute on one CPU core, compilation included (the first run may
also build the embedded `enwiki_sample`). `smoke.py:classification` gives the same on
`shd_adding` (needs SHD files or the embedded default).
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config
from elm_jax.configs.variant import split_items


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The smoke config; `arg`: "classification" for SHD-Adding, then any variant items."""
    items = split_items(arg)
    classification = "classification" in items
    items = [a for a in items if a != "classification"]
    c = base_config()
    c.model.arch = "elm"
    c.model.num_neurons = 8
    c.model.num_memory = 4
    c.model.synapses_per_neuron = 8
    c.model.num_branches = 4
    if classification:
        c.model.task = "classification"
        c.model.input_dim = 700
        c.model.num_classes = 19
        c.data.name = "shd_adding"
        c.data.bin_ms = 50.0
        c.data.batch_size = 8
        c.data.eval_batch_size = 32
        c.data.val_max_batches = 2
        c.data.test_max_batches = 2
        c.optim.name = "adamax"
        c.optim.learning_rate = 5e-3
    else:
        c.model.task = "lm"
        c.model.input_dim = 256
        c.model.num_classes = 256
        c.model.embed_dim = 8
        c.data.name = "enwiki_sample"
        c.data.seq_len = 32
        c.data.batch_size = 8
        c.data.eval_batch_size = 8
        c.data.eval_chunk_len = 32
        c.data.val_max_batches = 4
        c.data.test_max_batches = 4
        c.optim.name = "adam"
        c.optim.learning_rate = 1e-2
        c.optim.warmup_steps = 5
        c.optim.clip_norm = 1.0
    c.num_train_steps = 40
    c.log_every = 10
    c.eval_every = 20
    c.checkpoint_every = 20
    c.keep_checkpoints = 2
    c.seeds = (0,)
    return apply_variant(c, ",".join(items))
