"""Dataset names served by a loader module, beyond the built-in SHD and Enwik8 names.

`elm_jax.data.load(name, data_dir, **options)`, `static_info(name)`, `check_options(name)` and
`DATASET_NAMES` all read this table. Each entry names its loader as "module:function"; the
module is imported on the first `load(name)` only, so the table itself costs nothing.

To add a dataset name, append one entry to `TASKS`:

    "listops": TaskEntry(
        "elm_jax.data.listops:load_listops", input_dim=..., num_classes=10,
        options=("num_train",),   # extra load() options, if any, beyond data.OPTIONS
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


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """One dataset name: its loader ("module:function") and the task fields it reports."""

    loader: str
    input_dim: int
    num_classes: int
    options: tuple[str, ...] = ()
    task: str = "classification"

    def static_info(self) -> dict:
        """{"task", "input_dim", "num_classes"}, as `load(name).info` reports them."""
        return {"task": self.task, "input_dim": self.input_dim, "num_classes": self.num_classes}

    def load_function(self) -> Callable:
        """The loader function (imports its module)."""
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)


# Options load() passes to every loader when given (the trainer's other data options, such
# as seq_len or bin_ms, do not apply to these datasets and are ignored).
PASSED_OPTIONS = ("input_dropout",)

TASKS: dict[str, TaskEntry] = {
    # Sequential images (elm_jax/data/seq_images.py): 16 grey levels one-hot, 10 classes.
    "scifar": TaskEntry("elm_jax.data.seq_images:load_scifar", input_dim=16, num_classes=10),
    "scifar_default": TaskEntry(
        "elm_jax.data.seq_images:load_fashion_mnist", input_dim=16, num_classes=10
    ),
    # ListOps (elm_jax/data/listops_tasks.py): 15 tokens one-hot, front-padded to seq_len.
    "listops": TaskEntry(
        "elm_jax.data.listops_tasks:load_listops",
        input_dim=15,
        num_classes=10,
        options=("seq_len",),
    ),
    "listops_default": TaskEntry(
        "elm_jax.data.listops_tasks:load_listops_default",
        input_dim=15,
        num_classes=10,
        options=("seq_len",),
    ),
    # NeuronIO (elm_jax/data/neuronio_tasks.py): the released simulations from the data
    # directory; 1278 signed input channels, outputs (spike logit, soma) at every 1 ms step.
    "neuronio": TaskEntry(
        "elm_jax.data.neuronio_tasks:load_neuronio", input_dim=1278, num_classes=2, task="neuronio"
    ),
    # The NeuronIO-style default (elm_jax/data/neuronio_default.py): simulated with NEURON on
    # first use and cached, in the same windows; a labelled stand-in, not the Hay L5PC data.
    "neuronio_default": TaskEntry(
        "elm_jax.data.neuronio_default:load_neuronio_default",
        input_dim=1278,
        num_classes=2,
        task="neuronio",
    ),
    # Pathfinder 32x32 (16 grey levels one-hot) and Path-X 128x128 (8 levels), pixel by pixel
    # (elm_jax/data/pathfinder_tasks.py): the LRA release from the data directory at three
    # contour lengths (hard = LRA's, _medium, _easy); `_default` = the generated stand-in.
    **{
        f"pathfinder{size}{level}{default}": TaskEntry(
            "elm_jax.data.pathfinder_tasks:load_pathfinder", input_dim=levels, num_classes=2
        )
        for size, levels in ((32, 16), (128, 8))
        for level in ("", "_medium", "_easy")
        for default in ("", "_default")
    },
}
