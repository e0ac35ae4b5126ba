"""Interactive Pareto explorer of one or several sweeps: one self-contained HTML page.

    python -m analysis.explore SWEEP_DIR [SWEEP_DIR ...] --out FILE.html [--loss val_loss]
        [--n-boot 100] [--seed 0]

The page (plotly, its JavaScript inlined, so it works offline) shows, for each data set and
budget kind (never pooled, as in :mod:`analysis.report.build`):

* the seed-mean loss of every architecture point against P_core, P_total or training FLOPs,
  its Pareto frontier, and over the budget axis the fitted law ``L*(P) = E + A P^-alpha`` with
  its bootstrap band (docs/science.md §7); hovering a point gives N, d_m, k_e, k_c, the seed
  spread and the trial ids;
* a budget selector showing that budget's tradeoff curve (loss against N) with its parabola in
  log N (docs/science.md §8 claim 2) when :func:`analysis.claims.decide.fit_budget_parabola` can fit one;
* a toggle between budgets counted on P_core and on P_total (an option is disabled when the
  sweep has no budgets of that kind);
* the input-blind baseline (a dashed line) when the table has ``input_blind_<loss>``.

Bad input (a missing directory, no results, no ok point) prints one line to stderr and exits 2.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from analysis.explore import figures as figs
from analysis.load import SchemaError, aggregate_seeds, load_sweeps, ok_points
from analysis.stats.pareto import budget_optima
from analysis.stats.scaling import BootstrapResult, FitError, PowerLawFit, bootstrap, fit_power_law
from analysis.stats.seedboot import input_blind
from elm_jax import cli
from elm_jax.files import write_text_atomic

BUDGET_KINDS = ("core", "total")
#: Loss columns the page can show (final_*: evaluated at the last step, when the table has them).
LOSSES = ("val_loss", "test_loss", "final_val_loss", "final_test_loss")
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """body{font-family:sans-serif;max-width:1150px;margin:1.5em auto;color:#222}
.controls{display:flex;flex-wrap:wrap;gap:1.2em;align-items:center;margin:0.6em 0}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:3px 10px;margin:3px 0}
label{font-weight:bold}"""


# The page's controls: pick the view of (data set, budget kind), the frontier's x column and the
# budget of the tradeoff figure, and redraw with Plotly.react from the embedded VIEWS.
_SCRIPT = """(function () {
  const $ = (id) => document.getElementById(id);
  const state = {dataset: $("dataset").value, kind: "core", x: "P_core", budget: null};
  const key = () => state.dataset + "|" + state.kind;
  function syncKinds() {
    const kinds = ["core", "total"].filter((k) => (state.dataset + "|" + k) in VIEWS);
    if (!kinds.includes(state.kind)) state.kind = kinds[0];
    document.querySelectorAll("input[name=kind]").forEach((r) => {
      r.disabled = !kinds.includes(r.value);
      r.checked = r.value === state.kind;
      r.parentElement.title = r.disabled ? "no budgets counted on P_" + r.value + " here" : "";
    });
  }
  function syncBudgets() {
    const budgets = VIEWS[key()].budgets, sel = $("budget");
    sel.replaceChildren(...budgets.map((b) => new Option(b, b)));
    if (!budgets.includes(state.budget)) state.budget = budgets.length ? budgets.at(-1) : null;
    sel.value = state.budget;
    sel.disabled = !budgets.length;
  }
  function render() {
    const v = VIEWS[key()], f = v.frontier[state.x];
    Plotly.react("frontier", f.data, f.layout, CONFIG);
    const t = $("tradeoff"), notes = [...v.notes, ...(v.budget_notes[state.budget] || [])];
    if (state.budget === null) {
      Plotly.purge(t);
      notes.push("No ELM budget slice here: no tradeoff curve.");
    } else {
      const g = v.tradeoff[state.budget];
      Plotly.react(t, g.data, g.layout, CONFIG);
    }
    $("notes").replaceChildren(...notes.map((n) => {
      const d = document.createElement("div");
      d.className = "note";
      d.textContent = n;
      return d;
    }));
    document.body.dataset.view = [key(), state.x, state.budget].join("|");
  }
  function update() { syncKinds(); syncBudgets(); render(); }
  $("dataset").addEventListener("change", (e) => { state.dataset = e.target.value; update(); });
  $("xaxis").addEventListener("change", (e) => { state.x = e.target.value; render(); });
  $("budget").addEventListener("change", (e) => { state.budget = e.target.value; render(); });
  document.querySelectorAll("input[name=kind]").forEach((r) =>
    r.addEventListener("change", (e) => { state.kind = e.target.value; update(); }));
  update();
})();
"""


class ExploreError(ValueError):
    """The sweep has nothing the explorer can draw (the message says what is missing)."""


#: Precomputed fits of one (dataset, budget kind): the law and its bootstrap (either may be None).
Fits = tuple[PowerLawFit | None, BootstrapResult | None]


def fit_law(
    trials: pd.DataFrame, optima: pd.DataFrame, loss: str, n_boot: int, seed: int
) -> tuple[Fits, list[str]]:
    """Fit ``L*(P)`` on the budget optima and bootstrap its band; notes say what was not done."""
    try:
        law = fit_power_law(optima["budget"], optima["L_star"])
    except FitError as err:
        return (None, None), [f"Scaling law not fitted: {err}"]
    if n_boot <= 0:
        return (law, None), ["No bootstrap band (n_boot = 0)."]
    band_P = np.geomspace(optima["budget"].min(), optima["budget"].max(), 60)
    boot = bootstrap(trials, loss=loss, n_resamples=n_boot, seed=seed, band_P=band_P)
    return (law, boot), []


def baseline_of(trials: pd.DataFrame, loss: str) -> float | None:
    """The input-blind baseline loss of the group's split, or None when the table has none."""
    split = "test" if "test" in loss else "val"
    value = input_blind(trials)[f"{split}_loss"]  # NaN when unknown
    return float(value) if np.isfinite(value) else None


