"""Sweep-level progress: trials done / running / failed, ETA, and the sweep log file."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import Any, TextIO

log = logging.getLogger("sweeps")


def setup_logging(log_path: str, verbose: bool = True) -> None:
    """Sends the `sweeps` logger to `log_path` (appending) and, when verbose, to stderr."""
    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    file_handler = logging.FileHandler(log_path)
    file_handler.setFormatter(fmt)
    log.addHandler(file_handler)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        log.addHandler(stream)
    log.propagate = False


def format_duration(seconds: float) -> str:
    """`3725` → `1h02m`, `125` → `2m05s`, `7` → `7s`."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Counts trials by state and estimates the time left.

    The ETA assumes the remaining groups take as long on average as the groups trained so far
    in this run, and that `parallelism` groups run at once.
    """

    def __init__(
        self,
        total_trials: int,
        already_done: int = 0,
        parallelism: int = 1,
        stream: TextIO | None = None,
        clock: Any = time.monotonic,
    ):
        self.total = total_trials
        self.counts: Counter[str] = Counter()
        self.counts["done"] = already_done
        self.running: dict[str, int] = {}
        self.parallelism = max(1, parallelism)
        self.durations: list[float] = []
        self.pending_groups = 0
        self.stream = stream
        self.clock = clock
        self.start = clock()
        self._started_at: dict[str, float] = {}

    def set_pending(self, groups: int) -> None:
        self.pending_groups = groups

    def started(self, task: Any) -> None:
        self.running[task.group_id] = len(task.trials)
        self._started_at[task.group_id] = self.clock()
        log.info("start %s", task.label)
        self.show()

    def finished(self, task: Any, outcome: Any) -> None:
        self.running.pop(task.group_id, None)
        began = self._started_at.pop(task.group_id, None)
        if outcome.kind == "busy":
            return
        self.pending_groups = max(0, self.pending_groups - 1)
        if outcome.kind == "trained" and began is not None:
            self.durations.append(self.clock() - began)
        for status in outcome.statuses:
            self.counts["done"] += 1
            if status != "ok":
                self.counts[status] += 1
        log.info("%s %s: %s", outcome.kind, task.label, ", ".join(outcome.statuses) or "-")
        self.show()

    def lost(self, task: Any, attempt: int, reason: str) -> None:
        self.running.pop(task.group_id, None)
        self._started_at.pop(task.group_id, None)
        log.warning("worker lost on %s (attempt %d): %s; retrying", task.label, attempt, reason)

    def eta_seconds(self) -> float | None:
        """Estimated seconds left, or None before any group has finished training."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * self.pending_groups / self.parallelism

    def line(self) -> str:
        running = sum(self.running.values())
        eta = self.eta_seconds()
        return (
            f"trials {self.counts['done']}/{self.total} done, {running} running, "
            f"{self.counts['failed']} failed, {self.counts['diverged']} diverged; "
            f"elapsed {format_duration(self.clock() - self.start)}, "
            f"ETA {'?' if eta is None else format_duration(eta)}"
        )

    def show(self) -> None:
        text = self.line()
        log.info("progress: %s", text)
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()
