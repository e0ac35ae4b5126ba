"""The task kinds: their losses against NumPy, their figures, and the tables of their names."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from elm_jax.data.registry import DATASETS
from elm_jax.models import ModelConfig
from elm_jax.tasks import CLASSIFICATION, KINDS, NEURONIO, NEXT_BYTE, kind_names, task_kind


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]


def test_classification_scores_the_last_step_of_the_real_examples():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = np.array([1, 3, 0])
    mask = np.array([1.0, 1.0, 0.0], np.float32)  # the last row is padding
    loss, sums = CLASSIFICATION.loss_sums(jnp.asarray(logits), jnp.asarray(labels), mask)
    ce = _cross_entropy(logits[:2, -1], labels[:2])
    assert float(loss) == pytest.approx(ce.mean(), rel=1e-5)
    correct = (logits[:2, -1].argmax(-1) == labels[:2]).sum()
    assert (float(sums["count"]), float(sums["correct_sum"])) == (2.0, correct)
    summary = CLASSIFICATION.summarize({k: np.asarray(v)[None] for k, v in sums.items()})
    assert summary["loss"][0] == pytest.approx(ce.mean(), rel=1e-5)
    assert summary["accuracy"] == [correct / 2]


def test_next_byte_scores_every_step_and_reports_bits_per_character():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 6, 8)).astype(np.float32)
    labels = rng.integers(0, 8, size=(2, 6))
    mask = np.ones((2, 6), np.float32)
    mask[1, 4:] = 0.0
    loss, sums = NEXT_BYTE.loss_sums(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
    ce = _cross_entropy(logits, labels)
    assert float(loss) == pytest.approx((ce * mask).sum() / mask.sum(), rel=1e-5)
    summary = NEXT_BYTE.summarize({k: np.asarray(v)[None] for k, v in sums.items()})
    assert summary["bpc"][0] == pytest.approx(summary["loss"][0] / np.log(2.0), rel=1e-12)


def test_a_summary_of_nothing_or_of_a_diverged_seed_holds_no_nan():
    acc = {"loss_sum": np.array([np.nan, 0.0]), "correct_sum": np.zeros(2), "count": np.zeros(2)}
    assert CLASSIFICATION.summarize(acc) == {"loss": [None, 0.0], "accuracy": [0.0, 0.0]}
    assert NEXT_BYTE.summarize(acc) == {"loss": [None, 0.0], "bpc": [None, 0.0]}
    assert NEURONIO.summarize(acc) == {"loss": [None, 0.0], "auc": [None, None]}


def test_input_blind_baselines_are_the_entropy_of_what_each_kind_predicts():
    assert CLASSIFICATION.input_blind([0.5, 0.25, 0.25, 0.0]) == pytest.approx(
        {"loss": 1.5 * np.log(2.0), "metric": 0.5}
    )
    stream = np.frombuffer(b"abab" * 3 + b"cc", np.uint8)
    p = np.array([6, 6, 2]) / 14
    entropy = -(p * np.log(p)).sum()
    assert NEXT_BYTE.input_blind(stream) == pytest.approx(
        {"loss": entropy, "metric": entropy / np.log(2.0)}
    )
    labels = np.zeros((1, 4, 3))
    labels[0, :, 0] = [1, 0, 0, 0]  # one spike in four weighted steps
    labels[0, :, 1] = [1.0, -1.0, 1.0, -1.0]
    labels[0, :, 2] = 1.0
    blind = NEURONIO.input_blind([labels], spike_rate=0.25, soma_mean=0.0)
    bce = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert blind == pytest.approx(
        {"loss": 0.5 * bce + 0.5, "metric": 0.5, "bce": bce, "mse": 1.0, "soma_rmse": 10.0}
    )


def test_the_kinds_own_their_shapes():
    assert (CLASSIFICATION.metric_name, NEXT_BYTE.metric_name, NEURONIO.metric_name) == (
        "accuracy", "bpc", "auc",
    )  # fmt: skip
    assert NEXT_BYTE.input_spec(256) == ((1, 1), np.dtype(np.int32))
    assert NEURONIO.input_spec(1278) == ((1, 1, 1278), np.dtype(np.float32))
    assert (NEXT_BYTE.external_dim(256, 64), NEXT_BYTE.encoder_params(256, 64)) == (64, 256 * 64)
    assert (CLASSIFICATION.external_dim(700, 64), CLASSIFICATION.encoder_params(700, 64)) == (
        700, 0,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"num_classes=20 is invalid for task='lm'"):
        NEXT_BYTE.check_sizes(256, 20)
    with pytest.raises(ValueError, match=r"inputs shape \(2, 3\) is invalid for neuronio"):
        NEURONIO.check_inputs(np.zeros((2, 3)), 1278)
    with pytest.raises(ValueError, match="dtype float32 is invalid for lm: expected integer"):
        NEXT_BYTE.check_inputs(np.zeros((2, 3), np.float32), 256)


def test_one_table_names_the_kinds_and_a_model_config_reads_its_kind_from_it():
    assert {name: kind.name for name, kind in KINDS.items()} == {
        "classification": "classification", "lm": "lm", "neuronio": "neuronio",
    }  # fmt: skip
    assert ModelConfig(task="neuronio", input_dim=1278, num_classes=2).task_kind is NEURONIO
    assert kind_names(lambda kind: kind.streams) == "'lm'"
    for bad in ("regression", ["lm"], None):
        with pytest.raises(ValueError, match="must be one of .'classification', 'lm', 'neuronio'"):
            task_kind(bad)


def test_every_dataset_names_a_kind_whose_model_fits_its_sizes():
    for entry in DATASETS.values():
        cfg = ModelConfig(task=entry.task, input_dim=entry.input_dim, num_classes=entry.num_classes)
        assert cfg.task_kind is entry.kind
    assert [name for name, entry in DATASETS.items() if entry.binned] == [
        "shd", "shd_adding", "shd_default", "shd_adding_default",
    ]  # fmt: skip
    streams = [name for name, entry in DATASETS.items() if entry.kind.streams]
    assert streams == ["enwik8", "enwiki_sample"]
    assert DATASETS["shd_adding"].example_length(bin_ms=10.0, seq_len=512) == 200
    assert DATASETS["pathfinder128_easy"].example_length(bin_ms=10.0, seq_len=512) == 128 * 128
    assert DATASETS["neuronio"].example_length(bin_ms=10.0, seq_len=512) is None
