"""The closed-form information-theoretic model of docs/science.md §6 (ours, not the paper's).

    SNR(k_e, k_c) = a * k_e^alpha * k_c^beta
    I_1           = 1/2 * ln(1 + SNR)
    I_N           = N * I_1 / (1 + rho * (N - 1))
    L(N,k_e,k_c)  = L_inf + (L_0 - L_inf) * exp(-I_N / c)

Parameter meanings are in :data:`PARAMETER_MEANINGS`. All seven are fitted from the seed-mean
losses of the sweep's ok ELM points (every slice) by bounded nonlinear least squares on
log-loss residuals (``scipy.optimize.least_squares``, trust-region reflective, ``soft_l1`` with
scale 0.05 so one odd point does not dominate), from a grid of starts; the best is kept. The
optimiser works in transformed coordinates: ``log a``, ``log c``, ``log L_inf``,
``log(L_0 - L_inf)`` (so a, c > 0 and L_0 > L_inf > 0 hold by construction) and box bounds
``alpha, beta in [0, 4]``, ``rho in [0, 1]``.

Under the budget identity ``P = N (k_e + k_c)`` :meth:`InfoModel.optimum` finds the predicted best
allocation for any P, either over a supplied set of allowed ``(k_e, k_c)`` pairs (N follows from
P; the real sweep's k_e values are discrete functions of d_m) or, by default, continuously over a
log-spaced grid of ``(k_e, k_c)`` refined by L-BFGS-B (k_e, k_c between the smallest values seen
in the fit and P, with N >= 1).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize

from analysis.info.allocation import constrained_optimum
from analysis.load import ok_points, require_single
from analysis.stats.scaling import FitError, one_blas_thread
from elm_jax.data.registry import DATASETS

PARAMETER_NAMES = ("a", "alpha", "beta", "rho", "c", "L0", "Linf")
PARAMETER_MEANINGS = {
    "a": "SNR scale: per-neuron signal-to-noise of a neuron with k_e = k_c = 1",
    "alpha": "exponent of SNR in the per-neuron complexity k_e (returns of a richer neuron)",
    "beta": "exponent of SNR in the per-neuron connectivity k_c (returns of more synapses)",
    "rho": "redundancy between neurons in [0, 1]: 0 = independent information, 1 = all neurons "
    "carry the same information; the population saturates at I_1/rho",
    "c": "information (nats) needed to close 1/e of the gap between L0 and Linf",
    "L0": "loss with no information (I_N = 0), e.g. chance level",
    "Linf": "irreducible loss at infinite information",
}
N_PARAMS = len(PARAMETER_NAMES)
_LOWER = np.array([-30.0, 0.0, 0.0, 0.0, -20.0, -12.0, -12.0])
_UPPER = np.array([30.0, 4.0, 4.0, 1.0, 20.0, 6.0, 6.0])


def _loss(theta: np.ndarray, N, k_e, k_c) -> np.ndarray:
    log_a, alpha, beta, rho, log_c, log_linf, log_gap = theta
    log_snr = log_a + alpha * np.log(k_e) + beta * np.log(k_c)
    i1 = 0.5 * np.logaddexp(0.0, log_snr)  # 1/2 ln(1 + SNR) without overflow
    i_n = N * i1 / (1.0 + rho * (N - 1.0))
    return np.exp(log_linf) + np.exp(log_gap) * np.exp(-i_n / np.exp(log_c))


def _log_loss_jacobian(theta: np.ndarray, N, k_e, k_c) -> np.ndarray:
    """d log L / d theta, shape [points, 7] (analytic: faster and exact vs finite differences)."""
    log_a, alpha, beta, rho, log_c, log_linf, log_gap = theta
    lke, lkc = np.log(k_e), np.log(k_c)
    log_snr = log_a + alpha * lke + beta * lkc
    i1 = 0.5 * np.logaddexp(0.0, log_snr)
    d = 1.0 + rho * (N - 1.0)
    i_n = N * i1 / d
    c = np.exp(log_c)
    gz = np.exp(log_gap) * np.exp(-i_n / c)
    L = np.exp(log_linf) + gz
    dL_dsnr = -gz / c * (N / d) * 0.5 * np.exp(-np.logaddexp(0.0, -log_snr))  # sigmoid(log_snr)
    cols = [
        dL_dsnr,
        dL_dsnr * lke,
        dL_dsnr * lkc,
        gz / c * N * i1 * (N - 1.0) / d**2,
        gz * i_n / c,
        np.exp(log_linf) * np.ones_like(L),
        gz,
    ]
    return np.stack(cols, axis=-1) / L[:, None]


@dataclass(frozen=True)
class Optimum:
    """Predicted best allocation at budget P (``P = N (k_e + k_c)``)."""

    P: float
    N: float
    k_e: float
    k_c: float
    loss: float
    on_boundary: bool  # the optimum sits on an edge of the searched (k_e, k_c) range
    d_m: float | None = None  # memory units giving k_e (the constrained search only)


@dataclass(frozen=True)
class InfoModel:
    """Fitted docs/science.md §6 model; see :data:`PARAMETER_MEANINGS`."""

    a: float
    alpha: float
    beta: float
    rho: float
    c: float
    L0: float
    Linf: float
    objective: float  # 1/2 sum of soft_l1-transformed squared log residuals
    rmse_log: float  # root mean square log residual on the fitted points
    converged: bool
    n_points: int
    n_starts: int
    k_e_range: tuple[float, float] = (1.0, np.inf)
    k_c_range: tuple[float, float] = (1.0, np.inf)
    theta: tuple[float, ...] = field(default=(), repr=False)
    d_tree: int | None = None  # branches per neuron in the fitted sweep (k_e follows from d_m)
    d_ext: int | None = None  # external channels D_ext; the pool allows k_c <= D_ext + N
    c_profile_ci95: tuple[float, float] = (np.nan, np.nan)  # profile-likelihood interval of c
    c_identifiable: bool = True  # False: c's profile is flat (SNR >> 1) and c was fixed at 1

    def params(self) -> dict[str, float]:
        """The seven fitted parameters by name."""
        return {n: float(getattr(self, n)) for n in PARAMETER_NAMES}

    def predict(self, N, k_e, k_c) -> np.ndarray:
        """Predicted loss for networks of N neurons of complexity k_e and connectivity k_c."""
        N, k_e, k_c = (np.asarray(v, dtype=float) for v in (N, k_e, k_c))
        return _loss(np.asarray(self.theta), N, k_e, k_c)

    @one_blas_thread
    def optimum(
        self,
        P: float,
        candidates: pd.DataFrame | np.ndarray | None = None,
        k_e_range: tuple[float, float] | None = None,
        k_c_range: tuple[float, float] | None = None,
        grid_size: int = 121,
    ) -> Optimum:
        """Predicted best ``(N, k_e, k_c)`` with ``N (k_e + k_c) = P``.

        By default, when the model knows the sweep's d_tree (every fitted model does), the search
        is constrained as the network is (:func:`analysis.info.allocation.constrained_optimum`):
        k_e only from an integer d_m, and ``k_c <= D_ext + N`` when D_ext is known. Explicit
        ``candidates`` or ranges give the unconstrained searches below.

        Args:
          P: the budget (core parameters).
          candidates: allowed ``(k_e, k_c)`` pairs (array of shape [n, 2] or a frame with
            columns k_e, k_c); N = P / (k_e + k_c), pairs giving N < 1 are skipped.
          k_e_range, k_c_range: continuous search ranges (default: smallest value seen in the
            fit up to P).
        """
        P = float(P)
        if not np.isfinite(P) or P <= 0:
            raise ValueError(f"P={P!r}: the budget must be a positive number")
        if candidates is None and k_e_range is None and k_c_range is None and self.d_tree:
            best = constrained_optimum(
                self.predict, P, self.d_tree, self.d_ext, self.k_c_range[0], grid_size=2 * grid_size
            )
            return Optimum(P=P, **best)
        if candidates is not None:
            kk = (
                candidates[["k_e", "k_c"]].to_numpy(float)
                if isinstance(candidates, pd.DataFrame)
                else np.asarray(candidates, float)
            )
            if kk.ndim != 2 or kk.shape[1] != 2 or len(kk) == 0:
                raise ValueError(
                    f"candidates must be a non-empty [n, 2] array of (k_e, k_c), got shape {kk.shape}"
                )
            N = P / kk.sum(axis=1)
            feasible = N >= 1.0
            if not feasible.any():
                raise ValueError(f"P={P:g}: no candidate (k_e, k_c) leaves N >= 1")
            pred = np.where(feasible, self.predict(N, kk[:, 0], kk[:, 1]), np.inf)
            j = int(np.argmin(pred))
            edge = j in (int(np.argmin(kk[:, 0] + kk[:, 1])), int(np.argmax(kk[:, 0] + kk[:, 1])))
            return Optimum(P, float(N[j]), float(kk[j, 0]), float(kk[j, 1]), float(pred[j]), edge)
        e_lo, e_hi = k_e_range or (self.k_e_range[0], P)
        c_lo, c_hi = k_c_range or (self.k_c_range[0], P)
        if not (0 < e_lo < e_hi and 0 < c_lo < c_hi) or e_lo + c_lo > P:
            raise ValueError(
                f"P={P:g}: search ranges k_e={e_lo, e_hi}, k_c={c_lo, c_hi} are empty or leave N < 1"
            )
        le = np.linspace(np.log(e_lo), np.log(e_hi), grid_size)
        lc = np.linspace(np.log(c_lo), np.log(c_hi), grid_size)
        LE, LC = np.meshgrid(le, lc, indexing="ij")

        def f(u: np.ndarray) -> np.ndarray:
            ke, kc = np.exp(u[0]), np.exp(u[1])
            n = P / (ke + kc)
            return np.where(n >= 1.0, self.predict(n, ke, kc), np.inf)

        vals = f(np.stack([LE, LC]))
        i, j = np.unravel_index(np.argmin(vals), vals.shape)
        de, dc = le[1] - le[0], lc[1] - lc[0]
        u0 = np.array([le[i], lc[j]])
        bounds = [
            (max(le[0], u0[0] - de), min(le[-1], u0[0] + de)),
            (max(lc[0], u0[1] - dc), min(lc[-1], u0[1] + dc)),
        ]
        res = minimize(
            lambda u: float(np.minimum(f(u), 1e300)), u0, method="L-BFGS-B", bounds=bounds
        )
        u = res.x if res.fun <= vals[i, j] else u0
        ke, kc = float(np.exp(u[0])), float(np.exp(u[1]))
        edge = i in (0, grid_size - 1) or j in (0, grid_size - 1)
        return Optimum(P, P / (ke + kc), ke, kc, float(f(u)), bool(edge))


@one_blas_thread
def fit_arrays(
    N,
    k_e,
    k_c,
    losses,
    n_starts: int | None = None,
    d_tree: int | None = None,
    d_ext: int | None = None,
) -> InfoModel:
    """Fit the model to arrays of points (seed-mean losses > 0).

    ``d_tree`` and ``d_ext`` (the sweep's branches per neuron and external channels) are kept
    for :meth:`InfoModel.optimum`'s constrained search. c's profile interval is computed; when
    it does not close within a factor 20 (SNR >> 1), c is fixed at 1 nat and the other
    parameters refitted (``c_identifiable=False``): ln a, alpha and beta are then in units of c.

    Raises:
      FitError: fewer than 8 points (7 parameters + 1), non-positive values, or no variation.
    """
    N, k_e, k_c, L = (np.asarray(v, dtype=float).ravel() for v in (N, k_e, k_c, losses))
    if not (N.shape == k_e.shape == k_c.shape == L.shape):
        raise FitError("info_model.fit: N, k_e, k_c and losses must have equal length")
    if len(L) <= N_PARAMS:
        raise FitError(
            f"info_model.fit: {len(L)} ok ELM points; the model has {N_PARAMS} parameters, so at "
            f"least {N_PARAMS + 1} points (varying N, k_e and k_c) are needed"
        )
    for name, v in (("N", N), ("k_e", k_e), ("k_c", k_c), ("loss", L)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise FitError(f"info_model.fit: {name} must be finite and > 0 for every point")
    for name, v in (("N", N), ("k_e", k_e), ("k_c", k_c)):
        if len(np.unique(v)) < 2:
            raise FitError(f"info_model.fit: {name} takes a single value; the fit needs it to vary")
    logL = np.log(L)

    def resid(theta):
        return np.log(_loss(theta, N, k_e, k_c)) - logL

    def jac(theta):
        return _log_loss_jacobian(theta, N, k_e, k_c)

    lmin, lmax = float(L.min()), float(L.max())
    starts = []
    for log_a, alpha, beta, rho in itertools.product(
        (-4.0, -1.0, 2.0), (0.5, 1.2), (0.2, 0.8), (0.01,)
    ):
        theta = np.array(
            [log_a, alpha, beta, rho, 0.0, np.log(0.8 * lmin), np.log(1.5 * lmax - 0.8 * lmin)]
        )
        # choose c so that the median point sits mid-way down the exponential
        i1 = 0.5 * np.logaddexp(0.0, log_a + alpha * np.log(k_e) + beta * np.log(k_c))
        theta[4] = np.log(np.median(N * i1 / (1.0 + rho * (N - 1.0))))
        starts.append(np.clip(theta, _LOWER + 1e-9, _UPPER - 1e-9))
    if n_starts is not None:
        starts = starts[:n_starts]
    best = None
    for x0 in starts:
        res = robust_fit(resid, jac, x0, _LOWER, _UPPER, max_nfev=500)
        if best is None or res.cost < best.cost:
            best = res
    th = best.x
    c_ci, identifiable = _profile_c(resid, jac, th, float(best.cost), len(L))
    if not identifiable:
        th, best = _fix_c_at_one(resid, jac, th)
    r = resid(th)
    return InfoModel(
        a=float(np.exp(th[0])),
        alpha=float(th[1]),
        beta=float(th[2]),
        rho=float(th[3]),
        c=float(np.exp(th[4])),
        L0=float(np.exp(th[5]) + np.exp(th[6])),
        Linf=float(np.exp(th[5])),
        objective=float(best.cost),
        rmse_log=float(np.sqrt(np.mean(r**2))),
        converged=bool(best.status > 0),
        n_points=len(L),
        n_starts=len(starts),
        k_e_range=(float(k_e.min()), float(k_e.max())),
        k_c_range=(float(k_c.min()), float(k_c.max())),
        theta=tuple(float(t) for t in th),
        d_tree=d_tree,
        d_ext=d_ext,
        c_profile_ci95=c_ci,
        c_identifiable=identifiable,
    )


_C_INDEX = 4
#: log c offsets of the profile (a factor e^3 = 20 either way of the fitted c)
_PROFILE_OFFSETS = np.linspace(-3.0, 3.0, 13)


def robust_fit(resid, jac, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, max_nfev: int):
    """The model's one objective: ``soft_l1`` least squares on the log-loss residuals (scale
    0.05), trust-region reflective within ``[lower, upper]``; the full fit, the fixed-c fits
    and the bootstrap refits all call it, so they minimise the same thing."""
    return least_squares(
        resid,
        x0,
        jac=jac,
        bounds=(lower, upper),
        loss="soft_l1",
        f_scale=0.05,
        x_scale="jac",
        max_nfev=max_nfev,
    )


def _fit_fixed_c(resid, jac, theta: np.ndarray, log_c: float):
    """Least squares over the six other parameters with log c held at ``log_c``."""
    free = np.arange(N_PARAMS) != _C_INDEX

    def full(t6):
        t = np.empty(N_PARAMS)
        t[free], t[_C_INDEX] = t6, log_c
        return t

    x0 = np.clip(theta[free], _LOWER[free] + 1e-9, _UPPER[free] - 1e-9)
    res = robust_fit(
        lambda t6: resid(full(t6)),
        lambda t6: jac(full(t6))[:, free],
        x0,
        _LOWER[free],
        _UPPER[free],
        max_nfev=300,
    )
    return full(res.x), res


def _profile_c(resid, jac, theta: np.ndarray, cost_min: float, n: int):
    """Profile-likelihood 95 % interval of c and whether it closes within a factor 20.

    When SNR >> 1, ``I_1 ~ (ln a + alpha ln k_e + beta ln k_c) / 2`` and scaling ln a, alpha,
    beta and c together leaves every prediction unchanged: c's profile is then flat.
    The criterion is ``(2 cost(c) - 2 cost_min) / s^2 < 3.84`` with ``s^2 = 2 cost_min / (n - 7)``
    (soft_l1 is quadratic for residuals well below its 0.05 scale).
    """
    s2 = max(2.0 * cost_min / max(n - N_PARAMS, 1), 1e-12)
    ends, closed = [], True
    for side in (
        _PROFILE_OFFSETS[_PROFILE_OFFSETS >= 0],
        _PROFILE_OFFSETS[_PROFILE_OFFSETS <= 0][::-1],
    ):
        t, prev_off, prev_root = theta.copy(), 0.0, 0.0
        end = side[-1]
        for off in side[1:]:
            t, res = _fit_fixed_c(resid, jac, t, theta[_C_INDEX] + off)
            root = np.sqrt(max(2.0 * (res.cost - cost_min) / s2, 0.0))
            if root >= np.sqrt(3.84):
                # interpolate in sqrt(delta), linear in the offset for a quadratic profile
                end = prev_off + (off - prev_off) * (np.sqrt(3.84) - prev_root) / (root - prev_root)
                break
            prev_off, prev_root = off, root
        else:
            closed = False
        ends.append(end)
    hi, lo = ends
    return (float(np.exp(theta[_C_INDEX] + lo)), float(np.exp(theta[_C_INDEX] + hi))), closed


def _fix_c_at_one(resid, jac, theta: np.ndarray):
    """Move along the flat direction to c = 1 nat (ln a, alpha, beta scaled by 1/c) and refit."""
    t = theta.copy()
    scale = np.exp(-theta[_C_INDEX])
    t[[0, 1, 2]] = theta[[0, 1, 2]] * scale
    return _fit_fixed_c(resid, jac, t, 0.0)


def fit(
    points: pd.DataFrame, loss: str = "val_loss", arch: str = "elm", n_starts: int | None = None
) -> InfoModel:
    """Fit the model to the seed-mean losses of a point frame (one dataset; all slices).

    Args:
      points: the seed-aggregated frame (:func:`analysis.load.aggregate_seeds`).
      loss: ``val_loss`` or ``test_loss``.
      arch: the architecture whose points are fitted (the model describes ELM networks).
    """
    pts = ok_points(points, loss)
    pts = pts[pts["arch"] == arch]
    if len(pts) == 0:
        raise FitError(f"info_model.fit: no ok points with arch={arch!r}")
    require_single(pts, ("dataset",))
    d_tree = pts["d_tree"].dropna().unique()
    return fit_arrays(
        pts["N"],
        pts["k_e"],
        pts["k_c"],
        pts[f"{loss}_mean"],
        n_starts=n_starts,
        d_tree=int(d_tree[0]) if len(d_tree) == 1 else None,
        d_ext=external_channels(pts),
    )


def external_channels(points: pd.DataFrame) -> int | None:
    """D_ext of the points' task (a dataset name, elm_jax.data.registry): the input channels when
    the encoder is the identity (700 for SHD, docs/science.md §3); for embedded tokens the
    embedding width, from ``P_io = V D + C (N + 1)`` (embedding of the V = input_dim values plus
    the decoder over C = num_classes); None when unknown or inconsistent."""
    tasks = points["task"].unique() if "task" in points.columns else []
    if len(tasks) != 1 or tasks[0] not in DATASETS:
        return None
    dataset = DATASETS[tasks[0]]
    if not dataset.kind.token_inputs:
        return dataset.input_dim
    if "P_io" in points.columns:
        decoder = dataset.num_classes * (points["N"].to_numpy(float) + 1)
        d = (points["P_io"].to_numpy(float) - decoder) / dataset.input_dim
        if len(d) and np.all(d == d[0]) and d[0] >= 1:
            return int(d[0])
    return None
