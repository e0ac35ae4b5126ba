"""The one table of dataset names: each name's loader, task kind, sizes and options.

`elm_jax.data.load(name, data_dir, **options)`, `static_info(name)`, `check_options(name)`,
`DATASET_NAMES`, the trainer's data options, the budget's tasks (elm_jax.budget.enumeration)
and every other reader of a dataset's kind or sizes read this table; nothing else compares
dataset names. Each entry names its loader as "module:function"; the module is imported on the
first `load(name)` only, so the table itself costs nothing.

To add a dataset name, append one entry to `DATASETS`:

    "listops": DatasetEntry(
        "elm_jax.data.listops.tasks:load_listops", input_dim=..., num_classes=10,
        options=("num_train",),   # load() options the loader takes, beyond input_dropout
        task="classification",    # its task kind: a key of elm_jax.tasks.KINDS
    ),

The loader is called as `loader(name, data_dir, **options)`: `data_dir` is the resolved data
directory (`data_dir`, else `$ELM_DATA_DIR`, else None) and `options` holds `input_dropout`
when given plus the entry's own options; it returns a dataset with the protocol of
docs/interfaces.md, usually an `elm_jax.data.sequences.SequenceDataset` built with
`name=name` and a `source` that says which data it is. It checks its own options' values and
raises DataNotFoundError / DataCorruptError (elm_jax.data.common) for missing or bad files.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from elm_jax.tasks import TaskKind, task_kind


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """One dataset name: its loader ("module:function"), the task fields it reports, and the
    length of its examples where that is known before loading (chrono initialisation)."""

    loader: str
    input_dim: int
    num_classes: int
    options: tuple[str, ...] = ()
    task: str = "classification"
    # Binned spike data: one example lasts example_ms, T = example_ms / bin_ms steps.
    example_ms: float | None = None
    # Examples of a fixed number of steps.
    example_steps: int | None = None

    @property
    def kind(self) -> TaskKind:
        """The task kind's object (elm_jax.tasks)."""
        return task_kind(self.task)

    @property
    def binned(self) -> bool:
        """Spike counts in bins of the `bin_ms` option (the trainer passes data.bin_ms)."""
        return "bin_ms" in self.options

    def static_info(self) -> dict:
        """{"task", "input_dim", "num_classes"}, as `load(name).info` reports them."""
        return {"task": self.task, "input_dim": self.input_dim, "num_classes": self.num_classes}

    def example_length(self, bin_ms: float, seq_len: int) -> int | None:
        """T: the steps of one example under the options `bin_ms` and `seq_len` (used only by
        the data that takes them); None when it is known only from the data."""
        if self.example_steps is not None:
            return self.example_steps
        if self.example_ms is not None:
            return int(round(self.example_ms / bin_ms))
        if "seq_len" in self.options:
            return int(seq_len)
        return None

    def load_function(self) -> Callable:
        """The loader function (imports its module)."""
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)


# Options load() passes to every loader when given (the trainer's other data options, such
# as seq_len or bin_ms, reach only the loaders whose entry names them).
PASSED_OPTIONS = ("input_dropout",)

_BUILTIN = "elm_jax.data.builtin:"
_SHD = dict(input_dim=700, options=("bin_ms",), example_ms=1000.0)
_SHD_ADDING = dict(input_dim=700, options=("bin_ms", "batches_per_epoch"), example_ms=2000.0)
_BYTES = dict(input_dim=256, num_classes=256, options=("seq_len",), task="lm")

DATASETS: dict[str, DatasetEntry] = {
    # SHD (20 spoken digits) and SHD-Adding (the sum 0..18 of two), 700 channels of spike
    # counts, and Enwik8's bytes (elm_jax/data/builtin.py): the real files, else the defaults.
    "shd": DatasetEntry(_BUILTIN + "load_shd", num_classes=20, **_SHD),
    "shd_adding": DatasetEntry(_BUILTIN + "load_shd_adding", num_classes=19, **_SHD_ADDING),
    "enwik8": DatasetEntry(_BUILTIN + "load_bytes", **_BYTES),
    "shd_default": DatasetEntry(_BUILTIN + "load_shd_default", num_classes=20, **_SHD),
    "shd_adding_default": DatasetEntry(
        _BUILTIN + "load_shd_adding_default", num_classes=19, **_SHD_ADDING
    ),
    "enwiki_sample": DatasetEntry(_BUILTIN + "load_bytes_default", **_BYTES),
    # Sequential images (elm_jax/data/seq_images/): 16 grey levels one-hot, 10 classes.
    "scifar": DatasetEntry(
        "elm_jax.data.seq_images.tasks:load_scifar",
        input_dim=16,
        num_classes=10,
        example_steps=1024,
    ),
    "scifar_default": DatasetEntry(
        "elm_jax.data.seq_images.tasks:load_fashion_mnist",
        input_dim=16,
        num_classes=10,
        example_steps=784,
    ),
    # ListOps (elm_jax/data/listops/tasks.py): 15 tokens one-hot, front-padded to seq_len.
    "listops": DatasetEntry(
        "elm_jax.data.listops.tasks:load_listops",
        input_dim=15,
        num_classes=10,
        options=("seq_len",),
    ),
    "listops_default": DatasetEntry(
        "elm_jax.data.listops.tasks:load_listops_default",
        input_dim=15,
        num_classes=10,
        options=("seq_len",),
    ),
    # NeuronIO (elm_jax/data/neuronio/tasks.py): the released simulations from the data
    # directory; 1278 signed input channels, outputs (spike logit, soma) at every 1 ms step.
    "neuronio": DatasetEntry(
        "elm_jax.data.neuronio.tasks:load_neuronio", input_dim=1278, num_classes=2, task="neuronio"
    ),
    # The NeuronIO-style default (elm_jax/data/neuronio/default.py): simulated with NEURON on
    # first use and cached, in the same windows; a labelled stand-in, not the Hay L5PC data.
    "neuronio_default": DatasetEntry(
        "elm_jax.data.neuronio.default:load_neuronio_default",
        input_dim=1278,
        num_classes=2,
        task="neuronio",
    ),
    # Pathfinder 32x32 (16 grey levels one-hot) and Path-X 128x128 (8 levels), pixel by pixel
    # (elm_jax/data/pathfinder/tasks.py): the LRA release from the data directory at three
    # contour lengths (hard = LRA's, _medium, _easy); `_default` = the generated stand-in.
    **{
        f"pathfinder{size}{level}{default}": DatasetEntry(
            "elm_jax.data.pathfinder.tasks:load_pathfinder",
            input_dim=levels,
            num_classes=2,
            example_steps=size * size,
        )
        for size, levels in ((32, 16), (128, 8))
        for level in ("", "_medium", "_easy")
        for default in ("", "_default")
    },
}
