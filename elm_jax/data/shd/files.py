"""Spiking Heidelberg Digits files (SHD-format HDF5) and the exact binning of docs/science.md §4.

An SHD-format file holds `spikes/times` (vlen float, seconds), `spikes/units` (vlen int,
0..699), `labels` (0..19), `extra/speaker` and `extra/keys`. The real `shd_train.h5` /
`shd_test.h5` (also gzipped), the embedded default and `audio_to_shd` output all share it.
Axis letters: n sample, b batch, t time bin, i input channel.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Sequence

import h5py
import numpy as np

from elm_jax.data.common import DataCorruptError
from elm_jax.files import atomic_path

NUM_CHANNELS = 700
NUM_CLASSES = 20
DIGIT_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class SpikeData:
    """All spikes of one SHD-format file, flattened.

    Sample n's spikes are `times[offsets[n]:offsets[n+1]]` (seconds) and the same slice of
    `units` (channel 0..699); `labels` [n], `speakers` [n], `keys` [n] (str).
    """

    times: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    keys: tuple[str, ...]

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, units) of sample n."""
        lo, hi = self.offsets[n], self.offsets[n + 1]
        return self.times[lo:hi], self.units[lo:hi]

    def subset(self, index: np.ndarray) -> SpikeData:
        """The samples `index` (in that order) as a new SpikeData."""
        index = np.asarray(index, dtype=np.int64)
        counts = self.offsets[index + 1] - self.offsets[index]
        gather = _ranges(self.offsets[index], counts)
        return SpikeData(
            times=self.times[gather],
            units=self.units[gather],
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            labels=self.labels[index],
            speakers=self.speakers[index],
            keys=tuple(self.keys[i] for i in index),
        )


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)


def _h5_source(path: str) -> str | io.BytesIO:
    """The HDF5 file behind `path`: itself, or the content of a `.gz` or a one-file `.zip`.

    tonic's `shd_train.h5.zip` / `shd_test.h5.zip` hold one `.h5` each; the bytes are the
    same as the plain file's, so the binning does not depend on the container.
    """
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".h5")]
            if len(members) != 1:
                raise DataCorruptError(
                    f"{path} must hold exactly one .h5 file, found {members or 'none'}"
                )
            return io.BytesIO(archive.read(members[0]))
    return path


def read_shd(path: str | os.PathLike) -> SpikeData:
    """Reads an SHD-format HDF5 file (`.h5`, `.h5.gz`, or tonic's `.h5.zip`) into a SpikeData.

    Raises DataCorruptError naming the file when it is truncated, not HDF5, or lacks a field.
    """
    path = os.fspath(path)
    try:
        with h5py.File(_h5_source(path), "r") as f:
            times = list(f["spikes/times"][:])
            units = list(f["spikes/units"][:])
            labels = np.asarray(f["labels"][:], dtype=np.int32)
            speakers = (
                np.asarray(f["extra/speaker"][:], dtype=np.int32)
                if "extra/speaker" in f
                else np.zeros(len(labels), np.int32)
            )
            keys = (
                tuple(k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][:])
                if "extra/keys" in f
                else tuple(str(i) for i in range(len(labels)))
            )
    except (OSError, EOFError, gzip.BadGzipFile, zipfile.BadZipFile, zlib.error) as err:
        raise DataCorruptError(
            f"{path} is not a readable SHD HDF5 file (truncated or corrupt?): {err}"
        ) from err
    except KeyError as err:
        raise DataCorruptError(
            f"{path} lacks an SHD field ({err}); needs spikes/times, spikes/units and labels"
        ) from err
    if not (len(times) == len(units) == len(labels)):
        raise DataCorruptError(
            f"{path}: spikes/times ({len(times)}), spikes/units ({len(units)}) and labels "
            f"({len(labels)}) must have one entry per sample"
        )
    counts = np.array([len(t) for t in times], dtype=np.int64)
    if np.any(counts != np.array([len(u) for u in units], dtype=np.int64)):
        raise DataCorruptError(
            f"{path}: spikes/times and spikes/units differ in length for some sample"
        )
    flat_units = np.concatenate(units).astype(np.int32) if len(units) else np.zeros(0, np.int32)
    if flat_units.size and (flat_units.min() < 0 or flat_units.max() >= NUM_CHANNELS):
        raise DataCorruptError(
            f"{path}: spikes/units must lie in 0..{NUM_CHANNELS - 1}, found "
            f"{flat_units.min()}..{flat_units.max()}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataCorruptError(
            f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}"
        )
    flat_times = np.concatenate(times) if len(times) else np.zeros(0, np.float32)
    return SpikeData(
        flat_times, flat_units, np.concatenate([[0], np.cumsum(counts)]), labels, speakers, keys
    )


