"""Enwik8 (docs/science.md §5): byte-level language modelling on a 90/5/5 byte split.

`ByteDataset` serves any byte string split like Enwik8 (the real files are read by
`elm_jax.data.enwik8.files`, the embedded stand-in by `elm_jax.data.enwik8.default`). Axis
letters: b batch, t time (bytes).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from elm_jax.data.common import check_positive_int
from elm_jax.data.core import Dataset
from elm_jax.tasks.next_byte import NEXT_BYTE


def split_bounds(num_bytes: int, fractions: tuple[float, float] = (0.9, 0.05)) -> dict:
    """Byte ranges [start, stop) of train / validation / test, split 90/5/5 (docs/science.md §5).

    For 10^8 bytes this is exactly 0-90M, 90M-95M, 95M-100M.
    """
    train_end = int(num_bytes * fractions[0])
    valid_end = train_end + int(num_bytes * fractions[1])
    return {
        "train": (0, train_end),
        "validation": (train_end, valid_end),
        "test": (valid_end, num_bytes),
    }


class ByteDataset(Dataset):
    """A byte stream split 90/5/5 for next-byte prediction (vocabulary: the 256 byte values).

    `train_batch` draws random windows of `seq_len + 1` bytes from the training split
    (inputs are the first `seq_len`, labels the next byte at every position);
    `eval_batches` walks fixed, non-overlapping windows; `eval_stream` cuts the split into
    `batch_size` contiguous streams so a model can carry its state and predict every byte.
    """

    def __init__(
        self,
        data: np.ndarray,
        *,
        name: str,
        source: str,
        seq_len: int = 512,
        files: list[dict] | None = None,
    ) -> None:
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError(f"data must be a 1-D uint8 array, got {data.dtype} {data.shape}")
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.data = data
        self.bounds = split_bounds(len(data))
        for split, (start, stop) in self.bounds.items():
            if stop - start < self.seq_len + 1:
                raise ValueError(
                    f"seq_len={seq_len} is too long for the {split} split of {name} "
                    f"({stop - start} bytes); valid: seq_len <= {stop - start - 1}"
                )
        self.info = {
            "name": name,
            "source": source,
            "task": NEXT_BYTE.name,
            "input_dim": 256,
            "num_classes": 256,
            "seq_len": self.seq_len,
            "files": files or [],
            "num_examples": {split: stop - start for split, (start, stop) in self.bounds.items()},
        }
        self.info["input_blind"] = {split: self.input_blind(split) for split in self.bounds}

    def input_blind(self, split: str, max_examples: int | None = None) -> dict:
        """{"loss", "metric"} of predicting every byte of a split from the split's own unigram
        frequencies, ignoring all context: the entropy in nats and in bits per character."""
        return NEXT_BYTE.input_blind(self.split(split)[:max_examples])

    def split(self, split: str) -> np.ndarray:
        """The bytes of one split ("train", "validation" or "test") as a uint8 view."""
        if split not in self.bounds:
            raise ValueError(f"split must be one of {sorted(self.bounds)}, got {split!r}")
        start, stop = self.bounds[split]
        return self.data[start:stop]

    def window_starts(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Start offsets (within the training split) of the windows of training batch `step`."""
        batch_size = check_positive_int("batch_size", batch_size)
        rng = np.random.default_rng([int(seed), int(step)])
        train = self.bounds["train"]
        return rng.integers(0, train[1] - train[0] - self.seq_len, size=batch_size)

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Random training windows, deterministic in (step, seed).

        Returns {"inputs": [b, t] int32, "labels": [b, t] int32}; labels[:, i] is the byte that
        follows inputs[:, i] in the stream.
        """
        starts = self.window_starts(step, batch_size, seed)
        train = self.split("train")
        windows = train[starts[:, None] + np.arange(self.seq_len + 1)[None, :]].astype(np.int32)
        return {"inputs": windows[:, :-1], "labels": windows[:, 1:]}

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict]:
        """Fixed non-overlapping windows of the split; last batch padded, "mask" [b] marks real rows."""
        batch_size = check_positive_int("batch_size", batch_size)
        data = self.split(split)
        num_windows = (len(data) - 1) // self.seq_len
        for first in range(0, num_windows, batch_size):
            rows = np.arange(first, first + batch_size)
            mask = (rows < num_windows).astype(np.float32)
            rows = np.minimum(rows, num_windows - 1)
            idx = rows[:, None] * self.seq_len + np.arange(self.seq_len + 1)[None, :]
            windows = data[idx].astype(np.int32)
            yield {"inputs": windows[:, :-1], "labels": windows[:, 1:], "mask": mask}

    def eval_stream(self, split: str, batch_size: int, chunk_len: int) -> Iterator[dict]:
        """Contiguous evaluation chunks for BPC with carried state (docs/science.md §5).

        The split's `n - 1` prediction targets are cut into `batch_size` consecutive streams of
        `L = ceil((n - 1) / batch_size)` targets; chunk k holds positions [k·c, (k+1)·c) of every
        stream. "mask" [b, t] is 0 on padding, so every byte after the first is predicted exactly
        once; "reset" is True on the first chunk (start from the initial state).
        """
        batch_size = check_positive_int("batch_size", batch_size)
        chunk_len = check_positive_int("chunk_len", chunk_len)
        data = self.split(split)
        num_targets = len(data) - 1
        stream_len = -(-num_targets // batch_size)
        for start in range(0, stream_len, chunk_len):
            pos = (
                np.arange(batch_size)[:, None] * stream_len + start + np.arange(chunk_len)[None, :]
            )
            valid = (pos < num_targets) & (np.arange(chunk_len)[None, :] + start < stream_len)
            pos = np.where(valid, pos, 0)
            yield {
                "inputs": data[pos].astype(np.int32),
                "labels": data[pos + 1].astype(np.int32),
                "mask": valid.astype(np.float32),
                "reset": start == 0,
            }
