"""Data-layer speed: load + binning time and batch throughput. Prints JSON lines.

    python bench/data_speed.py [--name shd_adding_default] [--bin-ms 2] [--data-dir DIR]

Uses whatever `elm_jax.data.load` finds (real files or the embedded default, built first if
absent). Times are wall-clock on a possibly shared machine; the load average is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

from elm_jax import data
from elm_jax.data.shd.files import bin_spike_data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="shd_adding_default")
    parser.add_argument("--bin-ms", type=float, default=2.0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    ds = data.load(args.name, data_dir=args.data_dir, bin_ms=args.bin_ms, input_dropout=0.5)
    load_s = time.perf_counter() - start
    record = {"bench": "data_load", "name": args.name, "source": ds.info["source"], "load_s": round(load_s, 2),
              "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}  # fmt: skip
    if hasattr(ds, "files_data"):
        spikes = ds.files_data["train"]
        start = time.perf_counter()
        bin_spike_data(spikes, args.bin_ms)
        record.update(bin_train_file_s=round(time.perf_counter() - start, 2), spikes=int(len(spikes.times)),
                      samples=spikes.num_samples, bin_ms=args.bin_ms)  # fmt: skip
    print(json.dumps(record))
    for batch_size in (8, 64):
        start = time.perf_counter()
        for step in range(args.batches):
            batch = ds.train_batch(step, batch_size, seed=0)
        seconds = (time.perf_counter() - start) / args.batches
        print(json.dumps({"bench": "train_batch", "name": args.name, "batch_size": batch_size,
                          "shape": list(batch["inputs"].shape), "ms_per_batch": round(1000 * seconds, 1),
                          "load_average_1min": os.getloadavg()[0]}))  # fmt: skip


if __name__ == "__main__":
    main()
