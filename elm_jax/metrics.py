"""Metrics: sums accumulated on device, JSON lines at log time, a progress bar on a terminal.

Accumulators are pytrees of per-seed sums `[r]` ("loss_sum", "correct_sum", "count") that the
jitted steps add to; the host reads them only when it logs (no sync per step, as in clu), and
the task kind turns them into figures (`elm_jax.tasks`: `summarize`, `metric_name`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from elm_jax.files import write_text_atomic


def zeros(num_seeds: int) -> dict[str, jnp.ndarray]:
    """Empty accumulator for `num_seeds` seeds."""
    z = jnp.zeros((num_seeds,), jnp.float32)
    return {"loss_sum": z, "correct_sum": z, "count": z}


class JsonLinesWriter:
    """Appends one JSON object per line; `truncate_after(step)` drops lines a resume will redo."""

    def __init__(self, path: str):
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Keeps only complete lines with `step <= step` (a killed run may have logged further)."""
        if not os.path.exists(self.path):
            return
        kept = []
        with open(self.path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("step", 0) <= step:
                    kept.append(json.dumps(rec, sort_keys=True))
        write_text_atomic(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
            f.flush()


class Progress:
    """A tqdm bar with ETA when stderr is a terminal; otherwise silent (logs go to JSON lines)."""

    def __init__(self, total: int, initial: int, enabled: bool | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        if enabled:
            from tqdm import tqdm  # only on a terminal

            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self._last = initial

    def update(self, step: int, postfix: Mapping[str, Any] | None = None) -> None:
        if self._bar is None:
            return
        self._bar.update(step - self._last)
        self._last = step
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Timer:
    """Wall-clock seconds and steps since the last `lap()`, for throughput."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        dt, self.t0 = now - self.t0, now
        return dt
