"""The built-in names: SHD, SHD-Adding and Enwik8 from real files, else their embedded defaults.

The loaders of these names in `elm_jax.data.registry.DATASETS` (called by `elm_jax.data.load`
with the resolved data directory and the entry's options). `shd`, `shd_adding` and `enwik8`
read the real files of the data directory; when a directory is named and they are not in it,
DataNotFoundError (other data is never swapped in); only when no directory is named do they
fall back, with a warning and `info["fallback"]` saying why, to the embedded defaults, which
`shd_default`, `shd_adding_default` and `enwiki_sample` always serve.
"""

from __future__ import annotations

import os
import warnings

from elm_jax.data.common import DataNotFoundError, file_record
from elm_jax.data.enwik8.default import load_enwiki_sample
from elm_jax.data.enwik8.files import ENWIK8_HOWTO, load_enwik8
from elm_jax.data.enwik8.tasks import ByteDataset
from elm_jax.data.shd.files import read_shd
from elm_jax.data.shd.tasks import SHDAddingDataset, SHDDataset

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


def load_shd(name: str, data_dir: str | None, **options) -> SHDDataset:
    """SHD from the data directory, else (no directory named) the embedded default."""
    return _load_spikes(SHDDataset, name, data_dir, False, options)


def load_shd_adding(name: str, data_dir: str | None, **options) -> SHDAddingDataset:
    """SHD-Adding from the data directory, else (no directory named) the embedded default."""
    return _load_spikes(SHDAddingDataset, name, data_dir, False, options)


def load_shd_default(name: str, data_dir: str | None, **options) -> SHDDataset:
    """SHD built from the embedded default (cached under the data directory)."""
    return _load_spikes(SHDDataset, name, data_dir, True, options)


def load_shd_adding_default(name: str, data_dir: str | None, **options) -> SHDAddingDataset:
    """SHD-Adding built from the embedded default (cached under the data directory)."""
    return _load_spikes(SHDAddingDataset, name, data_dir, True, options)


def load_bytes(name: str, data_dir: str | None, **options) -> ByteDataset:
    """Enwik8 from the data directory, else (no directory named) the embedded enwiki-sample."""
    return _load_bytes(name, data_dir, False, options)


def load_bytes_default(name: str, data_dir: str | None, **options) -> ByteDataset:
    """The embedded enwiki-sample."""
    return _load_bytes(name, data_dir, True, options)


def _load_spikes(
    cls: type[SHDDataset | SHDAddingDataset],
    name: str,
    data_dir: str | None,
    force_default: bool,
    options: dict,
) -> SHDDataset | SHDAddingDataset:
    paths = None if force_default else find_shd_files(data_dir)
    fallback = None
    if paths is None:
        # Only for the embedded default: its generator (speech synthesis) is slow to import.
        from elm_jax.data.shd.default import build_shd_default

        if not force_default and data_dir is not None:
            raise DataNotFoundError(
                f"{name}: real SHD not found in the data directory {data_dir!r}"
                f"{_missing_note(data_dir)} (searched {_shd_searched(data_dir)}). {SHD_HOWTO}"
            )
        if not force_default:
            fallback = f"real SHD not found (searched {_shd_searched(data_dir)}); {SHD_HOWTO}"
            warnings.warn(f"{name}: using the embedded shd-default. {fallback}", stacklevel=4)
        folder = build_shd_default(data_dir)
        paths = (os.path.join(folder, "shd_train.h5"), os.path.join(folder, "shd_test.h5"))
        source = "shd-default"
    else:
        source = "shd"
    ds = cls(read_shd(paths[0]), read_shd(paths[1]), source=source, name=name,
             files=[file_record(p) for p in paths], **options)  # fmt: skip
    ds.info["fallback"] = fallback
    return ds


def _missing_note(data_dir: str) -> str:
    return "" if os.path.isdir(data_dir) else ", which does not exist"


def _load_bytes(name: str, data_dir: str | None, force_default: bool, options: dict) -> ByteDataset:
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
        warnings.warn(f"{name}: {fallback}", stacklevel=4)
    ds = load_enwiki_sample(data_dir, seq_len=seq_len)
    ds.info["fallback"] = fallback
    return ds
