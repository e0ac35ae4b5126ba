"""Benchmark data: SHD, SHD-Adding, Enwik8, NeuronIO, ListOps, Pathfinder and sequential
images, with embedded defaults built offline.

`load(name, data_dir=None, **options) -> Dataset` is the one entry point (docs/interfaces.md);
every dataset class implements `elm_jax.data.core.Dataset`. Layout: one package per benchmark
(`shd`, `neuronio`, `listops`, `pathfinder`, `enwik8`, `seq_images`) of `files` (reading the
real files), `tasks` (the dataset classes), `synthetic` (the generator) and `default` (the
embedded default) where it has them; `common` holds the shared helpers, `sequences` the dataset
class of token and feature sequences, `registry` the table of names.
Real files are looked for in `data_dir`, else `$ELM_DATA_DIR`. When a directory is named and
the files are not in it, `load` raises DataNotFoundError (it never swaps in other data); only
when no directory is named do `shd`, `shd_adding` and `enwik8` fall back to their embedded
defaults, and `ds.info["source"]` (plus `ds.info["fallback"]`) says which data was used. The
defaults are also asked for by name (`shd_default`, `shd_adding_default`, `enwiki_sample`).
A real file that is truncated or corrupt raises DataCorruptError naming it. Every name, its
loader, task kind and sizes are one entry of `elm_jax.data.registry.DATASETS`.
"""

from __future__ import annotations

from elm_jax.data.builtin import SHD_HOWTO, find_shd_files, load_real_shd
from elm_jax.data.common import (
    ChecksumError,
    DataCorruptError,
    DataNotFoundError,
    check_positive_int,
    check_rate,
    resolve_data_dir,
)
from elm_jax.data.enwik8.tasks import ByteDataset
from elm_jax.data.registry import DATASETS, PASSED_OPTIONS
from elm_jax.data.shd.files import check_bin_ms
from elm_jax.data.shd.tasks import SHDAddingDataset, SHDDataset

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "ByteDataset",
    "ChecksumError",
    "DataCorruptError",
    "DataNotFoundError",
    "SHD_HOWTO",
    "SHDAddingDataset",
    "SHDDataset",
    "check_options",
    "find_shd_files",
    "load",
    "load_real_shd",
    "static_info",
]

DATASET_NAMES = tuple(DATASETS)  # elm_jax/data/registry.py
OPTIONS = ("bin_ms", "seq_len", "input_dropout", "batches_per_epoch")


def static_info(name: str) -> dict:
    """The task fields `load(name).info` will report, known without reading or building data.

    {"task", "input_dim", "num_classes"}: SHD 700 channels and 20 classes, SHD-Adding 19
    classes (digit sums 0..18), the byte sets next-byte prediction over 256 values.
    """
    check_options(name)
    return DATASETS[name].static_info()


def check_bin_divides(bin_ms: float) -> float:
    """A positive bin size that cuts the 1 s digit into whole bins (docs/science.md §4: 1000/bin_ms
    steps)."""
    bin_ms = check_bin_ms(bin_ms)
    steps = 1000.0 / bin_ms
    if bin_ms > 1000.0 or abs(steps - round(steps)) > 1e-6 * steps:
        raise ValueError(
            f"bin_ms={bin_ms!r} must divide the 1000 ms digit into whole bins (1000/bin_ms = "
            f"{steps:g}); valid: a divisor of 1000 such as 1, 2, 5, 10, 20, 50, 100"
        )
    return bin_ms


def check_options(name: str, **options) -> dict:
    """Checks a dataset name and its option values without touching any file.

    Returns the options without the None values (None means the default). Raises ValueError
    naming the name or option, its value and what is valid. `load` calls this first, and the
    trainer's config check calls it before any data is built.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset name {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    valid = tuple(dict.fromkeys(OPTIONS + DATASETS[name].options))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown data option(s) {unknown}; valid options: {', '.join(valid)}")
    options = {k: v for k, v in options.items() if v is not None}
    if "bin_ms" in options:
        check_bin_divides(options["bin_ms"])
    if "seq_len" in options:
        check_positive_int("seq_len", options["seq_len"])
    if "batches_per_epoch" in options:
        check_positive_int("batches_per_epoch", options["batches_per_epoch"])
    if "input_dropout" in options:
        check_rate(options["input_dropout"])
    return options


def load(name: str, data_dir: str | None = None, **options):
    """The dataset `name` as a Dataset (see docs/interfaces.md and docs/data.md).

    name: "shd", "shd_adding", "enwik8" (real files; DataNotFoundError when a data directory is
    named and they are not in it, the embedded default when no directory is named),
    "shd_default", "shd_adding_default", "enwiki_sample" (always the default).
    data_dir: folder holding the real files; defaults to $ELM_DATA_DIR. Generated/downloaded
    defaults are cached under it too (else under ~/.cache/elm_jax/data).
    options: bin_ms (SHD, default 2), seq_len (byte windows, default 512), input_dropout
    (SHD training batches only, default 0), batches_per_epoch (SHD-Adding, default 2000).
    Options that do not apply to the dataset (e.g. bin_ms for enwik8) are ignored; None
    values mean the default.
    """
    options = check_options(name, **options)
    entry = DATASETS[name]
    passed = PASSED_OPTIONS + entry.options
    return entry.load_function()(
        name, resolve_data_dir(data_dir), **{k: v for k, v in options.items() if k in passed}
    )
