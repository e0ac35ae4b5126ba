"""Sharding a sweep over hosts: `--shard I/K` runs a fixed 1/K of the sweep's trainer calls.

On a TPU pod slice, a SLURM array or a GKE JobSet every host runs the same command with its own
shard; nothing coordinates them. So the assignment must come out the same on every host from the
sweep definition alone (never from what a directory already holds): the trainer calls (one per
`Trial.group_key`: an architecture and training config with all its seeds) are sorted into a
canonical order, largest estimated cost first with the group key breaking ties, and each goes to
the shard with the smallest cost so far (the lowest index on a tie): greedy longest processing
time. Every call lands in exactly one shard; the largest shard costs at most the mean plus the
largest single call (and at most 4/3 of the best possible split).

The cost of a call is its estimated training FLOPs per time step of the sequence (the sequence
length is the same for every call of a sweep): `flops_train_step` = 3 x the point's forward FLOPs
per sample and time step (elm_jax.budget.cost, recorded on each SweepPoint as `flops_per_step`),
x batch size x training steps x seeds. A point without a FLOP count (0 or NaN, e.g. a
hand-written sweep) is counted as 2 FLOPs per parameter of P_total.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sweeps.points import SweepPoint, Trial

# elm_jax.budget.cost: a training step (forward + backward) is 3 forward passes.
TRAIN_STEP_FACTOR = 3
_SHARD = re.compile(r"^\s*(-?\d+)\s*/\s*(-?\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        problem = _shard_problem(self.index, self.count)
        if problem:
            raise ValueError(f"--shard={self}: {problem}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"I/K"` → Shard(I, K).

        Raises:
          ValueError: not two integers I/K, K < 1, or I outside 0..K-1 (the message says which).
        """
        match = _SHARD.match(text)
        if match is None:
            raise ValueError(
                f"--shard={text}: expected I/K, two integers with 0 <= I < K (e.g. 0/4 for the "
                "first of four hosts)"
            )
        index, count = int(match.group(1)), int(match.group(2))
        problem = _shard_problem(index, count)
        if problem:
            raise ValueError(f"--shard={text}: {problem}")
        return cls(index, count)


def _shard_problem(index: int, count: int) -> str | None:
    valid = "valid: I/K with 0 <= I < K"
    if count < 1:
        return f"the shard count K={count} must be >= 1; {valid}"
    if not 0 <= index < count:
        example = "0/1" if count == 1 else f"0/{count} ... {count - 1}/{count}"
        return (
            f"the shard index I={index} must be in 0..{count - 1} for K={count}; {valid} "
            f"({example}; shard indices start at 0)"
        )
    return None


@dataclasses.dataclass(frozen=True)
class TrainerCall:
    """One trainer call of a sweep: the trials of one group key and their estimated cost."""

    group_key: str
    trials: tuple[Trial, ...]
    cost: float

    @property
    def seeds(self) -> list[int]:
        return sorted({t.seed for t in self.trials})

    def describe(self) -> str:
        return f"{self.trials[0].point.describe()}, seeds {self.seeds}"


def forward_flops(point: SweepPoint) -> float:
    """The point's forward FLOPs per sample and time step (2 x P_total when it has none)."""
    flops = float(point.flops_per_step)
    if math.isfinite(flops) and flops > 0:
        return flops
    return 2.0 * max(int(point.P_total), 1)


def call_cost(point: SweepPoint, num_seeds: int, train_config: Any) -> float:
    """Estimated training FLOPs per time step of one trainer call (module docstring)."""
    batch = int(train_config.data.get("batch_size", 1) or 1)
    steps = int(train_config.get("num_train_steps", 1) or 1)
    return TRAIN_STEP_FACTOR * forward_flops(point) * batch * steps * num_seeds


def trainer_calls(trials: Iterable[Trial], train_config: Any) -> list[TrainerCall]:
    """The sweep's trainer calls in canonical order: largest cost first, then by group key."""
    by_key: dict[str, list[Trial]] = {}
    for trial in trials:
        by_key.setdefault(trial.group_key, []).append(trial)
    calls = []
    for key, members in by_key.items():
        members.sort(key=lambda t: t.trial_id)
        seeds = {t.seed for t in members}
        # The same architecture in two slices is one call: cost it once, from its first point.
        calls.append(
            TrainerCall(key, tuple(members), call_cost(members[0].point, len(seeds), train_config))
        )
    calls.sort(key=lambda c: (-c.cost, c.group_key))
    return calls


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Every trainer call of a sweep with the shard it belongs to."""

    count: int
    calls: tuple[TrainerCall, ...]
    owners: tuple[int, ...]  # owners[j]: the shard of calls[j]

    def calls_of(self, index: int) -> list[TrainerCall]:
        return [c for c, o in zip(self.calls, self.owners, strict=True) if o == index]

    def loads(self) -> list[float]:
        """The estimated cost of each shard."""
        out = [0.0] * self.count
        for call, owner in zip(self.calls, self.owners, strict=True):
            out[owner] += call.cost
        return out

    def share(self, index: int) -> float:
        """Shard `index`'s fraction of the sweep's estimated cost."""
        total = sum(self.loads())
        return self.loads()[index] / total if total > 0 else 0.0

    def trials_of(self, index: int) -> list[Trial]:
        return [t for c in self.calls_of(index) for t in c.trials]


def assign(trials: Iterable[Trial], train_config: Any, count: int) -> Assignment:
    """Splits the sweep's trainer calls over `count` shards (greedy longest processing time)."""
    if count < 1:
        raise ValueError(f"shard count {count}; must be >= 1")
    calls = trainer_calls(trials, train_config)
    loads = [0.0] * count
    owners = []
    for call in calls:
        target = min(range(count), key=lambda s: (loads[s], s))
        loads[target] += call.cost
        owners.append(target)
    return Assignment(count, tuple(calls), tuple(owners))


def select(trials: Sequence[Trial], train_config: Any, shard: Shard) -> list[Trial]:
    """The trials of `shard`, in the order of `trials`."""
    mine = {t.trial_id for t in assign(trials, train_config, shard.count).trials_of(shard.index)}
    return [t for t in trials if t.trial_id in mine]


def summary(assignment: Assignment, index: int) -> list[str]:
    """What `sweeps.run --shard I/K --check` prints: the shard's calls and their cost shares."""
    loads = assignment.loads()
    total = sum(loads) or 1.0
    mine = assignment.calls_of(index)
    trials = sum(len(c.trials) for c in mine)
    all_trials = sum(len(c.trials) for c in assignment.calls)
    shares = ", ".join(f"{100 * load / total:.1f}%" for load in loads)
    lines = [
        f"shard {index}/{assignment.count}: {len(mine)} of {len(assignment.calls)} trainer calls "
        f"({trials} of {all_trials} trials), {100 * loads[index] / total:.1f}% of the sweep's "
        f"estimated training FLOPs (shards {shares})"
    ]
    lines += [f"  {c.describe()}: {100 * c.cost / total:.1f}%" for c in mine]
    return lines
