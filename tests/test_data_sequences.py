"""The generic sequence-classification dataset: one-hot per batch, splits, baselines, errors."""

import numpy as np
import pytest

from elm_jax.data.sequences import SequenceDataset, validation_rows


def _tokens(n, t=5, vocab=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, size=(n, t)).astype(np.uint8), rng.integers(0, 3, n)


def _dataset(**kw):
    train, test = _tokens(50), _tokens(7, seed=1)
    kw.setdefault("vocab_size", 4)
    return SequenceDataset(train, test, num_classes=3, name="toy", source="toy", **kw)


def test_batches_are_one_hot_of_the_tokens_of_their_rows():
    ds = _dataset()
    batch = next(ds.eval_batches("test", 4))
    tokens = ds.inputs["test"][:4]
    assert batch["inputs"].shape == (4, 5, 4) and batch["inputs"].dtype == np.float32
    np.testing.assert_array_equal(batch["inputs"].argmax(-1), tokens)
    np.testing.assert_array_equal(batch["inputs"].sum(-1), np.ones((4, 5)))
    np.testing.assert_array_equal(batch["labels"], ds.labels("test")[:4])


def test_pad_token_encodes_as_the_zero_vector():
    train = (np.array([[4, 4, 1], [4, 0, 2]] * 10), np.zeros(20, int))
    test = (np.array([[4, 3, 1]]), np.zeros(1, int))
    ds = SequenceDataset(
        train, test, num_classes=1, vocab_size=4, pad_token=4, name="p", source="p"
    )
    x = next(ds.eval_batches("test", 1))["inputs"][0]
    np.testing.assert_array_equal(x, [[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])


def test_validation_split_is_seeded_disjoint_and_of_the_stated_size():
    train, val = validation_rows(50, 0.1)
    assert len(val) == 5 and len(train) == 45
    assert not set(train) & set(val) and sorted([*train, *val]) == list(range(50))
    expected = np.sort(np.random.default_rng(0).permutation(50)[:5])
    np.testing.assert_array_equal(val, expected)
    ds = _dataset()
    all_train = _tokens(50)[0]
    np.testing.assert_array_equal(ds.inputs["validation"], all_train[expected])
    assert ds.info["num_examples"] == {"train": 45, "validation": 5, "test": 7}


def test_eval_batches_cover_the_split_in_order_with_a_padding_mask():
    ds = _dataset()
    batches = list(ds.eval_batches("test", 3))
    assert [b["mask"].tolist() for b in batches] == [[1, 1, 1], [1, 1, 1], [1, 0, 0]]
    labels = np.concatenate([b["labels"][b["mask"] > 0] for b in batches])
    np.testing.assert_array_equal(labels, ds.labels("test"))


def test_input_blind_is_the_prior_of_exactly_the_examples_evaluated():
    ds = _dataset()
    labels = ds.labels("test")[:4]
    p = np.bincount(labels, minlength=3) / 4
    nz = p[p > 0]
    got = ds.input_blind("test", max_examples=4)
    assert got["loss"] == pytest.approx(-(nz * np.log(nz)).sum())
    assert got["metric"] == pytest.approx(p.max())
    assert ds.info["input_blind"]["validation"] == ds.input_blind("validation")


def test_train_batches_are_deterministic_and_walk_a_permutation_per_epoch():
    ds = _dataset()
    a, b = ds.train_batch(3, 9, seed=2), ds.train_batch(3, 9, seed=2)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    rows = np.concatenate([ds.train_indices(s, 9, seed=2) for s in range(5)])
    assert sorted(rows) == list(range(45))  # one epoch = 45 // 9 batches, each row once


def test_input_dropout_zeroes_and_rescales_training_batches_only():
    ds = _dataset(input_dropout=0.5)
    x = ds.train_batch(0, 20, seed=0)["inputs"]
    assert set(np.unique(x)) == {0.0, 2.0}
    assert 0.3 < (x == 2.0).sum() / (20 * 5) < 0.7  # half of the one-hot entries survive
    assert set(np.unique(next(ds.eval_batches("test", 7))["inputs"])) == {0.0, 1.0}


def test_float_features_pass_through_unchanged():
    rng = np.random.default_rng(0)
    train = (rng.normal(size=(20, 3, 2)), rng.integers(0, 2, 20))
    test = (rng.normal(size=(4, 3, 2)), rng.integers(0, 2, 4))
    ds = SequenceDataset(train, test, num_classes=2, name="f", source="f")
    assert ds.info["input_dim"] == 2 and ds.info["encoding"] == "features"
    np.testing.assert_allclose(next(ds.eval_batches("test", 4))["inputs"], test[0], rtol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"vocab_size": 3}, "train tokens hold 3; valid: 0..2"),
        ({"num_classes": 2}, "labels span 0..2; valid: 0..1"),
        ({"validation_fraction": 1.5}, "validation_fraction=1.5 must be in (0, 1)"),
        ({"pad_token": 9}, "pad_token=9 is invalid; valid: 0..4 or None"),
    ],
)
def test_bad_arguments_name_the_field_value_and_what_is_valid(change, message):
    kw = {"num_classes": 3, "vocab_size": 4, **change}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SequenceDataset(_tokens(50), _tokens(7, seed=1), name="t", source="t", **kw)
