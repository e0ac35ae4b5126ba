"""Sequential images, reading the files: an image read pixel by pixel, 16 grey levels one-hot, label at the last step.

Two datasets (docs/data.md):

* `scifar` — the real CIFAR-10 (Krizhevsky 2009) from the user's `cifar-10-python.tar.gz`
  (the data directory holding it, or the file's own path). RGB becomes grey with the ITU-R
  BT.601 luminance weights `0.299 R + 0.587 G + 0.114 B`; 1,024 steps per image.
* `scifar_default` — the embedded default: sequential Fashion-MNIST (Xiao et al. 2017, 28 x 28
  grey, 784 steps) from Debian's `dataset-fashion-mnist` package, or the four IDX files in the
  data directory. It is labelled "fashion-mnist (stand-in for sCIFAR)", never as CIFAR.

Grey levels g in [0, 255] are binned to `level = min(floor(g · 16 / 256), 15)` (for 8-bit grey:
g // 16) and fed one-hot (input_dim 16). Pixels are read row by row, left to right (row-major),
so step `r · W + c` is pixel (r, c). Neither set has a validation split of its own; it is
taken from the training set (`elm_jax.data.sequences.validation_rows`).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from elm_jax.data.common import DataCorruptError, DataNotFoundError

NUM_LEVELS = 16
NUM_CLASSES = 10
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 (R, G, B)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_TRAIN = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "cifar-10-batches-py/test_batch"
CIFAR_SIDE = 32
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # where the Debian package installs
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_HOWTO = (
    "Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and name "
    "its folder (or the file itself) as the data directory (config data.data_dir or "
    "$ELM_DATA_DIR); or use name='scifar_default' (sequential Fashion-MNIST, a labelled stand-in)"
)
FASHION_HOWTO = (
    "install Debian's dataset-fashion-mnist package (`make fashion-mnist` as root, or "
    "`apt-get install dataset-fashion-mnist`), or put train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
    "(gzipped or not) in the data directory or its fashion-mnist/ folder"
)


def grey_levels(grey: np.ndarray, num_levels: int = NUM_LEVELS) -> np.ndarray:
    """Grey values in [0, 255] -> levels `min(floor(g · L / 256), L - 1)` as uint8."""
    grey = np.asarray(grey, np.float64)
    return np.minimum(np.floor(grey * num_levels / 256.0), num_levels - 1).astype(np.uint8)


def rgb_to_grey(planes: np.ndarray) -> np.ndarray:
    """CIFAR rows [n, 3072] (1,024 R, then G, then B values, row-major) -> grey [n, 1024]."""
    r, g, b = (planes[:, k * 1024 : (k + 1) * 1024].astype(np.float64) for k in range(3))
    wr, wg, wb = LUMA_WEIGHTS
    return wr * r + wg * g + wb * b


# --- Fashion-MNIST (IDX files) -----------------------------------------------------------------

IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1 dimension (labels) / 3 (images)


def read_idx(path: str, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) with `ndim` dimensions, as uint8."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DataCorruptError(f"{path}: not a readable IDX file ({err})") from err
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != IDX_MAGIC[ndim]:
        raise DataCorruptError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) (magic "
            f"{raw[:4].hex() or 'missing'}, expected {IDX_MAGIC[ndim]:08x})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    size = int(np.prod(shape))
    if len(raw) != header + size:
        raise DataCorruptError(
            f"{path}: holds {len(raw) - header} data bytes, its header {shape} says {size}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def find_fashion_files(data_dir: str | None) -> dict[str, tuple[str, str]] | None:
    """{"train": (images, labels), "test": (...)} of the first folder holding all four files.

    Searched: `data_dir`, `data_dir/fashion-mnist`, then the Debian package's folder; each file
    gzipped (`.gz`) or not. None when no folder holds all four.
    """
    folders = [] if data_dir is None else [data_dir, os.path.join(data_dir, "fashion-mnist")]
    for folder in [*folders, FASHION_SYSTEM_DIR]:
        found = {}
        for split, stems in FASHION_FILES.items():
            paths = []
            for stem in stems:
                candidates = [os.path.join(folder, stem + ext) for ext in (".gz", "")]
                paths += [p for p in candidates if os.path.isfile(p)][:1]
            if len(paths) == 2:
                found[split] = tuple(paths)
        if len(found) == 2:
            return found
    return None


def read_fashion_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixel levels [n, rows · cols] uint8, labels [n]) of one IDX image/label pair."""
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataCorruptError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataCorruptError(f"{labels_path}: label {labels.max()}; valid: 0..9")
    return grey_levels(images.reshape(len(images), -1)), labels.astype(np.int64)


# --- CIFAR-10 (python pickles in a tar.gz) -----------------------------------------------------


def find_cifar_archive(data_dir: str | None) -> str:
    """The path of `cifar-10-python.tar.gz`: `data_dir` itself when it is that file, else in it."""
    if data_dir is None:
        raise DataNotFoundError(
            f"scifar: no data directory (data_dir and $ELM_DATA_DIR unset). {CIFAR_HOWTO}"
        )
    path = data_dir if os.path.isfile(data_dir) else os.path.join(data_dir, CIFAR_ARCHIVE)
    if not os.path.isfile(path):
        raise DataNotFoundError(f"scifar: {path} not found. {CIFAR_HOWTO}")
    return path


def _cifar_batch(archive: tarfile.TarFile, path: str, member: str) -> tuple:
    try:
        handle = archive.extractfile(member)
    except KeyError as err:
        raise DataCorruptError(f"{path}: member {member} missing") from err
    try:
        batch = pickle.load(io.BytesIO(handle.read()), encoding="bytes")
        data = np.asarray(batch[b"data"], np.uint8)
        labels = np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataCorruptError(f"{path}: member {member} is not a CIFAR-10 batch ({err})") from err
    if data.ndim != 2 or data.shape[1] != 3 * CIFAR_SIDE**2 or len(labels) != len(data):
        raise DataCorruptError(
            f"{path}: member {member} holds data {data.shape} and {len(labels)} labels; "
            f"expected [n, {3 * CIFAR_SIDE**2}] and n labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataCorruptError(f"{path}: member {member} has labels outside 0..9")
    return grey_levels(rgb_to_grey(data)), labels


def read_cifar_archive(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "test"}: (grey levels [n, 1024] uint8, labels [n]) of `cifar-10-python.tar.gz`."""
    try:
        with tarfile.open(path, "r:*") as archive:
            parts = [_cifar_batch(archive, path, m) for m in CIFAR_TRAIN]
            test = _cifar_batch(archive, path, CIFAR_TEST)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataCorruptError(f"{path}: not a readable tar.gz archive ({err})") from err
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": test}
