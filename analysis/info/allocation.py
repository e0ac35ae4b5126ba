"""The information model's optimal allocation under the sweep's real constraints.

Under ``P = N (k_e + k_c)`` a network can only take the k_e values that some integer d_m gives
(docs/science.md §3: ``k_e(d_m)`` with d_tree branches and the default MLP), and a neuron cannot
have more synapses than its presynaptic pool holds: ``k_c <= D_ext + N`` (external channels plus the
N recurrent outputs). :func:`constrained_optimum` searches every allowed d_m and a log grid of k_c,
keeps the feasible points, and refines k_c inside the best cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar


def k_e_of_d_m(d_m, d_tree: int) -> np.ndarray:
    """k_e of a neuron with d_m memory units (docs/science.md §3: one hidden layer of 2 d_m,
    learnable tau)."""
    d = np.asarray(d_m, float)
    h = 2.0 * d
    return (d_tree + d) * h + h + h * d + d + (d + 1.0) + d


def constrained_optimum(
    predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    P: float,
    d_tree: int,
    d_ext: int | None,
    k_c_min: float,
    grid_size: int = 241,
) -> dict:
    """Best ``(N, d_m, k_e, k_c)`` with ``N (k_e + k_c) = P``, k_e from an integer d_m, N >= 1
    and (when ``d_ext`` is known) ``k_c <= d_ext + N``.

    Raises:
      ValueError: no allowed architecture fits the budget.
    """
    k_c_min = max(float(k_c_min), float(d_tree))
    d_m = np.arange(1, 1 + int(np.sqrt(P)) + 1, dtype=float)
    k_e = k_e_of_d_m(d_m, d_tree)
    d_m, k_e = d_m[k_e + k_c_min <= P], k_e[k_e + k_c_min <= P]
    if len(d_m) == 0:
        raise ValueError(
            f"P={P:g}: no d_m >= 1 leaves N >= 1 with k_c >= {k_c_min:g}; the budget is too small"
        )
    k_c = np.geomspace(k_c_min, max(P, k_c_min * 1.001), grid_size)

    def feasible(ke, kc):
        n = P / (ke + kc)
        ok = n >= 1.0
        if d_ext is not None:
            ok &= kc <= d_ext + n
        return n, ok

    KE, KC = np.meshgrid(k_e, k_c, indexing="ij")
    N, ok = feasible(KE, KC)
    if not ok.any():
        raise ValueError(f"P={P:g}: no (d_m, k_c) is feasible with k_c <= D_ext + N = {d_ext} + N")
    vals = np.where(ok, predict(N, KE, KC), np.inf)
    i, j = np.unravel_index(np.argmin(vals), vals.shape)
    lo, hi = np.log(k_c[max(j - 1, 0)]), np.log(k_c[min(j + 1, grid_size - 1)])

    def f(u: float) -> float:
        kc = np.exp(u)
        n, good = feasible(k_e[i], kc)
        return (
            float(predict(np.array([n]), np.array([k_e[i]]), np.array([kc]))[0]) if good else 1e300
        )

    best_kc, best = k_c[j], vals[i, j]
    if hi > lo:
        res = minimize_scalar(f, bounds=(lo, hi), method="bounded")
        if res.fun < best:
            best_kc, best = float(np.exp(res.x)), float(res.fun)
    n = P / (k_e[i] + best_kc)
    at_pool = d_ext is not None and best_kc >= 0.999 * (d_ext + n)
    edge = i in (0, len(d_m) - 1) or j in (0, grid_size - 1) or at_pool
    return {
        "N": float(n),
        "k_e": float(k_e[i]),
        "k_c": float(best_kc),
        "loss": float(best),
        "on_boundary": bool(edge),
        "d_m": float(d_m[i]),
    }