def group_views(
    trials: pd.DataFrame,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
    fits: Fits | None = None,
) -> dict:
    """The figures (plotly JSON) of one (dataset, budget kind) group of trials.

    Returns a dict with ``dataset``, ``budget_kind``, ``n_points`` (ok points drawn),
    ``frontier`` (x column -> figure), ``budgets`` (labels, sorted), ``tradeoff`` (label ->
    figure), ``notes`` and ``budget_notes`` (label -> notes shown with that budget).
    ``fits``: precomputed :data:`Fits` (else fitted here).
    """
    trials = trials.reset_index(drop=True)
    kind = str(trials["budget_kind"].iloc[0])
    points = aggregate_seeds(trials)
    okp = ok_points(points, loss)
    if len(okp) == 0:
        raise ExploreError(
            f"dataset {trials['dataset'].iloc[0]!r}: no point has an ok seed with a finite {loss}"
        )
    hover = figs.hover_texts(okp, trials, loss)
    optima = budget_optima(points, loss)
    notes: list[str] = []
    if fits is None:
        fits, notes = (
            fit_law(trials, optima, loss, n_boot, seed) if len(optima) else ((None, None), [])
        )
    if len(optima) == 0:
        notes.append("No ELM points in a budget slice: no optimum per budget and no scaling law.")
    baseline = baseline_of(trials, loss)
    frontier = {
        x: figs.frontier_figure(okp, hover, loss, x, kind, optima, fits, baseline)
        for x in figs.X_LABELS
    }
    tradeoff, budgets, budget_notes = {}, [], {}
    elm = okp[(okp["arch"] == "elm") & (okp["slice"] == "budget")]
    in_slice = (trials["arch"] == "elm") & (trials["slice"] == "budget")
    for budget, g in elm.groupby("budget", sort=True):
        label = f"{budget:.4g}"
        rows = trials[in_slice & (trials["budget"] == budget)]
        fig, note = figs.tradeoff_figure(
            g, rows, hover, loss, float(budget), baseline, n_boot, seed
        )
        tradeoff[label] = fig
        budgets.append(label)
        if note:
            budget_notes[label] = [f"Budget {label}: {note}"]
    return {
        "dataset": str(trials["dataset"].iloc[0]),
        "budget_kind": kind,
        "n_points": len(okp),
        "frontier": {x: _plain(f) for x, f in frontier.items()},
        "budgets": budgets,
        "tradeoff": {b: _plain(f) for b, f in tradeoff.items()},
        "notes": notes,
        "budget_notes": budget_notes,
    }


def _plain(fig: go.Figure) -> dict:
    """The figure as plain JSON data (arrays as lists, readable in the page's graph divs)."""

    def encode(value):
        if isinstance(value, (np.ndarray, pd.Series, pd.Index)):
            return np.asarray(value).tolist()
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"cannot encode {type(value).__name__} in a figure")

    return json.loads(json.dumps(fig.to_dict(), default=encode))


def build_views(
    trials: pd.DataFrame,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
    fits: dict[tuple[str, str], Fits] | None = None,
) -> dict[str, dict]:
    """:func:`group_views` of every ``(dataset, budget_kind)`` of a validated trial frame.

    Keys are ``"<dataset>|<budget_kind>"``. ``fits`` maps ``(dataset, budget_kind)`` to
    precomputed fits (e.g. the report's), so that the bootstrap is not run twice.
    """
    views, skipped = {}, []
    for (dataset, kind), group in trials.groupby(["dataset", "budget_kind"], sort=True):
        pre = (fits or {}).get((str(dataset), str(kind)))
        try:
            views[f"{dataset}|{kind}"] = group_views(group, loss, n_boot, seed, pre)
        except ExploreError as err:
            skipped.append(f"budgets on P_{kind}, {err}")
    if not views:
        raise ExploreError("; ".join(skipped) or "the results table has no rows to draw")
    for view in views.values():
        view["notes"] += [f"Not drawn: {s}." for s in skipped]
    return views


def explorer_html(
    trials: pd.DataFrame,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
    fits: dict[tuple[str, str], Fits] | None = None,
) -> str:
    """The whole page for a validated trial frame (:func:`analysis.load.load_sweeps`)."""
    title = "Pareto explorer: " + ", ".join(sorted(trials["sweep"].unique()))
    return page_html(build_views(trials, loss, n_boot, seed, fits), title, loss)


