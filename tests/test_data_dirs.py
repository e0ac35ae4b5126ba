"""Data directories: a named directory without the real files is an error, never the default;
corrupt or truncated real files raise DataCorruptError naming the file; option checks."""

from __future__ import annotations

import gzip
import os
import zipfile

import numpy as np
import pytest
from train_helpers import write_tiny_shd

from elm_jax import data
from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.data.enwik8 import default as enwiki_sample
from elm_jax.data.enwik8 import tasks as byte_tasks
from elm_jax.data.shd import default as shd_default


@pytest.fixture
def no_default(monkeypatch):
    """Fails the test if anything tries to build or fetch an embedded default."""

    def refuse(*args, **kwargs):
        raise AssertionError("the embedded default must not be used here")

    monkeypatch.setattr(shd_default, "build_shd_default", refuse)
    monkeypatch.setattr(enwiki_sample, "load_enwiki_sample", refuse)


@pytest.fixture
def shd_files(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    return write_tiny_shd(str(folder), num_train=20, num_test=6)


@pytest.mark.parametrize("name", ["shd", "shd_adding"])
def test_named_dir_without_shd_raises_naming_paths_and_remedies(name, tmp_path, no_default):
    with pytest.raises(DataNotFoundError) as err:
        data.load(name, data_dir=str(tmp_path), bin_ms=10)
    message = str(err.value)
    assert str(tmp_path / "shd_train.h5") in message and str(tmp_path / "shd_test.h5") in message
    assert "zenkelab.org/datasets" in message
    assert "shd_default" in message and "shd_adding_default" in message
    assert os.listdir(tmp_path) == []  # nothing was generated inside the named directory


def test_env_data_dir_counts_as_named(tmp_path, monkeypatch, no_default):
    monkeypatch.setenv("ELM_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="real SHD not found in the data directory"):
        data.load("shd_adding", bin_ms=10)
    with pytest.raises(DataNotFoundError, match=r"enwik8 not found.*enwik8\.zip.*enwiki_sample"):
        data.load("enwik8", seq_len=16)


def test_missing_directory_is_said_to_be_missing(tmp_path, no_default):
    absent = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match="does not exist"):
        data.load("shd", data_dir=str(absent), bin_ms=10)
    with pytest.raises(DataNotFoundError, match="does not exist.*mattmahoney"):
        data.load("enwik8", data_dir=str(absent))
    assert not absent.exists()


def test_named_dir_without_enwik8_names_paths_and_remedies(tmp_path, no_default):
    with pytest.raises(DataNotFoundError) as err:
        data.load("enwik8", data_dir=str(tmp_path), seq_len=16)
    message = str(err.value)
    assert str(tmp_path / "enwik8.zip") in message and str(tmp_path / "enwik8") in message
    assert "mattmahoney.net/dc/enwik8.zip" in message and "enwiki_sample" in message


def test_default_used_without_a_dir_or_by_name(shd_files, tmp_path, monkeypatch):
    monkeypatch.delenv("ELM_DATA_DIR", raising=False)
    built = []

    def fake_build(data_dir=None):
        built.append(data_dir)
        return shd_files

    monkeypatch.setattr(shd_default, "build_shd_default", fake_build)
    with pytest.warns(UserWarning, match="no data directory"):
        ds = data.load("shd", bin_ms=10)
    assert ds.info["source"] == "shd-default" and "zenkelab" in ds.info["fallback"]
    empty = tmp_path / "empty"
    empty.mkdir()
    forced = data.load("shd_adding_default", data_dir=str(empty), bin_ms=10)
    assert forced.info["source"] == "shd-default" and forced.info["fallback"] is None
    assert built == [None, str(empty)]

    sample = np.frombuffer(bytes(range(256)) * 40, dtype=np.uint8)

    def fake_sample(data_dir=None, *, seq_len=512):
        return byte_tasks.ByteDataset(sample, name="enwiki_sample", source="enwiki-sample",
                                  seq_len=seq_len)  # fmt: skip

    monkeypatch.setattr(enwiki_sample, "load_enwiki_sample", fake_sample)
    with pytest.warns(UserWarning, match="enwik8 not found"):
        lm = data.load("enwik8", seq_len=16)
    assert lm.info["source"] == "enwiki-sample" and lm.info["fallback"].startswith("enwik8")


def test_valid_real_shd_in_every_container_reads_the_same(shd_files, tmp_path, no_default):
    plain = data.load("shd", data_dir=shd_files, bin_ms=10)
    assert plain.info["source"] == "shd" and plain.num_examples("test") == 6
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    for stem in ("shd_train", "shd_test"):
        raw = open(os.path.join(shd_files, stem + ".h5"), "rb").read()
        (gz_dir / f"{stem}.h5.gz").write_bytes(gzip.compress(raw))
    zipped = data.load("shd", data_dir=str(gz_dir), bin_ms=10)
    assert zipped.info["files"][0]["path"].endswith("shd_train.h5.gz")
    np.testing.assert_array_equal(
        zipped.eval_batches("test", 6).__next__()["inputs"],
        plain.eval_batches("test", 6).__next__()["inputs"],
    )


def _corrupt_variants(raw: bytes) -> dict[str, bytes]:
    """File name -> bytes of a broken train file: truncated or garbage, plain, gzip and zip."""
    gz = gzip.compress(raw)
    bad_body = bytearray(gz)
    middle = len(bad_body) // 2
    bad_body[middle : middle + 64] = bytes(64)  # deflate stream damaged in the middle
    return {
        "shd_train.h5/truncated": raw[: len(raw) // 2],
        "shd_train.h5/garbage": b"this is not an HDF5 file" * 40,
        "shd_train.h5.gz/truncated": gz[: len(gz) // 2],
        "shd_train.h5.gz/garbage": b"not gzip at all" * 40,
        "shd_train.h5.gz/damaged": bytes(bad_body),
        "shd_train.h5.zip/truncated": _zip_bytes("shd_train.h5", raw)[:200],
        "shd_train.h5.zip/garbage-member": _zip_bytes("shd_train.h5", b"junk" * 100),
    }


def _zip_bytes(member: str, content: bytes) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "variant", sorted(_corrupt_variants(b"\x89HDF\r\n\x1a\n" + bytes(4000)).keys())
)
def test_corrupt_shd_raises_naming_the_file_and_never_falls_back(
    variant, shd_files, tmp_path, no_default
):
    raw = open(os.path.join(shd_files, "shd_train.h5"), "rb").read()
    file_name, _ = variant.split("/")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / file_name).write_bytes(_corrupt_variants(raw)[variant])
    test_raw = open(os.path.join(shd_files, "shd_test.h5"), "rb").read()
    (folder / "shd_test.h5").write_bytes(test_raw)
    with pytest.raises(DataCorruptError, match=str(folder / file_name)):
        data.load("shd_adding", data_dir=str(folder), bin_ms=10)


def test_corrupt_enwik8_zip_raises_naming_the_file(tmp_path, no_default):
    content = bytes(range(256)) * 4000
    good = _zip_bytes("enwik8", content)
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": b"PK\x03\x04" + b"x" * 500,
    }
    damaged = bytearray(good)
    start = good.index(b"enwik8") + len("enwik8") + 20  # inside the deflated member data
    damaged[start : start + 200] = bytes(range(200))
    cases["damaged-member"] = bytes(damaged)
    for label, payload in cases.items():
        folder = tmp_path / label
        folder.mkdir()
        (folder / "enwik8.zip").write_bytes(payload)
        with pytest.raises(DataCorruptError, match=str(folder / "enwik8.zip")):
            data.load("enwik8", data_dir=str(folder), seq_len=16)


