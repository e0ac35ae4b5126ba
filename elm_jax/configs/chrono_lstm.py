"""The Chrono-LSTM baseline of the neuron paper: an LSTM whose forget and input gate biases are
chrono-initialised (Tallec & Ollivier 2018: b_f = log u, u ~ U(1, T_max - 1), b_i = -b_f) for
the task's sequence length T_max, on any single-neuron recipe's data and training setup.

Paper figure (docs/science.md §1, §4): an LSTM reaches 0.10 test accuracy on SHD-Adding at 2 ms bins
(against the ELM neuron's 0.82); our sources do not say whether that LSTM was chrono-initialised,
nor give the Chrono-LSTM's LRA figures. Not given in our sources; our choice: 128 units, and the
data, optimizer, batch and steps of the task's neuron recipe (a task item: shd, shd_adding,
scifar, pathfinder, pathfinder_x, listops; default shd_adding).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/chrono_lstm.py:scifar,data.data_dir=DIR \
        --workdir=runs/chrono_lstm_scifar

`chrono_lstm.py:scifar,short_cpu` is the few-minute CPU version `make bench-tasks` runs.

Expected run time: GPU hours per task (an estimate, not measured; an LSTM step costs about as
much as the neuron's). CPU (measured on 2 shared cores, `python probes/tasks.py`): on the sCIFAR
stand-in (T = 784) the 128-unit recipe trains about 400 steps per 10 minutes (`--full --steps
30`, evaluation excluded); `scifar,short_cpu` (32 units, 300 steps) reaches 30.9 % validation
accuracy (256 examples; input-blind 14.5 %, loss 1.74 against 2.28 nats) in 79 s."""

from __future__ import annotations

import importlib

import ml_collections

from elm_jax.configs.common import apply_variant
from elm_jax.configs.variant import VariantError, split_items
from elm_jax.data.registry import DATASETS

TASKS = ("shd", "shd_adding", "scifar", "pathfinder", "pathfinder_x", "listops")


def sequence_length(c: ml_collections.ConfigDict) -> int:
    """T_max of the config's data: the steps of one example."""
    name = c.data.name
    lengths = {n: e.example_length(c.data.bin_ms, c.data.seq_len) for n, e in DATASETS.items()}
    steps = lengths.get(name)
    if steps is None:
        known = [n for n, length in lengths.items() if length is not None]
        raise VariantError(
            f"data.name={name!r} has no known sequence length for chrono_t_max; give "
            f"model.chrono_t_max=STEPS, or use one of {', '.join(known)}"
        )
    return steps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Chrono-LSTM on a recipe's task; `arg`: a task name, "short_cpu", variant items."""
    items = split_items(arg)
    named = [i for i in items if "=" not in i and i != "short_cpu"]
    task = named[-1] if named else "shd_adding"
    if task not in TASKS:
        raise VariantError(f"chrono_lstm task {task!r} is invalid; valid: {', '.join(TASKS)}")
    short = "short_cpu" if "short_cpu" in items else None
    c = importlib.import_module(f"elm_jax.configs.neuron_{task}").get_config(short)
    c.model.arch = "lstm"
    c.model.num_neurons = 32 if short else 128
    c.model.time_unit = "steps"
    c.model.delta_t = 1.0
    rest = [i for i in items if "=" in i]
    c = apply_variant(c, ",".join(rest))
    if not any(i.startswith("model.chrono_t_max=") for i in rest):
        c.model.chrono_t_max = float(sequence_length(c))
    return c
