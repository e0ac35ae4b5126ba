"""Enwik8 (docs/science.md §5): next-byte prediction, bits per character on the contiguous split.

Adam with warm-up and cosine decay, gradient clipping at norm 1, truncated BPTT over
`batch_size` contiguous streams with the state carried between batches of `seq_len` bytes
(`data.carry_train_state`); validation and test walk the contiguous split in chunks with the
recurrent state carried, so every byte is predicted with full context (`data.val_max_batches`
caps the periodic validation for speed; the final test evaluation covers the whole split
unless `data.test_max_batches` is set). Data: `enwik8` reads `enwik8.zip` from `data.data_dir`
(or $ELM_DATA_DIR; an error when that directory lacks it) and falls back to the embedded
`enwiki_sample` only when no directory is named.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/enwik8.py:N=128,d_m=16,k_c=32 \
        --workdir=runs/enwik8_N128

Expected run time: about 15 minutes on one CPU core for the default 3000 steps at N=64
(`enwik8.py` without a variant) on enwiki-sample; the full 5M-byte Enwik8 test split adds
several minutes on CPU. On a GPU, minutes.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Enwik8 config; `arg` is a variant string such as "N=128,d_m=16,k_c=32"."""
    c = base_config()
    c.model.arch = "elm"
    c.model.task = "lm"
    c.model.input_dim = 256
    c.model.num_classes = 256
    c.model.embed_dim = 32
    c.model.num_neurons = 64
    c.model.num_memory = 16
    c.model.synapses_per_neuron = 32
    c.model.num_branches = 4

    c.data.name = "enwik8"
    c.data.seq_len = 128
    c.data.carry_train_state = True
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    c.data.eval_chunk_len = 256
    c.data.val_max_batches = 20

    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.clip_norm = 1.0

    c.num_train_steps = 3000
    c.log_every = 50
    c.eval_every = 500
    c.checkpoint_every = 500
    c.seeds = (0,)
    return apply_variant(c, arg)
