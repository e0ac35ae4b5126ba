"""Training speed of the NeuronIO recipes (one Branch-ELM neuron, 500 ms windows) on this machine.

    python bench/neuronio_step.py [--d-m 15] [--linear] [--steps 30] [--batch 8]

Trains the `elm_jax/configs/neuronio_routing.py` model on random NeuronIO-shaped simulations
held in memory (inputs at 2 % density, signs as NeuronIO; the values are not data and nothing
is learned from them) and prints one JSON line: the steady-state training steps per second
(log intervals after the first, which holds the compilation) and the hours the paper's
350,000 steps would take at that speed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import jax
import numpy as np

from elm_jax.configs import neuronio_routing
from elm_jax.data.neuronio.files import Simulations, synapse_signs
from elm_jax.data.neuronio.tasks import NeuronIODataset
from elm_jax.train.loop import train_and_evaluate


def random_simulations(seed: int, k: int = 8, t: int = 2000) -> Simulations:
    rng = np.random.default_rng(seed)
    inputs = (rng.random((k, t, 1278)) < 0.02).astype(np.int8) * synapse_signs()
    spikes = (rng.random((k, t)) < 0.002).astype(np.float32)
    soma = rng.normal(-70.0, 3.0, (k, t)).astype(np.float32)
    return Simulations(inputs, spikes, soma)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-m", type=int, default=15)
    parser.add_argument("--linear", action="store_true", help="neuronio_linear.py's (d_m = 1)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    variant = f"steps={args.steps}," + ("linear=1" if args.linear else f"d_m={args.d_m}")
    config = neuronio_routing.get_config(variant)
    config.data.batch_size = args.batch
    config.log_every = max(1, args.steps // 3)
    config.eval_every = config.checkpoint_every = args.steps
    config.data.val_max_batches = config.data.test_max_batches = 1
    config.logging.tensorboard = False
    ds = NeuronIODataset(
        {s: [random_simulations(i)] for i, s in enumerate(("train", "validation", "test"))},
        source="random-bench",
    )
    with tempfile.TemporaryDirectory() as workdir:
        train_and_evaluate(config, workdir, dataset=ds, devices=jax.devices()[:1])
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
    rates = [r["steps_per_s"] for r in records if r["split"] == "train"][1:]
    steps_per_s = float(np.mean(rates))
    print(
        json.dumps(
            {
                "bench": "neuronio_step",
                "d_m": config.model.num_memory,
                "mlp_num_layers": config.model.mlp_num_layers,
                "batch": args.batch,
                "window_ms": 500,
                "backend": jax.default_backend(),
                "steps_per_s": round(steps_per_s, 3),
                "paper_recipe_hours": round(
                    neuronio_routing.EPOCHS
                    * neuronio_routing.BATCHES_PER_EPOCH
                    / steps_per_s
                    / 3600,
                    1,
                ),  # fmt: skip
            }
        )
    )


if __name__ == "__main__":
    main()
