"""Task kinds: what a model's outputs are trained and scored on (elm_jax/tasks/base.py).

One module per kind: `classification` (one label per sequence), `next_byte` (the next byte of
a stream, `ModelConfig.task = "lm"`) and `neuronio` (spike and soma at every step). `KINDS` is
the one table from the `ModelConfig.task` names to their objects; everything else reads the
object (`task_kind(name)`, `ModelConfig.task_kind`), and datasets name their kind in
`elm_jax.data.registry.DATASETS`.
"""

from __future__ import annotations

from collections.abc import Callable

from elm_jax.tasks.base import TaskKind
from elm_jax.tasks.classification import CLASSIFICATION
from elm_jax.tasks.neuronio import NEURONIO
from elm_jax.tasks.next_byte import NEXT_BYTE

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (CLASSIFICATION, NEXT_BYTE, NEURONIO)}


def task_kind(name: str) -> TaskKind:
    """The kind named `name` (a `ModelConfig.task` value); ValueError naming the valid names."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"task={name!r} is invalid: must be one of {tuple(KINDS)}")
    return kind


def kind_names(where: Callable[[TaskKind], bool]) -> str:
    """The names of the kinds for which `where(kind)` holds, quoted and joined by " or "."""
    return " or ".join(repr(name) for name, kind in KINDS.items() if where(kind))


__all__ = [
    "CLASSIFICATION",
    "KINDS",
    "NEURONIO",
    "NEXT_BYTE",
    "TaskKind",
    "kind_names",
    "task_kind",
]