def write_shd(
    path: str | os.PathLike,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int],
    speakers: Sequence[int] | None = None,
    keys: Sequence[str] | None = None,
    extra_strings: dict[str, Sequence[str]] | None = None,
) -> None:
    """Writes an SHD-format HDF5 file atomically (float32 times in seconds, uint16 units).

    `extra_strings` adds string lists under `extra/` (e.g. speaker names).
    """
    n = len(labels)
    if len(times) != n or len(units) != n:
        raise ValueError(
            f"times ({len(times)}), units ({len(units)}) and labels ({n}) must have equal length"
        )
    speakers = np.zeros(n, np.int32) if speakers is None else np.asarray(speakers)
    keys = [str(i) for i in range(n)] if keys is None else list(keys)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        spikes = f.create_group("spikes")
        t_set = spikes.create_dataset("times", (n,), dtype=h5py.vlen_dtype(np.float32))
        u_set = spikes.create_dataset("units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            t_set[i] = np.asarray(times[i], np.float32)
            u_set[i] = np.asarray(units[i], np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))
        extra = f.create_group("extra")
        extra.create_dataset("speaker", data=speakers.astype(np.int32))
        extra.create_dataset("keys", data=np.array(keys, dtype=h5py.string_dtype()))
        for field, values in (extra_strings or {}).items():
            extra.create_dataset(field, data=np.array(list(values), dtype=h5py.string_dtype()))


def check_bin_ms(bin_ms: float) -> float:
    """Validates a bin size in milliseconds (must be a positive number)."""
    if (
        isinstance(bin_ms, bool)
        or not isinstance(bin_ms, (int, float, np.integer, np.floating))
        or not np.isfinite(bin_ms)
        or bin_ms <= 0
    ):
        raise ValueError(f"bin_ms must be a positive number of milliseconds, got {bin_ms!r}")
    return float(bin_ms)


def bin_edges(bin_ms: float) -> np.ndarray:
    """docs/science.md §4 edges `arange(0, 1 + bin, bin)` in seconds (bin = bin_ms / 1000)."""
    bin_s = check_bin_ms(bin_ms) / 1000.0
    return np.arange(0, DIGIT_SECONDS + bin_s, bin_s)


def num_bins(bin_ms: float) -> int:
    """Time steps per digit: len(edges) - 1 (the last bin is dropped), 1000 / bin_ms when exact."""
    return len(bin_edges(bin_ms)) - 1


