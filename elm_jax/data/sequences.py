"""In-memory sequence classification: one label per sequence of tokens or feature vectors.

The datasets without spikes (sequential images, Pathfinder, ListOps, ...) are all a
`SequenceDataset`: integer tokens `[n, t]` over a vocabulary of `vocab_size` values, one-hot
encoded one batch at a time (the whole set is never materialised as `[n, t, v]`), or float
features `[n, t, f]` used as they are. The label belongs to the last step (the trainer's
classification loss reads the last step's logits), so a task whose sequences have different
lengths pads them at the *front* (`pad_token` encodes as a zero vector).

It speaks the same protocol as the SHD tasks (`elm_jax.data.shd.tasks`, docs/interfaces.md):
`train_batch(step, batch_size, seed)`, `eval_batches(split, batch_size)` with a "mask",
`num_examples`, `labels`, `label_prior`, `input_blind` (the label prior of exactly the
examples evaluated) and `info` with the same fields. Without an explicit validation set, a
seeded validation split is taken from the training set (`validation_rows`, docs/data.md).

Axis letters: n example, b batch, t time step, v vocabulary value (one-hot channel),
f feature.

To serve a new dataset name through `elm_jax.data.load(name)` and `static_info(name)`, write
a loader that returns a `SequenceDataset` and add one entry to `elm_jax.data.registry.DATASETS`
(its docstring shows the entry).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from elm_jax.data.common import EpochTrainBatches, check_positive_int, check_rate
from elm_jax.data.core import Dataset
from elm_jax.tasks.classification import CLASSIFICATION

VALIDATION_FRACTION = 0.1
SPLIT_SEED = 0
# Bumped whenever the validation split changes, so results are never pooled across splits.
SPLIT_VERSION = 1
SPLITS = ("train", "validation", "test")


def validation_rows(num_train: int, fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED):
    """(train rows, validation rows) of a training set of `num_train` examples.

    Validation = the first `round(fraction · n)` entries of `default_rng(seed).permutation(n)`,
    training = the rest; both sorted, so batches index the arrays in file order.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation_fraction={fraction!r} must be in (0, 1)")
    order = np.random.default_rng(seed).permutation(num_train)
    num_val = int(round(fraction * num_train))
    if num_val < 1 or num_val >= num_train:
        raise ValueError(
            f"validation_fraction={fraction!r} of {num_train} training examples leaves "
            f"{num_val} for validation; valid: a fraction giving 1..{num_train - 1} examples"
        )
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def _check_examples(field: str, inputs: np.ndarray, labels: np.ndarray) -> tuple:
    inputs, labels = np.asarray(inputs), np.asarray(labels)
    if inputs.ndim not in (2, 3) or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise ValueError(
            f"{field} inputs have shape {inputs.shape}; valid: tokens [n, t] or features "
            "[n, t, f] with n, t >= 1"
        )
    if labels.shape != (inputs.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{field} labels have shape {labels.shape} dtype {labels.dtype}; valid: integers "
            f"[{inputs.shape[0]}] (one per example)"
        )
    return inputs, labels


