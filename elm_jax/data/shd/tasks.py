"""SHD (20 classes) and SHD-Adding (19 classes) as training datasets, exactly as docs/science.md §4.

Both hold the spikes sparsely (binned once per bin size) and densify a batch on request, so
2 ms bins of the whole training set never have to fit in memory. Axis letters: b batch,
t time bin, i input channel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from elm_jax.data.common import EpochTrainBatches, check_positive_int, check_rate
from elm_jax.data.core import Dataset
from elm_jax.data.shd.files import (
    NUM_CHANNELS,
    BinnedSpikes,
    SpikeData,
    bin_spike_data,
    check_bin_ms,
)
from elm_jax.tasks.classification import CLASSIFICATION

VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
EVAL_PAIR_SEED = 0
DEFAULT_BATCHES_PER_EPOCH = 2000
# The official loader's fixed evaluation pairing: batches of 8 pairs, 500 batches for
# validation (4,000 pairs) and 2,000 for test (16,000 pairs), from a fresh default_rng(0).
EVAL_PAIR_BATCH = 8
EVAL_PAIR_BATCHES = {"validation": 500, "test": 2000}
# Bumped whenever the split or the evaluation pairs change, so results are never pooled
# across constructions (it is part of `Dataset.info` and of every results row's dataset).
SPLIT_VERSION = 2


def validation_mask(num_train: int) -> np.ndarray:
    """True for the training-file samples that form the validation split (docs/science.md §4).

    The official loader's draw: `default_rng(0).binomial(1, 0.2, size=n)`, as booleans.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    return rng.binomial(1, VALIDATION_FRACTION, size=num_train).astype(bool)


def eval_pairs(num_samples: int, num_batches: int, pair_batch: int = EVAL_PAIR_BATCH) -> np.ndarray:
    """The fixed SHD-Adding evaluation pairs [num_batches · pair_batch, 2] of a split.

    The official loader's pairing (docs/science.md §4).

    A fresh `default_rng(0)`; for each of the batches `idx = rng.integers(0, n, size=2B)` and
    pair j of the batch is (idx[j], idx[B + j]); the batches follow each other in order.
    """
    rng = np.random.default_rng(EVAL_PAIR_SEED)
    out = np.empty((num_batches * pair_batch, 2), np.int64)
    for v in range(num_batches):
        idx = rng.integers(0, num_samples, size=2 * pair_batch)
        out[v * pair_batch : (v + 1) * pair_batch, 0] = idx[:pair_batch]
        out[v * pair_batch : (v + 1) * pair_batch, 1] = idx[pair_batch:]
    return out


def adding_label(label_first: np.ndarray, label_second: np.ndarray) -> np.ndarray:
    """SHD-Adding label `(l1 % 10) + (l2 % 10)` in 0..18 (the spoken digits' sum)."""
    return (np.asarray(label_first) % 10 + np.asarray(label_second) % 10).astype(np.int32)


