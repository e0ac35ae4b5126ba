"""Where one ELM training step's time goes: XLA CPU thunks from `jax.profiler` (JSON lines).

Builds the same jitted Adam step as `bench/network_speed.py` for one of its points, runs it
``--steps`` times under `jax.profiler.trace`, and sums the duration of every leaf thunk (one
fused kernel, gather, dot, ...) by name. Prints one line per thunk of the ``--top`` largest,
with its time per training step, how many times it runs per step (200 for a per-time-step op at
T = 200, T / remat_chunk for a per-chunk one, 1 for a whole-sequence one), the shape it writes
and the JAX operation it came from (from the compiled HLO's metadata), then one summary line
per calls-per-step group and a total.

    python bench/network_profile.py --threads 1 --point many_simple
    python bench/network_profile.py --threads 1 --point balanced --batch 32 --seq-len 40 \
        --seeds 4 --budget 5e3 --k-c 16
    python bench/network_profile.py --threads 1 --point many_simple --changes remat_chunk=0

Thunk times are the profiler's wall times of each kernel, so they sum to somewhat less than
the step (loop control and scheduling are not leaf thunks). Like every timing here, compare
only within one run.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import network_speed  # noqa: E402  (the same points, step and thread setting)

# Profiler events that are not leaf kernels (containers, loop control, the program itself).
NOT_LEAF = ("Thunk", "$", "while", "Pjit", "Common", "end: ")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--point", default="many_simple", help="few_complex, balanced or many_simple")
    p.add_argument("--threads", type=int, default=1, help="1: single-threaded; 0: default")
    p.add_argument("--budget", type=float, default=3e4)
    p.add_argument("--k-c", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=200)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="profiled training steps")
    p.add_argument("--top", type=int, default=25, help="thunk lines to print")
    p.add_argument(
        "--changes", default="", help="ModelConfig changes, e.g. remat_chunk=0,connectivity=dense"
    )
    return p.parse_args(argv)


def config_changes(text: str) -> dict:
    """``"remat_chunk=0,layout=neuron_minor"`` -> dict (ints where the value is an integer)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--changes item {item!r} is invalid: expected FIELD=VALUE")
        out[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return out


def hlo_sites(hlo_text: str) -> dict:
    """Instruction name -> (output shape, the JAX operation in its metadata)."""
    sites = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%(\S+) = (\S+) ", line)
        if not m:
            continue
        op = re.search(r'op_name="([^"]*)"', line)
        where = op.group(1).split("closed_call/")[-1] if op else ""
        sites.setdefault(m.group(1), (m.group(2), where))
    return sites


def thunk_times(trace_dir: str) -> tuple[collections.Counter, collections.Counter]:
    """Summed duration (µs) and count of each leaf event in the trace written to ``trace_dir``."""
    (path,) = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(NOT_LEAF):
            total[e["name"]] += e.get("dur", 0)
            calls[e["name"]] += 1
    return total, calls


def main(argv=None) -> int:
    args = parse_args(argv)
    network_speed.configure_threads(args.threads)

    import jax

    from elm_jax.budget.enumeration import enumerate_points

    points = dict(
        network_speed.pick_points(enumerate_points(args.budget, "shd_adding", k_c=[args.k_c]))
    )
    if args.point not in points:
        raise SystemExit(f"--point {args.point!r} is invalid: must be one of {sorted(points)}")
    cfg = points[args.point].model_config().replace(**config_changes(args.changes))
    model, tx, step = network_speed.train_step_fn(cfg, args.seeds)
    step_args = network_speed.step_inputs(cfg, model, tx, args.batch, args.seq_len, args.seeds)
    compiled = step.lower(*step_args).compile()
    sites = hlo_sites(compiled.as_text())
    jax.block_until_ready(compiled(*step_args))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                jax.block_until_ready(compiled(*step_args))
        total, calls = thunk_times(trace_dir)
    common = {"bench": "network_profile", "point": args.point, "N": cfg.num_neurons,
              "d_m": cfg.num_memory, "k_c": cfg.synapses_per_neuron, "batch": args.batch,
              "seq_len": args.seq_len, "seeds": args.seeds, "remat_chunk": cfg.remat_chunk}  # fmt: skip
    ms = lambda us: round(us / args.steps / 1000, 3)  # noqa: E731  per training step
    groups = collections.defaultdict(lambda: [0.0, 0])
    for name, us in total.most_common():
        per_step = calls[name] // args.steps
        groups[per_step][0] += us
        groups[per_step][1] += 1
    for name, us in total.most_common(args.top):
        shape, where = sites.get(name, ("", ""))
        row = {**common, "thunk": name, "ms_per_step": ms(us),
               "calls_per_step": calls[name] // args.steps, "shape": shape, "op": where}  # fmt: skip
        print(json.dumps(row), flush=True)
    for per_step, (us, kinds) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        row = {**common, "group_calls_per_step": per_step, "thunks": kinds, "ms_per_step": ms(us)}
        print(json.dumps(row), flush=True)
    print(json.dumps({**common, "leaf_total_ms_per_step": ms(sum(total.values()))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
