"""Process-level JAX settings for command lines and tests (never read by models)."""

from __future__ import annotations

import os

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "elm_jax", "jax")


def enable_compilation_cache(cache_dir: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache, caching every compiled program.

    The directory is `cache_dir`, else `$JAX_COMPILATION_CACHE_DIR`, else
    `~/.cache/elm_jax/jax`. Returns the directory used.
    """
    import jax  # on first use: importing this module must leave XLA_FLAGS settable

    path = cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_CACHE_DIR
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
