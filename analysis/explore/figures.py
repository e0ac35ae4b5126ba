"""Plotly figures of the Pareto explorer (:mod:`analysis.explore.views`): frontier and tradeoff curves.

Each figure is built from the seed-aggregated point frame (:func:`analysis.load.aggregate_seeds`)
of one data set and budget kind; trace names are stable (``"<arch> points"``, ``"Pareto
frontier"``, ``"fitted law"``, ``"k_c=<k> points"``, ``"parabola"``, ``"input-blind
baseline"``) so that a reader of the page, or a test, can find them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.claims.decide import ParabolaFit, fit_budget_parabola
from analysis.load import POINT_KEY
from analysis.report.plots import LOSS_LABEL, X_LABEL
from analysis.stats.pareto import pareto_front
from analysis.stats.scaling import FitError

#: x columns of the frontier figure and their axis titles.
X_LABELS = {x: X_LABEL[x] for x in ("P_core", "P_total", "train_flops")}
#: x columns and the names shown in the page's selector.
X_CHOICES = {"P_core": "P_core", "P_total": "P_total", "train_flops": "training FLOPs"}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_HOVER = "%{hovertext}<extra></extra>"


def hover_texts(points: pd.DataFrame, trials: pd.DataFrame, loss: str) -> pd.Series:
    """Hover text of every point: architecture, counts, seed spread and its trial ids.

    ``points`` is the ok point frame, ``trials`` the trial frame it was aggregated from; the
    result is indexed like ``points``.
    """
    by_key = {
        tuple(str(v) for v in k): g
        for k, g in trials.groupby(list(POINT_KEY), dropna=False, sort=False)
    }
    texts = {}
    for i, p in points.iterrows():
        g = by_key[tuple(str(p[c]) for c in POINT_KEY)]
        ok = g[g["status"] == "ok"].sort_values("seed")
        vals = ok[loss].to_numpy(dtype=float)
        spread = (
            f"{vals.min():.4g} – {vals.max():.4g} (sd {np.std(vals, ddof=1):.2g})"
            if len(vals) > 1
            else "one seed"
        )
        d_m = "–" if pd.isna(p["d_m"]) else f"{int(p['d_m'])}"
        ids = ", ".join(
            t if s == "ok" else f"{t} ({s})"
            for t, s in zip(g["trial_id"], g["status"], strict=True)
        )
        texts[i] = (
            f"<b>{p['arch']}</b> {p['slice']}, budget {p['budget']:.4g}<br>"
            f"N={int(p['N'])}  d_m={d_m}  k_e={int(p['k_e'])}  k_c={int(p['k_c'])}<br>"
            f"P_core={int(p['P_core'])}  P_total={int(p['P_total'])}  "
            f"FLOPs={p['train_flops']:.3g}<br>"
            f"{loss} mean {p[f'{loss}_mean']:.4g} over {int(p['n_ok'])} seeds "
            f"({', '.join(str(int(s)) for s in ok['seed'])})<br>"
            f"seed spread {spread}<br>trials: {ids}"
        )
    return pd.Series(texts, dtype=object)


def _layout(fig: go.Figure, title: str, x_title: str, loss: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis={"type": "log", "title": x_title},
        yaxis={"title": LOSS_LABEL.get(loss, loss)},
        height=520,
        legend={"orientation": "v"},
        template="plotly_white",
    )
    return fig


def _baseline_trace(x_lo: float, x_hi: float, baseline: float) -> go.Scatter:
    return go.Scatter(
        x=[x_lo, x_hi],
        y=[baseline, baseline],
        mode="lines",
        name="input-blind baseline",
        line={"dash": "dash", "color": "#555"},
        hovertemplate=f"input-blind baseline {baseline:.4g}<extra></extra>",
    )


def frontier_figure(
    points: pd.DataFrame,
    hover: pd.Series,
    loss: str,
    x: str,
    budget_kind: str,
    optima: pd.DataFrame,
    fits: tuple,
    baseline: float | None,
) -> go.Figure:
    """All ok points against ``x``, their Pareto frontier and, on the budget's axis, the law.

    The law ``L*(P)`` is a function of the nominal budget counted on ``P_<budget_kind>``, so
    it (with its band and the per-budget optima) is drawn only when ``x`` is that column.
    """
    y = f"{loss}_mean"
    fig = go.Figure()
    for j, (arch, g) in enumerate(points.groupby("arch", sort=True)):
        fig.add_scatter(
            x=g[x],
            y=g[y],
            mode="markers",
            name=f"{arch} points",
            marker={"size": 8, "color": _COLORS[j % len(_COLORS)], "opacity": 0.75},
            hovertext=hover.loc[g.index].tolist(),
            hovertemplate=_HOVER,
        )
    front = pareto_front(points, x, y, keep_duplicates=False)
    fig.add_scatter(
        x=front[x],
        y=front[y],
        mode="lines+markers",
        name="Pareto frontier",
        line={"shape": "hv", "color": "black"},
        marker={"symbol": "diamond-open", "size": 11, "color": "black"},
        hovertemplate="frontier: %{y:.4g} at %{x:.3g}<extra></extra>",
    )
    law, boot = fits
    if x == f"P_{budget_kind}" and len(optima):
        fig.add_scatter(
            x=optima[x],
            y=optima["L_star"],
            customdata=optima["budget"],
            mode="markers",
            name="budget optimum L*(P)",
            marker={"symbol": "circle-open", "size": 15, "color": "#ff7f0e", "line": {"width": 2}},
            hovertemplate="L*(%{customdata:.4g}) = %{y:.4g}<extra></extra>",
        )
        if boot is not None and np.all(np.isfinite(boot.band_lo)):
            fig.add_scatter(
                x=boot.band_P, y=boot.band_hi, mode="lines", line={"width": 0},
                showlegend=False, hoverinfo="skip", name="band upper",
            )  # fmt: skip
            fig.add_scatter(
                x=boot.band_P,
                y=boot.band_lo,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(255,127,14,0.2)",
                name=f"{boot.level:.0%} bootstrap band",
                hoverinfo="skip",
            )
        if law is not None:
            Ps = np.geomspace(min(law.budgets), max(law.budgets), 80)
            fig.add_scatter(
                x=Ps,
                y=law.predict(Ps),
                mode="lines",
                name="fitted law",
                line={"color": "#ff7f0e"},
                hovertemplate=(
                    f"E + A P^-α: E={law.E:.4g}, A={law.A:.4g}, α={law.alpha:.3g}"
                    "<br>P=%{x:.4g}: %{y:.4g}<extra></extra>"
                ),
            )
    if baseline is not None:
        fig.add_trace(_baseline_trace(points[x].min(), points[x].max(), baseline))
    kind_note = "" if x == f"P_{budget_kind}" else f" (law over P_{budget_kind}: select it)"
    return _layout(fig, f"Seed-mean loss against {X_CHOICES[x]}{kind_note}", X_LABELS[x], loss)


def _parabola_traces(fig: go.Figure, fit: ParabolaFit) -> None:
    """The points the parabola was fitted to, the parabola over their range of N, its optimum."""
    d = fit.data
    fig.add_scatter(
        x=d["N"],
        y=d["val_mean"],
        mode="markers",
        name=f"fitted points ({fit.loss_columns[0]})",
        marker={"symbol": "x-thin-open", "size": 12, "color": "black", "line": {"width": 2}},
        customdata=np.stack([d["n_seeds"], d["n_diverged"]], axis=1),
        hovertemplate=(
            f"N=%{{x}}: seed mean of {fit.loss_columns[0]} %{{y:.4g}} as fitted "
            "(%{customdata[0]} seeds, %{customdata[1]} diverged: they enter as the "
            "input-blind loss)<extra></extra>"
        ),
    )
    Ns = np.geomspace(*fit.N_range, 80)
    lo, hi = fit.c_ci95
    fig.add_scatter(
        x=Ns,
        y=fit.predict(Ns),
        mode="lines",
        name=f"parabola in log N (k_c={fit.k_c:g})",
        line={"color": "black"},
        hovertemplate=(
            f"a + b log N + c (log N)^2 on {fit.loss_columns[0]}: c={fit.c:.3g} "
            f"[{lo:.3g}, {hi:.3g}], vertex inside in {fit.interior_fraction:.0%} of resamples"
            "<br>N=%{x:.4g}: %{y:.4g}<extra></extra>"
        ),
    )
    n_lo, n_hi = fit.N_star_ci95
    fig.add_scatter(
        x=[fit.N_star],
        y=[fit.L_star],
        mode="markers",
        name="parabola optimum N*",
        marker={"symbol": "star", "size": 15, "color": "#ff7f0e"},
        hovertemplate=(
            f"N* = {fit.N_star:.4g} [{n_lo:.4g}, {n_hi:.4g}], L* = {fit.L_star:.4g}"
            f" ({'interior' if fit.interior else 'not shown interior'})<extra></extra>"
        ),
    )


def tradeoff_figure(
    budget_points: pd.DataFrame,
    budget_trials: pd.DataFrame,
    hover: pd.Series,
    loss: str,
    budget: float,
    baseline: float | None,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[go.Figure, str | None]:
    """Loss against N at one budget (ELM points, seed sd as error bars) and its parabola.

    ``budget_trials`` are the trial rows of that budget, fitted with
    :func:`analysis.claims.decide.fit_budget_parabola`. Returns the figure and a note when no
    parabola is drawn or the fit has caveats (else None).
    """
    y = f"{loss}_mean"
    kind = str(budget_trials["budget_kind"].iloc[0])
    fig = go.Figure()
    for j, (k_c, g) in enumerate(budget_points.groupby("k_c", sort=True)):
        g = g.sort_values("N")
        fig.add_scatter(
            x=g["N"],
            y=g[y],
            error_y={"type": "data", "array": g[f"{loss}_sd"].fillna(0.0), "visible": True},
            mode="markers+lines",
            name=f"k_c={int(k_c)} points",
            marker={"size": 9, "color": _COLORS[j % len(_COLORS)]},
            line={"dash": "dot", "width": 1},
            hovertext=hover.loc[g.index].tolist(),
            hovertemplate=_HOVER,
        )
    note = None
    try:
        fit = fit_budget_parabola(budget_trials, n_boot=max(1, n_boot), seed=seed)
    except FitError as err:
        note = f"no parabola: {err}"
    else:
        _parabola_traces(fig, fit)
        if fit.loss_columns[0] != loss or fit.data["n_diverged"].any():
            note = (
                f"the parabola is fitted to the seed means of {fit.loss_columns[0]} (crosses; "
                f"diverged seeds count as the input-blind loss); the dots show {loss} over ok seeds"
            )
        if fit.note:
            note = "; ".join(n for n in (note, f"parabola: {fit.note}") if n)
    if baseline is not None:
        fig.add_trace(_baseline_trace(budget_points["N"].min(), budget_points["N"].max(), baseline))
    title = f"Tradeoff at budget P_{kind} = {budget:.4g}: loss against N"
    return _layout(fig, title, "number of neurons N (count)", loss), note
