"""Training-step and forward speed of one ELM neuron on the reference's own configurations.

    python bench/neuron_speed.py                 # all cores
    python bench/neuron_speed.py --threads 1     # single-threaded XLA, to compare with the
                                                 # published PyTorch figures (single-threaded)
    python bench/neuron_speed.py --kernel xla,auto  # the XLA loop and the fused kernel, same run

Prints one JSON line per configuration and kernel: `train_step_s` (forward + backward + optimizer
update, median of `--repeats` timed steps after warm-up), `forward_s`, compile times (measured
separately; the persistent compilation cache is not used here), (batch·T)/s, the trainable
parameter count, threads, which kernel ran the memory loop (`kernel_ran`), and the ratio to the PyTorch reference's s/step measured in the same run, on the same
machine and thread setting, right after each configuration (wall and CPU time).

The reference is timed by its own harness (a script ``ref_torch_elm.py`` that trains the public
PyTorch ELM neuron; it is not part of this repository): pass its folder with
``--reference-bench DIR`` (or ``ELM_REFERENCE_BENCH``) and the Python that has torch with
``--reference-python`` (or ``ELM_REFERENCE_PYTHON``; ``ELMREF_DIR`` is passed through to it).
Without them, or when the harness fails, the JSON line carries no ratio and says why in
``reference_status``. Takes about a minute per thread setting on an idle 2-core CPU, plus the
reference's own time (at least ``--reference-min-time`` seconds per configuration).

    python bench/neuron_speed.py --threads 1 --configs small \
        --reference-bench REF_DIR --reference-python TORCH_VENV/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# The reference harness's name for each configuration (same shapes, optimizer and loss).
REFERENCE_CONFIG = {"shd_adding": "shd-adding", "neuronio": "neuronio-d20", "small": "small"}

CONFIGS = {
    "shd_adding": dict(
        neuron=dict(num_input=700, num_output=19, num_memory=100, delta_t=10.0),
        batch=8, steps=200, optimizer="adamax", learning_rate=5e-3, loss="last_step_xent",
    ),
    "neuronio": dict(
        neuron=dict(num_input=1278, num_output=2, num_memory=20, num_branches=45,
                    synapses_per_branch=100, routing="neuronio_routing",
                    memory_tau_max=150.0),
        batch=8, steps=500, optimizer="adam", learning_rate=5e-4, loss="spike_and_soma",
    ),
    "small": dict(
        neuron=dict(num_input=64, num_output=10, num_memory=16),
        batch=64, steps=200, optimizer="adam", learning_rate=1e-3, loss="last_step_xent",
    ),
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="1: single-threaded XLA CPU")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps (median), >= 5")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--unroll", type=int, default=1, help="unroll of the time scan")
    parser.add_argument("--version", default="v2", choices=("v1", "v2"))
    parser.add_argument(
        "--kernel",
        default="auto",
        help="what runs the memory loop: auto, xla or cpu_fused; a comma list times each in turn "
        "(the reference once per configuration)",
    )
    parser.add_argument(
        "--reference-bench",
        default=os.environ.get("ELM_REFERENCE_BENCH"),
        help="folder of the PyTorch reference's timing harness (ref_torch_elm.py)",
    )
    parser.add_argument(
        "--reference-python",
        default=os.environ.get("ELM_REFERENCE_PYTHON"),
        help="Python interpreter with torch for the reference harness",
    )
    parser.add_argument("--reference-min-time", type=float, default=5.0)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {unknown}; valid choices are {sorted(CONFIGS)}")
    bad = sorted(set(args.kernel.split(",")) - {"auto", "xla", "cpu_fused"})
    if bad:
        parser.error(f"--kernel: unknown {bad}; valid choices are auto, xla, cpu_fused")
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")
    return args


def set_threads(threads: int) -> None:
    """XLA CPU threading is fixed at backend start: this must run before jax is imported. One
    thread: XLA's flags, the fused kernel's task split (ELM_JAX_KERNEL_THREADS) and the process
    pinned to one core (the reference harness, a subprocess, sets its own torch threads)."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        os.environ["ELM_JAX_KERNEL_THREADS"] = "1"
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"


def median_time(fn, repeats: int) -> tuple[float, list[float], float]:
    """(median wall s, all wall s, median process CPU s) of `repeats` calls.

    The CPU time is what a shared machine's load does not inflate; single-threaded it equals the
    wall time of an idle machine (it also counts XLA's helper threads, so it is not lower).
    """
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), times, statistics.median(cpu)


