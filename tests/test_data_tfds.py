"""tfds builders for the real files: prepared from a manual_dir, read back without TensorFlow."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from elm_jax.data import tfds_builders
from elm_jax.data.shd import files as shd
from elm_jax.data.shd.tasks import validation_mask


def test_shd_builder_round_trips_spikes(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 1, k)).astype(np.float32) for k in (3, 0, 7, 5, 2, 4)]
    units = [rng.integers(0, 700, len(t)) for t in times]
    shd.write_shd(
        manual / "shd_train.h5", times, units, [1, 2, 3, 4, 5, 6], speakers=[0, 0, 1, 1, 2, 2]
    )
    shd.write_shd(manual / "shd_test.h5", times[:2], units[:2], [7, 8])
    builder = tfds_builders.prepare(tfds_builders.ElmShd, str(manual), str(tmp_path / "out"))
    source = builder.as_data_source()
    assert len(source["train"]) == 6 and len(source["test"]) == 2
    records = sorted((source["train"][i] for i in range(6)), key=lambda r: r["index"])
    mask = validation_mask(6)
    for n, record in enumerate(records):
        np.testing.assert_array_equal(record["times"], times[n])
        np.testing.assert_array_equal(record["units"], units[n])
        assert record["label"] == n + 1 and record["validation"] == mask[n]
    assert str(builder.version) == "1.0.0"
    assert "tensorflow" not in sys.modules  # prepared and read without TensorFlow


def test_enwik8_builder_chunks_restore_the_split(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_builders, "ENWIK8_CHUNK", 1000)
    manual = tmp_path / "manual"
    manual.mkdir()
    raw = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8)
    (manual / "enwik8").write_bytes(raw.tobytes())

    class TinyEnwik8(tfds_builders.ElmEnwik8, skip_registration=True):
        expected_bytes = 20_000

    source = tfds_builders.prepare(TinyEnwik8, str(manual), str(tmp_path / "out")).as_data_source()
    for split, (a, b) in {
        "train": (0, 18_000),
        "validation": (18_000, 19_000),
        "test": (19_000, 20_000),
    }.items():
        chunks = sorted(
            (source[split][i] for i in range(len(source[split]))), key=lambda r: r["offset"]
        )
        np.testing.assert_array_equal(np.concatenate([c["bytes"] for c in chunks]), raw[a:b])


def test_missing_manual_files_raise(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "readme").write_text("x")
    with pytest.raises(FileNotFoundError, match="shd_train"):
        tfds_builders.prepare(tfds_builders.ElmShd, str(tmp_path / "manual"), str(tmp_path / "out"))
