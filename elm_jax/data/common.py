"""Shared helpers of the data layer: cache locations, checksums, named errors."""

from __future__ import annotations

import hashlib
import os

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
