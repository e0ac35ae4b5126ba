"""Figures of a sweep analysis (matplotlib, Agg backend), each written atomically to a file.

Every figure carries a title, axis labels with units and a legend, so it reads without the code.
Inputs are the frames and fit results of :mod:`analysis.report.pipeline`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.info.model import InfoModel  # noqa: E402
from analysis.stats.pareto import pareto_front  # noqa: E402
from analysis.stats.scaling import BootstrapResult, LogLinearFit, PowerLawFit  # noqa: E402
from elm_jax.files import atomic_path  # noqa: E402

LOSS_LABEL = {
    "val_loss": "validation loss (nats, best checkpoint)",
    "test_loss": "test loss (nats, best checkpoint)",
    "final_val_loss": "validation loss (nats, last step)",
    "final_test_loss": "test loss (nats, last step)",
}
X_LABEL = {
    "P_core": "core parameters P_core = N (k_e + k_c) (count)",
    "P_total": "total parameters P_total (count)",
    "train_flops": "training compute (FLOPs)",
}


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file, then rename) and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def input_blind_line(ax: plt.Axes, baseline: float | None) -> None:
    """Draw the input-blind loss (the label prior's, docs/science.md §4) as a dotted line."""
    if baseline is not None and np.isfinite(baseline):
        ax.axhline(baseline, color="0.35", ls=":", lw=1.2, label=f"input-blind loss {baseline:.3g}")


def _profile(model: InfoModel, P: float, axis: str, values: np.ndarray, n: int = 60) -> np.ndarray:
    """Model loss along one axis at budget P, minimised over the other free allocation."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if axis == "N":
            k = P / v  # k_e + k_c fixed; best split
            ke = k * np.linspace(0.02, 0.98, n)
            kc = k - ke
            N = np.full(n, v)
        elif axis == "k_e":
            kc = np.geomspace(model.k_c_range[0], max(model.k_c_range[0] * 1.01, P / 2), n)
            ke = np.full(n, v)
            N = P / (ke + kc)
        else:
            ke = np.geomspace(model.k_e_range[0], max(model.k_e_range[0] * 1.01, P / 2), n)
            kc = np.full(n, v)
            N = P / (ke + kc)
        ok = N >= 1
        if ok.any():
            out[i] = np.min(model.predict(N[ok], ke[ok], kc[ok]))
    return out


def plot_tradeoffs(
    points: pd.DataFrame,
    path: str | Path,
    loss: str = "val_loss",
    model: InfoModel | None = None,
    baseline: float | None = None,
) -> Path:
    """Loss against N, k_e and k_c at each fixed budget (ELM, budget slice), seed sd as error bars.

    ``baseline``: the input-blind loss of the split, drawn on every panel.

    With a model, dashed lines show its prediction along each axis (best over the other free
    allocation) and crosses its prediction at the measured points.
    """
    pts = points[(points["arch"] == "elm") & (points["slice"] == "budget")]
    budgets = sorted(pts["budget"].unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    labels = {
        "N": "neurons N (count)",
        "k_e": "per-neuron complexity k_e (parameters)",
        "k_c": "per-neuron connectivity k_c (synapses)",
    }
    for ax, axis in zip(axes, ("N", "k_e", "k_c"), strict=True):
        for i, b in enumerate(budgets):
            color = cmap(i / max(1, len(budgets) - 1))
            g = pts[pts["budget"] == b].sort_values(axis)
            sd = g[f"{loss}_sd"].fillna(0.0)
            ax.errorbar(
                g[axis],
                g[f"{loss}_mean"],
                yerr=sd,
                fmt="o",
                color=color,
                capsize=3,
                ms=5,
                label=f"P = {b:.3g}",
            )
            if model is not None:
                xs = np.geomspace(g[axis].min() * 0.8, g[axis].max() * 1.25, 40)
                ax.plot(xs, _profile(model, b, axis, xs), "--", color=color, lw=1)
                ax.plot(g[axis], model.predict(g["N"], g["k_e"], g["k_c"]), "x", color=color, ms=6)
        input_blind_line(ax, baseline)
        ax.set_xscale("log")
        ax.set_xlabel(labels[axis])
        ax.set_title(f"loss vs {axis} at fixed budget")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"seed-mean {LOSS_LABEL.get(loss, loss)}")
    handles, lbls = axes[0].get_legend_handles_labels()
    if model is not None:
        handles += [
            plt.Line2D([], [], ls="--", color="k"),
            plt.Line2D([], [], ls="", marker="x", color="k"),
        ]
        lbls += ["info model (best over the other axis)", "info model at the measured point"]
    fig.legend(
        handles, lbls, loc="lower center", ncol=min(len(lbls), 6), bbox_to_anchor=(0.5, -0.12)
    )
    fig.suptitle("Tradeoffs at fixed core-parameter budget (points: seed mean ± sd)")
    return save(fig, path)


def plot_frontier(
    points: pd.DataFrame,
    path: str | Path,
    loss: str = "val_loss",
    x: str = "P_core",
    optima: pd.DataFrame | None = None,
    fit: PowerLawFit | None = None,
    boot: BootstrapResult | None = None,
    baseline: float | None = None,
) -> Path:
    """All points, their Pareto frontier, the per-budget optima, the fitted law with its band and
    the input-blind loss ``baseline``."""
    y = f"{loss}_mean"
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for arch, g in points.groupby("arch"):
        ax.scatter(g[x], g[y], s=18, alpha=0.45, label=f"{arch} points (seed mean)")
    front = pareto_front(points, x, y, keep_duplicates=False)
    ax.step(front[x], front[y], where="post", color="k", lw=1.2, label="Pareto frontier")
    if optima is not None and len(optima) and x == "P_core":
        ax.errorbar(
            optima["budget"],
            optima["L_star"],
            yerr=optima["L_star_sd"].fillna(0),
            fmt="D",
            color="C3",
            ms=6,
            capsize=3,
            label="budget optimum L*(P)",
        )
    if fit is not None and x == "P_core":
        Ps = np.geomspace(min(fit.budgets), max(fit.budgets) * 3, 100)
        ax.plot(
            Ps,
            fit.predict(Ps),
            color="C3",
            lw=1.5,
            label=f"fit E + A P^-α: E={fit.E:.3g}, α={fit.alpha:.3g}",
        )
    if boot is not None and x == "P_core" and np.all(np.isfinite(boot.band_lo)):
        ax.fill_between(
            boot.band_P,
            boot.band_lo,
            boot.band_hi,
            color="C3",
            alpha=0.2,
            label=f"{boot.level:.0%} bootstrap band",
        )
    input_blind_line(ax, baseline)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(X_LABEL.get(x, x))
    ax.set_ylabel(f"seed-mean {LOSS_LABEL.get(loss, loss)}")
    ax.set_title(f"Loss frontier over {x}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_allocation(
    optima: pd.DataFrame,
    path: str | Path,
    N_fit: LogLinearFit | None = None,
    k_e_fit: LogLinearFit | None = None,
    model: InfoModel | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Measured optimal N* and k_e* against the budget, with power-law fits and the model's optimum."""
    intervals = intervals or {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    P = optima["budget"].to_numpy(float)
    Ps = np.geomspace(P.min(), P.max() * 3, 30) if len(P) else np.array([])
    model_opt = [model.optimum(p) for p in Ps] if model is not None and len(Ps) else []
    for ax, col, fit, name, unit in (
        (axes[0], "N", N_fit, "N_exp", "neurons, count"),
        (axes[1], "k_e", k_e_fit, "k_e_exp", "parameters per neuron"),
    ):
        ax.plot(P, optima[col], "o", color="C0", label=f"measured {col}* (best point per budget)")
        if fit is not None:
            lo, hi = intervals.get(name, (np.nan, np.nan))
            ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
            ax.plot(
                Ps, fit.predict(Ps), "-", color="C0", label=f"power law ∝ P^{fit.exponent:.2f}{ci}"
            )
        if model_opt:
            ax.plot(
                Ps,
                [getattr(o, col) for o in model_opt],
                "--",
                color="C2",
                label="info model optimum (continuous)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(X_LABEL["P_core"])
        ax.set_ylabel(f"optimal {col}* ({unit})")
        ax.set_title(f"Optimal {col} against budget")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_baselines(
    points: pd.DataFrame, path: str | Path, loss: str = "val_loss", baseline: float | None = None
) -> Path:
    """Best seed-mean loss per budget for each architecture (ELM vs simple-unit baselines), and
    the input-blind loss ``baseline``."""
    y = f"{loss}_mean"
    pts = points[(points["slice"] == "budget") & np.isfinite(points["budget"].to_numpy(float))]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for arch, g in pts.groupby("arch"):
        best = g.sort_values(y).groupby("budget", as_index=False).first().sort_values("budget")
        ax.errorbar(
            best["budget"],
            best[y],
            yerr=best[f"{loss}_sd"].fillna(0),
            fmt="o-",
            capsize=3,
            label=f"{arch} (best point per budget)",
        )
    input_blind_line(ax, baseline)
    ax.set_xscale("log")
    ax.set_xlabel("nominal budget (core parameters, count)")
    ax.set_ylabel(f"seed-mean {LOSS_LABEL.get(loss, loss)}")
    ax.set_title("ELM networks vs simple-unit baselines at equal budget")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)
