"""Orbax checkpointing of the whole train state: periodic, keep the N latest, restore on start.

The train state holds, per seed, the current parameters and optimizer state *and* the best
parameters by validation loss with their step (see `elm_jax.train.steps`). One `CheckpointManager`
therefore gives periodic, keep-N, best-by-validation and exact resume together: a seed-wise best
cannot be expressed with Orbax's single scalar `best_fn` when S seeds train as one program.
Orbax finalizes a step directory only once it is complete, so a run killed mid-save restarts from
the previous complete step. With several processes (docs/training.md, multi-host) every process
calls `save` and `restore` at the same steps: each writes and reads the shards of its own
devices, process 0 the metadata, so the directory must be on storage every process sees.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores train states under `directory` (one subdirectory per step)."""

    def __init__(self, directory: str, keep: int = 2, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep_checkpoints={keep!r} must be >= 1")
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any) -> None:
        """Starts saving `state` at `step` (asynchronous; `wait()` blocks until it is on disk)."""
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, step: int, like: Any) -> Any:
        """Restores `step` with the shapes, dtypes and shardings of the pytree `like`."""
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like
        )
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
