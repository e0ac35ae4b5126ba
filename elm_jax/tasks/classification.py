"""Classification: one label per sequence, read from the logits of its last step.

Axis letters: r seed replica, b batch, t time, i input channel, o class.

SHD, SHD-Adding, the sequential images, ListOps and Pathfinder: inputs [b, t, i] float (spike
counts in bins of data.bin_ms, or one-hot tokens), labels [b] int. Loss: the softmax
cross-entropy (nats) of the last step's logits [b, o]; metric: accuracy. The input-blind
baseline predicts the split's label prior (docs/science.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from elm_jax.files import finite_or_none
from elm_jax.tasks.base import TaskKind, mean_loss, softmax_sums

if TYPE_CHECKING:
    import jax


class Classification(TaskKind):
    """The classification kind (module docstring)."""

    name = "classification"
    metric_name = "accuracy"
    binned_inputs = True

    def loss_sums(
        self, outputs: jax.Array, labels: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Cross-entropy and accuracy sums of the last step: outputs [b, t, o], labels [b]."""
        return softmax_sums(outputs[:, -1], labels, mask)

    def summarize(self, acc: Mapping[str, Any]) -> dict[str, list[float | None]]:
        """Per-seed "loss" (nats) and "accuracy"."""
        loss, count = mean_loss(acc)
        accuracy = np.asarray(acc["correct_sum"], np.float64) / count
        return {
            "loss": [finite_or_none(v) for v in loss],
            "accuracy": [finite_or_none(v) for v in accuracy],
        }

    def input_blind(self, prior: np.ndarray) -> dict[str, float]:
        """{"loss", "metric"} of an input-blind classifier that outputs the label prior `prior`:
        cross-entropy = its entropy in nats, accuracy = its largest class probability."""
        p = np.asarray(prior, np.float64)
        nonzero = p[p > 0]
        return {"loss": float(-(nonzero * np.log(nonzero)).sum()), "metric": float(p.max())}


CLASSIFICATION = Classification()
