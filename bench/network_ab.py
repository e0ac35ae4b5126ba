"""The ELM network layer at an earlier commit against the working tree, in one process (JSON lines).

On this kind of machine separate processes differ by up to about ±30 % in speed, so a change
to the network's computation is timed here against its previous version in the same process,
the two interleaved step by step. The previous version is the Flax layer `ELMNetwork` with
``elm_jax/network/scan.py``, ``dynamics.py`` and ``layers.py`` as of ``--base`` (read with
``git show``, loaded as separate modules); the model around it, ``wiring.py``, the ops and
everything else are the working tree's, so the base must take the same constructor arguments
and create the same variables (one `NetworkWeights` class serves both). Each
point's step is built both ways (the same `bench/network_speed.py` step, points and flags),
then every step is timed ``--repeats`` times in turn; one line per point and version with the
median s/step, its ratio to the same-budget LSTM timed in the same loop, the first step's loss
(the two versions should agree to float rounding) and the compile time (lower + compile).

Where the fused CPU kernel runs, the base's steps also call the kernel as of ``--base``: its
sources (``elm_jax/network/kernel/``, read with ``git show``) are compiled into a temporary
folder and registered under their own FFI targets, so a change to the kernel is timed against
the previous kernel in the same process (the base kernel must take the same FFI arguments).

    python bench/network_ab.py --base 0e36aef --threads 1
    python bench/network_ab.py --base HEAD --threads 1 --points many_simple,lstm --repeats 9
    python bench/network_ab.py --base 0e36aef --threads 1 --budget 5e3 --k-c 16 --batch 32 \
        --seq-len 40 --seeds 4 --lstm-tolerance 0.15      # the default sweep's shapes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import network_speed  # noqa: E402  (the same points, step and thread setting)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    """``--base COMMIT`` (default HEAD), then `bench/network_speed.py`'s own flags."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--base", default="HEAD")
    known, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.base, network_speed.parse_args(rest)


def load_previous(base: str):
    """`ELMNetwork` as of commit ``base``: its scan.py, dynamics.py and layers.py."""
    import elm_jax.network.scan as current_scan

    def load(name: str, path: str, replace: dict) -> types.ModuleType:
        try:
            source = subprocess.run(
                ["git", "show", f"{base}:{path}"], cwd=ROOT, check=True, capture_output=True,
                text=True,
            ).stdout  # fmt: skip
        except subprocess.CalledProcessError as err:
            raise SystemExit(
                f"--base {base!r}: git cannot show {path}: {err.stderr.strip()}"
            ) from None
        for old, new in replace.items():
            source = source.replace(old, new)
        module = types.ModuleType(name)
        module.__file__ = f"{base}:{path}"
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        return module

    imports = {
        "from elm_jax.network.scan import": "from previous_scan import",
        "from elm_jax.network.dynamics import": "from previous_dynamics import",
    }
    scan = load("previous_scan", "elm_jax/network/scan.py", imports)
    scan.NetworkWeights = current_scan.NetworkWeights  # one pytree class for both versions
    load("previous_dynamics", "elm_jax/network/dynamics.py", imports)
    return load("previous_layers", "elm_jax/network/layers.py", imports).ELMNetwork


BASE_TARGETS = ("elm_network_forward_base", "elm_network_backward_base")


