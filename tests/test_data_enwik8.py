"""Enwik8 split, windows and evaluation streams (on small fake files), and the enwiki-sample pins."""

from __future__ import annotations

import bz2
import json
import os
import zipfile

import numpy as np
import pytest

from elm_jax import data
from elm_jax.data import prepare
from elm_jax.data.common import ChecksumError, DataCorruptError, DataNotFoundError
from elm_jax.data.enwik8 import default as enwiki_sample
from elm_jax.data.enwik8 import files as enwik8_files
from elm_jax.data.enwik8 import tasks as byte_tasks

SIZE = 20_000


def fake_bytes(size: int = SIZE) -> bytes:
    return np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()


def fake_dataset(seq_len: int = 32) -> byte_tasks.ByteDataset:
    return byte_tasks.ByteDataset(
        np.frombuffer(fake_bytes(), np.uint8), name="t", source="t", seq_len=seq_len
    )


def test_split_bounds_are_90M_5M_5M_for_enwik8():
    assert byte_tasks.split_bounds(10**8) == {
        "train": (0, 90_000_000), "validation": (90_000_000, 95_000_000), "test": (95_000_000, 100_000_000)
    }  # fmt: skip


def test_fake_file_split_boundaries_exact(tmp_path):
    raw = fake_bytes()
    (tmp_path / "enwik8").write_bytes(raw)
    ds = enwik8_files.load_enwik8(str(tmp_path), seq_len=16, expected_bytes=SIZE)
    assert ds.split("train").tobytes() == raw[:18_000]
    assert ds.split("validation").tobytes() == raw[18_000:19_000]
    assert ds.split("test").tobytes() == raw[19_000:]
    assert ds.info["num_examples"] == {"train": 18_000, "validation": 1_000, "test": 1_000}
    assert ds.info["source"] == "enwik8" and ds.info["files"][0]["bytes"] == SIZE


def test_zip_reads_same_bytes_as_raw(tmp_path):
    raw = fake_bytes()
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("enwik8", raw)
    ds = enwik8_files.load_enwik8(str(tmp_path), expected_bytes=SIZE)
    assert ds.data.tobytes() == raw


def test_train_windows_exact_and_inside_train_split():
    ds = fake_dataset(seq_len=32)
    raw = np.frombuffer(fake_bytes(), np.uint8)
    starts = np.random.default_rng([7, 3]).integers(0, 18_000 - 32, 6)
    batch = ds.train_batch(step=3, batch_size=6, seed=7)
    assert batch["inputs"].dtype == np.int32 and batch["inputs"].shape == (6, 32)
    for j, s in enumerate(starts):
        np.testing.assert_array_equal(batch["inputs"][j], raw[s : s + 32])
        np.testing.assert_array_equal(batch["labels"][j], raw[s + 1 : s + 33])
    many = np.concatenate([ds.window_starts(k, 64, 0) for k in range(200)])
    assert many.min() >= 0 and many.max() + 32 + 1 <= 18_000


def test_eval_stream_predicts_every_byte_once_with_contiguous_context():
    ds = fake_dataset()
    split = ds.split("validation")
    chunks = list(ds.eval_stream("validation", batch_size=3, chunk_len=50))
    assert chunks[0]["reset"] and not any(c["reset"] for c in chunks[1:])
    labels = np.concatenate([c["labels"] for c in chunks], axis=1)
    inputs = np.concatenate([c["inputs"] for c in chunks], axis=1)
    mask = np.concatenate([c["mask"] for c in chunks], axis=1).astype(bool)
    assert mask.sum() == len(split) - 1
    np.testing.assert_array_equal(labels[mask], split[1:])  # row-major = stream order
    np.testing.assert_array_equal(inputs[mask], split[:-1])


def test_eval_batches_fixed_windows_and_padding_mask():
    ds = fake_dataset(seq_len=64)
    split = ds.split("test")
    batches = list(ds.eval_batches("test", 4))
    num_windows = (len(split) - 1) // 64
    assert sum(b["mask"].sum() for b in batches) == num_windows
    np.testing.assert_array_equal(batches[1]["inputs"][2], split[6 * 64 : 7 * 64])
    np.testing.assert_array_equal(batches[1]["labels"][2], split[6 * 64 + 1 : 7 * 64 + 1])


def test_wrong_size_enwik8_raises(tmp_path):
    (tmp_path / "enwik8").write_bytes(fake_bytes(1000))
    with pytest.raises(DataCorruptError, match="exactly 100000000 bytes, found 1000"):
        enwik8_files.load_enwik8(str(tmp_path))
    with pytest.raises(DataCorruptError, match="found 1000"):
        data.load("enwik8", data_dir=str(tmp_path))


