"""ELM neurons and networks of ELM neurons in JAX/Flax (see README.md and docs/)."""

from importlib import metadata as _metadata

try:
    __version__: str | None = _metadata.version("elm_jax")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = None
