"""Scores an ELM neuron on NeuronIO simulation files as the ELM paper's evaluation does.

    python -m elm_jax.neuronio_eval --checkpoint CKPT --data-dir DIR [--split test]
        [--max-files N] [--batch-size 16] [--json OUT.json]

CKPT is an `.npz` written by the command line `elm_jax.neuron.convert` (a released `neuronio_best_model_state.pt`
converted with its `model_config.json`), a reference `.pt` (converted on the fly; needs the
`torch` extra), or a folder holding either. DIR is a NeuronIO folder (`elm_jax.data.neuronio.tasks.
find_split_files`); `--split` picks its files.

The protocol, per file (axis letters: k simulation, t 1 ms step):

1. Predict every simulation whole, in 500 ms windows with a stride of 350 ms: window 0 gives
   steps 0..499, window j > 0 the steps after its 150 ms burn-in (the inputs past the end are
   zero). Spike probability = sigmoid(output 0); soma = 10 · output 1 (mV above -67.7 mV).
2. The soma prediction is z-scored and given the mean and standard deviation of the target
   (min(v, -55) + 67.7 mV) over the file, as the reference does for comparability.
3. Only simulations with 0..24 output spikes and steps from 500 ms on are scored.

Over all files: spike ROC AUC (exact, from ranks), soma RMSE and MAE in mV (after step 2; the
unaligned RMSE too), and the input-blind figures (a constant spike probability: AUC 0.5; the
best constant soma, the target's mean: RMSE = the target's standard deviation). Prints one
JSON object. Exit codes as docs/cli.md (4 when the data is missing or corrupt).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from elm_jax import cli
from elm_jax.cli import UsageError
from elm_jax.data.neuronio.files import (
    SOMA_BIAS_MV,
    SOMA_THRESHOLD_MV,
    Simulations,
    read_simulations,
)
from elm_jax.data.neuronio.tasks import (
    BURN_IN_MS,
    IGNORE_START_MS,
    MAX_EVAL_SPIKES,
    SPLITS,
    WINDOW_MS,
    find_split_files,
)
from elm_jax.files import finite_or_none
from elm_jax.neuron import convert
from elm_jax.tasks.neuronio import SOMA_MV_PER_UNIT, roc_auc

CHECKPOINT_STATE = "neuronio_best_model_state.pt"


def load_checkpoint(path: str) -> tuple[Any, dict]:
    """(module, variables) of a converted `.npz`, a reference `.pt`, or a folder with one."""
    if os.path.isdir(path):
        npz = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if npz:
            path = os.path.join(path, npz[0])
        elif os.path.isfile(os.path.join(path, CHECKPOINT_STATE)):
            path = os.path.join(path, CHECKPOINT_STATE)
        else:
            raise UsageError(
                f"--checkpoint {path}: the folder holds no .npz and no {CHECKPOINT_STATE}"
            )
    if not os.path.isfile(path):
        raise UsageError(f"--checkpoint {path}: no such file; pass a converted .npz or a .pt")
    if path.endswith(".npz"):
        try:
            return convert.load_npz(path)
        except (KeyError, ValueError, OSError) as err:
            raise UsageError(f"--checkpoint {path}: not a converted ELM neuron ({err})") from err
    state = convert._read_torch_state(path)  # MissingDependencyError without torch
    config = convert._read_config(os.path.join(os.path.dirname(path), "model_config.json"))
    return convert.from_reference(state, config, "v1")


def eval_window_starts(duration_ms: int) -> np.ndarray:
    """The reference's window starts 0, 350, ..., int(2 + (T - 500) / 350) windows."""
    stride = WINDOW_MS - BURN_IN_MS
    count = int(2 + (duration_ms - WINDOW_MS) / stride)
    return np.arange(count) * stride


