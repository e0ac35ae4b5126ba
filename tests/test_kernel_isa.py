"""The portable (x86-64 baseline) build of the fused kernels equals the XLA path too.

On a CPU with AVX2 the kernels' AVX2 build runs, so the baseline build, which is what a CPU
without AVX2 runs, would otherwise go untested here. ``ELM_JAX_KERNEL_ISA=baseline`` selects it
for a whole process: a subprocess runs a cross-section of the kernel-against-XLA tests (the
network, the single neuron's memory loop, its sparse projection and its readout) under it,
after checking that the library reports the baseline build as the one running.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from elm_jax.network import fused, fused_build

pytestmark = pytest.mark.skipif(
    fused_build._compiler() is None, reason="no C++ compiler: the fused kernel cannot be built"
)

HERE = os.path.dirname(os.path.abspath(__file__))
SELECTED = (
    "test_fused.py::test_fused_kernel_any_batch_and_length",
    "test_neuron_fused.py::test_memory_scan_equals_xla_in_values_and_every_gradient",
    "test_neuron_fused.py::test_sparse_projection_equals_the_dense_product_in_values_and_gradients",
    "test_neuron_fused.py::"
    "test_readout_on_the_kernels_layout_equals_the_product_in_values_and_gradients",
    "test_neuron_fused.py::test_traced_memory_scan_equals_the_trace_then_the_xla_scan",
    "test_fused_decode.py::test_decode_on_the_kernels_layout_equals_the_product",
)

CHECK = (
    "from elm_jax.network import fused; assert fused.available(), fused.unavailable_reason(); "
    "print('ISA', fused.instruction_set())"
)


def test_the_running_build_is_reported():
    assert fused.available(), fused.unavailable_reason()
    assert fused.instruction_set() in ("avx2", "baseline")


def test_baseline_build_equals_xla_in_values_and_gradients():
    env = {**os.environ, "ELM_JAX_KERNEL_ISA": "baseline", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ISA baseline" in done.stdout, done.stdout
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += [os.path.join(HERE, node) for node in SELECTED]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=HERE)
    tail = done.stdout[-3000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail and "failed" not in tail, tail
