"""Benchmark data: SHD, SHD-Adding and Enwik8, with embedded defaults built offline.

`load(name, data_dir=None, **options) -> Dataset` is the one entry point (docs/interfaces.md).
Real files are looked for in `data_dir`, else `$ELM_DATA_DIR`. When a directory is named and
the files are not in it, `load` raises DataNotFoundError (it never swaps in other data); only
when no directory is named do `shd`, `shd_adding` and `enwik8` fall back to their embedded
defaults, and `ds.info["source"]` (plus `ds.info["fallback"]`) says which data was used. The
defaults are also asked for by name (`shd_default`, `shd_adding_default`, `enwiki_sample`).
A real file that is truncated or corrupt raises DataCorruptError naming it.
"""

from __future__ import annotations

import os
import warnings

from elm_jax.data.common import (
    ChecksumError,
    DataCorruptError,
    DataNotFoundError,
    file_record,
    resolve_data_dir,
)
from elm_jax.data.enwik8 import ENWIK8_HOWTO, ByteDataset, load_enwik8
from elm_jax.data.enwiki_sample import load_enwiki_sample
from elm_jax.data.registry import PASSED_OPTIONS, TASKS
from elm_jax.data.shd import NUM_CHANNELS, check_bin_ms, read_shd
from elm_jax.data.shd_tasks import SHDAddingDataset, SHDDataset
from elm_jax.data.shd_tasks import _check_positive as check_positive_int
from elm_jax.data.shd_tasks import _check_rate as check_rate

