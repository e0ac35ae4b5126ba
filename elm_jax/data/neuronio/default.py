"""The offline NeuronIO-style default `neuronio_default`: simulations built and cached on first use.

A labelled stand-in for NeuronIO, never the Hay L5PC data: `elm_jax.data.neuronio.synthetic` drives
NEURON's reconstructed pyramidal cell with 639 excitatory and 639 inhibitory Poisson inputs.
Each simulation is written in the layout of the real data's preprocessed arrays
(`elm_jax.data.neuronio.files.Simulations`: inputs [k, t, 1278] int8 with +1 / -1 / 0, spikes and
soma_mv [k, t] float32), so the NeuronIO windows, loss and metrics apply unchanged.

Cache: `<cache>/neuronio_default/<key>/` (`key` hashes the generator version, the simulation
parameters, the seed and the split sizes) holds `train_00.npz ...`, `validation_00.npz`,
`test_00.npz` (compressed, up to `SIMS_PER_FILE` simulations each) and `generator.json`: the
parameters, seed, NEURON version, mechanism hash, sha256 and size of every file, generation
wall and CPU time, and the output statistics. The folder is assembled under a temporary name
and renamed into place; `load` checks every file against its recorded sha256.

Simulation j (numbered over train, then validation, then test) uses the random stream
`default_rng([seed, j])`, so the arrays do not depend on how many worker processes built them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import multiprocessing
import os
import resource
import time

import numpy as np

from elm_jax.data.common import DataCorruptError, cache_dir, file_record
from elm_jax.data.neuronio import synthetic as sim
from elm_jax.data.neuronio.files import Simulations, check_arrays, synapse_signs
from elm_jax.data.neuronio.tasks import NeuronIODataset
from elm_jax.files import atomic_folder

GENERATOR_VERSION = 1
SOURCE = "neuronio-default"
SPLIT_SIZES = {"train": 96, "validation": 16, "test": 16}
SIMS_PER_FILE = 32
MANIFEST = "generator.json"


@dataclasses.dataclass(frozen=True)
class DefaultConfig:
    """The whole recipe of the default: simulation parameters, seed, simulations per split."""

    params: sim.SimParams = sim.SimParams()
    seed: int = 0
    split_sizes: tuple[tuple[str, int], ...] = tuple(SPLIT_SIZES.items())

    def key(self) -> str:
        """A short hash of everything that changes the arrays."""
        text = json.dumps(
            [GENERATOR_VERSION, dataclasses.asdict(self), sim.mechanisms_hash()], sort_keys=True
        )
        return f"v{GENERATOR_VERSION}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def default_dir(data_dir: str | None = None, cfg: DefaultConfig = DefaultConfig()) -> str:
    """Folder of the cached default built with `cfg`."""
    return os.path.join(cache_dir(data_dir), "neuronio_default", cfg.key())


# One cell per worker process (building it takes about a second; NEURON state is global).
_CELL: sim.PyramidalCell | None = None


def _init_worker(mechanisms: str, params: sim.SimParams) -> None:
    global _CELL
    _CELL = sim.PyramidalCell(mechanisms, params)


def simulate_one(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs [t, 1278] int8, spikes [t] float32, soma_mv [t] float32) of simulation `index`.

    Needs the worker's cell (`_init_worker`).
    """
    assert _CELL is not None, "_init_worker was not called in this process"
    rng = np.random.default_rng([seed, index])
    rates = sim.input_rates(rng, _CELL.params, _CELL.branch_of)
    bins, times = sim.draw_spikes(rng, rates)
    soma_mv, spike_times = _CELL.run(times)
    inputs = bins.astype(np.int8) * synapse_signs()[None, :]
    return inputs, sim.bin_spike_times(spike_times, len(soma_mv)), soma_mv


def statistics(sims: Simulations) -> dict:
    """Output firing rate, spiking bins, soma voltage spread and the measured input rates."""
    seconds = sims.duration_ms / 1000.0
    per_sim = sims.spikes.sum(axis=1)
    return {
        "num_simulations": sims.num_simulations,
        "firing_rate_hz": {"mean": float(per_sim.mean() / seconds),
                           "median": float(np.median(per_sim) / seconds),
                           "max": float(per_sim.max() / seconds)},
        "fraction_bins_with_spike": float(sims.spikes.mean()),
        "fraction_simulations_silent": float((per_sim == 0).mean()),
        "soma_mv": {"mean": float(sims.soma_mv.mean()), "std": float(sims.soma_mv.std()),
                    "min": float(sims.soma_mv.min()), "max": float(sims.soma_mv.max())},
        "input_rate_hz": {"excitatory": float((sims.inputs[..., :639] == 1).mean() * 1000),
                          "inhibitory": float((sims.inputs[..., 639:] == -1).mean() * 1000)},
    }  # fmt: skip


