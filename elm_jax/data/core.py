"""The dataset interface every loader returns (docs/interfaces.md, docs/data.md).

`Dataset` is what the trainer, the baselines and the budget read from a dataset: its `info`
dict, random-access training batches, fixed-order evaluation batches and the input-blind
baseline. The dataset classes (`shd.tasks`, `enwik8.files`, `neuronio.tasks`,
`sequences.SequenceDataset`) declare it as a base; language-model data adds `eval_stream`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class Dataset(Protocol):
    """A loaded dataset.

    info: "name", "source", "task", "input_dim", "num_classes", "seq_len", "files",
    "num_examples" per split, "input_blind" per split, and what the benchmark adds
    (docs/interfaces.md).
    """

    info: dict

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Training batch `step`, deterministic in (step, seed): "inputs", "labels"."""
        ...

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict]:
        """The split ("validation" | "test") in fixed order; the padded last batch has "mask"."""
        ...

    def input_blind(self, split: str, max_examples: int | None = None) -> dict:
        """{"loss", "metric"} of predicting the label prior on the first `max_examples`."""
        ...
