"""NeuronIO as a training dataset: 500 ms windows of 1 ms steps, cut as the ELM paper's code does.

Axis letters: b batch, t time step (1 ms), i input channel (1278), k simulation.

Batches hold `inputs [b, t, 1278]` float32 (+1 / -1 / 0, `elm_jax.data.neuronio.files`) and
`labels [b, t, 3]` float32: the spike target (0/1), the soma target ((min(v, -55) + 67.7) / 10)
and the step weight (0 in the burn-in and where an evaluation window runs past the end of a
simulation, else 1). The loss and metrics (`elm_jax.tasks.neuronio`) use only weighted steps.

* Training (`train_batch`, deterministic in (step, seed)): as the reference's loader, a
  training file is drawn and then used for `file_load_fraction · k·T / (b·500)` batches (0.3,
  i.e. 57 batches of 8 for the released 128 × 6 s files); each batch draws b different
  simulations and a start uniformly in [500, T - 500) ms for each.
* Evaluation (`eval_batches`, fixed order): the reference's evaluation windows of 500 ms with
  a stride of 350 ms, scored after the 150 ms burn-in, starting at 350 ms so that the scored
  steps tile [500 ms, T) exactly (the reference drops the first 500 ms of every simulation).
  As in the reference, only simulations with at most 24 output spikes are scored.
* Splits (`find_split_files`): the reference trains on `full_ergodic_train_batch_2..10`,
  validates on `full_ergodic_train_batch_1` and tests on the test folder; folders named
  `train`, `valid`/`validation` and `test` work too.
"""

from __future__ import annotations

import collections
import glob
import os
from collections.abc import Iterator, Sequence

import numpy as np

from elm_jax.data.common import DataNotFoundError, file_record
from elm_jax.data.core import Dataset
from elm_jax.data.neuronio.files import NUM_CHANNELS, Simulations, check_arrays, read_simulations
from elm_jax.tasks.neuronio import NEURONIO

WINDOW_MS = 500
BURN_IN_MS = 150
IGNORE_START_MS = 500
FILE_LOAD_FRACTION = 0.3
MAX_EVAL_SPIKES = 24  # the reference scores simulations with 0..24 output spikes
SPLITS = ("train", "validation", "test")
# Files whose sha256 is recorded in `info["files"]` only when they total at most this many
# bytes (hashing the 115 GB of the full release would take longer than loading it).
HASH_LIMIT_BYTES = 2 << 30

NEURONIO_HOWTO = (
    "NeuronIO (Beniaguev et al. 2021) is on Kaggle: the datasets "
    "'single-neurons-as-deep-nets-nmda-train-data' (folders full_ergodic_train_batch_1..10) and "
    "'single-neurons-as-deep-nets-nmda-test-data'; put the train folders and the test folder "
    "(any name containing 'test') in the data directory (config data.data_dir or $ELM_DATA_DIR)"
)

Source = str | Simulations


def _split_of(rel_dir: str) -> str | None:
    parts = [p.lower() for p in rel_dir.replace("\\", "/").split("/") if p]
    if any("test" in p for p in parts):
        return "test"
    if any(p in ("full_ergodic_train_batch_1", "valid", "validation") for p in parts):
        return "validation"
    if any(p.startswith("full_ergodic_train_batch_") or p == "train" for p in parts):
        return "train"
    return None


def find_split_files(data_dir: str) -> dict[str, list[str]]:
    """{"train", "validation", "test"} -> sorted simulation files under `data_dir`.

    Simulation files are the reference's `*sim__*` pickles (or `.npz` arrays), up to three
    folders deep; the split comes from the folder names (module docstring). DataNotFoundError
    naming the data directory and what is missing when a split has no file.
    """
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(f"neuronio: the data directory {data_dir!r} does not exist. "
                                f"{NEURONIO_HOWTO}")  # fmt: skip
    found: dict[str, list[str]] = {s: [] for s in SPLITS}
    for depth in range(1, 4):
        pattern = os.path.join(data_dir, *(["*"] * (depth - 1)))
        for path in glob.glob(os.path.join(pattern, "*")):
            name = os.path.basename(path)
            if not os.path.isfile(path) or not ("sim__" in name or name.endswith(".npz")):
                continue
            split = _split_of(os.path.relpath(os.path.dirname(path), data_dir))
            if split is not None:
                found[split].append(path)
    missing = [s for s in SPLITS if not found[s]]
    if missing:
        raise DataNotFoundError(
            f"neuronio: no simulation files (*sim__* pickles or .npz) for the {missing} split(s) "
            f"under {data_dir!r}. {NEURONIO_HOWTO}"
        )
    return {s: sorted(found[s]) for s in SPLITS}