@dataclasses.dataclass(frozen=True)
class BinnedSpikes:
    """Sparse binned spikes: sample n's nonzero cells are `flat[offsets[n]:offsets[n+1]]`, each
    at flat index `bin · 700 + unit`, in increasing order, with spike counts `counts` (float32)."""

    flat: np.ndarray
    offsets: np.ndarray
    num_bins: int
    counts: np.ndarray

    def dense_into(
        self,
        out: np.ndarray,
        index: np.ndarray,
        bin_offset: int = 0,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        """Adds the counts of samples `index` into out[b, bin_offset + t, i] (out: [b, T', 700]).

        With `dropout` > 0 each nonzero (b, t, i) cell is zeroed with that probability and the
        kept cells scaled by 1/(1 - dropout) (inverted dropout; zero cells are unaffected by
        any mask, so drawing for the nonzero cells alone gives the dense mask's distribution).
        """
        index = np.asarray(index, dtype=np.int64)
        counts = self.offsets[index + 1] - self.offsets[index]
        take = _ranges(self.offsets[index], counts)
        rows = np.repeat(np.arange(len(index), dtype=np.int64), counts)
        step = out.shape[1] * NUM_CHANNELS
        # Unique and increasing: each sample's cells are, and rows are disjoint.
        position = rows * step + bin_offset * NUM_CHANNELS + self.flat[take]
        values = self.counts[take]
        if dropout > 0.0:
            if rng is None:
                raise ValueError("dropout needs an rng")
            keep = rng.random(position.size, dtype=np.float32) >= dropout
            values = values * np.where(keep, np.float32(1.0 / (1.0 - dropout)), np.float32(0.0))
        out.reshape(-1)[position] += values

    def dense(self, index: np.ndarray) -> np.ndarray:
        """Spike counts [b, t, 700] float32 of samples `index`."""
        out = np.zeros((len(index), self.num_bins, NUM_CHANNELS), np.float32)
        self.dense_into(out, index)
        return out


def digitize_exact(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`np.digitize(times, edges) - 1` for evenly spaced `edges`, in O(n) instead of O(n log E).

    A first guess floor(t / step) is corrected against the actual float edges, so the result is
    identical to digitize (edges[i] <= t < edges[i + 1] gives i; t >= edges[-1] gives len - 1).
    """
    times = np.asarray(times, dtype=np.float64)
    step = edges[1] - edges[0] if len(edges) > 1 else 1.0
    guess = np.clip(np.floor(times / step), -1, len(edges) - 1).astype(np.int64)
    safe = np.clip(guess, 0, len(edges) - 1)
    guess = np.where((guess >= 0) & (times < edges[safe]), guess - 1, guess)
    nxt = np.clip(guess + 1, 0, len(edges) - 1)
    return np.where((guess + 1 < len(edges)) & (times >= edges[nxt]), guess + 1, guess)


def bin_spike_data(data: SpikeData, bin_ms: float) -> BinnedSpikes:
    """Bins every spike at once (docs/science.md §4): `digitize(t, edges) - 1`, last bin dropped.

    Spikes at t >= the last edge fall in the dropped bin and vanish, so each digit is cut to
    exactly 1 s.
    """
    edges = bin_edges(bin_ms)
    steps = len(edges) - 1
    index = digitize_exact(data.times, edges)
    keep = (index >= 0) & (index < steps)
    cells = steps * NUM_CHANNELS
    sample = np.repeat(np.arange(data.num_samples, dtype=np.int64), np.diff(data.offsets))
    key = (sample * cells + index * NUM_CHANNELS + data.units)[keep]
    key, counts = np.unique(key, return_counts=True)  # sorted by sample, then cell
    bounds = np.arange(data.num_samples + 1, dtype=np.int64) * cells
    offsets = np.searchsorted(key, bounds).astype(np.int64)
    return BinnedSpikes(key % cells, offsets, steps, counts.astype(np.float32))


def bin_spikes(times: np.ndarray, units: np.ndarray, bin_ms: float) -> np.ndarray:
    """Spike counts [t, 700] float32 of one sample (docs/science.md §4 binning)."""
    times = np.asarray(times, np.float64)
    data = SpikeData(
        times,
        np.asarray(units, np.int32),
        np.array([0, len(times)]),
        np.zeros(1, np.int32),
        np.zeros(1, np.int32),
        ("0",),
    )
    return bin_spike_data(data, bin_ms).dense(np.array([0]))[0]
