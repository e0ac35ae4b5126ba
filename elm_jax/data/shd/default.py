"""Builds and caches the embedded SHD default (see elm_jax.data.shd.synthetic) as SHD-format files.

The cache folder is `<cache>/shd_default/<key>/` where `key` hashes the generator version and
all its parameters; it holds `shd_train.h5`, `shd_test.h5` and `generator.json` (parameters,
speaker table, spike statistics, generation time). The folder is assembled under a temporary
name and renamed into place, so an interrupted build leaves nothing that looks complete.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import resource
import time

import numpy as np

from elm_jax.data.common import cache_dir
from elm_jax.data.shd.files import write_shd
from elm_jax.data.shd.synthetic import GENERATOR_VERSION, SynthConfig, generate, speaker_table
from elm_jax.files import atomic_folder

FILES = ("shd_train.h5", "shd_test.h5")


def default_dir(data_dir: str | None = None, cfg: SynthConfig = SynthConfig()) -> str:
    """Folder of the cached default built with `cfg`."""
    return os.path.join(cache_dir(data_dir), "shd_default", cfg.key())


def spike_statistics(items: list[dict]) -> dict:
    """Spikes per sample, active channels per sample, time span, firing channel spread."""
    counts = np.array([len(item["times"]) for item in items])
    active = np.array([len(np.unique(item["units"])) for item in items])
    last = np.array([float(item["times"].max()) if len(item["times"]) else 0.0 for item in items])
    all_units = np.concatenate([item["units"] for item in items])
    per_channel = np.bincount(all_units, minlength=700)
    return {
        "num_samples": len(items),
        "spikes_per_sample": {"mean": float(counts.mean()), "std": float(counts.std()),
                              "min": int(counts.min()), "median": float(np.median(counts)),
                              "max": int(counts.max())},
        "active_channels_per_sample": {"mean": float(active.mean()), "min": int(active.min()),
                                       "max": int(active.max())},
        "last_spike_s": {"mean": float(last.mean()), "max": float(last.max())},
        "fraction_spikes_after_1s": float(
            sum(int((item["times"] >= 1.0).sum()) for item in items) / max(1, counts.sum())
        ),
        "channels_ever_active": int((per_channel > 0).sum()),
        "channel_quartiles_of_spikes": [float(q) for q in np.percentile(all_units, [25, 50, 75])],
    }  # fmt: skip


def build_shd_default(
    data_dir: str | None = None, cfg: SynthConfig = SynthConfig(), workers: int | None = None
) -> str:
    """Returns the folder of the cached default, generating it first when absent."""
    final = default_dir(data_dir, cfg)
    if _complete(final):
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    # One builder at a time per cache (parallel sweep workers would otherwise all generate).
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(final):
            return final
        return _build(final, cfg, workers)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _complete(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in (*FILES, "generator.json"))


def _build(final: str, cfg: SynthConfig, workers: int | None) -> str:
    start, cpu_start, load_start = time.time(), _cpu_seconds(), os.getloadavg()[0]
    utterances = generate(cfg, workers=workers)
    seconds, cpu_seconds = time.time() - start, _cpu_seconds() - cpu_start
    with atomic_folder(final, "generator.json") as tmp:
        for split, name in zip(("train", "test"), FILES, strict=True):
            items = utterances[split]
            write_shd(os.path.join(tmp, name), [i["times"] for i in items], [i["units"] for i in items],
                      [i["label"] for i in items], [i["speaker"] for i in items],
                      [i["key"] for i in items])  # fmt: skip
        meta = {
            "generator_version": GENERATOR_VERSION,
            "key": cfg.key(),
            "config": dataclasses.asdict(cfg),
            "speakers": speaker_table(cfg),
            "generation_seconds": round(seconds, 1),
            "generation_cpu_seconds": round(cpu_seconds, 1),
            "load_average_1min": [load_start, os.getloadavg()[0]],  # machine load at start / end
            "workers": workers or os.cpu_count(),
            "statistics": {split: spike_statistics(items) for split, items in utterances.items()},
        }
        with open(os.path.join(tmp, "generator.json"), "w") as handle:
            json.dump(meta, handle, indent=1)
    return final
