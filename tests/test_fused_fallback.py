"""Without a C++ compiler the package still runs: the ELM network takes the XLA path and the log
says so once (the fused kernel's fallback, `elm_jax.network.fused`)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging
import jax, jax.numpy as jnp
logging.basicConfig(level=logging.WARNING, format="LOG %(message)s")
from elm_jax.network import fused
from elm_jax.network.config import NetworkConfig
from elm_jax.network.layers import ELMNetwork
assert not fused.available()
print("REASON", fused.unavailable_reason())
for kernel in ("auto", "cpu_fused", "auto"):
    net = ELMNetwork(NetworkConfig(num_neurons=3, num_memory=2, synapses_per_neuron=4,
                                   external_dim=5, kernel=kernel))
    e = jnp.ones((2, 4, 5))
    y, _ = net.apply(net.init(jax.random.PRNGKey(0), e), e)
    assert y.shape == (2, 4, 3) and bool(jnp.all(jnp.isfinite(y)))
print("RAN", fused.resolve_kernel("auto", 2), fused.resolve_kernel("cpu_fused", 2))
"""


def test_without_a_compiler_the_network_runs_on_xla_and_says_why_once(tmp_path):
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "XDG_CACHE_HOME": str(tmp_path)}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REASON no C++ compiler found" in done.stdout
    assert "RAN xla xla" in done.stdout
    logged = [line for line in done.stderr.splitlines() if line.startswith("LOG fused CPU kernel")]
    assert len(logged) == 1, done.stderr[-3000:]
    assert "the XLA path runs" in logged[0]
