"""Cost of the live curves at log time: one train + one validation write to every seed's
TensorBoard run (elm_jax.writers.MetricWriters), against the training time between two logs.

    python bench/tensorboard_writes.py [--seeds 4] [--logs 500]

The writers get host values the loop has already fetched for metrics.jsonl, so this is all they
add: protobuf encoding, an event-file append and a flush per seed. Prints JSON lines; times are
wall-clock on a possibly shared machine (the load average is printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from elm_jax.writers import MetricWriters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--logs", type=int, default=500)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    hparams = [
        {"arch": "elm", "N": 64, "d_m": 8, "k_e": 300, "k_c": 16, "seed": s, "lr": 5e-3}
        for s in seeds
    ]
    train = {"loss": [2.5] * len(seeds), "accuracy": [0.1] * len(seeds), "steps_per_s": 40.0}
    val = {"loss": [2.6] * len(seeds), "accuracy": [0.1] * len(seeds)}
    blind = {"validation": {"loss": 2.79, "metric": 0.1}}
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        writers = MetricWriters(workdir, hparams, "accuracy")
        opened = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(1, args.logs + 1):
            writers.write_train(step, train, [5e-3] * len(seeds))
            writers.write_eval(step, "validation", val, blind)
        per_log = (time.perf_counter() - start) / args.logs
        writers.close()
        size = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(workdir) for f in files
        )
    print(
        json.dumps(
            {
                "bench": "tensorboard_writes",
                "seeds": len(seeds),
                "logs": args.logs,
                "open_ms": round(1e3 * opened, 3),
                "ms_per_log": round(1e3 * per_log, 4),
                "event_bytes_per_log": round(size / args.logs, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
