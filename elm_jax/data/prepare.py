"""Command: build and cache every embedded default (what `make data` runs).

    python -m elm_jax.data.prepare [--data-dir DIR] [--only shd|enwiki|listops] [--workers N]

Builds the SHD default (espeak-ng + cochlea, a few minutes on 2 cores) and fetches and verifies
the enwiki-sample (one `pip download`, checked against both sha256 pins) and generates the
ListOps default (`listops_default`, under a minute). All are cached under
DIR, else $ELM_DATA_DIR, else ~/.cache/elm_jax/data; a second run finds them and returns at
once. Prints one JSON line per dataset.
"""

from __future__ import annotations

import json
import os
import sys
import time

from elm_jax import cli
from elm_jax.data.common import cache_dir, resolve_data_dir
from elm_jax.data.enwik8.default import DECOMPRESSED_SHA256, prepare_enwiki_sample
from elm_jax.data.listops import files as listops_files
from elm_jax.data.listops import tasks as listops_tasks
from elm_jax.data.shd.default import build_shd_default


def prepare(
    data_dir: str | None = None, only: str | None = None, workers: int | None = None
) -> list[dict]:
    """Builds the defaults; returns one summary dict per dataset."""
    data_dir = resolve_data_dir(data_dir)
    summaries = []
    if only in (None, "shd"):
        start = time.time()
        folder = build_shd_default(data_dir, workers=workers)
        with open(os.path.join(folder, "generator.json")) as handle:
            meta = json.load(handle)
        summaries.append({
            "dataset": "shd-default", "path": folder, "seconds_this_call": round(time.time() - start, 1),
            "generation_seconds": meta["generation_seconds"], "workers": meta["workers"],
            "generation_cpu_seconds": meta.get("generation_cpu_seconds"),
            "load_average_1min": meta.get("load_average_1min"),
            "statistics": meta["statistics"],
        })  # fmt: skip
    if only in (None, "enwiki"):
        start = time.time()
        path = prepare_enwiki_sample(data_dir)
        summaries.append({"dataset": "enwiki-sample", "path": path, "sha256": DECOMPRESSED_SHA256,
                          "seconds_this_call": round(time.time() - start, 1)})  # fmt: skip
    if only in (None, "listops"):
        start = time.time()
        folder = listops_files.build_default(data_dir, listops_tasks.DEFAULT_PARAMS)
        _, manifest, _ = listops_files.read_default(folder)
        summaries.append({"dataset": "listops-default", "path": folder,
                          "files": manifest["files"], "seconds_this_call": round(time.time() - start, 1),
                          "generation_seconds": manifest["generation_seconds"]})  # fmt: skip
    return summaries


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="elm_jax.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="cache folder (default $ELM_DATA_DIR or ~/.cache/elm_jax/data)",
    )
    parser.add_argument("--only", choices=("shd", "enwiki", "listops"), default=None)
    parser.add_argument(
        "--workers", type=cli.positive_int, default=None, help="processes for the SHD default"
    )
    args = parser.parse_args(argv)
    _check_writable(cache_dir(args.data_dir))
    print(json.dumps({"cache_dir": cache_dir(args.data_dir)}))
    for summary in prepare(args.data_dir, args.only, args.workers):
        print(json.dumps(summary))
    return 0


def _check_writable(folder: str) -> None:
    """Creates the cache folder (it is needed anyway); fails before any generation if it can't."""
    try:
        os.makedirs(folder, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError as err:
        writable, folder = False, f"{folder} ({err.strerror})"
    if not writable:
        raise ValueError(
            f"cache folder {folder} is not a writable directory; pass --data-dir (or set "
            "ELM_DATA_DIR) to a directory you can write to"
        )


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit code (failures: one line on stderr, docs/cli.md)."""
    return cli.run(_main, argv, prog="elm_jax.data.prepare")


if __name__ == "__main__":
    sys.exit(main())
