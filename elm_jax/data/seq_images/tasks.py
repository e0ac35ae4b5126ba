"""The sequential-image datasets served by `elm_jax.data.load`: `scifar` (CIFAR-10) and
`scifar_default` (sequential Fashion-MNIST, a labelled stand-in); the files, grey levels and
pixel order are `elm_jax.data.seq_images.files` (docs/data.md).
"""

from __future__ import annotations

import os

from elm_jax.data.common import DataNotFoundError, file_record
from elm_jax.data.seq_images import files as image_files
from elm_jax.data.seq_images.files import (
    FASHION_HOWTO,
    NUM_CLASSES,
    NUM_LEVELS,
    find_cifar_archive,
    find_fashion_files,
    read_cifar_archive,
    read_fashion_split,
)
from elm_jax.data.sequences import SequenceDataset

FASHION_SOURCE = "fashion-mnist (stand-in for sCIFAR)"


def load_fashion_mnist(name: str, data_dir: str | None, **options) -> SequenceDataset:
    """Sequential Fashion-MNIST (784 steps, 16 levels one-hot): the labelled sCIFAR stand-in."""
    paths = find_fashion_files(data_dir)
    if paths is None:
        searched = [] if data_dir is None else [data_dir, os.path.join(data_dir, "fashion-mnist")]
        searched = ", ".join([*searched, image_files.FASHION_SYSTEM_DIR])
        raise DataNotFoundError(
            f"{name}: Fashion-MNIST not found (searched {searched}); {FASHION_HOWTO}"
        )
    train = read_fashion_split(*paths["train"])
    test = read_fashion_split(*paths["test"])
    files = [file_record(p) for split in ("train", "test") for p in paths[split]]
    return SequenceDataset(
        train, test, num_classes=NUM_CLASSES, vocab_size=NUM_LEVELS, name=name,
        source=FASHION_SOURCE, files=files, extra_info={"stand_in_for": "scifar"}, **options,
    )  # fmt: skip


def load_scifar(name: str, data_dir: str | None, **options) -> SequenceDataset:
    """Sequential CIFAR-10 (1,024 steps, 16 grey levels one-hot) from the user's archive."""
    path = find_cifar_archive(data_dir)
    splits = read_cifar_archive(path)
    return SequenceDataset(
        splits["train"], splits["test"], num_classes=NUM_CLASSES, vocab_size=NUM_LEVELS,
        name=name, source="cifar10", files=[file_record(path)], **options,
    )  # fmt: skip
