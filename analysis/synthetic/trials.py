"""Synthetic results tables (schema v2) drawn from a planted model, for tests, fixtures and demos.

The losses come from the docs/science.md §6 information model with known parameters plus
multiplicative log-normal seed noise, on the architecture grid a budget sweep would use: at each
budget, every ``(d_m, k_c)`` pair with ``N = round(P / (k_e + k_c)) >= 2`` (``k_e`` from d_m by the
docs/science.md §3 formula with the default MLP). Nothing here is a measurement.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from analysis.info.model import PARAMETER_NAMES, _loss
from analysis.load import SCHEMA_VERSION

#: A planted parameter set with an interior optimum that moves with P between 1e3 and 1e6.
PLANTED = {"a": 0.02, "alpha": 0.7, "beta": 0.5, "rho": 0.01, "c": 20.0, "L0": 2.944, "Linf": 0.35}


def k_e_of(d_m: int, d_tree: int = 4) -> int:
    """docs/science.md §3: k_e with one hidden layer of width 2 d_m, readout and learnable tau_m."""
    return (d_tree + d_m) * 2 * d_m + 2 * d_m + 2 * d_m * d_m + d_m + (d_m + 1) + d_m


def planted_theta(params: dict[str, float]) -> np.ndarray:
    """Optimiser coordinates (see analysis.info.model) of a named parameter set."""
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


#: Input-blind loss and accuracy of SHD-Adding (docs/science.md §4: the triangular label prior).
INPUT_BLIND = {"loss": 2.794, "metric": 0.10}


def _row(
    sweep,
    dataset,
    slice_,
    budget,
    arch,
    N,
    d_m,
    k_c,
    k_e,
    seed,
    loss,
    status="ok",
    reason="",
    budget_kind="core",
    final_gap=0.005,
):
    P_core = int(N * (k_e + k_c)) if arch == "elm" else int(budget)
    P_io = 19 * int(N) + 19
    fps = 2.0 * P_core + 2.0 * P_io
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep": sweep,
        "trial_id": _hash(
            sweep,
            arch,
            N,
            d_m,
            k_c,
            slice_,
            budget,
            seed,
            *([budget_kind] * (budget_kind != "core")),
        ),
        "point_id": _hash(arch, N, d_m, k_c),
        "arch": arch,
        "task": "shd_adding",
        "dataset": dataset,
        "slice": slice_,
        "budget": float(budget),
        "budget_kind": budget_kind,
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
        # the last step is a little worse than the best checkpoint
        "final_val_loss": float(loss * (1 + final_gap)) if status == "ok" else np.nan,
        "final_val_metric": float(np.exp(-loss * (1 + final_gap))) if status == "ok" else np.nan,
        "final_test_loss": float(loss * 1.01 * (1 + final_gap)) if status == "ok" else np.nan,
        "final_test_metric": float(np.exp(-loss * 1.01 * (1 + final_gap)))
        if status == "ok"
        else np.nan,
        "input_blind_val_loss": INPUT_BLIND["loss"],
        "input_blind_val_metric": INPUT_BLIND["metric"],
        "input_blind_test_loss": INPUT_BLIND["loss"],
        "input_blind_test_metric": INPUT_BLIND["metric"],
        "wiring_seed": int(seed),
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
    """A schema-v2 trial table drawn from the planted information model.

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
        df.loc[
            i, [c for c in df.columns if c.endswith(("_loss", "_metric")) and "blind" not in c]
        ] = np.nan
    return df


def power_law_surface(N, k_e, k_c, E=0.5, a=1.4, u=0.3, b=6.8, v=0.6, c=0.5, w=0.3) -> np.ndarray:
    """A planted tradeoff surface ``E + a N^-u + b k_e^-v + c k_c^-w`` (noise-free loss).

    Monotone along each axis; under ``P = N (k_e + k_c)`` its optimum is interior and moves to
    more and more complex neurons (``N* ~ P^(v/(u+v))``, ``k_e* ~ P^(u/(u+v))`` for large P), and
    ``L*(P)`` approaches a power law in P. The defaults put N* inside the d_m = 1..32 grid from
    P = 1e3 to 1e6.
    """
    N, k_e, k_c = (np.asarray(x, float) for x in (N, k_e, k_c))
    return E + a * N**-u + b * k_e**-v + c * k_c**-w


def exact_law_surface(N, k_e, k_c, E=0.5, a=1.4, u=0.3, b=6.8, v=0.6) -> np.ndarray:
    """A planted surface ``E + a N^-u + b (k_e + k_c)^-v`` whose budget optimum is an exact power
    law in ``P = N (k_e + k_c)``: ``N* ~ P^(v/(u+v))`` and ``L*(P) = E + K P^(-uv/(u+v))``
    (the claim-4 tests; :func:`power_law_surface` only approaches a power law)."""
    N, k_e, k_c = (np.asarray(x, float) for x in (N, k_e, k_c))
    return E + a * N**-u + b * (k_e + k_c) ** -v


def info_model_surface(N, k_e, k_c, params: dict[str, float] | None = None) -> np.ndarray:
    """The docs/science.md §6 information model with :data:`PLANTED` parameters (or ``params``)
    as a planted surface for :func:`tradeoff_trials`."""
    return planted_loss(dict(PLANTED if params is None else params), N, k_e, k_c)


