"""Device mesh for seed- and data-parallel training with `jax.sharding` (no pmap).

The mesh has two axes: `replica` splits the vmapped seed axis `r` of the train state (different
seeds on different devices), `data` splits the batch axis `b` (state replicated along it). Arrays:

    train state leaves   [r, ...]        PartitionSpec("replica")
    train batch leaves   [r, b, ...]     PartitionSpec("replica", "data")
    eval batch leaves    [b, ...]        PartitionSpec("data")   (the same batch for every seed)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

REPLICA, DATA = "replica", "data"


def maybe_initialize_distributed(enabled: bool) -> None:
    """Calls `jax.distributed.initialize()` (multi-host: TPU pods, SLURM) once when `enabled`."""
    if not enabled:
        return
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize()


def choose_replica_size(num_seeds: int, num_devices: int, requested: int = 0) -> int:
    """Devices along `replica`: `requested` if > 0, else the largest divisor shared by both."""
    if requested:
        if num_devices % requested or num_seeds % requested:
            raise ValueError(
                f"parallel.replica_devices={requested} must divide both the device count "
                f"({num_devices}) and the number of seeds ({num_seeds}); use 0 for automatic"
            )
        return requested
    return math.gcd(num_seeds, num_devices)


def make_mesh(
    num_seeds: int,
    devices: Sequence[jax.Device] | None = None,
    replica_devices: int = 0,
) -> Mesh:
    """A (`replica`, `data`) mesh over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    replica = choose_replica_size(num_seeds, len(devices), replica_devices)
    grid = np.asarray(devices, dtype=object).reshape(replica, len(devices) // replica)
    return Mesh(grid, (REPLICA, DATA))


def check_batch_divides(mesh: Mesh, batch_size: int, field: str = "data.batch_size") -> None:
    """Raises ValueError unless `batch_size` splits evenly over the mesh's `data` axis."""
    n = mesh.shape[DATA]
    if batch_size % n:
        raise ValueError(
            f"{field}={batch_size} does not divide the {n} devices of the mesh's data axis "
            f"(mesh {dict(mesh.shape)}); use a multiple of {n}"
        )


def state_sharding(mesh: Mesh) -> NamedSharding:
    """Leading seed axis split over `replica`, replicated over `data`."""
    return NamedSharding(mesh, P(REPLICA))


def train_batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(REPLICA, DATA))


def eval_batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_global(tree: Any, sharding: NamedSharding) -> Any:
    """Places host arrays (identical on every process) as global arrays with `sharding`.

    Every process computes the same full array deterministically, so each device simply takes its
    slice; this is correct for one process and for many.
    """

    def one(x: Any) -> jax.Array:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def fetch(tree: Any) -> Any:
    """The global value of every array of `tree` as NumPy, on every process.

    With one process this is `jax.device_get`. With several, arrays whose shards live on other
    processes (the seed axis split over hosts) are all-gathered first: a collective, so every
    process must call it at the same point of the program.
    """
    from jax.experimental import multihost_utils  # only with several processes

    def one(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree.map(one, tree)


def shard_state(tree: Any, mesh: Mesh) -> Any:
    """Reshards a stacked-seed pytree (leading axis r) to the state sharding."""
    return jax.device_put(tree, state_sharding(mesh))
