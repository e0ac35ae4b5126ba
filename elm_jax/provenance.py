"""Where a result came from: package and library versions, git commit, backend and device.

`collect()` returns the `provenance` block of summary.json and of every sweep trial record
(docs/interfaces.md). The git fields describe the checkout the `elm_jax` package was imported
from; they are None when that is not a git checkout or git is not installed, and they are read
once per process. Nothing here raises: a field that cannot be read is None.
"""

from __future__ import annotations

import functools
import os
import subprocess
from importlib import metadata
from typing import Any

GIT_TIMEOUT_S = 10.0
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git(directory: str, *args: str) -> str | None:
    """stdout of `git -C directory args...`, or None when git is absent or fails."""
    try:
        done = subprocess.run(
            ["git", "-C", directory, *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.cache
def git_state(directory: str = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding `directory` as tracked source, else (None, None).

    `directory` must itself be tracked there (so a package installed into some other project's
    tree does not report that project's commit). Dirty: tracked files differ from the commit
    (untracked files do not count).
    """
    if _git(directory, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if commit is None:
        return None, None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return commit.strip(), None if status is None else bool(status.strip())


@functools.cache
def _static() -> dict[str, Any]:
    # Here, not at the top: a sweep driver collects provenance without loading jax at import.
    import jax

    import elm_jax

    commit, dirty = git_state()
    return {
        "package_version": elm_jax.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "jax_version": jax.__version__,
        "flax_version": _version("flax"),
        "optax_version": _version("optax"),
    }


def collect(*, devices: bool = True) -> dict[str, Any]:
    """The provenance fields; `devices=False` leaves backend and device_kind None.

    Reading the devices starts the JAX backend; a process that only coordinates others (a sweep
    driver) passes False so that it never claims an accelerator.
    """
    out = dict(_static())
    out["backend"] = out["device_kind"] = None
    if devices:
        try:
            import jax  # only when devices are asked for (see _static)

            out["backend"] = jax.default_backend()
            out["device_kind"] = jax.devices()[0].device_kind
        except RuntimeError:  # no backend could start
            pass
    return out


FIELDS = (
    "package_version",
    "git_commit",
    "git_dirty",
    "jax_version",
    "flax_version",
    "optax_version",
    "backend",
    "device_kind",
)

__all__ = ["FIELDS", "collect", "git_state"]