def tradeoff_trials(
    loss_fn=power_law_surface,
    budgets=tuple(np.geomspace(1e3, 1e6, 7)),
    d_m_values=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
    k_c_values=(16,),
    seeds=(0, 1, 2),
    noise: float = 0.01,
    budget_kind: str = "core",
    axes: bool = True,
    n_random: int = 0,
    n_diverged: int = 0,
    rng_seed: int = 0,
    dataset: str = "shd-default",
    sweep: str = "planted",
) -> pd.DataFrame:
    """A schema-v2 trial table of budget, axis and random slices drawn from ``loss_fn``.

    Args:
      loss_fn: ``(N, k_e, k_c) -> loss`` (noise-free, > 0).
      noise: standard deviation of the multiplicative log-normal noise of each trial.
      budget_kind: ``core`` (N = P / (k_e + k_c)) or ``total`` (P also pays the decoder's
        19 N + 19 weights, as :func:`_row` counts them).
      axes: add ``axis_N`` (N = 4..64), ``axis_k_e`` (d_m = 1..16) and ``axis_k_c`` (k_c = 4..64)
        slices around the base point N = 16, d_m = 4, k_c = 16.
      n_random: points of a ``random`` slice (budget NaN) drawn log-uniformly in N and d_m.
      n_diverged: that many randomly chosen ELM trials are marked diverged (NaN losses).
    """
    if budget_kind not in ("core", "total"):
        raise ValueError(f"budget_kind={budget_kind!r}; valid: 'core', 'total'")
    rng = np.random.default_rng(rng_seed)
    rows = []

    def add(slice_, budget, N, d_m, k_c):
        k_e = k_e_of(d_m)
        clean = float(loss_fn(N, k_e, k_c))
        for s in seeds:
            loss = clean * np.exp(noise * rng.standard_normal())
            rows.append(
                _row(
                    sweep,
                    dataset,
                    slice_,
                    budget,
                    "elm",
                    N,
                    d_m,
                    k_c,
                    k_e,
                    s,
                    loss,
                    budget_kind=budget_kind,
                )
            )

    for P in budgets:
        for d_m in d_m_values:
            for k_c in k_c_values:
                per_neuron = k_e_of(d_m) + k_c + (19 if budget_kind == "total" else 0)
                spend = P - (19 if budget_kind == "total" else 0)
                N = int(round(spend / per_neuron))
                if N >= 2:
                    add("budget", P, N, d_m, k_c)
    if axes:
        for N in (4, 8, 16, 32, 64):
            add("axis_N", np.nan, N, 4, 16)
        for d_m in (1, 2, 4, 8, 16):
            add("axis_k_e", np.nan, 16, d_m, 16)
        for k_c in (4, 8, 16, 32, 64):
            add("axis_k_c", np.nan, 16, 4, k_c)
    for _ in range(n_random):
        N = int(np.exp(rng.uniform(np.log(4), np.log(2000))))
        d_m = int(np.exp(rng.uniform(0, np.log(32))))
        add("random", np.nan, N, max(d_m, 1), int(rng.choice(k_c_values)))
    df = pd.DataFrame(rows)
    for i in rng.choice(len(df), size=n_diverged, replace=False) if n_diverged else []:
        df.loc[i, ["status", "reason", "steps"]] = ["diverged", "loss became NaN", 50]
        df.loc[
            i, [c for c in df.columns if c.endswith(("_loss", "_metric")) and "blind" not in c]
        ] = np.nan
    return df


def length_trials(
    trials: pd.DataFrame,
    delta_fn,
    seeds=(0, 1),
    factor: int = 2,
    noise: float = 0.0,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """The ``length`` slice of the training-length check for a table of :func:`tradeoff_trials`:
    each budget's two best points (seed-mean final validation loss) and the two ends of each
    axis slice, their ``seeds`` again with ``steps x factor`` and every loss changed by
    ``delta_fn(N, k_e, k_c)`` (plus multiplicative noise of sd ``noise``)."""
    rng = np.random.default_rng(rng_seed)
    ok = trials[trials["status"] == "ok"]
    picked = []
    for budget, g in ok[ok["slice"] == "budget"].groupby("budget"):
        means = g.groupby("point_id")["final_val_loss"].mean().sort_values()
        picked += [("budget", budget, p) for p in means.index[:2]]
    for slice_, col in (("axis_N", "N"), ("axis_k_e", "k_e"), ("axis_k_c", "k_c")):
        g = ok[ok["slice"] == slice_]
        if g[col].nunique() >= 2:
            ends = g.sort_values(col)["point_id"]
            picked += [(slice_, np.nan, ends.iloc[0]), (slice_, np.nan, ends.iloc[-1])]
    rows = []
    for slice_, budget, point_id in picked:
        src = ok[(ok["slice"] == slice_) & (ok["point_id"] == point_id)]
        for _, r in src[src["seed"].isin(seeds)].iterrows():
            r = r.copy()
            delta = float(delta_fn(r["N"], r["k_e"], r["k_c"]))
            for col in ("val_loss", "test_loss", "final_val_loss", "final_test_loss"):
                r[col] = (r[col] + delta) * np.exp(noise * rng.standard_normal())
            r["slice"], r["budget"], r["steps"] = "length", budget, int(r["steps"]) * factor
            r["trial_id"] = _hash(r["trial_id"], "length", factor)
            rows.append(r)
    return pd.concat([trials, pd.DataFrame(rows)], ignore_index=True)
