"""The ELM network's fixed random wiring (docs/science.md §3), drawn once with NumPy.

Axis legend: ``n`` neuron, ``s`` synapse. Each neuron has exactly ``k_c`` synapses, ordered
``[external (k_ext) | recurrent (k_rec)]`` and sorted by branch inside each block;
``source`` indexes the pool ``[e_t ; y_{t-1}]`` and ``branch`` says which of the ``d_tree``
branches the synapse feeds. Drawn from ``wiring_seed`` so it is identical on every process and
device. `choose_connectivity` picks how each part of the pool is read (gather or dense).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Measured on CPU by bench/network_speed.py (see docs/performance-log.md): the dense masked matmul wins
# while its multiply count per neuron is within this factor of the neuron's own multiply count.
DENSE_MAX_RATIO = 16.0


@dataclasses.dataclass(frozen=True)
class Wiring:
    """Fixed synapse wiring of a network, as NumPy arrays.

    Attributes:
      source: ``[n, s]`` int32 index into the pool ``[e ; y]`` (``< external_dim`` is external).
      branch: ``[n, s]`` int32 branch of each synapse, ``0 <= branch < num_branches``.
      num_external: synapses per neuron that read the external input (the first ones).
      external_dim: width D_ext of the external part of the pool.
    """

    source: np.ndarray
    branch: np.ndarray
    num_external: int
    external_dim: int


def num_recurrent_synapses(synapses_per_neuron: int, recurrent_fraction: float) -> int:
    """Recurrent synapses per neuron: ``round(recurrent_fraction * k_c)`` (Python rounding)."""
    return int(round(recurrent_fraction * synapses_per_neuron))


def validate_wiring_args(
    *,
    num_neurons: int,
    synapses_per_neuron: int,
    num_branches: int,
    external_dim: int,
    recurrent_fraction: float,
) -> None:
    """Raises ValueError naming the field, the value and what is valid for impossible wirings."""
    if int(num_neurons) != num_neurons or num_neurons < 1:
        raise ValueError(f"num_neurons={num_neurons!r} is invalid: must be an integer >= 1")
    if int(num_branches) != num_branches or num_branches < 1:
        raise ValueError(f"num_branches={num_branches!r} is invalid: must be an integer >= 1")
    if int(external_dim) != external_dim or external_dim < 1:
        raise ValueError(f"external_dim={external_dim!r} is invalid: must be an integer >= 1")
    if (
        int(synapses_per_neuron) != synapses_per_neuron
        or synapses_per_neuron < num_branches
        or synapses_per_neuron % num_branches
    ):
        raise ValueError(
            f"synapses_per_neuron (k_c)={synapses_per_neuron!r} is invalid: must be a positive "
            f"multiple of num_branches (d_tree)={num_branches}"
        )
    pool = external_dim + num_neurons
    if synapses_per_neuron > pool:
        raise ValueError(
            f"synapses_per_neuron (k_c)={synapses_per_neuron} is larger than the presynaptic pool "
            f"D_ext + N = {external_dim} + {num_neurons} = {pool}: must be <= {pool}"
        )
    if not (isinstance(recurrent_fraction, (int, float)) and 0.0 <= recurrent_fraction <= 1.0):
        raise ValueError(
            f"recurrent_fraction={recurrent_fraction!r} is invalid: must be a number in [0, 1]"
        )


def _draw_sources(rng: np.random.Generator, pool_size: int, count: int) -> np.ndarray:
    """``count`` indices in ``[0, pool_size)``, without replacement while the pool allows it.

    Beyond the pool size, further whole permutations are appended, so every source is used
    either floor or ceil(count / pool_size) times.
    """
    if count == 0:
        return np.zeros((0,), np.int64)
    reps = -(-count // pool_size)
    return np.concatenate([rng.permutation(pool_size) for _ in range(reps)])[:count]


def make_wiring(
    *,
    num_neurons: int,
    synapses_per_neuron: int,
    num_branches: int,
    external_dim: int,
    recurrent_fraction: float,
    seed: int,
) -> Wiring:
    """Draws the network's wiring with ``numpy.random.default_rng(seed)`` (docs/science.md §3).

    Each neuron gets exactly ``k_c`` synapses, ``round(recurrent_fraction * k_c)`` of them
    recurrent, and exactly ``k_c / d_tree`` synapses per branch; which synapses of a branch are
    recurrent is random.
    """
    validate_wiring_args(
        num_neurons=num_neurons,
        synapses_per_neuron=synapses_per_neuron,
        num_branches=num_branches,
        external_dim=external_dim,
        recurrent_fraction=recurrent_fraction,
    )
    k_c = synapses_per_neuron
    k_rec = num_recurrent_synapses(k_c, recurrent_fraction)
    k_ext = k_c - k_rec
    per_branch = k_c // num_branches
    rng = np.random.default_rng(seed)
    source = np.empty((num_neurons, k_c), np.int32)
    branch = np.empty((num_neurons, k_c), np.int32)
    for n in range(num_neurons):
        # Balanced random branch assignment; each block is sorted by branch so that with no
        # recurrent synapses the layout is the single neuron's (branch = synapse // d_brch).
        branches = rng.permutation(np.repeat(np.arange(num_branches), per_branch))
        ext_branch, rec_branch = np.sort(branches[:k_ext]), np.sort(branches[k_ext:])
        ext_src = _draw_sources(rng, external_dim, k_ext)
        rec_src = external_dim + _draw_sources(rng, num_neurons, k_rec)
        source[n] = np.concatenate([ext_src, rec_src])
        branch[n] = np.concatenate([ext_branch, rec_branch])
    return Wiring(source, branch, k_ext, external_dim)


def choose_connectivity(
    *, pool_size: int, num_synapses: int, num_branches: int, neuron_macs: int
) -> str:
    """``"dense"`` or ``"gather"`` for one part of the pool, by shape.

    The dense product costs ``pool_size * d_tree`` multiply-adds per neuron and step, but runs as
    one large matmul; the gather costs ``num_synapses`` lookups, and its gradient is a scatter-add
    that XLA runs slowly on CPU. Dense wins while its cost stays within `DENSE_MAX_RATIO` times the
    neuron's own multiply-adds per step (``neuron_macs``: synapses + MLP + readout), i.e. while it
    does not dominate the step (rule fitted to bench/network_speed.py, see docs/performance-log.md).
    """
    if num_synapses == 0:
        return "dense"
    return "dense" if pool_size * num_branches <= DENSE_MAX_RATIO * neuron_macs else "gather"
