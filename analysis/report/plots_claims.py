"""Figures that show the docs/science.md §8 claims of one :class:`analysis.claims.decide.ClaimsBlock`.

* :func:`plot_parabolas`: every budget's seed means (SE bars) against N, its parabola in log N,
  the vertex with its 95 % interval, and the input-blind loss;
* :func:`plot_optimum_moves`: N*(P) and k_e*(P) with their intervals and fitted slopes;
* :func:`plot_axes`: the three axis slices with their slopes and the input-blind loss.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.claims.decide import AXES, ClaimsBlock  # noqa: E402
from analysis.report.plots import save  # noqa: E402

BLIND_STYLE = {"color": "0.35", "ls": ":", "lw": 1.2}


def _blind(ax, block: ClaimsBlock) -> None:
    v = block.input_blind.get("val_loss", float("nan"))
    if np.isfinite(v):
        ax.axhline(v, **BLIND_STYLE, label=f"input-blind {v:.3g}")


def _title(block: ClaimsBlock, what: str) -> str:
    return f"{what} ({block.dataset}, P_{block.budget_kind} budgets)"


def plot_parabolas(block: ClaimsBlock, path: str | Path) -> Path | None:
    """One panel per budget with a parabola fit; None when there is none."""
    fits = block.parabolas
    if not fits:
        return None
    n = len(fits)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    decision = dict(zip(block.budgets["budget"], block.budgets["decision"], strict=True))
    for ax, (P, fit) in zip(axes.ravel(), sorted(fits.items()), strict=False):
        d = fit.data
        ax.errorbar(d["N"], d["val_mean"], yerr=d["val_se"], fmt="o", ms=4, label="seed mean ± SE")
        grid = np.geomspace(*fit.N_range, 100)
        ax.plot(grid, fit.predict(grid), "-", lw=1.2, label="parabola in log N")
        lo, hi = fit.N_star_ci95
        if np.isfinite(lo):
            ax.axvspan(lo, hi, color="C2", alpha=0.15, label="N* 95% interval")
        ax.axvline(fit.N_star, color="C2", lw=1)
        _blind(ax, block)
        ax.set_xscale("log")
        ax.set_title(
            f"P = {P:.3g}, k_c = {fit.k_c:g}: {decision.get(P, '?')}\n"
            f"c = {fit.c:.3g} [{fit.c_ci95[0]:.2g}, {fit.c_ci95[1]:.2g}], "
            f"inside {fit.interior_fraction:.0%}",
            fontsize=8,
        )
        ax.set_xlabel("neurons N (log)")
        ax.set_ylabel(f"{fit.loss_columns[0]} (nats)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(_title(block, "Loss against N at each budget"), fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_optimum_moves(block: ClaimsBlock, path: str | Path) -> Path | None:
    """N*(P) and k_e*(P) with 95 % intervals and the fitted log-log slopes; None without fits."""
    b = block.budgets
    if "N_star" not in b.columns or b["N_star"].notna().sum() == 0:
        return None
    b = b[b["N_star"].notna()]
    moves = block.claims["optimum_moves"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, col, label in ((axes[0], "N_star", "N*"), (axes[1], "k_e_star", "k_e*")):
        used = b["decision"] == "supported"
        lo = np.array([getattr(block.parabolas[P], f"{col}_ci95")[0] for P in b["budget"]])
        hi = np.array([getattr(block.parabolas[P], f"{col}_ci95")[1] for P in b["budget"]])
        y = b[col].to_numpy(float)
        ax.errorbar(
            b["budget"],
            y,
            yerr=[y - lo, hi - y],
            fmt="o",
            mfc="none",
            color="0.5",
            label="all fitted budgets",
        )
        ax.errorbar(b["budget"][used], y[used], fmt="o", color="C0", label="interior optimum")
        slope = moves.details.get(f"{col}_slope")
        if slope is not None and used.sum() >= 2:
            P = b["budget"][used].to_numpy(float)
            c = np.exp(np.mean(np.log(y[used])) - slope * np.mean(np.log(P)))
            ci = moves.details[f"{col}_ci95"]
            grid = np.geomspace(P.min(), P.max(), 50)
            ax.plot(
                grid,
                c * grid**slope,
                "-",
                color="C1",
                label=f"slope {slope:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"budget P_{block.budget_kind} (parameters)")
        ax.set_ylabel(f"{label} (count)")
        ax.legend(fontsize=7)
    fig.suptitle(_title(block, f"Optimal allocation: optimum_moves {moves.decision}"), fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_axes(block: ClaimsBlock, path: str | Path) -> Path | None:
    """Seed-mean loss along each axis slice with its least-squares line; None without slices."""
    present = [n for n in AXES if "x" in block.claims[n].details]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(3.8 * len(present), 3.4), squeeze=False)
    for ax, name in zip(axes[0], present, strict=True):
        c = block.claims[name]
        x, y = np.asarray(c.details["x"], float), np.asarray(c.details["val_mean"], float)
        ax.plot(x, y, "o", label="seed mean")
        lx = np.log(x)
        ax.plot(
            x,
            y.mean() + c.statistic * (lx - lx.mean()),
            "-",
            label=f"slope {c.statistic:.3g} [{c.ci95[0]:.2g}, {c.ci95[1]:.2g}]",
        )
        _blind(ax, block)
        ax.set_xscale("log")
        ax.set_xlabel(f"{AXES[name][1]} (log)")
        ax.set_ylabel(f"{block.loss_columns['val']} (nats)")
        ax.set_title(f"{name}: {c.decision}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(_title(block, "Axis slices"), fontsize=10)
    fig.tight_layout()
    return save(fig, path)