class _SpikeTask(Dataset):
    """Shared state: the train/validation/test splits binned at `bin_ms`."""

    num_classes = 0

    def __init__(
        self,
        train: SpikeData,
        test: SpikeData,
        *,
        bin_ms: float = 2.0,
        input_dropout: float = 0.0,
        source: str = "shd",
        name: str = "shd",
        files: list[dict] | None = None,
        batches_per_epoch: int = DEFAULT_BATCHES_PER_EPOCH,
    ) -> None:
        self.bin_ms = check_bin_ms(bin_ms)
        self.input_dropout = check_rate(input_dropout)
        self.batches_per_epoch = check_positive_int("batches_per_epoch", batches_per_epoch)
        in_validation = validation_mask(train.num_samples)
        # Splits index into the files' samples (no copies): split -> (file, sample rows).
        self.files_data = {"train": train, "test": test}
        self.rows = {
            "train": ("train", np.flatnonzero(~in_validation)),
            "validation": ("train", np.flatnonzero(in_validation)),
            "test": ("test", np.arange(test.num_samples)),
        }
        self.binned_files: dict[str, BinnedSpikes] = {
            name: bin_spike_data(spikes, self.bin_ms) for name, spikes in self.files_data.items()
        }
        self._split_cache: dict[str, SpikeData] = {}
        self._pairs: dict[str, np.ndarray] = {}
        self.steps_per_digit = self.binned_files["train"].num_bins
        self.info = {
            "name": name,
            "source": source,
            "task": CLASSIFICATION.name,
            "input_dim": NUM_CHANNELS,
            "num_classes": self.num_classes,
            "seq_len": self.seq_len,
            "bin_ms": self.bin_ms,
            "files": files or [],
            "num_examples": {split: self.num_examples(split) for split in self.rows},
            "split_version": SPLIT_VERSION,
        }
        self.info["eval_examples"] = {s: len(self._eval_rows(s)) for s in ("validation", "test")}
        self.info["input_blind"] = {s: self.input_blind(s) for s in self.rows}

    @property
    def seq_len(self) -> int:
        raise NotImplementedError

    def num_examples(self, split: str) -> int:
        """Number of digits in a split ("train", "validation", "test")."""
        return len(self._rows(split)[1])

    def _rows(self, split: str) -> tuple[str, np.ndarray]:
        if split not in self.rows:
            raise ValueError(f"split must be one of {sorted(self.rows)}, got {split!r}")
        return self.rows[split]

    def split_data(self, split: str) -> SpikeData:
        """The raw spikes of a split (a copy, made on first use)."""
        if split not in self._split_cache:
            file, rows = self._rows(split)
            self._split_cache[split] = self.files_data[file].subset(rows)
        return self._split_cache[split]

    def labels(self, split: str) -> np.ndarray:
        """Labels [n] (0..19) of the digits of a split."""
        file, rows = self._rows(split)
        return self.files_data[file].labels[rows]

    def _dense_into(
        self,
        out: np.ndarray,
        split: str,
        index: np.ndarray,
        bin_offset: int = 0,
        rng: np.random.Generator | None = None,
    ) -> None:
        # Input dropout (training only) is applied while densifying: see BinnedSpikes.dense_into.
        file, rows = self.rows[split]
        dropout = self.input_dropout if rng is not None else 0.0
        self.binned_files[file].dense_into(out, rows[index], bin_offset, dropout, rng)

    def _eval_rows(self, split: str) -> np.ndarray:
        raise NotImplementedError

    def eval_labels(self, split: str) -> np.ndarray:
        raise NotImplementedError

    def label_prior(self, split: str, max_examples: int | None = None) -> np.ndarray:
        """Class frequencies of a split's examples (the first `max_examples` in evaluation order
        for "validation" / "test", when given)."""
        labels = self.labels("train") if split == "train" else self.eval_labels(split)
        if max_examples is not None:
            labels = labels[:max_examples]
        return np.bincount(labels, minlength=self.num_classes) / max(len(labels), 1)

    def input_blind(self, split: str, max_examples: int | None = None) -> dict:
        """The input-blind baseline of a split: predicting its label prior
        (`elm_jax.tasks.classification`)."""
        self._rows(split)
        if split == "train":
            return CLASSIFICATION.input_blind(self.label_prior("train"))
        return CLASSIFICATION.input_blind(self.label_prior(split, max_examples))

    def _batch(self, split: str, rows: np.ndarray, rng: np.random.Generator | None = None) -> dict:
        raise NotImplementedError

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict]:
        """Fixed-order batches of a split; the last is padded and "mask" [b] marks real rows."""
        batch_size = check_positive_int("batch_size", batch_size)
        self._rows(split)
        rows = self._eval_rows(split)
        for first in range(0, len(rows), batch_size):
            take = np.arange(first, first + batch_size)
            mask = (take < len(rows)).astype(np.float32)
            batch = self._batch(split, rows[np.minimum(take, len(rows) - 1)])
            batch["mask"] = mask
            yield batch


