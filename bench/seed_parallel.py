"""Throughput of S seeds trained as one vmapped program against S seeds one after another.

Both modes run the same jitted `elm_jax.train.steps.train_step` on the same fixed batches (data
loading excluded, compilation excluded); "sequential" steps S one-seed states in turn, "vmapped"
steps one S-seed state. Prints one JSON line per mode and a final line with the speed-up.

    python bench/seed_parallel.py --seeds 4 --task shd_adding --steps 30
    python bench/seed_parallel.py --seeds 4 --task enwik8 --steps 30

Expected run time: about a minute per task on one CPU core (mostly compilation).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from elm_jax import parallel
from elm_jax.configs import enwik8, shd_adding
from elm_jax.configs.merge import resolve_config
from elm_jax.data.registry import DATASETS
from elm_jax.models import ModelConfig
from elm_jax.optim import OptimConfig
from elm_jax.runtime import enable_compilation_cache
from elm_jax.train.steps import StepSpec, init_state, train_step

CONFIGS = {"shd_adding": shd_adding, "enwik8": enwik8}  # --task -> its config module


def fixed_batch(spec: StepSpec, num_seeds: int, batch_size: int, seq_len: int) -> dict:
    rng = np.random.default_rng(0)
    m = spec.model
    if m.task_kind.token_inputs:
        x = rng.integers(0, 256, size=(num_seeds, batch_size, seq_len + 1)).astype(np.int32)
        return {"inputs": x[..., :-1], "labels": x[..., 1:]}
    inputs = rng.poisson(0.05, size=(num_seeds, batch_size, seq_len, m.input_dim)).astype(
        np.float32
    )
    labels = rng.integers(0, m.num_classes, size=(num_seeds, batch_size)).astype(np.int32)
    return {"inputs": inputs, "labels": labels}


def time_steps(spec, seeds, batch, mesh, steps) -> float:
    state = init_state(spec, seeds, [spec.optim.learning_rate] * len(seeds), mesh)
    batch = parallel.put_global(batch, parallel.train_batch_sharding(mesh))
    state = train_step(state, batch, spec=spec)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state = train_step(state, batch, spec=spec)
    jax.block_until_ready(state)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--task", choices=tuple(CONFIGS), default="shd_adding")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    enable_compilation_cache()

    cfg = resolve_config(CONFIGS[args.task].get_config(args.variant or "N=16,d_m=8,k_c=16"))
    spec = StepSpec.create(
        ModelConfig.from_dict(cfg.model.to_dict()),
        OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps),
    )
    seq_len = DATASETS[cfg.data.name].example_length(cfg.data.bin_ms, cfg.data.seq_len)
    b = cfg.data.batch_size
    device = jax.devices()[0]
    mesh = parallel.make_mesh(1, [device])
    common = {"task": args.task, "S": args.seeds, "batch": b, "T": seq_len, "steps": args.steps,
              "device": device.device_kind, "N": spec.model.num_neurons}  # fmt: skip

    one = fixed_batch(spec, 1, b, seq_len)
    seconds = sum(time_steps(spec, [s], one, mesh, args.steps) for s in range(args.seeds))
    seq = args.seeds * args.steps / seconds
    print(json.dumps({"mode": "sequential", "seconds": seconds, "seed_steps_per_s": seq, **common}))

    mesh_s = parallel.make_mesh(args.seeds, [device])
    many = fixed_batch(spec, args.seeds, b, seq_len)
    seconds = time_steps(spec, list(range(args.seeds)), many, mesh_s, args.steps)
    vm = args.seeds * args.steps / seconds
    print(json.dumps({"mode": "vmapped", "seconds": seconds, "seed_steps_per_s": vm, **common}))
    print(json.dumps({"speedup_vmapped_over_sequential": vm / seq, **common}))


if __name__ == "__main__":
    main()
