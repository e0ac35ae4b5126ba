"""Learning rates at a sweep's budget extremes: one vmapped trainer call per point, one seed
per learning rate (each with its own wiring), on the sweep's own training config.

    python probes/lr_check.py --sweep sweeps/configs/default.py \
        --points 29/1/16,4/16/16,38/4/16,147/1/16 --lrs 1e-2,2e-2,4e-2,8e-2

Points are N/d_m/k_c for ELM networks, or ARCH/N for a simple-unit baseline (`lstm/120`,
`gru/140`, `leaky/400`) on the same task and training. Prints one JSON line per point: the validation curve per learning rate,
the last logged training loss, the final validation and test losses, and the input-blind
baseline. Seeds differ between the
learning rates, so a difference smaller than the seed spread (about 0.05 nats on SHD-Adding
at 1,000 steps) decides nothing. Takes about as long as the same points in the sweep.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time

from elm_jax.train.loop import train_and_evaluate


def _sweep_train_config(path: str, arg: str | None):
    spec = importlib.util.spec_from_file_location("sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg).train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default="sweeps/configs/default.py", help="sweep config file")
    p.add_argument("--sweep-arg", default=None, help="variant items of the sweep config")
    p.add_argument(
        "--points", required=True, help="N/d_m/k_c or ARCH/N, comma-separated: 29/1/16,lstm/40"
    )
    p.add_argument("--lrs", required=True, help="peak learning rates, e.g. 1e-2,4e-2")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the sweep's)")
    args = p.parse_args(argv)
    lrs = tuple(float(x) for x in args.lrs.split(","))
    for item in args.points.split(","):
        fields = item.split("/")
        c = _sweep_train_config(args.sweep, args.sweep_arg)
        if fields[0].isdigit() and len(fields) == 3:
            n, d_m, k_c = (int(v) for v in fields)
            arch = c.model.arch
        elif len(fields) == 2 and fields[1].isdigit():
            arch, n = fields[0], int(fields[1])
            d_m, k_c = c.model.num_memory, c.model.synapses_per_neuron
        else:
            p.error(f"--points item {item!r}: expected N/d_m/k_c (29/1/16) or ARCH/N (lstm/40)")
        if args.steps is not None:
            c.num_train_steps = args.steps
            c.eval_every = max(1, args.steps // 4)
            c.log_every = max(1, args.steps // 10)
        c.checkpoint_every = c.num_train_steps
        c.model.arch = arch
        c.model.num_neurons, c.model.num_memory, c.model.synapses_per_neuron = n, d_m, k_c
        c.seeds = tuple(range(len(lrs)))
        c.optim.seed_learning_rates = lrs
        t0 = time.time()
        with tempfile.TemporaryDirectory() as workdir:
            summary = train_and_evaluate(c, workdir)
            with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
                recs = [json.loads(line) for line in f]
        curve = [
            (r["step"], [round(x, 4) for x in r["loss"]])
            for r in recs
            if r["split"] == "validation"
        ]
        seeds = summary["seeds"]
        train = [r for r in recs if r["split"] == "train"]
        print(json.dumps({
            "arch": arch, "N": n, "d_m": d_m, "k_c": k_c, "lrs": lrs, "steps": c.num_train_steps,
            "wall_s": round(time.time() - t0, 1), "val_curve": curve,
            "last_train_loss": [round(x, 4) for x in train[-1]["loss"]] if train else None,
            "final_val_loss": [s["final_val_loss"] for s in seeds],
            "final_test_loss": [s["final_test_loss"] for s in seeds],
            "input_blind": summary["input_blind"],
        }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
