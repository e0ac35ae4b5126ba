"""The NeuronIO loss and metrics against hand and independent computations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.tasks import neuronio as nm


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + 1/2 P(equal), by counting every pair."""
    pos, neg = s[y > 0.5], s[y <= 0.5]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_rank_auc_equals_the_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(float)
    s = np.round(rng.normal(size=400) + y, 1)  # rounding makes many ties
    assert len(np.unique(s)) < 100
    assert nm.roc_auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)
    assert nm.roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == pytest.approx(0.875)
    assert nm.roc_auc([0, 0, 1], [0.3, 0.3, 0.3]) == 0.5
    assert np.isnan(nm.roc_auc([0, 0], [0.1, 0.2]))


def test_histogram_auc_counts_pairs_within_a_bin_as_ties():
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.1).astype(np.float32)
    logits = rng.normal(size=3000).astype(np.float32) * 3 + 2 * y
    bins = np.asarray(nm.logit_bins(jnp.asarray(logits)))
    pos = np.bincount(bins, weights=y, minlength=nm.HIST_BINS)
    neg = np.bincount(bins, weights=1 - y, minlength=nm.HIST_BINS)
    assert nm.auc_from_histograms(pos, neg) == pytest.approx(pairwise_auc(y, bins), abs=1e-12)
    assert nm.auc_from_histograms(pos, neg) == pytest.approx(pairwise_auc(y, logits), abs=2e-3)


def test_loss_is_half_bce_plus_half_mse_over_weighted_steps():
    rng = np.random.default_rng(2)
    out = rng.normal(size=(2, 6, 2)).astype(np.float32)
    spike = (rng.random((2, 6)) < 0.3).astype(np.float32)
    soma = rng.normal(size=(2, 6)).astype(np.float32)
    weight = np.ones((2, 6), np.float32)
    weight[:, :2] = 0.0  # a burn-in of two steps
    labels = np.stack([spike, soma, weight], -1)
    mask = np.array([1.0, 0.0], np.float32)  # the second row is padding
    loss, sums = nm.loss_sums(jnp.asarray(out), jnp.asarray(labels), jnp.asarray(mask))
    z, y, v = out[0, 2:, 0], spike[0, 2:], soma[0, 2:]
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    mse = ((out[0, 2:, 1] - v) ** 2).mean()
    assert float(loss) == pytest.approx(0.5 * bce + 0.5 * mse, rel=1e-5)
    assert float(sums["count"]) == 4
    assert float(sums["pos_hist"].sum()) == y.sum() and float(sums["neg_hist"].sum()) == 4 - y.sum()
    summary = nm.summarize({k: np.asarray(v)[None] for k, v in sums.items()})
    assert summary["loss"][0] == pytest.approx(0.5 * bce + 0.5 * mse, rel=1e-5)
    assert summary["soma_rmse"][0] == pytest.approx(10 * np.sqrt(mse), rel=1e-5)


def test_soma_rmse_is_in_mv():
    assert nm.soma_rmse_mv([0.0, 0.0], [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))
