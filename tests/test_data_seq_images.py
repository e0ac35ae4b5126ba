"""Sequential images: exact 16-level binning, pixel order, labels, file errors (on files written
here: small IDX files for Fashion-MNIST and a small CIFAR-10 python archive)."""

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from elm_jax import data
from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.data.seq_images import files as seq_images


def _write_idx(path, array, gz=True):
    array = np.asarray(array, np.uint8)
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    with open(path, "wb") as handle:
        handle.write(gzip.compress(raw) if gz else raw)


def _fashion_dir(tmp_path, n_train=30, n_test=6, gz=True):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 3, 4), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[split] = (images, labels)
    return arrays


def test_grey_levels_bin_0_255_into_16_equal_levels_exactly():
    grey = np.arange(256)
    levels = seq_images.grey_levels(grey)
    np.testing.assert_array_equal(levels, np.repeat(np.arange(16), 16))
    edges = seq_images.grey_levels([15.999, 16.0, 255.0, 254.9, 0.0])
    assert edges.tolist() == [0, 1, 15, 15, 0] and edges.dtype == np.uint8


def test_fashion_mnist_reads_pixels_row_major_one_hot_with_labels(tmp_path):
    arrays = _fashion_dir(tmp_path)
    ds = data.load("scifar_default", data_dir=str(tmp_path))
    assert ds.info["source"] == "fashion-mnist (stand-in for sCIFAR)"
    assert ds.info["seq_len"] == 12 and ds.info["input_dim"] == 16
    images, labels = arrays["t10k"]
    batch = next(ds.eval_batches("test", 6))
    levels = batch["inputs"].argmax(-1)
    # step r * W + c is pixel (r, c), at level pixel // 16
    for r in range(3):
        for c in range(4):
            np.testing.assert_array_equal(levels[:, r * 4 + c], images[:, r, c] // 16)
    np.testing.assert_array_equal(batch["labels"], labels)
    assert ds.info["num_examples"] == {"train": 27, "validation": 3, "test": 6}
    assert [f["bytes"] for f in ds.info["files"]] == [
        os.path.getsize(f["path"]) for f in ds.info["files"]
    ]


def test_uncompressed_idx_files_are_read_too(tmp_path):
    arrays = _fashion_dir(tmp_path, gz=False)
    ds = data.load("scifar_default", data_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.labels("test"), arrays["t10k"][1])


def _cifar_archive(path, batches):
    """Writes a CIFAR-10 python archive with the given {member: (data [n, 3072], labels)}."""
    with tarfile.open(path, "w:gz") as archive:
        for member, (rows, labels) in batches.items():
            blob = pickle.dumps({b"data": rows, b"labels": list(labels)})
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))


def _cifar_batches(n=4):
    rng = np.random.default_rng(1)
    members = [*seq_images.CIFAR_TRAIN, seq_images.CIFAR_TEST]
    return {
        m: (rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, n))
        for m in members
    }


def test_cifar_grey_uses_bt601_luminance_then_16_levels_in_pixel_order(tmp_path):
    batches = _cifar_batches()
    _cifar_archive(tmp_path / "cifar-10-python.tar.gz", batches)
    ds = data.load("scifar", data_dir=str(tmp_path))
    assert ds.info["source"] == "cifar10" and ds.info["seq_len"] == 1024
    rows, labels = batches[seq_images.CIFAR_TEST]
    image = rows.reshape(4, 3, 32, 32).astype(np.float64)  # channel, row, column
    grey = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    expected = np.floor(grey / 16).reshape(4, 1024)
    levels = next(ds.eval_batches("test", 4))["inputs"].argmax(-1)
    np.testing.assert_array_equal(levels, expected)
    np.testing.assert_array_equal(ds.labels("test"), labels)
    assert ds.num_examples("train") + ds.num_examples("validation") == 20


def test_cifar_archive_may_be_named_directly(tmp_path):
    _cifar_archive(tmp_path / "c.tar.gz", _cifar_batches())
    assert data.load("scifar", data_dir=str(tmp_path / "c.tar.gz")).num_examples("test") == 4


def test_missing_files_raise_data_not_found_saying_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError, match="cifar-10-python.tar.gz not found.*cs.toronto"):
        data.load("scifar", data_dir=str(tmp_path))
    monkeypatch.setattr(seq_images, "FASHION_SYSTEM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="Fashion-MNIST not found.*dataset-fashion-mnist"):
        data.load("scifar_default", data_dir=str(tmp_path))


def test_corrupt_files_raise_data_corrupt_naming_the_file(tmp_path):
    _fashion_dir(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-8])  # truncated gzip stream
    with pytest.raises(DataCorruptError, match="t10k-labels-idx1-ubyte.gz"):
        data.load("scifar_default", data_dir=str(tmp_path))
    _write_idx(labels, np.zeros((6, 2)))  # images' magic in the labels file
    with pytest.raises(DataCorruptError, match="expected 00000801"):
        data.load("scifar_default", data_dir=str(tmp_path))
    _write_idx(labels, np.zeros(5))  # 5 labels for 6 images
    with pytest.raises(DataCorruptError, match="6 images but .* 5 labels"):
        data.load("scifar_default", data_dir=str(tmp_path))
    archive = tmp_path / "cifar-10-python.tar.gz"
    _cifar_archive(archive, _cifar_batches())
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataCorruptError, match="cifar-10-python.tar.gz"):
        data.load("scifar", data_dir=str(tmp_path))
    batches = _cifar_batches()
    del batches[seq_images.CIFAR_TEST]
    _cifar_archive(archive, batches)
    with pytest.raises(DataCorruptError, match="member cifar-10-batches-py/test_batch missing"):
        data.load("scifar", data_dir=str(tmp_path))


def test_registered_names_report_their_task_without_reading_data():
    for name in ("scifar", "scifar_default"):
        assert name in data.DATASET_NAMES
        assert data.static_info(name) == {
            "task": "classification",
            "input_dim": 16,
            "num_classes": 10,
        }
    with pytest.raises(ValueError, match=r"unknown data option\(s\) \['levels'\]"):
        data.check_options("scifar", levels=8)


@pytest.mark.skipif(
    seq_images.find_fashion_files(None) is None,
    reason="Debian's dataset-fashion-mnist is not installed (make fashion-mnist as root)",
)
def test_installed_fashion_mnist_has_the_published_sizes():
    ds = data.load("scifar_default")
    assert ds.info["num_examples"] == {"train": 54000, "validation": 6000, "test": 10000}
    assert ds.info["seq_len"] == 784
    np.testing.assert_array_equal(np.bincount(ds.labels("test")), np.full(10, 1000))
