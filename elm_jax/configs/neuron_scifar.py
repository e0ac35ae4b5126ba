"""Sequential CIFAR-10 (pixel by pixel, 16 grey levels one-hot, 1,024 steps) with one ELM neuron.

Paper figure (docs/science.md §1 / the neuron paper's LRA table): the ELM neuron reaches 49.6 % test
accuracy on sCIFAR. Input: 16 one-hot grey levels (the paper's binning), 10 classes, label at
the last step. Not given in our sources; our choice: d_m = 100, τ_m fixed, log-spaced over
1–1000 steps (the image is 1,024 steps long), one synapse per input, v2 neuron, Adamax lr 5e-3
with cosine decay, batch 32, 20,000 steps.

Data: `scifar` needs the user's `cifar-10-python.tar.gz` (docs/data.md); `data.name=
scifar_default` trains on the embedded stand-in, sequential Fashion-MNIST (784 steps), whose
results are labelled "fashion-mnist (stand-in for sCIFAR)" and are not sCIFAR figures.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_scifar.py:data.data_dir=DIR \
        --workdir=runs/neuron_scifar

`neuron_scifar.py:short_cpu` is the few-minute CPU version on the stand-in (`make bench-tasks`).
Expected run time: GPU a few hours (an estimate, not measured: 20,000 steps at T = 1024). CPU
(measured on 2 shared cores, `python probes/tasks.py`): the recipe trains about 1,100 steps per
10 minutes on the stand-in (T = 784; `--full --steps 30`, evaluation excluded); `short_cpu` (d_m
= 20, batch 16, 300 steps) reaches 39.5 % validation accuracy on fashion-mnist (stand-in for
sCIFAR) (256 examples; input-blind 14.5 %, loss 1.59 against 2.28 nats) in 28 s."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The sCIFAR single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="scifar", input_dim=16, num_classes=10, num_memory=100,
        memory_tau=(1.0, 1000.0), batch_size=32, num_train_steps=20_000, learning_rate=5e-3,
    )  # fmt: skip
    short = {"data.name": "scifar_default", "model.num_memory": 20, "data.batch_size": 16}
    return finish(c, arg, short)
