"""Figures of the report's "Scaling law" section (docs/science.md §8, claim 4), from one
:class:`analysis.claims.decide.ClaimsBlock`; every loss axis shows the input-blind loss.

* :func:`plot_law`: the budgets' parabola L* with intervals, the law fitted on the fitted
  budgets with its band, its prediction of the held-out budget, the naive prediction and the
  held-out outcome;
* :func:`plot_model_against_parabolas`: each budget's seed means and parabola with the
  information model's curve along the budget (the whole-surface fit) and both optima, and N*
  against P: the parabolas', the log-linear law's and the model's.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from analysis.claims.decide import ClaimsBlock  # noqa: E402
from analysis.claims.model import model_optimum_at_k_c  # noqa: E402
from analysis.info.model import _loss  # noqa: E402
from analysis.report.plots import input_blind_line, save  # noqa: E402
from analysis.stats.scaling_batch import refit_power_law  # noqa: E402
from analysis.synthetic.trials import planted_theta  # noqa: E402


class _Model:
    """The information model from its fitted parameters (a claim's details)."""

    def __init__(self, params: dict):
        self.theta = planted_theta(params)

    def predict(self, N, k_e, k_c):
        return _loss(self.theta, *(np.asarray(v, float) for v in (N, k_e, k_c)))


def _law_band(block: ClaimsBlock, fitted: list[float], grid: np.ndarray):
    fits = block.parabolas
    d = block.claims["scaling_law"].details
    Lb = np.stack([fits[p].samples["L_star"].to_numpy(float) for p in fitted], axis=1)
    start = (math.log(d["A_fitted"]), d["alpha_fitted"], math.log(d["E_fitted"]))
    preds = refit_power_law(np.array(fitted), Lb, start).predict(grid)
    preds = preds[np.all(np.isfinite(preds), axis=1)]
    curve = d["E_fitted"] + d["A_fitted"] * grid ** -d["alpha_fitted"]
    if not len(preds):
        return curve, curve, curve
    return curve, np.quantile(preds, 0.025, axis=0), np.quantile(preds, 0.975, axis=0)


def plot_law(block: ClaimsBlock, path: str | Path) -> Path | None:
    """L*(P), the law from the fitted budgets and the held-out test; None without one."""
    claim = block.claims["scaling_law"]
    d = claim.details
    if "held_out_budget" not in d:
        return None
    fits = block.parabolas
    fitted, held = [float(p) for p in d["fitted_budgets"]], float(d["held_out_budget"])
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for P in (*fitted, held):
        fit = fits[P]
        lo, hi = fit.L_star_ci95
        is_held = P == held
        ax.errorbar(
            P, fit.L_star, yerr=[[fit.L_star - lo], [hi - fit.L_star]],
            fmt="s" if is_held else "o", color="C3" if is_held else "C0", ms=6, capsize=3,
            label=("held-out L* (outcome)" if is_held else "fitted budgets' L*")
            if P in (fitted[0], held) else None,
        )  # fmt: skip
    grid = np.geomspace(min(fitted) / 1.3, held * 1.3, 80)
    curve, lo, hi = _law_band(block, fitted, grid)
    ax.plot(grid, curve, "-", color="C1",
            label=f"law from the fitted budgets: α = {d['alpha_fitted']:.3g}")  # fmt: skip
    ax.fill_between(grid, lo, hi, color="C1", alpha=0.15, label="its 95% band")
    p_lo, p_hi = d["predicted_ci95"]
    ax.errorbar(held * 1.06, d["predicted"], yerr=[[d["predicted"] - p_lo], [p_hi - d["predicted"]]],
                fmt="D", color="C1", capsize=3, label="law's prediction")  # fmt: skip
    ax.hlines(d["naive"], fitted[-1], held * 1.1, colors="C2", linestyles="--",
              label=f"naive: L*({fitted[-1]:g}), no further improvement")  # fmt: skip
    input_blind_line(ax, block.input_blind.get("val_loss"))
    ax.set_xscale("log")
    ax.set_xlabel(f"budget P_{block.budget_kind} (parameters)")
    ax.set_ylabel(f"{block.loss_columns['val']} at the parabola's optimum (nats)")
    ax.set_title(
        f"Scaling law, {block.dataset}, P_{block.budget_kind}: {claim.decision}\n"
        f"held-out error {d['error']:+.3g} (tolerance {d['tolerance']:.3g}), naive error "
        f"{d['naive_error']:+.3g}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def plot_model_against_parabolas(block: ClaimsBlock, path: str | Path, d_tree: int = 4):
    """Per budget: parabola and the information model's curve along it; then N* against P.
    None without a fitted model."""
    info = block.claims.get("information_model")
    if info is None or "params" not in info.details:
        return None
    model = _Model(info.details["params"])
    fits = dict(sorted(block.parabolas.items()))
    n = len(fits) + 1
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.1 * rows), squeeze=False)
    held = info.details.get("held_out_budget")
    model_N = {}
    for ax, (P, fit) in zip(axes.ravel(), fits.items(), strict=False):
        dat = fit.data
        ax.errorbar(dat["N"], dat["val_mean"], yerr=dat["val_se"], fmt="o", ms=3,
                    label="seed mean ± SE")  # fmt: skip
        grid = np.geomspace(fit.N_range[0] / 1.5, fit.N_range[1] * 1.5, 80)
        ax.plot(grid, fit.predict(grid), "-", lw=1.1, label="parabola in log N")
        k_e = P / grid - fit.k_c
        ok = k_e > 0
        ax.plot(grid[ok], model.predict(grid[ok], k_e[ok], np.full(ok.sum(), fit.k_c)), "--",
                color="C4", lw=1.1, label="information model")  # fmt: skip
        try:
            opt = model_optimum_at_k_c(model, P, fit.k_c, d_tree)
            model_N[P] = opt["N"]
            ax.axvline(opt["N"], color="C4", ls="--", lw=1)
        except ValueError:
            pass
        lo, hi = fit.N_star_ci95
        ax.axvspan(lo, hi, color="C2", alpha=0.15, label="parabola N* 95%")
        ax.axvline(fit.N_star, color="C2", lw=1)
        input_blind_line(ax, block.input_blind.get("val_loss"))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"P = {P:.3g}{' (held out)' if P == held else ''}", fontsize=8)
        ax.set_xlabel("neurons N (log)")
        ax.set_ylabel(f"{fit.loss_columns[0]} (nats)")
    axes.ravel()[0].legend(fontsize=6)
    ax = axes.ravel()[len(fits)]
    P = np.array(list(fits))
    Ns = np.array([f.N_star for f in fits.values()])
    los = np.array([f.N_star_ci95[0] for f in fits.values()])
    his = np.array([f.N_star_ci95[1] for f in fits.values()])
    ax.errorbar(P, Ns, yerr=[Ns - los, his - Ns], fmt="o", color="C2", capsize=3,
                label="parabola N* (95%)")  # fmt: skip
    if model_N:
        ax.plot(list(model_N), list(model_N.values()), "D--", color="C4", ms=4,
                label="information model N*")  # fmt: skip
    moves = block.claims["optimum_moves"].details
    if "N_star_slope" in moves:
        use = np.array(moves["budgets"], float)
        y = np.log([fits[p].N_star for p in use])
        c = np.mean(y) - moves["N_star_slope"] * np.mean(np.log(use))
        grid = np.geomspace(P.min(), P.max(), 40)
        ax.plot(grid, np.exp(c) * grid ** moves["N_star_slope"], "-", color="C1",
                label=f"log-linear law, slope {moves['N_star_slope']:.2f}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"budget P_{block.budget_kind}")
    ax.set_ylabel("N* (neurons)")
    ax.set_title("optimal N against P (no loss axis)", fontsize=8)
    ax.legend(fontsize=6)
    for extra in axes.ravel()[len(fits) + 1 :]:
        extra.axis("off")
    fig.suptitle(
        f"Information model (whole-surface fit) against the per-budget parabolas "
        f"({block.dataset}, P_{block.budget_kind}): {info.decision}",
        fontsize=10,
    )
    fig.tight_layout()
    return save(fig, path)
