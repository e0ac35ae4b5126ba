"""Pathfinder on disk: the generated stand-in's cache, and the LRA release folders when present.

Generated sets (`elm_jax.data.pathfinder.synthetic`) live in `<cache>/pathfinder_style/<key>/`, where
`key` hashes the generator version, its parameters, the split sizes and the seed. The folder
holds `train.npz`, `validation.npz`, `test.npz` (`images` [n, H, W] uint8, `labels` [n] uint8,
`markers` [n, 2, 2] int16) and `manifest.json` (parameters, seed, sizes, each file's sha256,
generation time). The npz members carry a fixed date, so a file's bytes (and sha256) depend
only on its arrays. The folder is assembled under a temporary name and renamed into place, and
every read checks the files against the manifest's sha256.

The Long Range Arena release (Tay et al. 2021) keeps each difficulty in a folder such as
`lra_release/lra_release/pathfinder32/curv_baseline/` with `imgs/<k>/sample_<i>.png` and
`metadata/<k>.npy`. Despite the suffix, a metadata file is text: one line per image, fields
separated by spaces, field 0 the image folder relative to the difficulty folder (`imgs/<k>`),
field 1 the file name, field 3 the label (1 = connected). Only those three fields are read.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import time
import zipfile

import numpy as np

from elm_jax.data.common import (
    ChecksumError,
    DataCorruptError,
    DataNotFoundError,
    file_record,
    sha256_file,
)
from elm_jax.data.pathfinder.synthetic import GENERATOR_VERSION, PathfinderConfig, generate
from elm_jax.files import atomic_folder

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {
    32: {"train": 16000, "validation": 2000, "test": 2000},
    128: {"train": 4000, "validation": 500, "test": 500},
}
LRA_FOLDERS = {"easy": "curv_baseline", "medium": "curv_contour_length_9",
               "hard": "curv_contour_length_14"}  # fmt: skip
# Where a difficulty folder is looked for under the data directory (the release unpacks to
# lra_release/lra_release/; a folder one or two levels down works as well).
LRA_PARENTS = ("lra_release/lra_release/pathfinder{size}", "lra_release/pathfinder{size}",
               "pathfinder{size}")  # fmt: skip
LRA_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test, of a seeded permutation
LRA_SPLIT_SEED = 0
LRA_HOWTO = (
    "download lra_release.gz from the Long Range Arena repository (github.com/google-research/"
    "long-range-arena) and unpack it in the data directory (config data.data_dir or "
    "$ELM_DATA_DIR), or use the generated stand-in: a name ending in '_default'"
)


# --- the generated stand-in ------------------------------------------------------------------


def generated_key(cfg: PathfinderConfig, sizes: dict[str, int], seed: int) -> str:
    """Hash of the generator version, its parameters, the split sizes and the seed."""
    text = json.dumps([GENERATOR_VERSION, dataclasses.asdict(cfg), sizes, seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_generated(
    folder_parent: str, cfg: PathfinderConfig, sizes: dict[str, int], seed: int = 0
) -> str:
    """The folder of the cached set for (cfg, sizes, seed), generated first when absent.

    Split k (train, validation, test) is `generate(cfg, sizes[split], [seed, k])`, so changing
    the training size leaves the evaluation images as they were.
    """
    if sorted(sizes) != sorted(SPLITS):
        raise ValueError(f"pathfinder sizes={sizes!r}; valid: a count for each of {SPLITS}")
    final = os.path.join(folder_parent, "pathfinder_style", generated_key(cfg, sizes, seed))
    if os.path.isfile(os.path.join(final, "manifest.json")):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final + ".lock", "w") as lock:  # one builder at a time per cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, "manifest.json")):
            return final
        with atomic_folder(final, "manifest.json") as tmp:
            _write_generated(tmp, cfg, sizes, seed)
    return final


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """A deflated .npz whose bytes depend only on the arrays (members dated 1980-01-01)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array))
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def _write_generated(folder: str, cfg: PathfinderConfig, sizes: dict[str, int], seed: int):
    wall, cpu = time.time(), time.process_time()
    files = {}
    for k, split in enumerate(SPLITS):
        arrays = generate(cfg, int(sizes[split]), [seed, k])
        path = os.path.join(folder, f"{split}.npz")
        write_npz(path, arrays)
        files[split] = {"file": f"{split}.npz", "sha256": sha256_file(path),
                        "num_examples": int(sizes[split]),
                        "positives": int(arrays["labels"].sum())}  # fmt: skip
    manifest = {
        "dataset": "pathfinder-style (generated stand-in, not the LRA files)",
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(cfg),
        "seed": seed,
        "sizes": sizes,
        "files": files,
        "generation_seconds": round(time.time() - wall, 1),
        "generation_cpu_seconds": round(time.process_time() - cpu, 1),
    }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)


