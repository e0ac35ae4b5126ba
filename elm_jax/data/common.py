"""Shared helpers of the data layer: cache locations, atomic writes, checksums, named errors."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator

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


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to `final_path`; renames it into place only on success.

    An interrupted or failing writer leaves neither a half-written `final_path` nor the
    temporary file behind (os.replace is atomic on one filesystem).
    """
    final_path = os.fspath(final_path)
    directory = os.path.dirname(final_path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(final_path) + "-", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(final_path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `final_path` atomically (temporary file, then rename)."""
    with atomic_path(final_path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def file_record(path: str | os.PathLike) -> dict:
    """{"path", "sha256", "bytes"} of a file, for `Dataset.info["files"]`."""
    path = os.fspath(path)
    return {"path": path, "sha256": sha256_file(path), "bytes": os.path.getsize(path)}
