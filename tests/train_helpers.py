"""Tiny real datasets and configs for the trainer tests (no downloads, no embedded defaults).

Bytes: an in-memory `elm_jax.data.ByteDataset`. Spikes: a tiny SHD-format pair of files written
with `elm_jax.data.shd.files.write_shd` and read back through `elm_jax.data.load(..., data_dir=...)`.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from elm_jax.configs import smoke
from elm_jax.data import ByteDataset
from elm_jax.data.shd.files import write_shd

TEXT = (
    b"<page><title>Anarchism</title><text>Anarchism is a political philosophy and movement "
    b"that is sceptical of authority and rejects all involuntary, coercive forms of hierarchy. "
    b"[[Category:Political ideologies]]</text></page>\n"
)


def byte_dataset(seq_len: int = 16, repeats: int = 60) -> ByteDataset:
    """A small real ByteDataset (90/5/5 split of a repeated wiki-like text)."""
    data = np.frombuffer(TEXT * repeats, np.uint8)
    return ByteDataset(data, name="tiny-bytes", source="tiny-bytes", seq_len=seq_len)


def write_tiny_shd(directory: str, num_train: int = 60, num_test: int = 24) -> str:
    """Writes shd_train.h5 / shd_test.h5 whose digit label sets which channels spike."""
    rng = np.random.default_rng(0)
    for name, n in (("shd_train.h5", num_train), ("shd_test.h5", num_test)):
        labels = rng.integers(0, 20, size=n)
        times, units = [], []
        for label in labels:
            k = 40
            units.append((label * 30 + rng.integers(0, 30, size=k)) % 700)
            times.append(np.sort(rng.uniform(0.0, 0.95, size=k)))
        write_shd(os.path.join(directory, name), times, units, labels)
    return directory


def lm_config(**overrides: Any) -> ml_collections.ConfigDict:
    """The smoke LM config shrunk further for unit tests."""
    c = smoke.get_config()
    c.model.num_neurons = 8
    c.model.num_memory = 2
    c.model.synapses_per_neuron = 4
    c.model.embed_dim = 4
    c.data.seq_len = 16
    c.data.eval_chunk_len = 16
    c.optim.warmup_steps = 0
    c.num_train_steps = 6
    c.log_every = 2
    c.eval_every = 3
    c.checkpoint_every = 2
    c.data.val_max_batches = 2
    c.data.test_max_batches = 2
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def cls_config(**overrides: Any) -> ml_collections.ConfigDict:
    """The smoke SHD-Adding config at 100 ms bins (T = 20) for unit tests."""
    c = smoke.get_config("classification")
    c.data.bin_ms = 100.0
    c.data.eval_batch_size = 8
    c.num_train_steps = 6
    c.log_every = 2
    c.eval_every = 3
    c.checkpoint_every = 3
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


class NonFiniteAt:
    """Wraps a dataset so that training batch `step` holds NaN inputs (a forced divergence)."""

    def __init__(self, dataset: Any, step: int):
        self.dataset, self.step = dataset, step
        self.info = dataset.info

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        batch = self.dataset.train_batch(step, batch_size, seed)
        if step == self.step:
            batch = dict(batch, inputs=np.full_like(batch["inputs"], np.nan, dtype=np.float32))
        return batch

    def eval_batches(self, split: str, batch_size: int):
        return self.dataset.eval_batches(split, batch_size)


class CountingDataset:
    """Records how many batches were asked for (to show bad input fails before any work)."""

    def __init__(self, dataset: Any):
        self.dataset, self.info, self.calls = dataset, dataset.info, 0

    def train_batch(self, *args: Any) -> dict:
        self.calls += 1
        return self.dataset.train_batch(*args)

    def eval_batches(self, *args: Any):
        self.calls += 1
        return self.dataset.eval_batches(*args)

    def eval_stream(self, *args: Any):
        self.calls += 1
        return self.dataset.eval_stream(*args)


def saved_steps(workdir: str) -> list[int]:
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
        return sorted(mngr.all_steps())


def load_saved_state(workdir: str, step: int | None = None) -> dict:
    """The saved train state at `step` (default: latest) as NumPy arrays."""
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
        step = mngr.latest_step() if step is None else step
        restored = mngr.restore(step, args=ocp.args.StandardRestore())
    import jax

    return jax.tree.map(np.asarray, restored)
