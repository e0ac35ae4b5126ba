"""The interface of a task kind, and the softmax sums its token kinds share.

Axis letters: r seed replica, b batch, t time, i input channel, o output.

A task kind is what a model's outputs are trained and scored on; `ModelConfig.task` names it
and every dataset belongs to one (`elm_jax.data.registry.DATASETS`). Its object owns all that
differs between kinds, so that no caller compares kind or dataset names:

* the shapes: the inputs (`token_inputs`, `input_spec`, `check_inputs`), the width the model's
  recurrent core sees (`external_dim`) and its encoder (`encoder_params`), and which sizes go
  together (`check_sizes`);
* the loss and the metric sums of one batch (`loss_sums`, traced inside the jitted steps), the
  per-seed figures of summed batches (`summarize`) and the validation metric (`metric_name`);
* how its data is evaluated (`streams`) and may be timed (`binned_inputs`);
* the input-blind baseline (`input_blind`: the figures of a predictor that ignores its inputs,
  from the statistics of the kind's data, which therefore differ between kinds).

jax and optax are imported inside the functions that run on a device: the data layer reads
baselines and shapes from these modules without paying for importing jax.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import jax


class TaskKind:
    """One task kind (module docstring); a subclass sets the class attributes."""

    name: str = ""  # the ModelConfig.task value
    metric_name: str = ""  # the validation metric of summaries, logs and results
    # Inputs [b, t] integer tokens the model embeds; else [b, t, i] float features.
    token_inputs: bool = False
    # The data is one long stream: evaluated in contiguous chunks that carry the recurrent state,
    # which training may carry from batch to batch too (data.carry_train_state).
    streams: bool = False
    # Inputs may be event counts in time bins of data.bin_ms, so model.time_unit="ms" applies.
    binned_inputs: bool = False

    def loss_sums(
        self, outputs: jax.Array, labels: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(mean loss in nats, sums) of one seed's batch; `mask` [b] or [b, t] (0: padding).

        The sums hold at least "loss_sum", "correct_sum" and "count" (the training
        accumulators of elm_jax.metrics.zeros); evaluation adds up every key over batches.
        """
        raise NotImplementedError

    def summarize(self, acc: Mapping[str, Any]) -> dict[str, list[float | None]]:
        """Per-seed figures ("loss" and the metric, ...) from sums `acc` [r, ...]."""
        raise NotImplementedError

    def check_sizes(self, input_dim: int, num_classes: int) -> None:
        """Raises ValueError when the sizes cannot go together (any pair can by default)."""

    def external_dim(self, input_dim: int, embed_dim: int) -> int:
        """D_ext: the width of the encoded input (embed_dim for tokens, else input_dim)."""
        return embed_dim if self.token_inputs else input_dim

    def encoder_params(self, input_dim: int, embed_dim: int) -> int:
        """Parameters of the encoder: the token embedding, or none (the identity)."""
        return input_dim * embed_dim if self.token_inputs else 0

    def input_spec(self, input_dim: int) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of the inputs of one step of one example, for initialising a model."""
        if self.token_inputs:
            return (1, 1), np.dtype(np.int32)
        return (1, 1, input_dim), np.dtype(np.float32)

    def check_inputs(self, inputs: jax.Array, input_dim: int) -> None:
        """Raises ValueError naming the shape (and dtype) when `inputs` do not fit the kind."""
        if self.token_inputs:
            if inputs.ndim != 2 or not np.issubdtype(inputs.dtype, np.integer):
                raise ValueError(
                    f"inputs shape {inputs.shape} dtype {inputs.dtype} is invalid for "
                    f"{self.name}: expected integer tokens [batch, time]"
                )
        elif inputs.ndim != 3 or inputs.shape[-1] != input_dim:
            raise ValueError(
                f"inputs shape {inputs.shape} is invalid for {self.name}: expected "
                f"[batch, time, {input_dim}]"
            )

    def __repr__(self) -> str:
        return f"<task kind {self.name!r}>"


def softmax_sums(
    logits: jax.Array, labels: jax.Array, mask: jax.Array | None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean softmax cross-entropy (nats) and the sums "loss_sum", "correct_sum", "count" of
    logits [..., o] against integer labels [...], each weighted by `mask` (None: all 1)."""
    import jax.numpy as jnp  # here: the data layer imports this module without jax
    import optax

    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    weight = jnp.ones_like(ce) if mask is None else jnp.broadcast_to(mask, ce.shape)
    count = weight.sum()
    sums = {
        "loss_sum": (ce * weight).sum(),
        "correct_sum": (correct * weight).sum(),
        "count": count,
    }
    return sums["loss_sum"] / jnp.maximum(count, 1.0), sums


def mean_loss(acc: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(per-seed mean loss, per-seed count, at least 1) of summed `acc` [r], in float64."""
    count = np.maximum(np.asarray(acc["count"], np.float64), 1.0)
    return np.asarray(acc["loss_sum"], np.float64) / count, count
