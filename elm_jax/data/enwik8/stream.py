"""Training batches of contiguous byte streams, for a language model that carries its state.

With `data.carry_train_state` the trainer feeds each stream of a batch the bytes that follow the
previous batch's, so the recurrent state carried from step to step has the right context.
"""

from __future__ import annotations

import numpy as np


def stream_train_batch(
    train: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int
) -> dict:
    """Training batch `step` of `batch_size` contiguous streams over the training bytes.

    Stream j reads segment j of `batch_size` equal segments, starting at a seed-dependent
    offset and advancing `seq_len` bytes per step (wrapping inside its segment), so with the
    state carried from step to step every prediction has the context of the bytes before it,
    as in the contiguous evaluation. Deterministic in (step, seed).
    """
    segment = len(train) // batch_size
    span = segment - seq_len - 1
    if span < 1:
        raise ValueError(
            f"data.seq_len={seq_len} with data.batch_size={batch_size} needs training segments "
            f"longer than seq_len + 1; the training split has {len(train)} bytes"
        )
    offset = int(np.random.default_rng([int(seed), 7]).integers(0, span))
    start = (offset + int(step) * seq_len) % span
    rows = np.arange(batch_size)[:, None] * segment + start + np.arange(seq_len + 1)[None, :]
    windows = train[rows].astype(np.int32)
    return {"inputs": windows[:, :-1], "labels": windows[:, 1:]}