def load_previous_kernel(base: str) -> str | None:
    """Builds the fused CPU kernel as of commit ``base`` and registers it under `BASE_TARGETS`;
    None when it ran, else why not (the base's steps then call the working tree's kernel)."""
    import ctypes
    import shutil
    import tempfile

    import jax

    from elm_jax.network import fused, fused_build

    if not fused.available():
        return f"the kernel is unavailable: {fused.unavailable_reason()}"
    folder = tempfile.mkdtemp(prefix="elm_kernel_base_")
    for name in (*fused_build._sources(), *fused_build.HEADERS):
        path = f"elm_jax/network/kernel/{name}"
        done = subprocess.run(["git", "show", f"{base}:{path}"], cwd=ROOT, capture_output=True)
        if done.returncode:
            return f"git cannot show {base}:{path}"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(done.stdout)
    library = os.path.join(folder, "libelm_network_base.so")
    kernel_dir = fused_build.KERNEL_DIR
    fused_build.KERNEL_DIR = folder  # read by _compile
    try:
        fused_build._compile(fused_build._compiler(), jax.ffi.include_dir(), library)
    except RuntimeError as err:
        return f"the base kernel does not build: {err}"
    finally:
        fused_build.KERNEL_DIR = kernel_dir
    lib = ctypes.cdll.LoadLibrary(library)
    shutil.rmtree(folder, ignore_errors=True)  # the loaded library stays mapped
    symbols = (lib.ElmNetworkForward, lib.ElmNetworkBackward)
    for name, symbol in zip(BASE_TARGETS, symbols, strict=True):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(symbol), platform="cpu")
    return None


def main(argv=None) -> int:
    base, args = parse_args(argv)
    network_speed.configure_threads(args.threads)

    import jax
    import jax.numpy as jnp

    import elm_jax.models as models
    from elm_jax.budget.enumeration import enumerate_points
    from elm_jax.network import fused

    current = models.ELMNetwork
    previous = load_previous(base)
    kernel_problem = load_previous_kernel(base)
    if kernel_problem:
        print(f"base kernel: {kernel_problem}; both versions call the working tree's", flush=True)
    targets = (fused.FORWARD_TARGET, fused.BACKWARD_TARGET)

    def build(cfg, version):
        models.ELMNetwork = previous if version == "base" else current  # read by build_core
        if version == "base" and not kernel_problem:
            fused.FORWARD_TARGET, fused.BACKWARD_TARGET = BASE_TARGETS  # read when traced
        try:
            model, tx, step = network_speed.train_step_fn(cfg, args.seeds)
            step_args = network_speed.step_inputs(
                cfg, model, tx, args.batch, args.seq_len, args.seeds
            )
            t0 = time.perf_counter()
            compiled = step.lower(*step_args).compile()
            compile_s = time.perf_counter() - t0
            loss = float(jnp.mean(jax.block_until_ready(compiled(*step_args))[2]))
        finally:
            models.ELMNetwork = current
            fused.FORWARD_TARGET, fused.BACKWARD_TARGET = targets
        return compiled, step_args, loss, compile_s

    points = network_speed.pick_points(enumerate_points(args.budget, "shd_adding", k_c=[args.k_c]))
    wanted = args.points.split(",")
    steps = {}
    for label, point in points:
        if label in wanted:
            for version in ("base", "working_tree"):
                steps[(label, version)] = build(point.model_config(), version)
    if "lstm" in wanted:
        (lstm,) = enumerate_points(
            args.budget, "shd_adding", arch="lstm", tolerance=args.lstm_tolerance
        )
        steps[("lstm", "-")] = build(lstm.model_config(), "working_tree")
    times = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key, (compiled, step_args, *_) in steps.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*step_args))
            times[key].append(time.perf_counter() - t0)
    lstm_s = statistics.median(times[("lstm", "-")]) if ("lstm", "-") in times else None
    for (label, version), ts in times.items():
        sec = statistics.median(ts)
        row = {
            "bench": "network_ab", "point": label, "version": version,
            "base": base if version == "base" else None,
            "base_kernel": version == "base" and label != "lstm" and not kernel_problem,
            "train_step_s": round(sec, 5),
            "x_lstm": round(sec / lstm_s, 2) if lstm_s else None,
            "first_loss": steps[(label, version)][2],
            "compile_s": round(steps[(label, version)][3], 2), "batch": args.batch,
            "seq_len": args.seq_len, "seeds": args.seeds, "repeats": args.repeats,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }  # fmt: skip
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
