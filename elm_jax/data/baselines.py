"""Prints the input-blind baseline of every split of a data set, as `summary.json` reports it.

    python -m elm_jax.data.baselines                        # the embedded defaults
    python -m elm_jax.data.baselines shd_adding --data-dir DIR --bin-ms 25

One JSON line per (data set, split): the loss (nats) and metric of a predictor that ignores its
input (docs/science.md §4), as the data's task kind defines them (elm_jax.tasks): a classifier
outputs the split's label prior (accuracy), a byte model the split's byte frequencies (bits per
character), a NeuronIO model the training spike rate and mean soma (AUC, with the soma RMSE).
Validation and test are their fixed evaluation sets (SHD-Adding: the official pairing);
SHD-Adding's training pairs are drawn afresh, so its prior is exact. Data that does not compute
its baselines on loading (NeuronIO, whose files are read only when needed) gives those of its
evaluation splits; its `examples` count simulations, each cut into several windows.
"""

from __future__ import annotations

import json
import sys

from elm_jax import cli
from elm_jax.data import DATASET_NAMES, DATASETS, load
from elm_jax.tasks import task_kind

DEFAULTS = ("shd_default", "shd_adding_default", "enwiki_sample")
EVAL_SPLITS = ("validation", "test")


def baselines(name: str, data_dir: str | None = None, bin_ms: float = 10.0) -> list[dict]:
    """[{"dataset", "source", "split", "examples", "loss", "metric", "metric_name"}, ...]."""
    entry = DATASETS.get(name)
    options = {"bin_ms": bin_ms} if entry is not None and entry.binned else {}
    ds = load(name, data_dir=data_dir, **options)
    info = ds.info
    metric = task_kind(info["task"]).metric_name
    examples = {**info["num_examples"], **info.get("eval_examples", {})}
    blind = info.get("input_blind") or {split: ds.input_blind(split) for split in EVAL_SPLITS}
    return [
        {"dataset": name, "source": info["source"], "split": split, "examples": examples[split],
         **{k: round(v, 6) for k, v in figures.items()}, "metric_name": metric}
        for split, figures in blind.items()
    ]  # fmt: skip


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="elm_jax.data.baselines", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"data sets (default: {', '.join(DEFAULTS)})")
    parser.add_argument("--data-dir", default=None, help="where the real files are")
    parser.add_argument("--bin-ms", type=cli.positive_float, default=10.0, help="SHD bin width")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in DATASET_NAMES]
    if unknown:
        raise cli.UsageError(f"unknown data set {unknown[0]!r}; valid: {', '.join(DATASET_NAMES)}")
    for name in args.names or DEFAULTS:
        for row in baselines(name, args.data_dir, args.bin_ms):
            print(json.dumps(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit code (failures: one line on stderr, docs/cli.md)."""
    return cli.run(_main, argv, prog="elm_jax.data.baselines")


if __name__ == "__main__":
    sys.exit(main())
