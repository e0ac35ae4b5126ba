"""ListOps (Long Range Arena: nested MAX / MIN / MED / SUM_MOD expressions, 10 classes) with one
ELM neuron.

Paper figure (docs/science.md §1 / the neuron paper's LRA table): the ELM neuron reaches 46.8 % test
accuracy on ListOps. Input: 15 one-hot tokens (digits, the four operators, the closing
bracket), front-padded to 1,999 steps so the closing bracket is the last step (LRA's length
limit; elm_jax/data/listops/tasks.py). Not given in our sources; our choice: d_m = 100, τ_m
fixed, log-spaced over 1–2000 steps, one synapse per input, v2 neuron, Adamax lr 5e-3 with
cosine decay, batch 32, 20,000 steps.

Data: `listops` reads the LRA `.tsv` files from the data directory; `data.name=listops_default`
trains on the project's generated expressions (a labelled stand-in, docs/data.md).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_listops.py:data.data_dir=DIR \
        --workdir=runs/neuron_listops

`neuron_listops.py:short_cpu` is the few-minute CPU version on the generated set.

Expected run time: GPU several hours (an estimate, not measured: 20,000 steps at T = 1,999). CPU
(measured on 2 shared cores, `python probes/tasks.py`): the recipe (T = 1,999) trains about 330
steps per 10 minutes (`--full --steps 30`, evaluation excluded); `short_cpu` (T = 99, d_m = 20,
batch 32, lr 1e-2, 800 steps on listops-default) reaches 36.7 % validation accuracy (256
examples; input-blind 19.5 %, loss 1.78 against 2.23 nats) in 28 s. With lr 5e-3, batch 16 and
300 steps (T = 249) it stayed at the input-blind level (19.5 % against 18.0 %)."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The ListOps single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="listops", input_dim=15, num_classes=10, num_memory=100,
        memory_tau=(1.0, 2000.0), batch_size=32, num_train_steps=20_000, learning_rate=5e-3,
    )  # fmt: skip
    c.data.seq_len = 1999
    short = {
        "data.name": "listops_default", "data.seq_len": 99, "model.num_memory": 20,
        "data.batch_size": 32, "optim.learning_rate": 1e-2, "num_train_steps": 800,
        "eval_every": 800, "checkpoint_every": 800,
    }  # fmt: skip
    return finish(c, arg, short)
