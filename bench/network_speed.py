"""Training-step speed of ELM networks of one SHD-Adding budget vs the same-budget LSTM (JSON lines).

For three ELM points of the budget (few complex neurons, balanced, many simple neurons), each
with gather and dense connectivity (and what "auto" picks), and for the LSTM closest to the
budget: median wall time of one jitted training step (forward + backward + Adam update, loss on
the last step), (batch * T) / s, and achieved GFLOP/s from the analytic `flops_train_step`
(2 FLOPs per MAC, training = 3 x forward), next to this machine's measured float32 matmul
GFLOP/s in the same process and thread setting.

    python bench/network_speed.py --threads 1          # one core (XLA flags set before jax)
    python bench/network_speed.py                      # default threading
    python bench/network_speed.py --budget 3e4 --k-c 32 --batch 8 --seq-len 200 --repeats 7
    python bench/network_speed.py --threads 1 --connectivity auto --layout neuron_major,neuron_minor
    python bench/network_speed.py --threads 1 --connectivity auto --batch 32 --seq-len 80 --seeds 2
    python bench/network_speed.py --threads 1 --connectivity auto --batch 32 --seq-len 1000 \
        --remat-chunk 0,50 --repeats 1      # T = 1000 (2 ms bins): time and peak memory
    python bench/network_speed.py --batch 32 --seq-len 1000 --remat-chunk 0,50 --memory-only
    python bench/network_speed.py --threads 1 --connectivity auto --points many_simple,lstm \
        --gather-chunk-elements 0,2097152,0,2097152   # the external gather's time chunks
    python bench/network_speed.py --threads 1 --connectivity auto --points many_simple,lstm \
        --branch-slots-max 0,16,0,16      # the external forward by row gathers or slot by slot
    python bench/network_speed.py --threads 1 --connectivity auto --kernel cpu_fused \
        --decode-max-outputs 0,32,0,32    # the decoder after XLA's transpose, or on the layout

Each line also has the compiled step's memory (`memory_analysis()`: arguments, outputs and XLA
temporaries, in MiB; `peak_mib` is their sum) and the process's peak resident memory so far.

Takes about 3-6 minutes per invocation on a 2-core CPU. Synthetic Poisson spike counts (speed
does not depend on the data); T = 200 is SHD-Adding at 10 ms bins.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="1: single-threaded; 0: default")
    p.add_argument("--budget", type=float, default=3e4, help="P_core budget")
    p.add_argument("--k-c", type=int, default=32, help="k_c of the three ELM points")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lstm-tolerance", type=float, default=0.05)
    p.add_argument(
        "--connectivity", default="gather,dense,auto", help="comma list of modes to time"
    )
    p.add_argument("--layout", default="auto", help="comma list of scan layouts to time")
    p.add_argument(
        "--kernel",
        default="auto",
        help="comma list of model.kernel values to time (auto, xla, cpu_fused, gpu_pallas)",
    )
    p.add_argument(
        "--remat-chunk",
        default="",
        help="comma list of model.remat_chunk values (default: the model's)",
    )
    p.add_argument(
        "--gather-chunk-elements",
        default="",
        help="comma list of elm_jax.network.dynamics.GATHER_CHUNK_ELEMENTS values to time "
        "(the external gather's time chunk; 0: the whole sequence at once)",
    )
    p.add_argument(
        "--branch-slots-max",
        default="",
        help="comma list of elm_jax.network.dynamics.BRANCH_SLOTS_MAX values to time (the "
        "external forward runs slot by slot up to this many synapses; 0: never)",
    )
    p.add_argument(
        "--decode-max-outputs",
        default="",
        help="comma list of elm_jax.network.fused.DECODE_MAX_OUTPUTS values to time (0: the "
        "decoder reads the kernel's outputs after XLA transposes them, as before `fused.decode`)",
    )
    p.add_argument("--seeds", type=int, default=1, help="> 1: vmap the step over this many seeds")
    p.add_argument("--points", default="few_complex,balanced,many_simple,lstm")
    p.add_argument("--memory-only", action="store_true", help="compile and report memory only")
    return p.parse_args(argv)


def configure_threads(threads: int) -> None:
    """Must run before jax is imported: XLA reads its flags once."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        os.environ["ELM_JAX_KERNEL_THREADS"] = "1"  # the fused kernels' own task split
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def pick_points(points):
    """Few complex neurons (smallest N >= 8), many simple (largest N), balanced (geometric mean)."""
    by_n = sorted(points, key=lambda p: (p.N, p.d_m, p.k_c))
    few = next((p for p in by_n if p.N >= 8), by_n[0])
    many = by_n[-1]
    mid_n = math.sqrt(few.N * many.N)
    balanced = min(by_n, key=lambda p: (abs(math.log(p.N / mid_n)), p.d_m))
    return [("few_complex", few), ("balanced", balanced), ("many_simple", many)]