def window_labels(sims: Simulations, rows: np.ndarray, starts: np.ndarray, burn_in: int) -> dict:
    """The batch of windows (simulation `rows[j]`, first step `starts[j]`), zero-padded past the end.

    inputs [b, 500, 1278] float32, labels [b, 500, 3] (spike, soma target, weight); the weight
    is 0 in the first `burn_in` steps of every window and past the end of the simulation.
    """
    t_idx = starts[:, None] + np.arange(WINDOW_MS)[None, :]
    inside = t_idx < sims.duration_ms
    t_safe = np.minimum(t_idx, sims.duration_ms - 1)
    inputs = sims.inputs[rows[:, None], t_safe].astype(np.float32)
    inputs *= inside[..., None]
    weight = inside & (np.arange(WINDOW_MS)[None, :] >= burn_in)
    labels = np.stack(
        [sims.spikes[rows[:, None], t_safe], sims.soma[rows[:, None], t_safe], weight],
        axis=-1,
    ).astype(np.float32)
    labels[..., :2] *= inside[..., None]
    return {"inputs": inputs, "labels": labels}


def eval_windows(duration_ms: int) -> np.ndarray:
    """Start steps of the evaluation windows: 350, 700, ... while the scored part is inside."""
    stride = WINDOW_MS - BURN_IN_MS
    starts = np.arange(IGNORE_START_MS - BURN_IN_MS, duration_ms - BURN_IN_MS, stride)
    return starts.astype(np.int64)


def _join(parts: list[dict], batch_size: int) -> dict:
    """One batch from window pieces, zero-padded to `batch_size` rows, with its "mask" [b]."""
    batch = {k: np.concatenate([p[k] for p in parts]) for k in ("inputs", "labels")}
    n = len(batch["inputs"])
    for k in ("inputs", "labels"):
        batch[k] = np.pad(batch[k], [(0, batch_size - n)] + [(0, 0)] * (batch[k].ndim - 1))
    batch["mask"] = (np.arange(batch_size) < n).astype(np.float32)
    return batch


