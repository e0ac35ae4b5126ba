"""NeuronIO: a neuron's spike and soma voltage at every 1 ms step, with the ELM paper's metrics.

Axis letters: r seed replica, b batch, t time step, i input channel, o output (0: spike logit,
1: soma prediction), k bin.

Inputs [b, t, i] float (+1 / -1 / 0 synaptic events), labels [b, t, 3] float (the spike, the
soma target and the step's weight: 0 in the burn-in; elm_jax.data.neuronio.tasks), outputs
[b, t, 2].

* Loss: 0.5 · BCE(spike logit, spike target) + 0.5 · MSE(soma prediction, soma target), the
  means taken over the weighted steps (the weight channel of the labels: 0 in the burn-in).
  The soma target is in the training units ((min(v, -55 mV) + 67.7 mV) / 10).
* Spike AUC: the ROC AUC of the spike probabilities, the probability that a random spike step
  scores above a random non-spike step, ties counting one half (`roc_auc`, exact, from ranks).
  During training the evaluation accumulates histograms of the logits on device instead
  (`HIST_BINS` bins over [-HIST_RANGE, HIST_RANGE]); `auc_from_histograms` is exact up to the
  pairs that fall into one bin, which it counts as ties.
* Soma RMSE in mV: the scaled RMSE times 10 (the reference reports mV).
* Input-blind baseline: the training spike rate and mean soma target at every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from elm_jax.files import finite_or_none
from elm_jax.tasks.base import TaskKind

if TYPE_CHECKING:
    import jax

HIST_BINS = 4096
HIST_RANGE = 16.0
SOMA_MV_PER_UNIT = 10.0


def loss_sums(
    outputs: jax.Array, labels: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(mean loss, sums) of one batch: outputs [b, t, 2], labels [b, t, 3], mask [b] or None.

    Sums: "loss_sum" (of 0.5 bce + 0.5 squared error per weighted step), "count" (weighted
    steps), "bce_sum", "se_sum", "correct_sum" (0: NeuronIO has no accuracy), and the logit
    histograms "pos_hist" / "neg_hist" [HIST_BINS] of spike and non-spike steps.
    """
    import jax.numpy as jnp  # here: the data layer imports this module without jax
    import optax

    logits = outputs[..., 0].astype(jnp.float32)
    soma = outputs[..., 1].astype(jnp.float32)
    spike, target, weight = labels[..., 0], labels[..., 1], labels[..., 2]
    if mask is not None:
        weight = weight * mask[:, None]
    bce = optax.sigmoid_binary_cross_entropy(logits, spike)
    se = jnp.square(soma - target)
    count = weight.sum()
    bce_sum, se_sum = (bce * weight).sum(), (se * weight).sum()
    denom = jnp.maximum(count, 1.0)
    loss = 0.5 * bce_sum / denom + 0.5 * se_sum / denom
    bins = logit_bins(logits)
    pos = jnp.zeros(HIST_BINS, jnp.float32).at[bins].add(weight * spike)
    neg = jnp.zeros(HIST_BINS, jnp.float32).at[bins].add(weight * (1.0 - spike))
    sums = {
        "loss_sum": 0.5 * bce_sum + 0.5 * se_sum,
        "correct_sum": jnp.zeros((), jnp.float32),
        "count": count,
        "bce_sum": bce_sum,
        "se_sum": se_sum,
        "pos_hist": pos,
        "neg_hist": neg,
    }
    return loss, sums


