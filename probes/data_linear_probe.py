"""Linear probe: does the cochlea encoder keep the words? Prints JSON lines.

Multinomial logistic regression (L2, L-BFGS) on log spike counts binned at `--bin-ms` and pooled
over groups of `--pool` neighbouring channels, evaluated on held-out speakers.

    python probes/data_linear_probe.py --default [--data-dir DIR]     # embedded SHD default
    python probes/data_linear_probe.py --train A.h5 --test B.h5       # any SHD-format pair
    python probes/data_linear_probe.py --fsdd OUT.h5                  # from audio_to_shd output:
                                                                     # leave-one-speaker-out
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import scipy.optimize

from elm_jax.data.shd.files import bin_spike_data, read_shd


def features(path_or_data, bin_ms: float, pool: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [n, features], labels [n], speakers [n]) of an SHD-format file or SpikeData."""
    spikes = read_shd(path_or_data) if isinstance(path_or_data, str) else path_or_data
    binned = bin_spike_data(spikes, bin_ms)
    dense = binned.dense(np.arange(spikes.num_samples))
    n, t, c = dense.shape
    pooled = dense.reshape(n, t, c // pool, pool).sum(-1)
    return np.log1p(pooled.reshape(n, -1)), spikes.labels, spikes.speakers


def fit_predict(x_train, y_train, x_test, num_classes: int, l2: float = 1e-2) -> np.ndarray:
    """Standardise, fit softmax regression by L-BFGS, return test predictions."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xa, xb = (x_train - mean) / std, (x_test - mean) / std
    xa = np.hstack([xa, np.ones((len(xa), 1))])
    xb = np.hstack([xb, np.ones((len(xb), 1))])
    onehot = np.eye(num_classes)[y_train]
    d = xa.shape[1]

    def loss_grad(w_flat):
        w = w_flat.reshape(d, num_classes)
        logits = xa @ w
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.sum(onehot * np.log(p + 1e-12), 1)) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        grad = xa.T @ (p - onehot) / len(xa)
        grad[:-1] += l2 * w[:-1]
        return loss, grad.ravel()

    res = scipy.optimize.minimize(loss_grad, np.zeros(d * num_classes), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 500})  # fmt: skip
    return np.argmax(xb @ res.x.reshape(d, num_classes), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", action="store_true")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--fsdd")
    parser.add_argument("--bin-ms", type=float, default=50.0)
    parser.add_argument("--pool", type=int, default=10)
    args = parser.parse_args()
    start = time.time()
    if args.default:
        from elm_jax.data.shd.default import build_shd_default

        folder = build_shd_default(args.data_dir)
        args.train, args.test = (os.path.join(folder, f) for f in ("shd_train.h5", "shd_test.h5"))
    if args.train:
        xa, ya, sa = features(args.train, args.bin_ms, args.pool)
        xb, yb, sb = features(args.test, args.bin_ms, args.pool)
        pred = fit_predict(xa, ya, xb, 20)
        print(json.dumps({
            "probe": "default" if args.default else "train/test", "train": args.train, "test": args.test,
            "held_out_speakers": sorted(set(sb.tolist()) - set(sa.tolist())),
            "num_train": len(ya), "num_test": len(yb), "test_accuracy": float(np.mean(pred == yb)),
            "input_blind_accuracy": float(np.bincount(yb).max() / len(yb)), "bin_ms": args.bin_ms, "pool": args.pool, "seconds": round(time.time() - start, 1),
        }))  # fmt: skip
    if args.fsdd:
        x, y, s = features(args.fsdd, args.bin_ms, args.pool)
        per_speaker, blind = {}, {}
        for speaker in np.unique(s):
            test = s == speaker
            pred = fit_predict(x[~test], y[~test], x[test], 10)
            per_speaker[int(speaker)] = float(np.mean(pred == y[test]))
            blind[int(speaker)] = float(np.bincount(y[test]).max() / test.sum())
        print(json.dumps({
            "probe": "fsdd leave-one-speaker-out", "file": args.fsdd, "num_samples": len(y),
            "per_speaker_accuracy": per_speaker, "mean_accuracy": float(np.mean(list(per_speaker.values()))),
            "input_blind_accuracy": blind, "bin_ms": args.bin_ms, "pool": args.pool, "seconds": round(time.time() - start, 1),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