def time_reference(name: str, args: argparse.Namespace) -> tuple[dict | None, str]:
    """(the reference harness's JSON record, status) for configuration ``name``."""
    if not args.reference_bench or not args.reference_python:
        return None, (
            "not measured: reference harness not set up (give --reference-bench and "
            "--reference-python, or ELM_REFERENCE_BENCH and ELM_REFERENCE_PYTHON)"
        )
    script = os.path.join(args.reference_bench, "ref_torch_elm.py")
    if not os.path.isfile(script) or not os.path.isfile(args.reference_python):
        return None, f"not measured: {script} or {args.reference_python} does not exist"
    cmd = [args.reference_python, script, "--config", REFERENCE_CONFIG[name]]
    cmd += ["--impl", args.version, "--min-time", str(args.reference_min_time)]
    if args.threads == 1:
        cmd += ["--threads", "1"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        return None, "not measured: the reference harness ran over 900 s"
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"not measured: harness exit {out.returncode}: {tail[0][:200]}"
    return json.loads(lines[-1]), "measured in this run"


def run_config(name: str, args: argparse.Namespace, kernel: str, ref_result=None) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from elm_jax.neuron.config import NeuronConfig
    from elm_jax.neuron.dynamics import kernel_ran
    from elm_jax.neuron.layers import ELMNeuron

    spec = CONFIGS[name]
    config = NeuronConfig(**spec["neuron"], neuron_version=args.version)
    module = ELMNeuron(config, unroll=args.unroll, kernel=kernel)
    batch, steps, n_in = spec["batch"], spec["steps"], spec["neuron"]["num_input"]
    key_x, key_y, key_init = jax.random.split(jax.random.key(0), 3)
    # Sparse binary input, like spike trains.
    x = jax.random.bernoulli(key_x, 0.05, (batch, steps, n_in)).astype(jnp.float32)
    n_out = spec["neuron"]["num_output"]
    if spec["loss"] == "last_step_xent":
        target = jax.random.randint(key_y, (batch,), 0, n_out)
    else:
        target = jax.random.uniform(key_y, (batch, steps, 2))
    variables = jax.jit(module.init)(key_init, x)
    params, constants = variables["params"], variables["constants"]
    optimizer = {"adam": optax.adam, "adamax": optax.adamax}[spec["optimizer"]](
        spec["learning_rate"]
    )
    opt_state = optimizer.init(params)

    def loss_fn(params, x, target):
        y = module.apply({"params": params, "constants": constants}, x)
        if spec["loss"] == "last_step_xent":
            return optax.softmax_cross_entropy_with_integer_labels(y[:, -1], target).mean()
        spike = optax.sigmoid_binary_cross_entropy(y[..., 0], (target[..., 0] > 0.9)).mean()
        return spike + jnp.mean((y[..., 1] - target[..., 1]) ** 2)

    def train_step(params, opt_state, x, target):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, target)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def forward(params, x):
        return module.apply({"params": params, "constants": constants}, x)

    start = time.perf_counter()
    train_compiled = jax.jit(train_step).lower(params, opt_state, x, target).compile()
    compile_train = time.perf_counter() - start
    start = time.perf_counter()
    forward_compiled = jax.jit(forward).lower(params, x).compile()
    compile_forward = time.perf_counter() - start

    state = {"params": params, "opt_state": opt_state}

    def one_train_step():
        state["params"], state["opt_state"], loss = train_compiled(
            state["params"], state["opt_state"], x, target
        )
        loss.block_until_ready()

    def one_forward():
        forward_compiled(params, x).block_until_ready()

    for _ in range(args.warmup):
        one_train_step()
        one_forward()
    train_s, train_all, train_cpu = median_time(one_train_step, args.repeats)
    forward_s, forward_all, forward_cpu = median_time(one_forward, args.repeats)
    ref, ref_status = ref_result if ref_result is not None else time_reference(name, args)
    ratios = {"reference_status": ref_status}
    if ref is not None:
        ratios.update(
            reference_train_step_s=ref["step_s_median"],
            reference_train_step_cpu_s=ref["step_cpu_s_median"],
            reference_threads=ref["threads"],
            speedup_vs_reference=round(ref["step_s_median"] / train_s, 2),
            speedup_vs_reference_cpu_time=round(ref["step_cpu_s_median"] / train_cpu, 2),
        )
    return {
        "bench": "neuron_speed",
        "config": name,
        "version": args.version,
        "batch": batch,
        "T": steps,
        "num_params": module.config.num_params,
        "threads": args.threads if args.threads else os.cpu_count(),
        "train_step_s": round(train_s, 6),
        "train_step_s_min": round(min(train_all), 6),
        "train_step_cpu_s": round(train_cpu, 6),
        "forward_s": round(forward_s, 6),
        "forward_s_min": round(min(forward_all), 6),
        "forward_cpu_s": round(forward_cpu, 6),
        "compile_train_s": round(compile_train, 3),
        "compile_forward_s": round(compile_forward, 3),
        "train_items_per_s": round(batch * steps / train_s, 1),
        "forward_items_per_s": round(batch * steps / forward_s, 1),
        "repeats": args.repeats,
        "unroll": args.unroll,
        "kernel": kernel,
        "kernel_ran": kernel_ran(config, kernel),
        **ratios,
        "_reference": (ref, ref_status),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "cpu": platform.processor() or platform.machine(),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    for name in args.configs.split(","):
        ref = None
        for kernel in args.kernel.split(","):
            record = run_config(name, args, kernel, ref)
            ref = record.pop("_reference")
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
