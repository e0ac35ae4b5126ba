"""Synthetic results tables (schema v1) drawn from a planted model, for tests, fixtures and demos.

The losses come from the SPEC §6 information model with known parameters plus multiplicative
log-normal seed noise, on the architecture grid a budget sweep would use: at each budget,
every ``(d_m, k_c)`` pair with ``N = round(P / (k_e + k_c)) >= 2`` (``k_e`` from d_m by the
SPEC §3 formula with the default MLP). Nothing here is a measurement.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from analysis.info_model import PARAMETER_NAMES, _loss
from analysis.load import SCHEMA_VERSION

#: A planted parameter set with an interior optimum that moves with P between 1e3 and 1e6.
PLANTED = {"a": 0.02, "alpha": 0.7, "beta": 0.5, "rho": 0.01, "c": 20.0, "L0": 2.944, "Linf": 0.35}


def k_e_of(d_m: int, d_tree: int = 4) -> int:
    """SPEC §3: k_e with one hidden layer of width 2 d_m, readout and learnable tau_m."""
    return (d_tree + d_m) * 2 * d_m + 2 * d_m + 2 * d_m * d_m + d_m + (d_m + 1) + d_m


def planted_theta(params: dict[str, float]) -> np.ndarray:
    """Optimiser coordinates (see analysis.info_model) of a named parameter set."""
    p = {n: float(params[n]) for n in PARAMETER_NAMES}
    return np.array(
        [
            np.log(p["a"]),
            p["alpha"],
            p["beta"],
            p["rho"],
            np.log(p["c"]),
            np.log(p["Linf"]),
            np.log(p["L0"] - p["Linf"]),
        ]
    )


def planted_loss(params: dict[str, float], N, k_e, k_c) -> np.ndarray:
    """Noise-free loss of the planted model."""
    return _loss(
        planted_theta(params), np.asarray(N, float), np.asarray(k_e, float), np.asarray(k_c, float)
    )


def _hash(*parts) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _row(
    sweep, dataset, slice_, budget, arch, N, d_m, k_c, k_e, seed, loss, status="ok", reason=""
):
    P_core = int(N * (k_e + k_c)) if arch == "elm" else int(budget)
    P_io = 19 * int(N) + 19
    fps = 2.0 * P_core + 2.0 * P_io
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep": sweep,
        "trial_id": _hash(sweep, arch, N, d_m, k_c, slice_, budget, seed),
        "point_id": _hash(arch, N, d_m, k_c),
        "arch": arch,
        "task": "shd_adding",
        "dataset": dataset,
        "slice": slice_,
        "budget": float(budget),
        "budget_kind": "core",
        "N": int(N),
        "d_m": d_m,
        "k_c": k_c,
        "k_e": k_e,
        "d_tree": 4,
        "P_core": P_core,
        "P_io": P_io,
        "P_total": P_core + P_io,
        "flops_per_step": fps,
        "train_flops": 3.0 * fps * 1000 * 8 * 2000,
        "seed": int(seed),
        "status": status,
        "reason": reason,
        "steps": 2000 if status == "ok" else 120,
        "val_loss": float(loss) if status == "ok" else np.nan,
        "val_metric": float(np.exp(-loss)) if status == "ok" else np.nan,
        "test_loss": float(loss * 1.01) if status == "ok" else np.nan,
        "test_metric": float(np.exp(-loss * 1.01)) if status == "ok" else np.nan,
        "metric_name": "accuracy",
        "wall_s": 1.0,
    }


def synthetic_trials(
    budgets=(1e3, 3e3, 1e4, 3e4, 1e5),
    d_m_values=(1, 2, 4, 8, 16),
    k_c_values=(16, 64),
    seeds=(0, 1),
    noise: float = 0.01,
    params: dict[str, float] | None = None,
    baseline: str | None = "lstm",
    baseline_penalty: float = 1.15,
    n_diverged: int = 1,
    axis_points: bool = True,
    dataset: str = "shd-default",
    sweep: str = "synthetic",
    rng_seed: int = 0,
) -> pd.DataFrame:
    """A schema-v1 trial table drawn from the planted information model.

    Args:
      noise: standard deviation of the multiplicative log-normal noise per trial.
      baseline: an arch whose one point per budget has loss ``baseline_penalty`` times the
        planted ELM optimum at that budget (None: no baseline); its d_m, k_e, k_c are 0, as the
        sweep engine writes them for baselines.
      n_diverged: the last ``n_diverged`` ELM trials are marked diverged (NaN losses).
      axis_points: add an ``axis_N`` slice (budget NaN) varying N at d_m = 4, k_c = 16.
    """
    params = dict(PLANTED if params is None else params)
    rng = np.random.default_rng(rng_seed)
    rows = []
    for P in budgets:
        best = np.inf
        for d_m in d_m_values:
            k_e = k_e_of(d_m)
            for k_c in k_c_values:
                N = int(round(P / (k_e + k_c)))
                if N < 2:
                    continue
                clean = float(planted_loss(params, N, k_e, k_c))
                best = min(best, clean)
                for s in seeds:
                    loss = clean * np.exp(noise * rng.standard_normal())
                    rows.append(_row(sweep, dataset, "budget", P, "elm", N, d_m, k_c, k_e, s, loss))
        if baseline is not None:
            N_b = max(1, int(np.sqrt(P / 4.0)))
            for s in seeds:
                loss = baseline_penalty * best * np.exp(noise * rng.standard_normal())
                rows.append(_row(sweep, dataset, "budget", P, baseline, N_b, 0, 0, 0, s, loss))
    if axis_points:
        k_e = k_e_of(4)
        for N in (4, 16, 64):
            clean = float(planted_loss(params, N, k_e, 16))
            for s in seeds:
                rows.append(
                    _row(
                        sweep,
                        dataset,
                        "axis_N",
                        np.nan,
                        "elm",
                        N,
                        4,
                        16,
                        k_e,
                        s,
                        clean * np.exp(noise * rng.standard_normal()),
                    )
                )
    df = pd.DataFrame(rows)
    elm_idx = df.index[(df["arch"] == "elm") & (df["slice"] == "budget")]
    for i in elm_idx[len(elm_idx) - n_diverged :] if n_diverged else []:
        df.loc[i, ["status", "reason", "steps"]] = ["diverged", "loss became NaN at step 120", 120]
        df.loc[i, ["val_loss", "val_metric", "test_loss", "test_metric"]] = np.nan
    return df