def test_corrupt_or_wrong_zip_raises(tmp_path):
    (tmp_path / "enwik8.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataCorruptError, match="not a readable zip"):
        enwik8_files.load_enwik8(str(tmp_path), expected_bytes=SIZE)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as z:
        z.writestr("other", b"x")
    with pytest.raises(DataCorruptError, match="no member 'enwik8'"):
        enwik8_files.load_enwik8(str(tmp_path), expected_bytes=SIZE)


def test_missing_enwik8_names_paths_and_source(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"enwik8\.zip.*mattmahoney"):
        enwik8_files.load_enwik8(str(tmp_path))


def test_seq_len_validation():
    with pytest.raises(ValueError, match="seq_len"):
        fake_dataset(seq_len=0)
    with pytest.raises(ValueError, match="too long"):
        fake_dataset(seq_len=5000)


def planted_wheel(folder, text: bytes) -> str:
    path = os.path.join(folder, "gensim-4.4.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(enwiki_sample.MEMBER, bz2.compress(text))
    return path


def test_sample_pins_checked_on_planted_wheel(tmp_path, monkeypatch):
    text = b"<mediawiki>" + fake_bytes(5000) + b"</mediawiki>"
    wheel = planted_wheel(str(tmp_path), text)
    with pytest.raises(ChecksumError, match=enwiki_sample.MEMBER_SHA256):
        enwiki_sample.extract_from_wheel(wheel)  # the real pin rejects the planted member
    member = zipfile.ZipFile(wheel).read(enwiki_sample.MEMBER)
    monkeypatch.setattr(enwiki_sample, "MEMBER_SHA256", enwiki_sample.sha256_bytes(member))
    with pytest.raises(DataCorruptError, match="expected 6089746 bytes"):
        enwiki_sample.extract_from_wheel(wheel)  # decompressed size pin
    monkeypatch.setattr(enwiki_sample, "DECOMPRESSED_BYTES", len(text))
    with pytest.raises(ChecksumError, match=enwiki_sample.DECOMPRESSED_SHA256):
        enwiki_sample.extract_from_wheel(wheel)  # decompressed sha256 pin
    monkeypatch.setattr(enwiki_sample, "DECOMPRESSED_SHA256", enwiki_sample.sha256_bytes(text))
    cache = tmp_path / "cache"
    path = enwiki_sample.prepare_enwiki_sample(str(cache), wheel_path=wheel)
    assert open(path, "rb").read() == text
    assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp")] == []
    with open(path, "r+b") as handle:  # a corrupted cache is refused, not silently used
        handle.write(b"X")
    with pytest.raises(ChecksumError, match="delete it to re-fetch"):
        enwiki_sample.prepare_enwiki_sample(str(cache), wheel_path=wheel)


def test_real_sample_via_pip_download_matches_pins(tmp_path, capsys):
    """The one permitted download: `pip download --no-deps gensim==4.4.0` (about 28 MB)."""
    ds = data.load("enwiki_sample", data_dir=str(tmp_path), seq_len=128)
    assert ds.info["source"] == "enwiki-sample" and ds.info["name"] == "enwiki_sample"
    assert ds.info["files"][0]["sha256"] == enwiki_sample.DECOMPRESSED_SHA256
    assert ds.data[:9].tobytes() == b"<mediawik"
    with pytest.raises(data.DataNotFoundError, match="enwik8 not found.*enwiki_sample"):
        data.load("enwik8", data_dir=str(tmp_path), seq_len=128)
    assert prepare.main(["--data-dir", str(tmp_path), "--only", "enwiki"]) == 0  # cache hit
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (
        lines[-1]["dataset"] == "enwiki-sample" and lines[-1]["path"] == ds.info["files"][0]["path"]
    )


def test_input_blind_baseline_is_each_splits_unigram_entropy_in_bits_per_character():
    rng = np.random.default_rng(0)
    raw = rng.choice(np.frombuffer(b"aab c", np.uint8), size=20_000).astype(np.uint8)
    ds = byte_tasks.ByteDataset(raw, name="t", source="t", seq_len=8)
    for split in ("train", "validation", "test"):
        counts = np.bincount(ds.split(split), minlength=256)
        p = counts[counts > 0] / counts.sum()
        nats = -(p * np.log(p)).sum()
        got = ds.info["input_blind"][split]
        assert got["loss"] == pytest.approx(nats) and got["metric"] == pytest.approx(
            nats / np.log(2)
        )
    # four symbols with probabilities 2/5, 1/5, 1/5, 1/5: about 1.92 bits
    assert ds.info["input_blind"]["train"]["metric"] == pytest.approx(1.922, abs=0.01)