def logit_bins(logits: jax.Array) -> jax.Array:
    """The histogram bin (0..HIST_BINS-1) of each logit; the two end bins take the overflow."""
    import jax.numpy as jnp  # here: the data layer imports this module without jax

    scaled = (logits + HIST_RANGE) * (HIST_BINS / (2 * HIST_RANGE))
    return jnp.clip(jnp.floor(scaled), 0, HIST_BINS - 1).astype(jnp.int32)


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from counts of positives and negatives per score bin (same bin = tie, 1/2).

    NaN when either class is empty.
    """
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC of `scores` for binary `targets` (Mann-Whitney U from mid-ranks).

    NaN when either class is empty.
    """
    y = np.asarray(targets).reshape(-1) > 0.5
    s = np.asarray(scores, np.float64).reshape(-1)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # mid-ranks (1-based) of tied groups
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    mid = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(mid, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def summarize(acc: Mapping[str, Any]) -> dict[str, list[float | None]]:
    """Per-seed "loss", "auc" (from the histograms), "soma_rmse" (mV) from summed `acc` [r, ...]."""
    count = np.maximum(np.asarray(acc["count"], np.float64), 1.0)
    loss = np.asarray(acc["loss_sum"], np.float64) / count
    out = {"loss": [finite_or_none(v) for v in loss]}
    if "pos_hist" in acc:
        pos, neg = np.asarray(acc["pos_hist"]), np.asarray(acc["neg_hist"])
        out["auc"] = [
            finite_or_none(auc_from_histograms(p, n)) for p, n in zip(pos, neg, strict=True)
        ]
        rmse = np.sqrt(np.asarray(acc["se_sum"], np.float64) / count) * SOMA_MV_PER_UNIT
        out["soma_rmse"] = [finite_or_none(v) for v in rmse]
    else:  # training accumulators hold only the loss
        out["auc"] = [None] * len(loss)
    return out


def soma_rmse_mv(target_mv: np.ndarray, pred_mv: np.ndarray) -> float:
    """Root mean squared soma error in mV."""
    d = np.asarray(pred_mv, np.float64) - np.asarray(target_mv, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def input_blind(
    label_windows: Iterable[np.ndarray], spike_rate: float, soma_mean: float
) -> dict[str, float]:
    """Loss and metrics of predicting `spike_rate` and the soma target `soma_mean` at every step.

    {"loss": 0.5 BCE + 0.5 MSE, "metric": the AUC of a constant (0.5), "bce", "mse" (of the
    soma target) and "soma_rmse" (mV)}, over the weighted steps of `label_windows` (arrays
    [b, t, 3] of labels).
    """
    rate = min(max(spike_rate, 1e-7), 1 - 1e-7)
    totals = np.zeros(3)  # bce, squared error, count
    for labels in label_windows:
        labels = np.asarray(labels).astype(np.float64)
        y, v, w = labels[..., 0], labels[..., 1], labels[..., 2]
        bce = -(y * np.log(rate) + (1 - y) * np.log1p(-rate))
        totals += [(bce * w).sum(), ((v - soma_mean) ** 2 * w).sum(), w.sum()]
    count = max(totals[2], 1.0)
    bce, mse = totals[0] / count, totals[1] / count
    return {
        "loss": float(0.5 * bce + 0.5 * mse),
        "metric": 0.5,
        "bce": float(bce),
        "mse": float(mse),
        "soma_rmse": float(np.sqrt(mse) * SOMA_MV_PER_UNIT),
    }


class NeuronIO(TaskKind):
    """The NeuronIO kind (module docstring): its loss, metrics and baseline are the functions
    of this module."""

    name = "neuronio"
    metric_name = "auc"

    def loss_sums(
        self, outputs: jax.Array, labels: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """`loss_sums` of this module."""
        return loss_sums(outputs, labels, mask)

    def summarize(self, acc: Mapping[str, Any]) -> dict[str, list[float | None]]:
        """`summarize` of this module: "loss", "auc" and, in evaluation, "soma_rmse"."""
        return summarize(acc)

    def input_blind(
        self, label_windows: Iterable[np.ndarray], spike_rate: float, soma_mean: float
    ) -> dict[str, float]:
        """`input_blind` of this module."""
        return input_blind(label_windows, spike_rate, soma_mean)


NEURONIO = NeuronIO()
