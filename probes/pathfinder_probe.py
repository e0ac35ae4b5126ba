"""Is there a cue in the generated Pathfinder-style images short of tracing the contour?

    python probes/pathfinder_probe.py --names pathfinder32_default,pathfinder32_easy_default

For each cached set (built first when absent, docs/data.md) fits an L2 logistic regression on
the training split and scores it on validation and test, for a few feature sets: hand features
from the image and the stored marker centres (distance alone; the number of steps between the
two markers in the pixel-by-pixel reading alone, binned; then distance, row and column gap, ink in the
markers' bounding box, ink along the straight line between them, ink near each marker, total
ink), the ink pixels themselves (1,024 features, a linear readout of the whole image), and the
two together. Beside them: the input-blind baseline (the training split's majority class) and
the connectivity rule that defines the label (dilate the ink, label components: 100 % by
construction). Prints one JSON line per (set, feature set). Takes about 15 s per set on one
CPU core.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import ndimage, optimize

from elm_jax.data.common import cache_dir
from elm_jax.data.pathfinder.files import DEFAULT_SIZES, SPLITS, build_generated, read_generated
from elm_jax.data.pathfinder.synthetic import MARKER_LEVEL, connect_radius, preset
from elm_jax.data.pathfinder.tasks import parse_name

HAND_FEATURES = ("distance", "row_gap", "col_gap", "box_ink", "box_ink_fraction", "line_ink",
                 "ink_near_first", "ink_near_second", "total_ink")  # fmt: skip
NEAR_RADIUS = 4  # px around a marker centre counted as "near"
LINE_HALF_WIDTH = 1.5  # px either side of the straight marker-to-marker segment
GAP_BIN = 8  # steps per bin of the marker-to-marker gap
L2 = 1e-2  # ridge on the standardised weights (per example)


def load_with_markers(name: str) -> tuple[dict, object]:
    """({split: (images, labels, markers)}, generator config) of a generated set."""
    size, difficulty, _ = parse_name(name)
    cfg = preset(size, difficulty)
    folder = build_generated(cache_dir(None), cfg, DEFAULT_SIZES[size])
    splits, _, _ = read_generated(folder)  # checks the checksums
    out = {}
    for split in SPLITS:
        with np.load(f"{folder}/{split}.npz") as arrays:
            out[split] = (*splits[split], arrays["markers"].astype(np.int64))
    return out, cfg


def hand_features(images: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """[n, len(HAND_FEATURES)] features from the dash ink (markers excluded) and the centres."""
    n, h, w = images.shape
    ink = ((images > 0) & (images < MARKER_LEVEL)).astype(np.float64)
    rows, cols = np.mgrid[0:h, 0:w]
    (r0, c0), (r1, c1) = markers[:, 0].T, markers[:, 1].T
    lo_r, hi_r = np.minimum(r0, r1)[:, None, None], np.maximum(r0, r1)[:, None, None]
    lo_c, hi_c = np.minimum(c0, c1)[:, None, None], np.maximum(c0, c1)[:, None, None]
    box = (rows >= lo_r) & (rows <= hi_r) & (cols >= lo_c) & (cols <= hi_c)
    box_ink = (ink * box).sum((1, 2))
    # Distance of each pixel to the segment between the two centres.
    p0 = np.stack([r0, c0], -1)[:, None, None, :].astype(np.float64)
    d = (np.stack([r1, c1], -1) - np.stack([r0, c0], -1))[:, None, None, :].astype(np.float64)
    pix = np.stack([rows, cols], -1)[None].astype(np.float64)
    t = np.clip(((pix - p0) * d).sum(-1) / np.maximum((d * d).sum(-1), 1.0), 0.0, 1.0)
    off = pix - p0 - t[..., None] * d
    line = np.hypot(off[..., 0], off[..., 1]) <= LINE_HALF_WIDTH
    near = [np.hypot(rows - r[:, None, None], cols - c[:, None, None]) <= NEAR_RADIUS
            for r, c in ((r0, c0), (r1, c1))]  # fmt: skip
    return np.stack([
        np.hypot(r1 - r0, c1 - c0), np.abs(r1 - r0), np.abs(c1 - c0), box_ink,
        box_ink / box.sum((1, 2)), (ink * line).sum((1, 2)), (ink * near[0]).sum((1, 2)),
        (ink * near[1]).sum((1, 2)), ink.sum((1, 2)),
    ], axis=1)  # fmt: skip


def step_gap(markers: np.ndarray, width: int) -> np.ndarray:
    """[n, bins] one-hot of the steps between the two marker centres in the pixel-by-pixel
    reading (r * W + c), in bins of GAP_BIN steps: the cue a sequence model can time without
    placing the markers in 2-D (one-hot, so any shape of its relation to the label fits)."""
    steps = markers[..., 0] * width + markers[..., 1]
    gap = np.abs(steps[:, 1] - steps[:, 0]) // GAP_BIN
    return np.eye(width * width // GAP_BIN)[gap]


def pixel_features(images: np.ndarray) -> np.ndarray:
    """[n, H * W] ink indicators (markers included: their place is part of the input)."""
    return (images > 0).reshape(len(images), -1).astype(np.float64)


def connectivity_rule(images: np.ndarray, markers: np.ndarray, radius: int) -> np.ndarray:
    """1 where the two markers share a component of the (2r+1)-dilated ink: the label's rule."""
    structure = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    out = np.empty(len(images), np.int64)
    for i, (image, m) in enumerate(zip(images, markers, strict=True)):
        comps, _ = ndimage.label(ndimage.binary_dilation(image > 0, structure),
                                 structure=np.ones((3, 3), bool))  # fmt: skip
        out[i] = int(comps[m[0, 0], m[0, 1]] == comps[m[1, 0], m[1, 1]])
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, mean, scale) of an L2 logistic regression on standardised features (L-BFGS)."""
    mean, scale = x.mean(0), x.std(0) + 1e-8
    z = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1)
    sign = 2.0 * y - 1.0

    def loss_grad(w):
        margin = sign * (z @ w)
        loss = np.logaddexp(0.0, -margin).mean() + 0.5 * L2 * (w[:-1] @ w[:-1])
        g = z.T @ (-sign * (1.0 - 1.0 / (1.0 + np.exp(-margin)))) / len(y)
        g[:-1] += L2 * w[:-1]
        return loss, g

    w = optimize.minimize(loss_grad, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B",
                          options={"maxiter": 500}).x  # fmt: skip
    return w, mean, scale


def score(w, mean, scale, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy and cross-entropy (nats) of a fitted model on (x, y)."""
    logit = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1) @ w
    p = 1.0 / (1.0 + np.exp(-logit))
    ce = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
    return {"accuracy": round(float(np.mean((p > 0.5) == y)), 4), "loss": round(float(ce), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", default="pathfinder32_default,pathfinder32_easy_default",
                   help="generated Pathfinder sets, comma-separated")  # fmt: skip
    args = p.parse_args(argv)
    for name in args.names.split(","):
        t0 = time.time()
        data, cfg = load_with_markers(name)
        y = {s: data[s][1] for s in SPLITS}
        majority = int(np.mean(y["train"]) >= 0.5)
        blind = {s: round(float(np.mean(y[s] == majority)), 4) for s in SPLITS}
        rule = {s: round(float(np.mean(connectivity_rule(data[s][0], data[s][2],
                                                         connect_radius(cfg)) == y[s])), 4)
                for s in ("validation", "test")}  # fmt: skip
        hand = {s: hand_features(data[s][0], data[s][2]) for s in SPLITS}
        pixels = {s: pixel_features(data[s][0]) for s in SPLITS}
        gap = {s: step_gap(data[s][2], data[s][0].shape[2]) for s in SPLITS}
        sets = {
            "distance": {s: hand[s][:, :1] for s in SPLITS},
            "step_gap": gap,
            "hand": hand,
            "pixels": pixels,
            "hand+pixels": {s: np.concatenate([hand[s], pixels[s]], 1) for s in SPLITS},
        }
        for key, feats in sets.items():
            w, mean, scale = fit_logistic(feats["train"], y["train"])
            row = {"name": name, "features": key, "num_features": feats["train"].shape[1],
                   "train": score(w, mean, scale, feats["train"], y["train"]),
                   "validation": score(w, mean, scale, feats["validation"], y["validation"]),
                   "test": score(w, mean, scale, feats["test"], y["test"]),
                   "input_blind": blind, "connectivity_rule": rule,
                   "num_examples": {s: len(y[s]) for s in SPLITS}}  # fmt: skip
            if key == "hand":
                row["hand_weights"] = dict(
                    zip(HAND_FEATURES, np.round(w[:-1], 3).tolist(), strict=True)
                )
            row["seconds"] = round(time.time() - t0, 1)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
