"""Pathfinder (32x32) and Path-X (128x128) as sequence classification, pixel by pixel.

Names (docs/data.md): `pathfinder32`, `pathfinder128` (the hardest level, 14-dash contours, as
in Long Range Arena), `pathfinder{32,128}_medium` (9 dashes) and `..._easy` (6 dashes) read the
LRA release from the data directory; when no directory is named they fall back to the
generated Pathfinder-style stand-in (with a warning and `info["fallback"]`). A name ending in
`_default` always uses the generated stand-in. Either way an image is read row by row (step
`r · W + c` is pixel (r, c)), grey levels binned to 16 levels (Pathfinder) or 8 (Path-X) as
`min(floor(g · L / 256), L - 1)` and fed one-hot; the label (1 = markers connected) belongs to
the last step.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from elm_jax.data.common import DataNotFoundError, cache_dir
from elm_jax.data.pathfinder.files import (
    DEFAULT_SIZES,
    LRA_HOWTO,
    build_generated,
    find_lra_folder,
    read_generated,
    read_lra,
)
from elm_jax.data.pathfinder.synthetic import preset
from elm_jax.data.seq_images.files import grey_levels
from elm_jax.data.sequences import SequenceDataset

NAME_PATTERN = re.compile(r"^pathfinder(32|128)(_easy|_medium)?(_default)?$")
NUM_LEVELS = {32: 16, 128: 8}
GENERATED_SOURCE = "pathfinder-style"
LRA_SOURCE = "lra-pathfinder"


def parse_name(name: str) -> tuple[int, str, bool]:
    """(image size, difficulty, generated only) of a Pathfinder dataset name."""
    match = NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(
            f"unknown Pathfinder name {name!r}; valid: pathfinder32 or pathfinder128, then "
            "optionally _easy or _medium, then optionally _default"
        )
    size, level, default = match.groups()
    return int(size), (level or "_hard")[1:], default is not None


def _dataset(name, splits, size, source, files, extra, options) -> SequenceDataset:
    levels = NUM_LEVELS[size]
    tokens = {s: (grey_levels(x.reshape(len(x), -1), levels), y) for s, (x, y) in splits.items()}
    return SequenceDataset(
        tokens["train"], tokens["test"], validation=tokens["validation"], num_classes=2,
        vocab_size=levels, name=name, source=source, files=files,
        extra_info={"image_size": size, "grey_levels": levels, **extra}, **options,
    )  # fmt: skip


def load_generated(name: str, data_dir: str | None, **options) -> SequenceDataset:
    """The generated Pathfinder-style stand-in at the name's size and difficulty."""
    size, difficulty, _ = parse_name(name)
    folder = build_generated(cache_dir(data_dir), preset(size, difficulty), DEFAULT_SIZES[size])
    splits, manifest, files = read_generated(folder)
    extra = {
        "difficulty": difficulty,
        "stand_in_for": f"LRA pathfinder{size} ({difficulty})",
        "generator": {k: manifest[k] for k in ("generator_version", "config", "seed")},
        "generation_seconds": manifest["generation_seconds"],
    }
    return _dataset(name, splits, size, GENERATED_SOURCE, files, extra, options)


def load_pathfinder(name: str, data_dir: str | None, **options) -> SequenceDataset:
    """LRA Pathfinder from `data_dir`; the generated stand-in for `_default` names or no dir."""
    size, difficulty, generated_only = parse_name(name)
    if generated_only:
        return load_generated(name, data_dir, **options)
    if data_dir is None:
        reason = f"no data directory named (data_dir and $ELM_DATA_DIR unset); {LRA_HOWTO}"
        warnings.warn(f"{name}: using the generated Pathfinder-style stand-in. {reason}",
                      stacklevel=3)  # fmt: skip
        ds = load_generated(name, data_dir, **options)
        ds.info["fallback"] = reason
        return ds
    try:
        folder = find_lra_folder(data_dir, size, difficulty)
    except DataNotFoundError as err:
        raise DataNotFoundError(f"{name}: {err}") from None
    splits, files = read_lra(folder, size)
    extra = {"difficulty": difficulty, "lra_folder": folder,
             "positives": {s: int(np.sum(y)) for s, (_, y) in splits.items()}}  # fmt: skip
    return _dataset(name, splits, size, LRA_SOURCE, files, extra, options)
