"""Next-byte prediction: the byte that follows at every step of one long stream (Enwik8).

Axis letters: r seed replica, b batch, t time, o output (a byte value).

Inputs [b, t] int bytes, which the model embeds (input_dim x embed_dim); labels [b, t] int, the
byte after each input; outputs the logits over input_dim = num_classes values at every step.
The data is one stream: evaluation runs contiguous chunks and carries the recurrent state from
one to the next, and training may carry it from batch to batch (data.carry_train_state). Loss:
the softmax cross-entropy in nats at every step; metric: bits per character (the loss / ln 2).
The input-blind baseline predicts every byte from the split's own byte frequencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from elm_jax.files import finite_or_none
from elm_jax.tasks.base import TaskKind, mean_loss, softmax_sums

if TYPE_CHECKING:
    import jax

LN2 = math.log(2.0)


class NextByte(TaskKind):
    """The next-byte kind (module docstring); `ModelConfig.task = "lm"`."""

    name = "lm"
    metric_name = "bpc"
    token_inputs = True
    streams = True

    def loss_sums(
        self, outputs: jax.Array, labels: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Cross-entropy and accuracy sums of every step: outputs [b, t, o], labels [b, t]."""
        return softmax_sums(outputs, labels, mask)

    def summarize(self, acc: Mapping[str, Any]) -> dict[str, list[float | None]]:
        """Per-seed "loss" (nats per byte) and "bpc"."""
        loss, _ = mean_loss(acc)
        return {
            "loss": [finite_or_none(v) for v in loss],
            "bpc": [finite_or_none(v / LN2) for v in loss],
        }

    def check_sizes(self, input_dim: int, num_classes: int) -> None:
        """The outputs are the input vocabulary."""
        if num_classes != input_dim:
            raise ValueError(
                f"num_classes={num_classes} is invalid for task={self.name!r}: must equal "
                f"input_dim={input_dim} (next-token prediction)"
            )

    def input_blind(self, stream: np.ndarray) -> dict[str, float]:
        """{"loss", "metric"} of predicting every byte of `stream` from the stream's own byte
        frequencies, ignoring all context: the entropy in nats and in bits per character."""
        counts = np.bincount(np.asarray(stream))
        p = counts[counts > 0] / counts.sum()
        loss = float(-(p * np.log(p)).sum())
        return {"loss": loss, "metric": loss / LN2}


NEXT_BYTE = NextByte()