__all__ = [
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

DATASET_NAMES = (
    "shd",
    "shd_adding",
    "enwik8",
    "shd_default",
    "shd_adding_default",
    "enwiki_sample",
    *TASKS,  # names served by a loader module: elm_jax/data/registry.py
)
OPTIONS = ("bin_ms", "seq_len", "input_dropout", "batches_per_epoch")
BYTE_VOCAB = 256


def static_info(name: str) -> dict:
    """The task fields `load(name).info` will report, known without reading or building data.

    {"task", "input_dim", "num_classes"}: SHD 700 channels and 20 classes, SHD-Adding 19
    classes (digit sums 0..18), the byte sets next-byte prediction over 256 values.
    """
    check_options(name)
    if name in TASKS:
        return TASKS[name].static_info()
    if name.startswith("shd_adding"):
        return {"task": "classification", "input_dim": NUM_CHANNELS, "num_classes": 19}
    if name.startswith("shd"):
        return {"task": "classification", "input_dim": NUM_CHANNELS, "num_classes": 20}
    return {"task": "lm", "input_dim": BYTE_VOCAB, "num_classes": BYTE_VOCAB}


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
    valid = OPTIONS + (TASKS[name].options if name in TASKS else ())
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


SHD_HOWTO = (
    "Download shd_train.h5.gz and shd_test.h5.gz from https://zenkelab.org/datasets/ (Cramer et "
    "al. 2020) into the data directory (config data.data_dir or $ELM_DATA_DIR); gzipped or not "
    "(a tonic save_to folder, with SHD/shd_train.h5.zip, works too). "
    "Or use the embedded default with name='shd_default' / 'shd_adding_default'."
)


# Containers in order of preference, and the folders searched: the data directory itself, then
# tonic's layout (`tonic.datasets.SHD(save_to=DIR)` keeps `DIR/SHD/shd_train.h5.zip`).
SHD_EXTENSIONS = (".h5", ".h5.gz", ".h5.zip")
SHD_SUBFOLDERS = ("", "SHD")


def find_shd_files(data_dir: str | None) -> tuple[str, str] | None:
    """(train, test) paths of the real SHD in `data_dir` or `data_dir/SHD` (tonic's folder).

    `.h5` is preferred over `.h5.gz` and tonic's `.h5.zip`. None when no file is there;
    DataNotFoundError when a folder holds only one of the two (a half-copied download should
    not silently become the default).
    """
    if data_dir is None:
        return None
    partial = None
    for sub in SHD_SUBFOLDERS:
        folder = os.path.join(data_dir, sub) if sub else data_dir
        found = {}
        for stem in ("shd_train", "shd_test"):
            paths = [os.path.join(folder, stem + ext) for ext in SHD_EXTENSIONS]
            existing = [p for p in paths if os.path.isfile(p)]
            if existing:
                found[stem] = existing[0]
        if len(found) == 2:
            return found["shd_train"], found["shd_test"]
        if found and partial is None:
            missing = "shd_test" if "shd_train" in found else "shd_train"
            partial = f"found {next(iter(found.values()))} but not {os.path.join(folder, missing)}"
    if partial is not None:
        raise DataNotFoundError(f"{partial}.h5[.gz|.zip]; " + SHD_HOWTO)
    return None


def load_real_shd(data_dir: str | None) -> tuple[str, str]:
    """(train, test) paths of the real SHD; DataNotFoundError naming the paths searched if absent."""
    paths = find_shd_files(data_dir)
    if paths is None:
        raise DataNotFoundError(f"SHD not found (searched {_shd_searched(data_dir)}). {SHD_HOWTO}")
    return paths


def _shd_searched(data_dir: str | None) -> str:
    if data_dir is None:
        return "no data directory (data_dir and $ELM_DATA_DIR unset)"
    return ", ".join(
        os.path.join(data_dir, sub, f"{s}.h5[.gz|.zip]")
        for sub in SHD_SUBFOLDERS
        for s in ("shd_train", "shd_test")
    )


def _load_spikes(name: str, data_dir: str | None, force_default: bool, options: dict):
    cls = SHDAddingDataset if name.startswith("shd_adding") else SHDDataset
    task_options = {
        k: options[k] for k in ("bin_ms", "input_dropout", "batches_per_epoch") if k in options
    }
    if cls is SHDDataset:
        task_options.pop("batches_per_epoch", None)
    paths = None if force_default else find_shd_files(data_dir)
    fallback = None
    if paths is None:
        # Only for the embedded default: its generator (speech synthesis) is slow to import.
        from elm_jax.data.shd_default import build_shd_default

        if not force_default and data_dir is not None:
            raise DataNotFoundError(
                f"{name}: real SHD not found in the data directory {data_dir!r}"
                f"{_missing_note(data_dir)} (searched {_shd_searched(data_dir)}). {SHD_HOWTO}"
            )
        if not force_default:
            fallback = f"real SHD not found (searched {_shd_searched(data_dir)}); {SHD_HOWTO}"
            warnings.warn(f"{name}: using the embedded shd-default. {fallback}", stacklevel=3)
        folder = build_shd_default(data_dir)
        paths = (os.path.join(folder, "shd_train.h5"), os.path.join(folder, "shd_test.h5"))
        source = "shd-default"
    else:
        source = "shd"
    ds = cls(read_shd(paths[0]), read_shd(paths[1]), source=source, name=name,
             files=[file_record(p) for p in paths], **task_options)  # fmt: skip
    ds.info["fallback"] = fallback
    return ds


def _missing_note(data_dir: str) -> str:
    return "" if os.path.isdir(data_dir) else ", which does not exist"


def _load_bytes(name: str, data_dir: str | None, force_default: bool, options: dict):
    seq_len = options.get("seq_len", 512)
    if not force_default and data_dir is not None:
        if not os.path.isdir(data_dir):
            raise DataNotFoundError(
                f"{name}: the data directory {data_dir!r} does not exist. {ENWIK8_HOWTO}"
            )
        ds = load_enwik8(data_dir, seq_len=seq_len)  # DataNotFoundError naming the paths
        ds.info["fallback"] = None
        return ds
    fallback = None
    if not force_default:
        searched = "no data directory (data_dir and $ELM_DATA_DIR unset)"
        fallback = f"enwik8 not found (searched {searched}); using the embedded enwiki-sample"
        warnings.warn(f"{name}: {fallback}", stacklevel=3)
    ds = load_enwiki_sample(data_dir, seq_len=seq_len)
    ds.info["fallback"] = fallback
    return ds


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
    data_dir = resolve_data_dir(data_dir)
    if name in TASKS:
        passed = PASSED_OPTIONS + TASKS[name].options
        return TASKS[name].load_function()(
            name, data_dir, **{k: v for k, v in options.items() if k in passed}
        )
    force_default = name.endswith("_default") or name == "enwiki_sample"
    if name.startswith("shd"):
        return _load_spikes(name, data_dir, force_default, options)
    return _load_bytes(name, data_dir, force_default, options)
