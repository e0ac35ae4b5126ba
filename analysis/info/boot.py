"""Seeds-only bootstrap intervals of the information model's parameters (docs/science.md §6, §7).

Every resample keeps each ok ELM point the model was fitted to and redraws its ok seeds with
replacement (rescaled to the unbiased spread, as :mod:`analysis.stats.seedboot`); the model is refitted
from the full-data optimum (one start: resamples lie close to the data). When the full fit found
c not identifiable, c stays fixed at 1 nat in every refit, so the intervals of ln a, alpha and
beta are in units of c.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.info.model import (
    _LOWER,
    _UPPER,
    PARAMETER_NAMES,
    InfoModel,
    _fit_fixed_c,
    _log_loss_jacobian,
    _loss,
    robust_fit,
)
from analysis.stats.parabola import interval
from analysis.stats.scaling import one_blas_thread


def _point_seeds(trials: pd.DataFrame, loss: str, arch: str):
    ok = trials[
        (trials["arch"] == arch)
        & (trials["status"] == "ok")
        & np.isfinite(trials[loss].to_numpy(float))
    ]
    rows = []
    for _, g in ok.groupby(["slice", "budget", "point_id"], sort=True, dropna=False):
        first = g.iloc[0]
        rows.append(
            (float(first["N"]), float(first["k_e"]), float(first["k_c"]), g[loss].to_numpy(float))
        )
    return rows


def _params(theta: np.ndarray) -> dict[str, float]:
    return {
        "a": float(np.exp(theta[0])),
        "alpha": float(theta[1]),
        "beta": float(theta[2]),
        "rho": float(theta[3]),
        "c": float(np.exp(theta[4])),
        "L0": float(np.exp(theta[5]) + np.exp(theta[6])),
        "Linf": float(np.exp(theta[5])),
    }


def refit_on_resamples(
    N: np.ndarray,
    k_e: np.ndarray,
    k_c: np.ndarray,
    seeds: list[np.ndarray],
    model: InfoModel,
    n_boot: int,
    seed: int = 0,
) -> np.ndarray:
    """[n_boot, 7] optimiser coordinates of the model refitted on seeds-only resamples of the
    points (``seeds[j]``: point j's ok seed losses), each from the full fit (c held at 1 nat
    when the full fit fixed it)."""
    theta0 = np.asarray(model.theta, float)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        means = []
        for v in seeds:
            n = len(v)
            m = v[rng.integers(0, n, size=n)].mean()
            means.append(v.mean() + (np.sqrt(n / (n - 1.0)) * (m - v.mean()) if n > 1 else 0.0))
        logL = np.log(np.maximum(np.array(means), 1e-12))

        def resid(t, logL=logL):
            return np.log(_loss(t, N, k_e, k_c)) - logL

        def jac(t):
            return _log_loss_jacobian(t, N, k_e, k_c)

        if model.c_identifiable:
            x0 = np.clip(theta0, _LOWER + 1e-9, _UPPER - 1e-9)
            res = robust_fit(resid, jac, x0, _LOWER, _UPPER, max_nfev=300)
            theta = res.x
        else:
            theta, _ = _fit_fixed_c(resid, jac, theta0, 0.0)
        out.append(theta)
    return np.array(out).reshape(n_boot, len(theta0))


@one_blas_thread
def bootstrap_parameters(
    trials: pd.DataFrame,
    model: InfoModel,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
    arch: str = "elm",
) -> pd.DataFrame:
    """One row per parameter: ``parameter``, ``value`` (the full fit), ``ci95_lo``, ``ci95_hi``.

    Points with a single ok seed keep their mean in every resample (no seed variance there).
    """
    pts = _point_seeds(trials, loss, arch)
    N, ke, kc = (np.array([p[i] for p in pts]) for i in range(3))
    thetas = refit_on_resamples(N, ke, kc, [p[3] for p in pts], model, n_boot, seed)
    frame = pd.DataFrame([_params(t) for t in thetas])
    rows = []
    for name in PARAMETER_NAMES:
        lo, hi = interval(frame[name].to_numpy(float)) if n_boot else (np.nan, np.nan)
        rows.append(
            {"parameter": name, "value": getattr(model, name), "ci95_lo": lo, "ci95_hi": hi}
        )
    return pd.DataFrame(rows)
