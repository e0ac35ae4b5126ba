"""tensorflow-datasets builders for the real SHD and Enwik8 files (no TensorFlow needed).

Versioned `GeneratorBasedBuilder`s read the user's files from `manual_dir` and write ArrayRecord
shards, which `tfds.data_source` (or `builder.as_data_source()`) reads without TensorFlow:

    python -m elm_jax.data.tfds_builders shd MANUAL_DIR OUT_DIR     # -> OUT_DIR/elm_shd/1.0.0
    python -m elm_jax.data.tfds_builders enwik8 MANUAL_DIR OUT_DIR  # -> OUT_DIR/elm_enwik8/1.0.0

They store the raw data (spike lists, byte chunks) so that any binning or windowing stays
the data layer's job; `elm_jax.data.load` remains the training interface.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import tensorflow_datasets as tfds

from elm_jax.data import SHD_HOWTO, load_real_shd
from elm_jax.data.enwik8.files import (
    ENWIK8_BYTES,
    ENWIK8_HOWTO,
    find_enwik8,
    read_enwik8_bytes,
)
from elm_jax.data.enwik8.tasks import split_bounds
from elm_jax.data.shd.files import read_shd
from elm_jax.data.shd.tasks import validation_mask

SHD_CITATION = """@article{cramer2020heidelberg, title={The Heidelberg Spiking Data Sets for the
Systematic Evaluation of Spiking Neural Networks}, author={Cramer, Benjamin and Stradmann, Yannik
and Schemmel, Johannes and Zenke, Friedemann}, journal={IEEE TNNLS}, year={2022}}"""
ENWIK8_CHUNK = 1 << 20


class _ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of builders that only read `manual_dir` (nothing to download, so no checksums)."""

    # tfds locates a checksums file next to the builder's code through importlib_resources,
    # which is not installed here; with no downloads there is no checksums file to find.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return None


class ElmShd(_ManualBuilder):
    """Spiking Heidelberg Digits: raw spikes of shd_train / shd_test (docs/science.md §4 format)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw spikes, labels, speakers; `validation` marks the seed-0 split."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = SHD_HOWTO

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="SHD spikes: times (s), units (0..699), label (0..19), speaker.",
            features=tfds.features.FeaturesDict(
                {
                    "times": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                    "units": tfds.features.Tensor(shape=(None,), dtype=np.uint16),
                    "label": tfds.features.ClassLabel(num_classes=20),
                    "speaker": tfds.features.Scalar(dtype=np.int32),
                    "index": tfds.features.Scalar(dtype=np.int64),
                    "validation": tfds.features.Scalar(dtype=np.bool_),
                }
            ),  # fmt: skip
            homepage="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
            citation=SHD_CITATION,
        )

    def _split_generators(self, dl_manager):
        train, test = load_real_shd(str(dl_manager.manual_dir))
        return {
            "train": self._generate_examples(train, True),
            "test": self._generate_examples(test, False),
        }

    def _generate_examples(self, path: str, is_train: bool):
        spikes = read_shd(path)
        in_validation = (
            validation_mask(spikes.num_samples) if is_train else np.zeros(spikes.num_samples, bool)
        )
        for n in range(spikes.num_samples):
            times, units = spikes.sample(n)
            yield n, {
                "times": np.asarray(times, np.float32), "units": np.asarray(units, np.uint16),
                "label": int(spikes.labels[n]), "speaker": int(spikes.speakers[n]), "index": n,
                "validation": bool(in_validation[n]),
            }  # fmt: skip


class ElmEnwik8(_ManualBuilder):
    """Enwik8 split 90M/5M/5M (docs/science.md §5), stored as ordered 1 MiB byte chunks with their
    offset."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Byte chunks of the 90/5/5 split; `offset` restores the order."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = ENWIK8_HOWTO
    expected_bytes = ENWIK8_BYTES

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="enwik8 bytes; concatenate a split's chunks sorted by offset.",
            features=tfds.features.FeaturesDict(
                {
                    "offset": tfds.features.Scalar(dtype=np.int64),
                    "bytes": tfds.features.Tensor(shape=(None,), dtype=np.uint8),
                }
            ),  # fmt: skip
            homepage="http://mattmahoney.net/dc/textdata.html",
        )

    def _split_generators(self, dl_manager):
        path = find_enwik8(str(dl_manager.manual_dir))
        if path is None:
            raise FileNotFoundError(
                f"no enwik8.zip or enwik8 in {dl_manager.manual_dir}. {ENWIK8_HOWTO}"
            )
        data = read_enwik8_bytes(path, self.expected_bytes)
        return {
            split: self._generate_examples(data[a:b])
            for split, (a, b) in split_bounds(len(data)).items()
        }

    def _generate_examples(self, data: np.ndarray):
        for offset in range(0, len(data), ENWIK8_CHUNK):
            yield offset, {"offset": offset, "bytes": data[offset : offset + ENWIK8_CHUNK]}


def prepare(builder_cls: type, manual_dir: str, out_dir: str) -> tfds.core.DatasetBuilder:
    """Builds ArrayRecord shards of `builder_cls` from `manual_dir` into `out_dir`."""
    builder = builder_cls(data_dir=out_dir, file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    builders = {"shd": ElmShd, "enwik8": ElmEnwik8}
    parser.add_argument("dataset", choices=tuple(builders))
    parser.add_argument("manual_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    builder = prepare(builders[args.dataset], args.manual_dir, args.out_dir)
    print(builder.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
