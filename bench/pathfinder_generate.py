"""Pathfinder-style generation time: builds the cached stand-ins and prints JSON lines.

    python bench/pathfinder_generate.py [--names pathfinder32_default,...] [--data-dir DIR]

Each line: name, image size, difficulty, examples per split, wall and CPU seconds of the build
(one process, numpy on one core), the manifest's sha256 of each split file, and the load
average (the machine may be shared). A name already cached is reported from its manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from elm_jax.data.common import cache_dir
from elm_jax.data.pathfinder.files import DEFAULT_SIZES, build_generated, read_generated
from elm_jax.data.pathfinder.synthetic import preset
from elm_jax.data.pathfinder.tasks import parse_name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", default="pathfinder32_default,pathfinder128_default")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    for name in args.names.split(","):
        size, difficulty, _ = parse_name(name)
        load_start, start = os.getloadavg()[0], time.perf_counter()
        folder = build_generated(cache_dir(args.data_dir), preset(size, difficulty),
                                 DEFAULT_SIZES[size])  # fmt: skip
        seconds = time.perf_counter() - start
        _, manifest, _ = read_generated(folder)
        print(json.dumps({
            "name": name, "image_size": size, "difficulty": difficulty,
            "sizes": manifest["sizes"], "generation_seconds": manifest["generation_seconds"],
            "generation_cpu_seconds": manifest["generation_cpu_seconds"],
            "this_call_seconds": round(seconds, 1),
            "sha256": {s: f["sha256"] for s, f in manifest["files"].items()},
            "load_average_1min": [load_start, os.getloadavg()[0]],
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
