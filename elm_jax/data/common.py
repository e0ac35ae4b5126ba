"""Shared helpers of the data layer: cache locations, checksums, named errors."""

from __future__ import annotations

import hashlib
import os

import numpy as np

ENV_DATA_DIR = "ELM_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for (the message says how to get them)."""


class DataCorruptError(ValueError):
    """A data file exists but is truncated, corrupt or of the wrong size."""


class ChecksumError(DataCorruptError):
    """A file's sha256 differs from its pinned value."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str | None:
    """The directory searched for real data files: `data_dir`, else `$ELM_DATA_DIR`, else None."""
    if data_dir is not None:
        return os.fspath(data_dir)
    return os.environ.get(ENV_DATA_DIR) or None


def cache_dir(data_dir: str | os.PathLike | None = None) -> str:
    """Where generated/downloaded defaults are cached.

    `data_dir` (or `$ELM_DATA_DIR`) when given, else `~/.cache/elm_jax/data`. The defaults live
    in sub-folders named after the generator and its version, so they never shadow real files.
    """
    resolved = resolve_data_dir(data_dir)
    if resolved is not None:
        return resolved
    return os.path.join(os.path.expanduser("~"), ".cache", "elm_jax", "data")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """{"path", "sha256", "bytes"} of a file, for `Dataset.info["files"]`."""
    path = os.fspath(path)
    return {"path": path, "sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def check_positive_int(name: str, value: int) -> int:
    """`value` as an int; ValueError naming `name` unless it is a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_rate(rate: float) -> float:
    """An input-dropout rate in [0, 1) as a float; ValueError otherwise."""
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"input_dropout must be in [0, 1), got {rate!r}")
    return float(rate)


def epoch_rows(step: int, batch_size: int, seed: int, num_train: int) -> np.ndarray:
    """Rows of training batch `step`: epoch e walks a permutation of num_train drawn from (seed, e)."""
    batch_size = check_positive_int("batch_size", batch_size)
    per_epoch = max(1, num_train // batch_size)
    epoch, within = divmod(int(step), per_epoch)
    perm = np.random.default_rng([int(seed), epoch]).permutation(num_train)
    return perm[np.arange(within * batch_size, (within + 1) * batch_size) % num_train]


class EpochTrainBatches:
    """Training batches that walk the training split epoch by epoch (`epoch_rows`), for a
    dataset class that defines `num_examples(split)` and `_batch(split, rows, rng)` (which
    applies input dropout when given `rng`)."""

    def train_indices(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Training rows of batch `step`: epoch e walks a permutation drawn from (seed, e)."""
        return epoch_rows(step, batch_size, seed, self.num_examples("train"))

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Training batch `step`, deterministic in (step, seed), input dropout applied."""
        rows = self.train_indices(step, batch_size, seed)
        return self._batch("train", rows, rng=np.random.default_rng([int(seed), int(step), 1]))