class NeuronIODataset(Dataset):
    """NeuronIO windows from simulation files or in-memory `Simulations` (module docstring).

    `splits` maps "train", "validation", "test" to file paths or `Simulations`; files are read
    when first needed and the most recently used `cache_files` of them are kept in memory.
    """

    def __init__(
        self,
        splits: dict[str, Sequence[Source]],
        *,
        name: str = "neuronio",
        source: str = "neuronio",
        train_burn_in_ms: int = BURN_IN_MS,
        file_load_fraction: float = FILE_LOAD_FRACTION,
        cache_files: int = 2,
    ):
        missing = [s for s in SPLITS if not splits.get(s)]
        if missing:
            raise ValueError(f"splits {missing} are empty: every one of {SPLITS} needs a source")
        if not 0 <= int(train_burn_in_ms) < WINDOW_MS:
            raise ValueError(f"train_burn_in_ms={train_burn_in_ms!r}: valid 0..{WINDOW_MS - 1}")
        self.splits = {s: list(splits[s]) for s in SPLITS}
        self.train_burn_in = int(train_burn_in_ms)
        self.file_load_fraction = float(file_load_fraction)
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_files = max(1, int(cache_files))
        first = {s: self.simulations(s, 0) for s in SPLITS}
        short = {s: f.duration_ms for s, f in first.items() if f.duration_ms <= 2 * IGNORE_START_MS}
        if short:
            raise ValueError(
                f"simulations of {short} ms are too short: windows start at {IGNORE_START_MS} ms "
                f"and last {WINDOW_MS} ms, so a simulation needs more than 1000 ms"
            )
        self._shape = (first["train"].num_simulations, first["train"].duration_ms)
        paths = [p for s in SPLITS for p in self.splits[s] if isinstance(p, str)]
        sizes = sum(os.path.getsize(p) for p in paths)
        records = (
            [file_record(p) for p in paths]
            if sizes <= HASH_LIMIT_BYTES
            else [{"path": p, "sha256": None, "bytes": os.path.getsize(p)} for p in paths]
        )
        self.info = {
            "name": name,
            "source": source,
            "task": NEURONIO.name,
            "input_dim": NUM_CHANNELS,
            "num_classes": 2,
            "seq_len": WINDOW_MS,
            "bin_ms": 1.0,
            "burn_in_ms": BURN_IN_MS,
            "train_burn_in_ms": self.train_burn_in,
            "files": records,
            "num_files": {s: len(self.splits[s]) for s in SPLITS},
            "num_examples": {s: len(self.splits[s]) * first[s].num_simulations for s in SPLITS},
            "fallback": None,
        }
        self._train_stats: tuple[float, float] | None = None

    def simulations(self, split: str, index: int) -> Simulations:
        """The `index`-th source of `split`, read (and cached) if it is a file."""
        src = self.splits[split][index]
        if isinstance(src, Simulations):
            check_arrays(src, f"{split}[{index}]")
            return src
        if src in self._cache:
            self._cache.move_to_end(src)
            return self._cache[src]
        sims = read_simulations(src)
        self._cache[src] = sims
        while len(self._cache) > self._cache_files:
            self._cache.popitem(last=False)
        return sims

    def batches_per_file(self, batch_size: int) -> int:
        k, t = self._shape
        return max(1, int(self.file_load_fraction * k * t / (batch_size * WINDOW_MS)))

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Training batch `step` (module docstring); deterministic in (step, seed)."""
        block = int(step) // self.batches_per_file(batch_size)
        files = self.splits["train"]
        index = int(np.random.default_rng([int(seed), block, 0]).integers(len(files)))
        sims = self.simulations("train", index)
        rng = np.random.default_rng([int(seed), int(step), 1])
        rows = rng.choice(sims.num_simulations, size=batch_size,
                          replace=batch_size > sims.num_simulations)  # fmt: skip
        starts = rng.integers(IGNORE_START_MS, sims.duration_ms - WINDOW_MS, size=batch_size)
        return window_labels(sims, rows, starts, self.train_burn_in)

    def _eval_rows(self, split: str) -> Iterator[tuple[Simulations, np.ndarray, np.ndarray]]:
        for index in range(len(self.splits[split])):
            sims = self.simulations(split, index)
            starts = eval_windows(sims.duration_ms)
            kept = np.flatnonzero(sims.spikes.sum(axis=1) <= MAX_EVAL_SPIKES)
            rows = np.repeat(kept, len(starts))
            yield sims, rows, np.tile(starts, len(kept))

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict]:
        """Fixed-order evaluation windows of `split`, with "mask" [b] (0: padding row).

        Batches run on across files; only the split's last batch is padded, so the first
        n·batch_size windows are those of a capped evaluation of n batches.
        """
        pending: list[dict] = []
        count = 0
        for sims, rows, starts in self._eval_rows(split):
            lo = 0
            while lo < len(rows):
                take = min(batch_size - count, len(rows) - lo)
                pending.append(window_labels(sims, rows[lo : lo + take], starts[lo : lo + take],
                                             BURN_IN_MS))  # fmt: skip
                lo, count = lo + take, count + take
                if count == batch_size:
                    yield _join(pending, batch_size)
                    pending, count = [], 0
        if pending:
            yield _join(pending, batch_size)

    def train_statistics(self) -> tuple[float, float]:
        """(spike rate per step, mean soma target) of the first training source, t >= 500 ms."""
        if self._train_stats is None:
            sims = self.simulations("train", 0)
            rate = float(sims.spikes[:, IGNORE_START_MS:].mean())
            soma = float(sims.soma[:, IGNORE_START_MS:].mean())
            self._train_stats = (rate, soma)
        return self._train_stats

    def input_blind(self, split: str, max_examples: int | None = None) -> dict:
        """Loss and metrics of predicting the training spike rate and mean soma at every step
        (`elm_jax.tasks.neuronio.input_blind`: "loss", "metric" = 0.5, "bce", "mse",
        "soma_rmse"), over the weighted steps of the first `max_examples` evaluation windows of
        `split`."""
        rate, soma_mean = self.train_statistics()
        return NEURONIO.input_blind(self._eval_labels(split, max_examples), rate, soma_mean)

    def _eval_labels(self, split: str, max_examples: int | None) -> Iterator[np.ndarray]:
        """Labels [b, t, 3] of the first `max_examples` evaluation windows of `split`, per file."""
        seen = 0
        for sims, rows, starts in self._eval_rows(split):
            if max_examples is not None:
                rows, starts = rows[: max_examples - seen], starts[: max_examples - seen]
            if len(rows) == 0:
                break
            yield window_labels(sims, rows, starts, BURN_IN_MS)["labels"]
            seen += len(rows)


def load_neuronio(name: str, data_dir: str | None, **options) -> NeuronIODataset:
    """The real NeuronIO from `data_dir` (registry loader; DataNotFoundError when absent)."""
    if options:
        raise ValueError(f"{name} takes no data options (got {sorted(options)}): remove them")
    if data_dir is None:
        raise DataNotFoundError(
            f"{name}: no data directory named (config data.data_dir or $ELM_DATA_DIR); the real "
            f"NeuronIO is never replaced by other data. {NEURONIO_HOWTO}"
        )
    return NeuronIODataset(find_split_files(data_dir), name=name, source="neuronio")
