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

Takes about 3-6 minutes per invocation on a 2-core CPU. Synthetic Poisson spike counts (speed
does not depend on the data); T = 200 is SHD-Adding at 10 ms bins.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
    return p.parse_args(argv)


def configure_threads(threads: int) -> None:
    """Must run before jax is imported: XLA reads its flags once."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
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


def train_step_fn(cfg):
    """A jitted Adam training step of ``cfg`` (loss on the last step, like SHD-Adding)."""
    import jax
    import optax

    from elm_jax.models import build_model

    model = build_model(cfg)
    tx = optax.adam(1e-3)

    def loss_fn(params, consts, x, labels):
        logits, _ = model.apply({"params": params, **consts}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits[:, -1], labels).mean()

    @jax.jit
    def step(params, opt_state, consts, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, consts, x, labels)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return model, tx, step


def bench_one(cfg, args, label: str, machine: float) -> dict:
    import jax
    import jax.numpy as jnp

    from elm_jax.budget import cost

    model, tx, step = train_step_fn(cfg)
    key = jax.random.PRNGKey(0)
    x = jax.random.poisson(key, 0.05, (args.batch, args.seq_len, cfg.input_dim)).astype(jnp.float32)
    labels = jnp.arange(args.batch) % cfg.num_classes
    variables = jax.jit(model.init)(key, x[:, :2])
    params = variables["params"]
    consts = {k: v for k, v in variables.items() if k != "params"}
    opt_state = tx.init(params)
    t0 = time.perf_counter()
    jax.block_until_ready(step(params, opt_state, consts, x, labels))
    compile_s = time.perf_counter() - t0
    sec = time_fn(step, (params, opt_state, consts, x, labels), args.repeats)
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
        "threads": args.threads or "default",
        "batch": args.batch,
        "seq_len": args.seq_len,
        "train_step_s": round(sec, 6),
        "compile_s": round(compile_s, 2),
        "tokens_per_s": round(tokens / sec, 1),
        "achieved_gflops": round(c.flops_train_step * tokens / sec / 1e9, 3),
        "matmul_gflops": round(machine, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "device": str(jax.devices()[0].platform),
    }
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)

    from elm_jax.budget import enumerate_points
    from elm_jax.network import ELMNetwork

    machine = matmul_gflops(args.repeats)
    elm_points = enumerate_points(args.budget, "shd_adding", k_c=[args.k_c])
    (lstm,) = enumerate_points(
        args.budget, "shd_adding", arch="lstm", tolerance=args.lstm_tolerance
    )
    jobs = []
    for label, p in pick_points(elm_points):
        cfg = p.model_config()
        auto = ELMNetwork(
            num_neurons=cfg.num_neurons, num_memory=cfg.num_memory,
            synapses_per_neuron=cfg.synapses_per_neuron, external_dim=cfg.external_dim,
        ).connectivity_modes()  # fmt: skip
        for mode in args.connectivity.split(","):
            jobs.append((f"{label} auto={'/'.join(auto)}", cfg.replace(connectivity=mode)))
    jobs.append(("lstm", lstm.model_config()))
    for label, cfg in jobs:
        print(json.dumps(bench_one(cfg, args, label, machine)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
