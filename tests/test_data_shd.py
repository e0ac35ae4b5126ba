"""SHD reader, docs/science.md §4 binning, and the SHD / SHD-Adding datasets on small files
written here."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest

from elm_jax import data
from elm_jax.data.common import DataCorruptError, DataNotFoundError
from elm_jax.data.shd import files as shd
from elm_jax.data.shd import tasks as shd_tasks
from elm_jax.tasks.classification import CLASSIFICATION


def random_samples(num: int, seed: int, max_spikes: int = 300):
    """Spike lists with times in [0, 1.3) s (some beyond 1 s), some exactly on bin edges."""
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(num):
        k = int(rng.integers(0, max_spikes))
        t = rng.uniform(0.0, 1.3, k)
        if k > 4:  # exact edges and the 1 s boundary
            t[:4] = [0.0, 0.002, 0.01, 1.0]
        times.append(np.sort(t).astype(np.float32))
        units.append(rng.integers(0, 700, k).astype(np.uint16))
    labels = rng.integers(0, 20, num)
    return times, units, labels


def loop_binning(times, units, bin_ms):
    """The direct per-spike reference of docs/science.md §4."""
    edges = np.arange(0, 1 + bin_ms / 1000, bin_ms / 1000)
    out = np.zeros((len(edges) - 1, 700), np.float32)
    for t, u in zip(times, units, strict=True):
        i = int(np.digitize(t, edges)) - 1
        if 0 <= i < len(edges) - 1:
            out[i, int(u)] += 1
    return out


@pytest.fixture
def shd_dir(tmp_path):
    times, units, labels = random_samples(60, seed=1)
    shd.write_shd(tmp_path / "shd_train.h5", times, units, labels, speakers=np.arange(60) % 3)
    t2, u2, l2 = random_samples(25, seed=2)
    shd.write_shd(tmp_path / "shd_test.h5", t2, u2, l2)
    return tmp_path


@pytest.mark.parametrize("bin_ms", [1, 2, 3, 10, 16, 100])
def test_binning_matches_per_spike_loop(shd_dir, bin_ms):
    spikes = shd.read_shd(shd_dir / "shd_train.h5")
    binned = shd.bin_spike_data(spikes, bin_ms)
    dense = binned.dense(np.arange(spikes.num_samples))
    assert dense.shape[1] == len(np.arange(0, 1 + bin_ms / 1000, bin_ms / 1000)) - 1
    for n in range(spikes.num_samples):
        t, u = spikes.sample(n)
        np.testing.assert_array_equal(dense[n], loop_binning(t, u, bin_ms))


def test_bin_count_is_1000_over_bin_ms_and_spikes_after_1s_dropped():
    assert shd.num_bins(2) == 500 and shd.num_bins(10) == 100 and shd.num_bins(1) == 1000
    counts = shd.bin_spikes(np.array([0.0, 0.0, 0.999, 1.0, 1.2]), np.array([5, 5, 7, 8, 9]), 2)
    assert counts.sum() == 3 and counts[0, 5] == 2 and counts[499, 7] == 1


def test_gzipped_file_reads_like_plain(shd_dir, tmp_path):
    with open(shd_dir / "shd_train.h5", "rb") as src, gzip.open(tmp_path / "g.h5.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    a, b = shd.read_shd(shd_dir / "shd_train.h5"), shd.read_shd(tmp_path / "g.h5.gz")
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.units, b.units)
    np.testing.assert_array_equal(a.labels, b.labels)


def official_validation_mask(n_train):
    """docs/science.md §4, transcribed: the official loader's `random_val_split_SHD_data` draw."""
    return np.random.default_rng(0).binomial(1, 0.2, size=n_train).astype(bool)


