"""tonic's SHD files: `shd_*.h5.zip` in a tonic `save_to` folder load exactly like the plain .h5."""

from __future__ import annotations

import itertools
import os
import zipfile

import numpy as np
import pytest

from elm_jax import data
from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.data.shd import files as shd

SPLITS = ("shd_train", "shd_test")


def _write_plain(folder, seed: int = 3) -> None:
    """Small SHD-format files with spikes on bin edges, at 1 s and beyond it."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for stem, count in zip(SPLITS, (40, 15), strict=True):
        times, units = [], []
        for _ in range(count):
            k = int(rng.integers(5, 200))
            t = rng.uniform(0.0, 1.2, k)
            t[:4] = [0.0, 0.01, 0.05, 1.0]
            times.append(np.sort(t).astype(np.float32))
            units.append(rng.integers(0, 700, k).astype(np.uint16))
        labels = rng.integers(0, 20, count)
        shd.write_shd(os.path.join(folder, f"{stem}.h5"), times, units, labels)


def _tonic_layout(plain, save_to) -> str:
    """`save_to/SHD/shd_{train,test}.h5.zip`, each holding the plain file, as tonic keeps them."""
    folder = os.path.join(save_to, "SHD")
    os.makedirs(folder)
    for stem in SPLITS:
        with zipfile.ZipFile(
            os.path.join(folder, f"{stem}.h5.zip"), "w", zipfile.ZIP_DEFLATED
        ) as z:
            z.write(os.path.join(plain, f"{stem}.h5"), arcname=f"{stem}.h5")
    return str(save_to)


@pytest.fixture
def folders(tmp_path):
    plain = tmp_path / "plain"
    _write_plain(plain)
    return str(plain), _tonic_layout(str(plain), tmp_path / "tonic")


def _eval_arrays(ds, split, max_batches=4):
    """The first batches of a split (SHD-Adding's fixed pairing has thousands)."""
    batches = list(itertools.islice(ds.eval_batches(split, 8), max_batches))
    return {k: np.concatenate([b[k] for b in batches]) for k in ("inputs", "labels", "mask")}


def test_zip_reads_the_same_spikes_as_the_plain_file(folders):
    plain, tonic = folders
    for stem in SPLITS:
        a = shd.read_shd(os.path.join(plain, f"{stem}.h5"))
        b = shd.read_shd(os.path.join(tonic, "SHD", f"{stem}.h5.zip"))
        for field in ("times", "units", "offsets", "labels", "speakers"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert a.keys == b.keys and a.num_samples > 0


@pytest.mark.parametrize("name", ["shd", "shd_adding"])
def test_tonic_save_to_folder_via_env_gives_the_plain_arrays(folders, monkeypatch, name):
    plain, tonic = folders
    ref = data.load(name, data_dir=plain, bin_ms=10)
    monkeypatch.setenv("ELM_DATA_DIR", tonic)
    ds = data.load(name, bin_ms=10)
    assert ds.info["source"] == "shd" and ds.info["fallback"] is None
    assert [os.path.basename(f["path"]) for f in ds.info["files"]] == [
        "shd_train.h5.zip",
        "shd_test.h5.zip",
    ]
    assert ds.info["num_examples"] == ref.info["num_examples"]
    for split in ("validation", "test"):
        got, want = _eval_arrays(ds, split), _eval_arrays(ref, split)
        assert got["inputs"].shape[1] == 100 * (2 if name == "shd_adding" else 1)
        assert got["inputs"].sum() > 0
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    for step in (0, 3):
        got, want = ds.train_batch(step, 4, seed=1), ref.train_batch(step, 4, seed=1)
        np.testing.assert_array_equal(got["inputs"], want["inputs"])
        np.testing.assert_array_equal(got["labels"], want["labels"])


def test_extracted_h5_in_the_tonic_folder_is_preferred_over_the_zip(folders):
    plain, tonic = folders
    for stem in SPLITS:
        os.link(os.path.join(plain, f"{stem}.h5"), os.path.join(tonic, "SHD", f"{stem}.h5"))
    train, test = data.find_shd_files(tonic)
    assert train.endswith(os.path.join("SHD", "shd_train.h5"))
    assert test.endswith(os.path.join("SHD", "shd_test.h5"))


def test_zip_without_one_h5_member_raises_corrupt_error_naming_file(tmp_path):
    path = tmp_path / "shd_train.h5.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("README.txt", "not spikes")
    with pytest.raises(DataCorruptError, match="shd_train.h5.zip must hold exactly one .h5"):
        shd.read_shd(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataCorruptError, match="not a readable SHD HDF5 file"):
        shd.read_shd(path)


def test_tonic_folder_with_only_the_training_zip_names_the_missing_file(folders):
    _, tonic = folders
    os.unlink(os.path.join(tonic, "SHD", "shd_test.h5.zip"))
    with pytest.raises(DataNotFoundError, match=r"SHD/shd_test\.h5\[\.gz\|\.zip\]"):
        data.load("shd", data_dir=tonic)