def time_fn(fn, args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` after one warm-up (compile) call."""
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def matmul_gflops(repeats: int) -> float:
    import jax
    import jax.numpy as jnp

    n = 1024
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    return 2 * n**3 / time_fn(f, (a, a), repeats) / 1e9


def train_step_fn(cfg, seeds: int = 1):
    """A jitted Adam training step of ``cfg`` (loss on the last step, like SHD-Adding); with
    ``seeds > 1`` the step is vmapped over a leading seed axis of params, state and batch."""
    import jax
    import optax

    from elm_jax.models import build_model

    model = build_model(cfg)
    tx = optax.adam(1e-3)

    def loss_fn(params, consts, x, labels):
        logits, _ = model.apply({"params": params, **consts}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits[:, -1], labels).mean()

    def step(params, opt_state, consts, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, consts, x, labels)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    if seeds > 1:
        step = jax.vmap(step, in_axes=(0, 0, None, 0, 0))
    return model, tx, jax.jit(step)


def memory_mib(compiled) -> dict:
    """The compiled step's buffer sizes from XLA's memory analysis, in MiB."""
    mem = compiled.memory_analysis()
    if mem is None:
        return {"peak_mib": None}
    mib = lambda b: round(b / 2**20, 1)  # noqa: E731
    parts = {
        "argument_mib": mib(mem.argument_size_in_bytes),
        "output_mib": mib(mem.output_size_in_bytes),
        "temp_mib": mib(mem.temp_size_in_bytes),
    }
    alias = getattr(mem, "alias_size_in_bytes", 0)
    total = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - alias
    return {**parts, "peak_mib": mib(total)}


def step_inputs(cfg, model, tx, batch: int, seq_len: int, seeds: int) -> tuple:
    """``(params, opt_state, consts, x, labels)`` for `train_step_fn`'s step: synthetic Poisson
    spike counts, stacked on a leading seed axis when ``seeds > 1``."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    x = jax.random.poisson(key, 0.05, (batch, seq_len, cfg.input_dim)).astype(jnp.float32)
    labels = jnp.arange(batch) % cfg.num_classes
    variables = jax.jit(model.init)(key, x[:, :2])
    params = variables["params"]
    consts = {k: v for k, v in variables.items() if k != "params"}
    opt_state = tx.init(params)
    if seeds > 1:
        stack = lambda tree: jax.tree_util.tree_map(  # noqa: E731
            lambda a: jnp.stack([a] * seeds), tree
        )
        params, opt_state, x, labels = stack(params), stack(opt_state), stack(x), stack(labels)
    return params, opt_state, consts, x, labels


def bench_one(cfg, args, label: str, machine: float) -> dict:
    import jax

    from elm_jax.budget.cost import cost
    from elm_jax.models import elm_kernel_ran

    model, tx, step = train_step_fn(cfg, args.seeds)
    step_args = step_inputs(cfg, model, tx, args.batch, args.seq_len, args.seeds)
    t0 = time.perf_counter()
    compiled = step.lower(*step_args).compile()
    if args.memory_only:
        return {"bench": "network_speed", "point": label, "N": cfg.num_neurons,
                "remat_chunk": cfg.remat_chunk if cfg.arch == "elm" else None,
                "batch": args.batch, "seq_len": args.seq_len, "seeds": args.seeds,
                "compile_s": round(time.perf_counter() - t0, 2), **memory_mib(compiled)}  # fmt: skip
    jax.block_until_ready(compiled(*step_args))
    compile_s = time.perf_counter() - t0
    sec = time_fn(compiled, step_args, args.repeats)
    c = cost(cfg)
    tokens = args.batch * args.seq_len
    row = {
        "bench": "network_speed",
        "point": label,
        "arch": cfg.arch,
        "N": cfg.num_neurons,
        "d_m": cfg.num_memory if cfg.arch == "elm" else 0,
        "k_c": c.k_c,
        "k_e": c.k_e,
        "P_core": c.P_core,
        "P_total": c.P_total,
        "connectivity": cfg.connectivity if cfg.arch == "elm" else None,
        "layout": cfg.layout if cfg.arch == "elm" else None,
        "kernel": elm_kernel_ran(cfg),
        "remat_chunk": cfg.remat_chunk if cfg.arch == "elm" else None,
        "seeds": args.seeds,
        "threads": args.threads or "default",
        "batch": args.batch,
        "seq_len": args.seq_len,
        "train_step_s": round(sec, 6),
        "compile_s": round(compile_s, 2),
        "tokens_per_s": round(tokens * args.seeds / sec, 1),
        "achieved_gflops": round(c.flops_train_step * tokens * args.seeds / sec / 1e9, 3),
        **memory_mib(compiled),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "matmul_gflops": round(machine, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "device": str(jax.devices()[0].platform),
    }
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)

    from elm_jax.budget.enumeration import enumerate_points
    from elm_jax.network import dynamics, fused

    chunks = args.gather_chunk_elements
    gather_chunks = [int(v) for v in chunks.split(",")] if chunks else [None]
    slots = args.branch_slots_max
    slots_max = [int(v) for v in slots.split(",")] if slots else [None]
    widths = args.decode_max_outputs
    decode_widths = [int(v) for v in widths.split(",")] if widths else [None]

    machine = matmul_gflops(args.repeats)
    elm_points = enumerate_points(args.budget, "shd_adding", k_c=[args.k_c])
    (lstm,) = enumerate_points(
        args.budget, "shd_adding", arch="lstm", tolerance=args.lstm_tolerance
    )
    jobs = []
    wanted = args.points.split(",")
    for label, p in pick_points(elm_points):
        if label not in wanted:
            continue
        cfg = p.model_config()
        net = cfg.elm_config
        auto = f"{label} auto={'/'.join(net.connectivity_modes)},{net.scan_layout}"
        for mode in args.connectivity.split(","):
            for layout in args.layout.split(","):
                for chunk in args.remat_chunk.split(",") if args.remat_chunk else [None]:
                    for kernel in args.kernel.split(","):
                        changes = dict(connectivity=mode, layout=layout, kernel=kernel)
                        if chunk is not None:
                            changes["remat_chunk"] = int(chunk)
                        for elements in gather_chunks:
                            for most in slots_max:
                                for width in decode_widths:
                                    job = (auto, cfg.replace(**changes), elements, most, width)
                                    jobs.append(job)
    if "lstm" in wanted:
        jobs.append(("lstm", lstm.model_config(), None, None, None))
    for label, cfg, elements, most, width in jobs:
        if elements is not None:  # read when the step is traced, in bench_one
            dynamics.GATHER_CHUNK_ELEMENTS = elements or 1 << 62
        if most is not None:
            dynamics.BRANCH_SLOTS_MAX = most
        if width is not None:
            fused.DECODE_MAX_OUTPUTS = width
        row = bench_one(cfg, args, label, machine)
        used = dynamics.GATHER_CHUNK_ELEMENTS if elements is None else elements  # 0: whole
        row["gather_chunk_elements"] = used if cfg.arch == "elm" else None
        row["branch_slots_max"] = dynamics.BRANCH_SLOTS_MAX if cfg.arch == "elm" else None
        row["decode_max_outputs"] = fused.DECODE_MAX_OUTPUTS if cfg.arch == "elm" else None
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