def page_html(views: dict[str, dict], title: str, loss: str = "val_loss") -> str:
    """The page of :func:`build_views`' figures: controls, frontier, tradeoff, plotly.js inline."""
    first = views[next(iter(views))]
    head_div = pio.to_html(
        go.Figure(first["frontier"]["P_core"]),
        include_plotlyjs=True,
        full_html=False,
        div_id="frontier",
        config=_PLOT_CONFIG,
        validate=False,
    )
    payload = json.dumps(views, ensure_ascii=False).replace("</", "<\\/")  # NaN is a JS literal too
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Seed-mean {html.escape(loss)} of every architecture point; seeds are averaged "
        "before the frontier. Hover a point for its architecture, seed spread and trial ids.</p>"
        + _controls(views)
        + "<div id='notes'></div>"
        + head_div
        + "<div id='tradeoff' style='height:480px'></div>"
        + f"<script>const VIEWS = {payload};\nconst CONFIG = {json.dumps(_PLOT_CONFIG)};\n"
        + _SCRIPT
        + "</script></body></html>"
    )


def _controls(views: dict) -> str:
    datasets = sorted({v["dataset"] for v in views.values()})
    ds_opts = "".join(f"<option>{html.escape(d)}</option>" for d in datasets)
    kinds = "".join(
        f"<label><input type='radio' name='kind' value='{k}'>P_{k} budgets</label>"
        for k in BUDGET_KINDS
    )
    x_opts = "".join(
        f"<option value='{x}'>{html.escape(t)}</option>" for x, t in figs.X_CHOICES.items()
    )
    return (
        "<div class='controls'>"
        f"<span><label for='dataset'>data set</label> <select id='dataset'>{ds_opts}</select></span>"
        f"<span id='kinds'>{kinds}</span>"
        f"<span><label for='xaxis'>x axis</label> <select id='xaxis'>{x_opts}</select></span>"
        "<span><label for='budget'>budget</label> <select id='budget'></select></span>"
        "</div>"
    )


def report_section(
    trials: pd.DataFrame,
    out_dir: str | Path,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
    fits: dict[tuple[str, str], Fits] | None = None,
) -> str:
    """Write ``out_dir/explore.html`` and return the report's HTML section that links to it.

    When nothing can be drawn the section says why instead (the report is still written).
    """
    try:
        page = explorer_html(trials, loss=loss, n_boot=n_boot, seed=seed, fits=fits)
    except ExploreError as err:
        return f"<h2>Interactive explorer</h2><p>Not written: {html.escape(str(err))}.</p>"
    path = write_page(page, Path(out_dir) / "explore.html")
    return (
        "<h2>Interactive explorer</h2>"
        f"<p><a href='{path.name}'>{path.name}</a> (next to this report; self-contained, works "
        "offline): every point against P_core, P_total or training FLOPs with its Pareto "
        "frontier and the fitted law with its band, hover text with each point's architecture, "
        "seed spread and trial ids, and a budget selector showing that budget's tradeoff curve "
        "with its parabola in log N. Also: <code>python -m analysis.explore SWEEP_DIR --out "
        "FILE.html</code>.</p>"
    )


def write_explorer(
    sweep_dirs: str | Path | Sequence[str | Path],
    out: str | Path,
    loss: str = "val_loss",
    n_boot: int = 100,
    seed: int = 0,
) -> Path:
    """Load the sweep directories and write the explorer page to ``out`` atomically."""
    dirs = [sweep_dirs] if isinstance(sweep_dirs, (str, Path)) else list(sweep_dirs)
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(
                f"sweep_dir={str(d)!r} does not exist or is not a directory; pass a directory "
                "written by the sweep engine (results.parquet or trials/*.json)"
            )
    page = explorer_html(load_sweeps(dirs), loss=loss, n_boot=n_boot, seed=seed)
    return write_page(page, out)


def write_page(page: str, out: str | Path) -> Path:
    """Write ``page`` to ``out`` (temporary file, then rename)."""
    out = Path(out)
    write_text_atomic(out, page)
    return out


def _non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 on bad input)."""
    parser = cli.ArgumentParser(prog="analysis.explore", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep_dirs", nargs="+", help="sweep directories (results.parquet or trials/*.json)"
    )
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--loss", default="val_loss", choices=LOSSES)
    parser.add_argument(
        "--n-boot", type=_non_negative_int, default=100, help="bootstrap resamples (0: no band)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    args = parser.parse_args(argv)
    try:
        if Path(args.out).is_dir():
            raise IsADirectoryError(
                f"--out={args.out!r} is a directory; pass the HTML file to write, e.g. "
                f"{Path(args.out) / 'explore.html'}"
            )
        path = write_explorer(args.sweep_dirs, args.out, args.loss, args.n_boot, args.seed)
    except (OSError, SchemaError, ExploreError) as err:
        print(f"analysis.explore: error: {cli.one_line(err)}", file=sys.stderr)
        return cli.EXIT_USAGE
    print(path)
    return 0