class SequenceDataset(EpochTrainBatches, Dataset):
    """Train / validation / test sequences with one class label each, batched on request.

    train, test: `(inputs, labels)` with inputs tokens `[n, t]` (integers in 0..vocab_size-1,
    or `pad_token`) or features `[n, t, f]` (float), labels `[n]` in 0..num_classes-1.
    validation: the same, or None to split it off the training set (`validation_rows`).
    vocab_size: V for token inputs (input_dim = V); must be None for feature inputs.
    pad_token: a token value (0..V) that encodes as the zero vector (front padding), or None.
    input_dropout: inverted dropout on training batches only (like SHD), in [0, 1).
    name, source: `info["name"]` (the name it was loaded under) and `info["source"]` (which
    data it is: a real benchmark's name, or a labelled stand-in). files: `file_record`s.
    """

    def __init__(
        self,
        train: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        *,
        num_classes: int,
        vocab_size: int | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        validation_fraction: float = VALIDATION_FRACTION,
        pad_token: int | None = None,
        input_dropout: float = 0.0,
        name: str,
        source: str,
        files: list[dict] | None = None,
        extra_info: dict | None = None,
    ) -> None:
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.input_dropout = check_rate(input_dropout)
        train_x, train_y = _check_examples("train", *train)
        test_x, test_y = _check_examples("test", *test)
        if validation is None:
            rows_train, rows_val = validation_rows(len(train_y), validation_fraction)
            self.split_source = f"{validation_fraction:g} of train, seed {SPLIT_SEED}"
            val_x, val_y = train_x[rows_val], train_y[rows_val]
            train_x, train_y = train_x[rows_train], train_y[rows_train]
        else:
            val_x, val_y = _check_examples("validation", *validation)
            self.split_source = "given"
        self.inputs = {"train": train_x, "validation": val_x, "test": test_x}
        self._labels = {"train": train_y, "validation": val_y, "test": test_y}
        self.tokens = train_x.ndim == 2
        seq_len = train_x.shape[1]
        for split in SPLITS:
            x, y = self.inputs[split], self._labels[split]
            if x.shape[1:] != train_x.shape[1:]:
                want = ", ".join(map(str, train_x.shape[1:]))
                raise ValueError(
                    f"{split} inputs have shape {x.shape}; valid: [n, {want}] like train"
                )
            if y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(
                    f"{split} labels span {y.min()}..{y.max()}; valid: 0..{self.num_classes - 1}"
                )
        self.table = self._encoding_table(vocab_size, pad_token)
        input_dim = vocab_size if self.tokens else train_x.shape[2]
        self.info = {
            "name": name,
            "source": source,
            "task": CLASSIFICATION.name,
            "input_dim": int(input_dim),
            "num_classes": self.num_classes,
            "seq_len": int(seq_len),
            "encoding": "one-hot" if self.tokens else "features",
            "files": files or [],
            "num_examples": {split: self.num_examples(split) for split in SPLITS},
            "validation_split": self.split_source,
            "split_version": SPLIT_VERSION,
            "fallback": None,
            **(extra_info or {}),
        }
        self.info["eval_examples"] = {s: self.num_examples(s) for s in ("validation", "test")}
        self.info["input_blind"] = {s: self.input_blind(s) for s in SPLITS}

    def _encoding_table(self, vocab_size: int | None, pad_token: int | None) -> np.ndarray | None:
        """The one-hot lookup table [V + 1, V] (row V, and row pad_token, are zero)."""
        if not self.tokens:
            if vocab_size is not None or pad_token is not None:
                raise ValueError(
                    f"vocab_size={vocab_size!r}, pad_token={pad_token!r} apply to token inputs "
                    "[n, t] only; valid for features [n, t, f]: None"
                )
            return None
        vocab_size = check_positive_int("vocab_size", vocab_size)
        if pad_token is not None and not 0 <= pad_token <= vocab_size:
            raise ValueError(f"pad_token={pad_token!r} is invalid; valid: 0..{vocab_size} or None")
        table = np.zeros((vocab_size + 1, vocab_size), np.float32)
        table[np.arange(vocab_size), np.arange(vocab_size)] = 1.0
        if pad_token is not None:
            table[pad_token] = 0.0
        for split, x in self.inputs.items():
            if not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"{split} tokens have dtype {x.dtype}; valid: an integer dtype")
            bad = (x < 0) | ((x >= vocab_size) & (x != (-1 if pad_token is None else pad_token)))
            if bad.any():
                raise ValueError(
                    f"{split} tokens hold {x[bad].flat[0]}; valid: 0..{vocab_size - 1}"
                    + ("" if pad_token is None else f" or pad_token={pad_token}")
                )
        return table

    def _split(self, split: str) -> str:
        if split not in self.inputs:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return split

    def num_examples(self, split: str) -> int:
        """Number of examples in a split ("train", "validation", "test")."""
        return len(self._labels[self._split(split)])

    def labels(self, split: str) -> np.ndarray:
        """Labels [n] of a split, in evaluation order."""
        return self._labels[self._split(split)]

    def label_prior(self, split: str, max_examples: int | None = None) -> np.ndarray:
        """Class frequencies of a split (of its first `max_examples`, when given)."""
        labels = self.labels(split)[:max_examples]
        return np.bincount(labels, minlength=self.num_classes) / max(len(labels), 1)

    def input_blind(self, split: str, max_examples: int | None = None) -> dict:
        """{"loss", "metric"} of predicting the label prior of exactly the examples evaluated."""
        return CLASSIFICATION.input_blind(self.label_prior(split, max_examples))

    def encode(self, split: str, rows: np.ndarray) -> np.ndarray:
        """Inputs [b, t, input_dim] float32 of `rows` of a split (one-hot for tokens)."""
        x = self.inputs[self._split(split)][rows]
        if self.table is None:
            return x.astype(np.float32)
        return self.table[x]

    def _batch(self, split: str, rows: np.ndarray, rng: np.random.Generator | None = None) -> dict:
        inputs = self.encode(split, rows)
        if rng is not None and self.input_dropout > 0:
            keep = rng.random(inputs.shape, dtype=np.float32) >= self.input_dropout
            inputs = np.where(keep, inputs / (1.0 - self.input_dropout), 0.0).astype(np.float32)
        return {"inputs": inputs, "labels": self.labels(split)[rows].astype(np.int32)}

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict]:
        """Fixed-order batches of a split; the last is padded and "mask" [b] marks real rows."""
        batch_size = check_positive_int("batch_size", batch_size)
        n = self.num_examples(split)
        for first in range(0, n, batch_size):
            take = np.arange(first, first + batch_size)
            batch = self._batch(split, np.minimum(take, n - 1))
            batch["mask"] = (take < n).astype(np.float32)
            yield batch
