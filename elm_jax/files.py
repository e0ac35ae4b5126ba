"""Files written atomically, and JSON made of plain values (CONTRIBUTING.md habit 5).

Every file the package writes for others to read (summaries, progress, caches, reports,
figures) goes through `atomic_path`, and every generated data folder through `atomic_folder`:
the writer fills a temporary file or folder next to the target, which is renamed into place
only when the writer succeeded, so a reader never sees a half-written one and a failed writer
leaves nothing behind. `jsonable` turns NumPy values into the JSON types and non-finite numbers
into None (results never hold NaN or inf).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to `final_path`; renames it into place only on success.

    The temporary name (".tmp-<name>-<random>") keeps the target's extension out of the end, so
    it never matches a reader's "*.json"; an interrupted or failing writer leaves neither a
    half-written `final_path` nor the temporary file behind (os.replace is atomic on one
    filesystem). Missing folders are created.
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


@contextlib.contextmanager
def atomic_folder(final_path: str | os.PathLike, marker: str) -> Iterator[str]:
    """Yields a temporary folder next to `final_path`; renames it into place only on success.

    `marker` is the file the builder writes last. When another process renamed its complete
    folder into place first (the marker is there), this one is dropped; otherwise a failed
    rename raises. The temporary folder never outlives the call.
    """
    final_path = os.fspath(final_path)
    directory = os.path.dirname(final_path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(final_path) + "-", dir=directory)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
        try:
            os.rename(tmp, final_path)
        except OSError:
            if not os.path.isfile(os.path.join(final_path, marker)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(final_path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `final_path` atomically."""
    with atomic_path(final_path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def write_text_atomic(final_path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `final_path` atomically."""
    with atomic_path(final_path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON with sorted keys atomically; NaN or inf raise ValueError."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def finite_or_none(x: Any) -> float | None:
    """A float for JSON, or None where it is NaN/inf: results never hold non-finite numbers."""
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(x: Any) -> Any:
    """`x` with NumPy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return finite_or_none(x)
    return x