def test_static_info_matches_the_loaded_data(shd_files):
    for name in ("shd", "shd_adding"):
        ds = data.load(name, data_dir=shd_files, bin_ms=20)
        static = data.static_info(name)
        assert static == {k: ds.info[k] for k in static}
    assert data.static_info("enwik8") == {"task": "lm", "input_dim": 256, "num_classes": 256}
    assert data.static_info("shd_adding_default")["num_classes"] == 19


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bin_ms": 0}, "bin_ms must be a positive"),
        ({"bin_ms": 3.0}, r"bin_ms=3.0 must divide the 1000 ms digit.*333.333"),
        ({"bin_ms": 2000.0}, "bin_ms=2000.0 must divide"),
        ({"seq_len": 0}, "seq_len must be a positive integer, got 0"),
        ({"batches_per_epoch": 1.5}, "batches_per_epoch must be a positive integer"),
        ({"input_dropout": 1.0}, r"input_dropout must be in \[0, 1\)"),
        ({"bins": 2}, r"unknown data option\(s\) \['bins'\]"),
    ],
)
def test_check_options_rejects_bad_values_without_reading_files(options, match, no_default):
    with pytest.raises(ValueError, match=match):
        data.check_options("shd_adding", **options)


def test_check_options_accepts_divisors_and_drops_none():
    assert data.check_options("shd", bin_ms=2.0, seq_len=None) == {"bin_ms": 2.0}
    assert data.check_options("shd", bin_ms=0.5)["bin_ms"] == 0.5
    with pytest.raises(ValueError, match="unknown dataset name 'enwik9'"):
        data.check_options("enwik9")