def read_generated(folder: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict, list]:
    """({split: (images, labels)}, manifest, file records) of a cached set, checksums checked."""
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    splits, records = {}, []
    for split in SPLITS:
        entry = manifest["files"][split]
        path = os.path.join(folder, entry["file"])
        record = file_record(path)
        if record["sha256"] != entry["sha256"]:
            raise ChecksumError(
                f"{path}: sha256 {record['sha256']} differs from the manifest's {entry['sha256']}"
                "; delete the folder to regenerate it"
            )
        try:
            with np.load(path) as arrays:
                splits[split] = (arrays["images"], arrays["labels"].astype(np.int64))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise DataCorruptError(f"{path}: unreadable ({err}); delete the folder") from err
        records.append(record)
    return splits, manifest, records


# --- the LRA release -------------------------------------------------------------------------


def find_lra_folder(data_dir: str, size: int, difficulty: str) -> str:
    """The LRA difficulty folder under `data_dir`; DataNotFoundError naming the paths searched."""
    searched = [
        os.path.join(data_dir, parent.format(size=size), LRA_FOLDERS[difficulty])
        for parent in LRA_PARENTS
    ]
    for folder in searched:
        if os.path.isdir(os.path.join(folder, "metadata")):
            return folder
    raise DataNotFoundError(
        f"LRA pathfinder{size} ({difficulty}) not found (searched "
        f"{', '.join(os.path.join(f, 'metadata') for f in searched)}); {LRA_HOWTO}"
    )


def _numeric_stem(name: str) -> tuple:
    stem = os.path.splitext(name)[0]
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def read_lra_metadata(folder: str) -> list[tuple[str, int]]:
    """(image path, label) of every line of `folder/metadata/*.npy`, files in numeric order."""
    meta_dir = os.path.join(folder, "metadata")
    names = sorted((n for n in os.listdir(meta_dir) if n.endswith(".npy")), key=_numeric_stem)
    if not names:
        raise DataCorruptError(f"{meta_dir}: no metadata/*.npy files; {LRA_HOWTO}")
    entries = []
    for name in names:
        path = os.path.join(meta_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except UnicodeDecodeError as err:
            raise DataCorruptError(f"{path}: not a text metadata file ({err})") from err
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) < 4 or fields[3] not in ("0", "1"):
                raise DataCorruptError(
                    f"{path}:{number}: {line!r}; valid: 'imgs/<k> sample_<i>.png <n> <label 0|1>'"
                )
            entries.append((os.path.join(folder, fields[0], fields[1]), int(fields[3])))
    return entries


def read_lra_images(entries: list[tuple[str, int]], size: int) -> np.ndarray:
    """Grey images [n, size, size] uint8 of the metadata entries (Pillow decodes the PNGs)."""
    # Pillow only decodes the LRA release's PNGs; the generated stand-in needs none.
    from PIL import Image, UnidentifiedImageError

    images = np.empty((len(entries), size, size), np.uint8)
    for i, (path, _) in enumerate(entries):
        try:
            with Image.open(path) as image:
                grey = np.asarray(image.convert("L"))
        except FileNotFoundError as err:
            raise DataCorruptError(f"{path}: listed in the metadata but missing") from err
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise DataCorruptError(f"{path}: not a readable image ({err})") from err
        if grey.shape != (size, size):
            raise DataCorruptError(f"{path}: image of shape {grey.shape}; valid: {size}x{size}")
        images[i] = grey
    return images


def lra_splits(num_examples: int) -> dict[str, np.ndarray]:
    """Rows of each split: 80 / 10 / 10 % of `default_rng(0).permutation(n)`, each sorted."""
    order = np.random.default_rng(LRA_SPLIT_SEED).permutation(num_examples)
    num_train = int(round(LRA_FRACTIONS[0] * num_examples))
    num_val = int(round(LRA_FRACTIONS[1] * num_examples))
    cuts = {"train": order[:num_train], "validation": order[num_train : num_train + num_val],
            "test": order[num_train + num_val :]}  # fmt: skip
    for split, rows in cuts.items():
        if rows.size == 0:
            raise DataCorruptError(
                f"LRA pathfinder: {num_examples} images leave no {split} examples; valid: >= 10"
            )
    return {split: np.sort(rows) for split, rows in cuts.items()}


def read_lra(folder: str, size: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list]:
    """({split: (images, labels)}, metadata file records) of an LRA difficulty folder."""
    entries = read_lra_metadata(folder)
    images = read_lra_images(entries, size)
    labels = np.array([label for _, label in entries], np.int64)
    rows = lra_splits(len(entries))
    meta_dir = os.path.join(folder, "metadata")
    records = [file_record(os.path.join(meta_dir, n))
               for n in sorted(os.listdir(meta_dir), key=_numeric_stem) if n.endswith(".npy")]  # fmt: skip
    return {split: (images[r], labels[r]) for split, r in rows.items()}, records