def arrays_sha256(sims: Simulations) -> str:
    """sha256 of the arrays' bytes (inputs, spikes, soma_mv): equal for equal builds, unlike
    the file's own sha256, which also covers the zip members' time stamps."""
    digest = hashlib.sha256()
    for array in (sims.inputs, sims.spikes, sims.soma_mv):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _file_names(cfg: DefaultConfig) -> dict[str, list[tuple[str, range]]]:
    """split -> [(file name, simulation indices)], indices numbered over the splits in order."""
    names, first = {}, 0
    for split, size in cfg.split_sizes:
        chunks = range(0, size, SIMS_PER_FILE)
        names[split] = [
            (f"{split}_{n:02d}.npz", range(first + c, first + min(c + SIMS_PER_FILE, size)))
            for n, c in enumerate(chunks)
        ]
        first += size
    return names


def simulate(cfg: DefaultConfig, mechanisms: str, workers: int | None = None) -> list:
    """All simulations of `cfg` in index order, over `workers` processes (default: all CPUs)."""
    total = sum(size for _, size in cfg.split_sizes)
    workers = max(1, min(workers or os.cpu_count() or 1, total))
    context = multiprocessing.get_context("spawn")  # NEURON's global state is not fork-safe
    with context.Pool(workers, _init_worker, (mechanisms, cfg.params)) as pool:
        return pool.starmap(simulate_one, [(cfg.seed, j) for j in range(total)], chunksize=1)


def _stack(results: list, indices) -> Simulations:
    return Simulations(*(np.stack([results[j][a] for j in indices]) for a in range(3)))


def build_neuronio_default(
    data_dir: str | None = None, cfg: DefaultConfig = DefaultConfig(), workers: int | None = None
) -> str:
    """Returns the folder of the cached default, simulating it first when absent."""
    final = default_dir(data_dir, cfg)
    if os.path.isfile(os.path.join(final, MANIFEST)):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final + ".lock", "w") as lock:  # one builder per cache folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, MANIFEST)):
            return final
        return _build(final, cfg, workers)


def _build(final: str, cfg: DefaultConfig, workers: int | None) -> str:
    # NEURON (the neuronio-sim extra) is needed only to simulate, never to read a cached build.
    import neuron

    sim.check_params(cfg.params)
    parent = os.path.dirname(final)
    mechanisms = sim.compile_mechanisms(os.path.join(parent, f"mechanisms-{sim.mechanisms_hash()}"))
    start, cpu_start = time.time(), _cpu_seconds()
    results = simulate(cfg, mechanisms, workers)
    seconds, cpu_seconds = time.time() - start, _cpu_seconds() - cpu_start
    with atomic_folder(final, MANIFEST) as tmp:
        files, stats = {}, {}
        for split, chunks in _file_names(cfg).items():
            indices = [j for _, chunk in chunks for j in chunk]
            stats[split] = statistics(_stack(results, indices))
            for name, chunk in chunks:
                sims = _stack(results, chunk)
                check_arrays(sims, name)
                path = os.path.join(tmp, name)
                np.savez_compressed(path, inputs=sims.inputs, spikes=sims.spikes,
                                    soma_mv=sims.soma_mv)  # fmt: skip
                record = file_record(path)
                files[name] = {"sha256": record["sha256"], "bytes": record["bytes"],
                               "arrays_sha256": arrays_sha256(sims)}  # fmt: skip
        manifest = {
            "dataset": SOURCE,
            "generator_version": GENERATOR_VERSION,
            "key": cfg.key(),
            "simulator": f"NEURON {neuron.__version__}",
            "morphology": sim.MORPHOLOGY,
            "mechanisms_sha256": hashlib.sha256(sim.NMDA_MOD.encode()).hexdigest(),
            "config": dataclasses.asdict(cfg),
            "files": files,
            "generation_seconds": round(seconds, 1),
            "generation_cpu_seconds": round(cpu_seconds, 1),
            "workers": max(1, min(workers or os.cpu_count() or 1, len(results))),
            "statistics": stats,
        }
        with open(os.path.join(tmp, MANIFEST), "w") as handle:
            json.dump(manifest, handle, indent=1)
    return final


def verified_files(folder: str) -> dict[str, list[str]]:
    """split -> file paths of a built folder, each checked against the manifest's sha256.

    DataCorruptError naming the file (and saying to delete the folder) when one is missing,
    resized or changed.
    """
    with open(os.path.join(folder, MANIFEST)) as handle:
        manifest = json.load(handle)
    splits: dict[str, list[str]] = {}
    for name, expected in sorted(manifest["files"].items()):
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or file_record(path)["sha256"] != expected["sha256"]:
            raise DataCorruptError(
                f"neuronio_default: cached file {path} is missing or differs from its sha256 "
                f"{expected['sha256'][:12]}... in {MANIFEST}; delete {folder} to rebuild it"
            )
        splits.setdefault(name.rsplit("_", 1)[0], []).append(path)
    return splits


def load_neuronio_default(name: str, data_dir: str | None, **options):
    """The NeuronIO-style default as a NeuronIO dataset (registry loader), built when absent."""
    if options:
        raise ValueError(f"{name} takes no data options (got {sorted(options)}): remove them")
    folder = build_neuronio_default(data_dir)
    return NeuronIODataset(verified_files(folder), name=name, source=SOURCE)
