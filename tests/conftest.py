"""Test session setup: 8 fake CPU devices for sharding tests and the persistent compile cache."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax"),
)

from elm_jax.runtime import enable_compilation_cache  # noqa: E402

enable_compilation_cache()
