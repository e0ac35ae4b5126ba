"""Benchmark data: SHD, SHD-Adding and Enwik8, with embedded defaults built offline.

`load(name, data_dir=None, **options) -> Dataset` is the one entry point (docs/interfaces.md).
Real files are looked for in `data_dir`, else `$ELM_DATA_DIR`; when they are absent, `shd`,
`shd_adding` and `enwik8` fall back to their embedded defaults, and `ds.info["source"]` (plus
`ds.info["fallback"]`) says which data was used.
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
from elm_jax.data.enwik8 import ByteDataset, load_enwik8
from elm_jax.data.shd import read_shd
from elm_jax.data.shd_tasks import SHDAddingDataset, SHDDataset

__all__ = [
    "DATASET_NAMES",
    "ByteDataset",
    "ChecksumError",
    "DataCorruptError",
    "DataNotFoundError",
    "SHD_HOWTO",
    "SHDAddingDataset",
    "SHDDataset",
    "find_shd_files",
    "load",
    "load_real_shd",
]

DATASET_NAMES = (
    "shd",
    "shd_adding",
    "enwik8",
    "shd_default",
    "shd_adding_default",
    "enwiki_sample",
)
OPTIONS = ("bin_ms", "seq_len", "input_dropout", "batches_per_epoch")
SHD_HOWTO = (
    "Download shd_train.h5.gz and shd_test.h5.gz from https://zenkelab.org/datasets/ (Cramer et "
    "al. 2020) into the data directory (config data.data_dir or $ELM_DATA_DIR); gzipped or not. "
    "Or use the embedded default with name='shd_default' / 'shd_adding_default'."
)


def find_shd_files(data_dir: str | None) -> tuple[str, str] | None:
    """(train, test) paths of the real SHD in `data_dir` (`.h5` preferred over `.h5.gz`).

    None when neither file is there; DataNotFoundError when only one of the two is (a
    half-copied download should not silently become the default).
    """
    if data_dir is None:
        return None
    found = {}
    for stem in ("shd_train", "shd_test"):
        paths = [os.path.join(data_dir, stem + ext) for ext in (".h5", ".h5.gz")]
        existing = [p for p in paths if os.path.isfile(p)]
        if existing:
            found[stem] = existing[0]
    if not found:
        return None
    if len(found) == 1:
        missing = "shd_test" if "shd_train" in found else "shd_train"
        raise DataNotFoundError(
            f"found {next(iter(found.values()))} but not {os.path.join(data_dir, missing)}.h5[.gz]; "
            + SHD_HOWTO
        )
    return found["shd_train"], found["shd_test"]


def load_real_shd(data_dir: str | None) -> tuple[str, str]:
    """(train, test) paths of the real SHD; DataNotFoundError naming the paths searched if absent."""
    paths = find_shd_files(data_dir)
    if paths is None:
        raise DataNotFoundError(f"SHD not found (searched {_shd_searched(data_dir)}). {SHD_HOWTO}")
    return paths


def _shd_searched(data_dir: str | None) -> str:
    if data_dir is None:
        return "no data directory (data_dir and $ELM_DATA_DIR unset)"
    return ", ".join(os.path.join(data_dir, f"{s}.h5[.gz]") for s in ("shd_train", "shd_test"))


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
        from elm_jax.data.shd_default import build_shd_default

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


def _load_bytes(name: str, data_dir: str | None, force_default: bool, options: dict):
    from elm_jax.data.enwik8 import find_enwik8
    from elm_jax.data.enwiki_sample import load_enwiki_sample

    seq_len = options.get("seq_len", 512)
    if not force_default and find_enwik8(data_dir) is not None:
        ds = load_enwik8(data_dir, seq_len=seq_len)
        ds.info["fallback"] = None
        return ds
    fallback = None
    if not force_default:
        searched = (", ".join(os.path.join(data_dir, n) for n in ("enwik8.zip", "enwik8"))
                    if data_dir else "no data directory (data_dir and $ELM_DATA_DIR unset)")  # fmt: skip
        fallback = f"enwik8 not found (searched {searched}); using the embedded enwiki-sample"
        warnings.warn(f"{name}: {fallback}", stacklevel=3)
    ds = load_enwiki_sample(data_dir, seq_len=seq_len)
    ds.info["fallback"] = fallback
    return ds


def load(name: str, data_dir: str | None = None, **options):
    """The dataset `name` as a Dataset (see docs/interfaces.md and docs/data.md).

    name: "shd", "shd_adding", "enwik8" (real files, falling back to the embedded default when
    absent), "shd_default", "shd_adding_default", "enwiki_sample" (always the default).
    data_dir: folder holding the real files; defaults to $ELM_DATA_DIR. Generated/downloaded
    defaults are cached under it too (else under ~/.cache/elm_jax/data).
    options: bin_ms (SHD, default 2), seq_len (byte windows, default 512), input_dropout
    (SHD training batches only, default 0), batches_per_epoch (SHD-Adding, default 2000).
    Options that do not apply to the dataset (e.g. bin_ms for enwik8) are ignored; None
    values mean the default.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset name {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown data option(s) {unknown}; valid options: {', '.join(OPTIONS)}")
    options = {k: v for k, v in options.items() if v is not None}
    data_dir = resolve_data_dir(data_dir)
    force_default = name.endswith("_default") or name == "enwiki_sample"
    if name.startswith("shd"):
        return _load_spikes(name, data_dir, force_default, options)
    return _load_bytes(name, data_dir, force_default, options)