def official_eval_pairs(n_split, num_batches, batch=8):
    """docs/science.md §4, transcribed: a fresh default_rng(0), then per batch 2B indices; pair j
    of a batch is (idx[j], idx[B + j])."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(num_batches):
        idx = rng.integers(0, n_split, size=2 * batch)
        pairs += [(idx[j], idx[batch + j]) for j in range(batch)]
    return np.array(pairs)


def test_split_differs_from_a_uniform_threshold_draw():
    # The official draw and `rng.random(n) < 0.2` select different samples (docs/science.md §4).
    n = 8156
    official = official_validation_mask(n)
    threshold = np.random.default_rng(0).random(n) < 0.2
    assert official.sum() == 1642 and threshold.sum() == 1687
    assert not (official & threshold).any()
    np.testing.assert_array_equal(shd_tasks.validation_mask(n), official)


def test_validation_split_is_the_official_binomial_draw(shd_dir):
    ds = data.load("shd", data_dir=str(shd_dir), bin_ms=10)
    mask = official_validation_mask(60)
    spikes = shd.read_shd(shd_dir / "shd_train.h5")
    np.testing.assert_array_equal(ds.labels("validation"), spikes.labels[mask])
    np.testing.assert_array_equal(ds.labels("train"), spikes.labels[~mask])
    assert ds.info["source"] == "shd" and ds.info["num_classes"] == 20 and ds.info["seq_len"] == 100
    assert ds.info["num_examples"] == {
        "train": int((~mask).sum()),
        "validation": int(mask.sum()),
        "test": 25,
    }
    assert len(ds.info["files"]) == 2 and len(ds.info["files"][0]["sha256"]) == 64


def test_shd_eval_batches_cover_split_in_order_with_padding_mask(shd_dir):
    ds = data.load("shd", data_dir=str(shd_dir), bin_ms=10)
    batches = list(ds.eval_batches("test", 8))
    assert len(batches) == 4
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.sum() == 25 and masks[:25].all()
    labels = np.concatenate([b["labels"] for b in batches])[:25]
    np.testing.assert_array_equal(labels, ds.labels("test"))
    test = shd.read_shd(shd_dir / "shd_test.h5")
    t, u = test.sample(9)
    np.testing.assert_array_equal(batches[1]["inputs"][1], loop_binning(t, u, 10))


def test_shd_train_batches_deterministic_and_epoch_is_permutation(shd_dir):
    ds = data.load("shd", data_dir=str(shd_dir), bin_ms=10)
    n = ds.num_examples("train")
    per_epoch = n // 4
    rows = np.concatenate([ds.train_indices(s, 4, seed=3) for s in range(per_epoch)])
    assert len(np.unique(rows)) == len(rows)  # no repeats within an epoch
    a, b = ds.train_batch(5, 4, seed=3), ds.train_batch(5, 4, seed=3)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    assert not np.array_equal(ds.train_indices(5, 4, 3), ds.train_indices(5, 4, 4))


def test_adding_labels_pairs_and_concatenation_follow_spec(shd_dir):
    ds = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10, batches_per_epoch=7)
    assert ds.info["num_classes"] == 19 and ds.info["seq_len"] == 200
    step, batch_size, seed = 9, 5, 11
    epoch, within = divmod(step, 7)
    idx = np.random.default_rng([seed, epoch, within]).integers(
        0, ds.num_examples("train"), 2 * batch_size
    )
    batch = ds.train_batch(step, batch_size, seed)
    train = ds.split_data("train")
    for j in range(batch_size):
        a, b = idx[j], idx[batch_size + j]
        assert batch["labels"][j] == train.labels[a] % 10 + train.labels[b] % 10
        expected = np.concatenate(
            [loop_binning(*train.sample(a), 10), loop_binning(*train.sample(b), 10)]
        )
        np.testing.assert_array_equal(batch["inputs"][j], expected)
    assert batch["labels"].max() <= 18


def test_adding_training_pairs_fresh_each_epoch_and_resumable(shd_dir):
    ds = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10, batches_per_epoch=3)
    p0, _ = ds.train_pairs(1, 6, seed=0)
    p1, _ = ds.train_pairs(4, 6, seed=0)  # same position, next epoch
    assert not np.array_equal(p0, p1)
    ds2 = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10, batches_per_epoch=3)
    np.testing.assert_array_equal(
        ds2.train_batch(4, 6, 0)["inputs"], ds.train_batch(4, 6, 0)["inputs"]
    )


@pytest.mark.parametrize("split, num_batches", [("validation", 500), ("test", 2000)])
def test_adding_eval_pairs_are_the_official_fixed_pairing(shd_dir, split, num_batches):
    ds = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=100)  # T = 20: cheap batches
    n = ds.num_examples(split)
    pairs = official_eval_pairs(n, num_batches)
    labels = ds.labels(split)
    expected = labels[pairs[:, 0]] % 10 + labels[pairs[:, 1]] % 10
    assert ds.info["eval_examples"][split] == 8 * num_batches
    # Keep only labels (all 16,000 test inputs at once would take gigabytes) and the inputs of a
    # few rows: digit idx[j] followed by digit idx[B + j], binned as docs/science.md §4.
    rows = (0, 9, 70, len(pairs) - 1)
    got, inputs = [], {}
    for i, batch in enumerate(ds.eval_batches(split, 64)):
        got.append(batch["labels"])
        inputs.update({r: batch["inputs"][r % 64] for r in rows if r // 64 == i})
    np.testing.assert_array_equal(np.concatenate(got)[: len(pairs)], expected)
    again = np.concatenate([b["labels"] for b in ds.eval_batches(split, 7)])[: len(pairs)]
    np.testing.assert_array_equal(again, expected)
    split_data = ds.split_data(split)
    assert sorted(inputs) == sorted(rows)
    for row, x in inputs.items():
        a, b = pairs[row]
        first = loop_binning(*split_data.sample(a), 100)
        second = loop_binning(*split_data.sample(b), 100)
        np.testing.assert_array_equal(x, np.concatenate([first, second]))


def entropy_and_mode(labels, num_classes):
    p = np.bincount(labels, minlength=num_classes) / len(labels)
    nz = p[p > 0]
    return -(nz * np.log(nz)).sum(), p.max()


def test_input_blind_baselines_come_from_each_splits_own_labels(shd_dir):
    adding = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10)
    for split in ("validation", "test"):
        pairs = official_eval_pairs(
            adding.num_examples(split), 500 if split == "validation" else 2000
        )
        labels = adding.labels(split)
        loss, acc = entropy_and_mode(labels[pairs[:, 0]] % 10 + labels[pairs[:, 1]] % 10, 19)
        got = adding.info["input_blind"][split]
        assert got["loss"] == pytest.approx(loss, rel=1e-12)
        assert got["metric"] == pytest.approx(acc, rel=1e-12)
        # A prefix (capped evaluation) has the baseline of exactly those examples.
        sub = adding.input_blind(split, max_examples=40)
        loss40, acc40 = entropy_and_mode(
            labels[pairs[:40, 0]] % 10 + labels[pairs[:40, 1]] % 10, 19
        )
        assert sub == pytest.approx({"loss": loss40, "metric": acc40})
    # Training pairs are drawn afresh: the exact prior is the digit prior convolved with itself.
    digits = np.bincount(adding.labels("train") % 10, minlength=10) / adding.num_examples("train")
    tri = np.convolve(digits, digits)
    assert adding.info["input_blind"]["train"]["metric"] == pytest.approx(tri.max())
    assert adding.info["input_blind"]["train"]["loss"] == pytest.approx(-(tri * np.log(tri)).sum())
    single = data.load("shd", data_dir=str(shd_dir), bin_ms=10)
    for split in ("train", "validation", "test"):
        loss, acc = entropy_and_mode(single.labels(split), 20)
        assert single.info["input_blind"][split] == pytest.approx({"loss": loss, "metric": acc})


def test_balanced_digits_give_the_triangular_adding_baseline():
    # docs/science.md §4: 2.794 nats and 10 % accuracy, not ln 19 = 2.944 and 1/19.
    tri = np.convolve(np.full(10, 0.1), np.full(10, 0.1))
    got = CLASSIFICATION.input_blind(tri)
    assert got["loss"] == pytest.approx(2.794, abs=5e-4) and got["metric"] == pytest.approx(0.1)


def test_input_dropout_only_in_training_and_scales_kept_counts(shd_dir):
    ds = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10, input_dropout=0.5)
    clean = data.load("shd_adding", data_dir=str(shd_dir), bin_ms=10)
    dropped, full = ds.train_batch(2, 8, 1)["inputs"], clean.train_batch(2, 8, 1)["inputs"]
    kept = dropped > 0
    np.testing.assert_array_equal(dropped[kept], 2.0 * full[kept])
    assert 0.35 < kept.sum() / (full > 0).sum() < 0.65
    e1, e2 = next(ds.eval_batches("test", 8)), next(clean.eval_batches("test", 8))
    np.testing.assert_array_equal(e1["inputs"], e2["inputs"])


def test_dense_into_repeated_samples_and_dropout_per_cell(shd_dir):
    # Batches draw samples with replacement: a sample twice in one batch fills both rows, and
    # dropout keeps or drops each nonzero (row, bin, unit) cell whole, never single spikes.
    spikes = shd.read_shd(shd_dir / "shd_train.h5")
    binned = shd.bin_spike_data(spikes, 10)
    index = np.array([2, 0, 2, 1, 0])
    full = np.zeros((5, 3 * binned.num_bins, 700), np.float32)
    binned.dense_into(full, index, bin_offset=binned.num_bins)
    for row, n in enumerate(index):
        expect = loop_binning(*spikes.sample(int(n)), 10)
        np.testing.assert_array_equal(full[row, binned.num_bins : 2 * binned.num_bins], expect)
    assert not full[:, : binned.num_bins].any() and not full[:, 2 * binned.num_bins :].any()
    dropped = np.zeros_like(full)
    binned.dense_into(dropped, index, binned.num_bins, 0.25, np.random.default_rng(3))
    kept = dropped > 0
    np.testing.assert_allclose(dropped[kept], full[kept] / 0.75, rtol=1e-6)
    assert not dropped[full == 0].any()
    assert 0.65 < kept.sum() / (full > 0).sum() < 0.85


def test_truncated_h5_raises_corrupt_error_naming_file(shd_dir, tmp_path):
    raw = (shd_dir / "shd_train.h5").read_bytes()
    bad = tmp_path / "bad" / "shd_train.h5"
    bad.parent.mkdir()
    bad.write_bytes(raw[: len(raw) // 2])
    shutil.copy(shd_dir / "shd_test.h5", bad.parent / "shd_test.h5")
    with pytest.raises(DataCorruptError, match="shd_train.h5"):
        data.load("shd", data_dir=str(bad.parent))
    (tmp_path / "junk.h5.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataCorruptError, match="junk.h5.gz"):
        shd.read_shd(tmp_path / "junk.h5.gz")


def test_out_of_range_units_rejected(tmp_path):
    shd.write_shd(tmp_path / "x.h5", [np.array([0.1])], [np.array([700])], [3])
    with pytest.raises(DataCorruptError, match="0..699"):
        shd.read_shd(tmp_path / "x.h5")


def test_missing_real_shd_names_paths_and_how_to_obtain(tmp_path):
    with pytest.raises(DataNotFoundError, match="shd_train.h5.*zenkelab"):
        data.load_real_shd(str(tmp_path))
    shd.write_shd(tmp_path / "shd_train.h5", [np.array([0.1])], [np.array([1])], [3])
    with pytest.raises(DataNotFoundError, match="shd_test"):
        data.load("shd", data_dir=str(tmp_path))


@pytest.mark.parametrize("bad", [0, -2, float("nan"), "2"])
def test_non_positive_bin_size_raises(shd_dir, bad):
    with pytest.raises(ValueError, match="bin_ms"):
        data.load("shd", data_dir=str(shd_dir), bin_ms=bad)


def test_unknown_name_and_option_raise():
    with pytest.raises(ValueError, match="unknown dataset name 'shd2'.*shd_adding"):
        data.load("shd2")
    with pytest.raises(ValueError, match="bin_size"):
        data.load("shd", bin_size=2)


def test_unknown_split_and_bad_dropout_raise(shd_dir):
    train, test = shd.read_shd(shd_dir / "shd_train.h5"), shd.read_shd(shd_dir / "shd_test.h5")
    ds = shd_tasks.SHDDataset(train, test, bin_ms=10)
    with pytest.raises(ValueError, match="split must be one of"):
        next(ds.eval_batches("dev", 2))
    with pytest.raises(ValueError, match="input_dropout"):
        shd_tasks.SHDAddingDataset(train, test, bin_ms=10, input_dropout=1.0)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(ValueError):
        shd.write_shd(target, [np.array([0.1]), "abc"], [np.array([1]), np.array([2])], [1, 2])
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_reads_real_shd_dtypes_float16_times_and_bytes_keys(tmp_path):
    """The published files store float16 times, uint16 units and byte-string keys."""
    import h5py

    rng = np.random.default_rng(5)
    times = [np.sort(rng.uniform(0, 1.2, k)).astype(np.float16) for k in (40, 0, 90)]
    units = [rng.integers(0, 700, len(t)).astype(np.uint16) for t in times]
    with h5py.File(tmp_path / "shd_like.h5", "w") as f:
        t_set = f.create_dataset("spikes/times", (3,), dtype=h5py.vlen_dtype(np.float16))
        u_set = f.create_dataset("spikes/units", (3,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(3):
            t_set[i], u_set[i] = times[i], units[i]
        f["labels"] = np.array([0, 19, 7], np.uint8)
        f["extra/speaker"] = np.array([1, 2, 3])
        f["extra/keys"] = np.array([b"a.flac", b"b.flac", b"c.flac"])
    spikes = shd.read_shd(tmp_path / "shd_like.h5")
    assert spikes.keys == ("a.flac", "b.flac", "c.flac") and spikes.labels.tolist() == [0, 19, 7]
    dense = shd.bin_spike_data(spikes, 2).dense(np.arange(3))
    for n in range(3):
        np.testing.assert_array_equal(dense[n], loop_binning(times[n], units[n], 2))