def stitched_predictions(
    apply_fn: Any, sims: Simulations, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(spike probability [k, t], soma prediction [k, t] in mV above the bias) of whole simulations.

    `apply_fn(x [b, 500, 1278]) -> outputs [b, 500, 2]`.
    """
    k, t = sims.num_simulations, sims.duration_ms
    prob = np.zeros((k, t), np.float64)
    soma = np.zeros((k, t), np.float64)
    for j, start in enumerate(eval_window_starts(t)):
        lo = 0 if j == 0 else start + BURN_IN_MS
        hi = min(start + WINDOW_MS, t)
        if lo >= hi:
            continue
        window = np.zeros((k, WINDOW_MS, sims.inputs.shape[2]), np.float32)
        window[:, : min(WINDOW_MS, t - start)] = sims.inputs[:, start : start + WINDOW_MS]
        for b in range(0, k, batch_size):
            out = np.asarray(apply_fn(jnp.asarray(window[b : b + batch_size])), np.float64)
            prob[b : b + batch_size, lo:hi] = 1.0 / (
                1.0 + np.exp(-out[:, lo - start : hi - start, 0])
            )
            soma[b : b + batch_size, lo:hi] = SOMA_MV_PER_UNIT * out[:, lo - start : hi - start, 1]
    return prob, soma


def score_file(sims: Simulations, prob: np.ndarray, soma_pred: np.ndarray) -> dict[str, np.ndarray]:
    """The scored steps of one file: aligned soma prediction, filter, first 500 ms dropped."""
    target = np.minimum(sims.soma_mv.astype(np.float64), SOMA_THRESHOLD_MV) - SOMA_BIAS_MV
    spread = soma_pred.std()
    aligned = (soma_pred - soma_pred.mean()) / (spread if spread > 0 else 1.0)
    aligned = aligned * target.std() + target.mean()
    kept = sims.spikes.sum(axis=1) <= MAX_EVAL_SPIKES
    cut = np.s_[kept, IGNORE_START_MS:]
    return {
        "spikes": sims.spikes[cut].astype(np.float64),
        "prob": prob[cut],
        "soma": target[cut],
        "soma_aligned": aligned[cut],
        "soma_raw": soma_pred[cut],
        "num_simulations": np.asarray([sims.num_simulations, int(kept.sum())]),
    }


def summarize(parts: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """AUC, soma RMSE / MAE (mV) and the input-blind figures over the scored steps of all files."""
    cat = {
        k: np.concatenate([p[k].reshape(-1) for p in parts])
        for k in parts[0]
        if k != "num_simulations"
    }
    err = cat["soma_aligned"] - cat["soma"]
    counts = np.sum([p["num_simulations"] for p in parts], axis=0)
    return {
        "auc": finite_or_none(roc_auc(cat["spikes"], cat["prob"])),
        "soma_rmse": float(np.sqrt(np.mean(err**2))),
        "soma_mae": float(np.mean(np.abs(err))),
        "soma_rmse_unaligned": float(np.sqrt(np.mean((cat["soma_raw"] - cat["soma"]) ** 2))),
        "input_blind": {"auc": 0.5, "soma_rmse": float(cat["soma"].std())},
        "num_simulations": int(counts[0]),
        "num_scored_simulations": int(counts[1]),
        "num_scored_steps": int(cat["spikes"].size),
        "num_spike_steps": int(cat["spikes"].sum()),
    }


def evaluate(module: Any, variables: dict, files: list[str], batch_size: int = 16) -> dict:
    """The paper's NeuronIO figures of `module` over `files` (module docstring)."""
    apply_fn = jax.jit(lambda x: module.apply(variables, x))
    parts = []
    for path in files:
        sims = read_simulations(path)
        prob, soma = stitched_predictions(apply_fn, sims, batch_size)
        parts.append(score_file(sims, prob, soma))
    return {**summarize(parts), "files": [os.path.basename(f) for f in files]}


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="elm_jax.neuronio_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="converted .npz, .pt, or a folder")
    parser.add_argument("--data-dir", required=True, help="NeuronIO folder")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--max-files", type=cli.positive_int, default=None)
    parser.add_argument("--batch-size", type=cli.positive_int, default=16)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    files = find_split_files(args.data_dir)[args.split][: args.max_files]
    module, variables = load_checkpoint(args.checkpoint)
    num_input = module.config.num_input
    if num_input != 1278:
        raise cli.UsageError(
            f"--checkpoint {args.checkpoint}: the neuron has num_input={num_input}; NeuronIO has "
            "1278 input channels"
        )
    result = {"checkpoint": os.path.basename(os.path.normpath(args.checkpoint)),
              "split": args.split, **evaluate(module, variables, files, args.batch_size)}  # fmt: skip
    text = json.dumps(result, sort_keys=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring); returns the exit code."""
    return cli.run(_main, argv, prog="elm_jax.neuronio_eval")


if __name__ == "__main__":
    sys.exit(main())