class SHDDataset(EpochTrainBatches, _SpikeTask):
    """SHD, 20 classes: one digit per example, inputs [b, 1000/bin_ms, 700] spike counts."""

    num_classes = 20

    @property
    def seq_len(self) -> int:
        return self.steps_per_digit

    def _eval_rows(self, split: str) -> np.ndarray:
        return np.arange(self.num_examples(split))

    def eval_labels(self, split: str) -> np.ndarray:
        """Labels of a split in evaluation order."""
        return self.labels(split)

    def _batch(self, split: str, rows: np.ndarray, rng: np.random.Generator | None = None) -> dict:
        inputs = np.zeros((len(rows), self.seq_len, NUM_CHANNELS), np.float32)
        self._dense_into(inputs, split, rows, rng=rng)
        return {"inputs": inputs, "labels": self.labels(split)[rows].astype(np.int32)}


class SHDAddingDataset(_SpikeTask):
    """SHD-Adding, 19 classes: two digits back to back, label = sum of the spoken digits.

    Inputs [b, 2·1000/bin_ms, 700]. An epoch is `batches_per_epoch` steps (2000 in the paper);
    training batch `step` draws its 2B indices from `default_rng([seed, epoch, step_in_epoch])`,
    so pairs are fresh every epoch and a resumed run sees exactly the same batches.
    """

    num_classes = 19

    @property
    def seq_len(self) -> int:
        return 2 * self.steps_per_digit

    def _eval_rows(self, split: str) -> np.ndarray:
        if split not in self._pairs:
            self._pairs[split] = eval_pairs(self.num_examples(split), EVAL_PAIR_BATCHES[split])
        return self._pairs[split]

    def eval_labels(self, split: str) -> np.ndarray:
        """Labels of the fixed evaluation pairs of "validation" or "test", in evaluation order."""
        pairs = self._eval_rows(split)
        labels = self.labels(split)
        return adding_label(labels[pairs[:, 0]], labels[pairs[:, 1]])

    def label_prior(self, split: str, max_examples: int | None = None) -> np.ndarray:
        """Training pairs are drawn afresh, so their prior is exact: the digit prior convolved
        with itself (triangular for balanced digits: 2.794 nats, 10 %, docs/science.md §4)."""
        if split != "train":
            return super().label_prior(split, max_examples)
        digits = np.bincount(self.labels("train") % 10, minlength=10) / self.num_examples("train")
        return np.convolve(digits, digits)

    def _batch(self, split: str, pairs: np.ndarray, rng: np.random.Generator | None = None) -> dict:
        labels = self.labels(split)
        inputs = np.zeros((len(pairs), self.seq_len, NUM_CHANNELS), np.float32)
        self._dense_into(inputs, split, pairs[:, 0], bin_offset=0, rng=rng)
        self._dense_into(inputs, split, pairs[:, 1], bin_offset=self.steps_per_digit, rng=rng)
        return {"inputs": inputs, "labels": adding_label(labels[pairs[:, 0]], labels[pairs[:, 1]])}

    def train_pairs(
        self, step: int, batch_size: int, seed: int
    ) -> tuple[np.ndarray, np.random.Generator]:
        """Pairs [b, 2] of training batch `step` (2B indices with replacement; j with B + j)."""
        batch_size = check_positive_int("batch_size", batch_size)
        epoch, within = divmod(int(step), self.batches_per_epoch)
        rng = np.random.default_rng([int(seed), epoch, within])
        idx = rng.integers(0, self.num_examples("train"), size=2 * batch_size)
        return np.stack([idx[:batch_size], idx[batch_size:]], axis=1), rng

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Training batch `step`, deterministic in (step, seed), input dropout applied."""
        pairs, rng = self.train_pairs(step, batch_size, seed)
        return self._batch("train", pairs, rng=rng)
