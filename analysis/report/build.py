"""Self-contained HTML report of one or several sweep directories.

    python -m analysis.report SWEEP_DIR [SWEEP_DIR ...] [--out DIR] [--loss val_loss] [--n-boot 200]
        [--study-replicates 50]

Writes ``DIR/report.html`` (figures embedded as base64 PNG; default DIR = ``SWEEP_DIR/report``)
and the figures as PNG files in ``DIR/figures/``. Results on different data sets (or budget
kinds) get separate sections and are never pooled; with several data sets a section sets their claims
and optima side by side, and a sweep with simple units (LSTM, GRU) at its budgets is compared
with them. Steps the data do not allow (too few
budgets or points for a fit) are reported as notes, not errors.
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims.decide import decide_claims, write_claims_json
from analysis.explore import views as explore
from analysis.info.model import PARAMETER_MEANINGS, PARAMETER_NAMES
from analysis.load import SchemaError, load_sweeps
from analysis.report import compare, plots
from analysis.report.claims import baseline_section, claims_section, convergence_section
from analysis.report.law import law_section, length_section
from analysis.report.pipeline import Analysis, analyse
from analysis.stats.seedboot import input_blind
from elm_jax import cli
from elm_jax.files import write_text_atomic

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}td,th{border:1px solid #bbb;padding:2px 7px}
th{background:#eee}.note{background:#fff6d6;border-left:4px solid #e0b000;padding:4px 10px;margin:4px 0}
img{max-width:100%}h2{border-bottom:2px solid #444}"""


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    if df is None or len(df) == 0:
        return "<p><i>(none)</i></p>"
    return df.to_html(
        index=False, float_format=lambda v: floatfmt.format(v), na_rep="–", escape=True
    )


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _fmt_ci(an: Analysis, name: str, value: float) -> tuple[str, str]:
    if an.boot is None:
        return f"{value:.4g}", "–"
    lo, hi = an.boot.interval(name)
    return f"{value:.4g}", f"[{lo:.4g}, {hi:.4g}]" if np.isfinite(lo) else "–"


def section(an: Analysis, fig_dir: Path) -> str:
    """HTML of one (dataset, budget kind) analysis; writes its figures under ``fig_dir``."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{an.dataset}_{an.budget_kind}")
    t = an.trials
    out = [
        f"<h2>Data set <code>{html.escape(an.dataset)}</code>, budgets on P_{html.escape(an.budget_kind)}</h2>"
    ]
    data_rows = [
        ("sweep directories", ", ".join(sorted(t["source"].unique())) if "source" in t else "–"),
        ("sweeps", ", ".join(sorted(t["sweep"].unique()))),
        (
            "task / metric",
            f"{', '.join(sorted(t['task'].unique()))} / {', '.join(sorted(t['metric_name'].unique()))}",
        ),
        ("trials (ok / all)", f"{int((t['status'] == 'ok').sum())} / {len(t)}"),
        (
            "architecture points",
            f"{len(an.points)} ({', '.join(f'{a}: {n}' for a, n in an.points['arch'].value_counts().sort_index().items())})",
        ),
        ("slices", ", ".join(sorted(t["slice"].unique()))),
        ("budgets", ", ".join(f"{b:.3g}" for b in sorted(t["budget"].dropna().unique())) or "–"),
        ("seeds", ", ".join(str(s) for s in sorted(t["seed"].unique()))),
        ("loss fitted", f"seed mean of <code>{an.loss}</code> over ok trials"),
    ]
    out.append(
        "<h3>What data this section used</h3><table>"
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in data_rows)
        + "</table>"
    )
    out += [f'<div class="note">{html.escape(n)}</div>' for n in an.notes]

    out.append("<h3>Optimum per budget (ELM)</h3>")
    cols = ["budget", "N", "d_m", "k_e", "k_c", "P_core", "L_star", "L_star_sd", "n_ok", "n_points"]
    out.append(_table(an.optima[cols] if len(an.optima) else None))

    out.append(
        f"<h3>Pareto frontier over P_core (all architectures, seed-mean {html.escape(an.loss)})</h3>"
    )
    fcols = [
        "arch",
        "slice",
        "N",
        "k_e",
        "k_c",
        "P_core",
        "P_total",
        f"{an.loss}_mean",
        f"{an.loss}_sd",
        "n_ok",
    ]
    out.append(_table(an.frontier[fcols] if len(an.frontier) else None))

    out.append("<h3>Scaling law L*(P) = E + A·P<sup>-α</sup></h3>")
    if an.power_law is not None:
        f = an.power_law
        rows = [(n, *_fmt_ci(an, n, getattr(f, n))) for n in ("E", "A", "alpha")]
        for name, fit in (("N_exp", an.N_fit), ("k_e_exp", an.k_e_fit)):
            if fit is not None:
                rows.append(
                    (name.replace("_exp", "*(P) exponent"), *_fmt_ci(an, name, fit.exponent))
                )
        level = (
            f"{an.boot.level:.0%} bootstrap interval ({an.boot.n_resamples} resamples)"
            if an.boot
            else "interval"
        )
        out.append(_table(pd.DataFrame(rows, columns=["parameter", "estimate", level])))
        out.append(
            f"<p>{f.n_points} budgets, objective (summed Huber, δ=1e-3) {f.objective:.3g}, "
            f"best start converged: {f.converged} ({f.n_converged}/{f.n_starts} starts converged), "
            f"degrees of freedom {f.dof}.</p>"
        )
        if an.boot is not None:
            out.append(
                "<p>Intervals: percentiles of refits on resamples of the seeds within every "
                "architecture point, the design fixed (docs/science.md §7). The per-budget optimum "
                "is still the minimum over points, so L* carries the winner's-curse bias; the "
                "claims above use the parabola's L*.</p>"
            )
    if an.validation is not None:
        v = an.validation
        out.append(
            f"<p>Leave-largest-budget-out: fitted on budgets &lt; {v['held_out_budget']:.3g}, predicted "
            f"L* = {v['predicted']:.4g}, observed {v['observed']:.4g} (relative error {v['rel_error']:+.2%}).</p>"
        )

    out.append("<h3>Information-theoretic model (docs/science.md §6)</h3>")
    if an.model is not None:
        m = an.model
        prm = pd.DataFrame(
            [(n, getattr(m, n), PARAMETER_MEANINGS[n]) for n in PARAMETER_NAMES],
            columns=["parameter", "value", "meaning"],
        )
        if an.model_intervals is not None:
            iv = an.model_intervals.set_index("parameter")
            prm.insert(
                2,
                "95% interval (seeds-only bootstrap)",
                [
                    f"[{iv.loc[n, 'ci95_lo']:.4g}, {iv.loc[n, 'ci95_hi']:.4g}]"
                    for n in PARAMETER_NAMES
                ],
            )
        out.append(_table(prm))
        out.append(
            f"<p>Fitted on {m.n_points} ok ELM points (all slices); RMS log residual {m.rmse_log:.3g}; converged: {m.converged}.</p>"
        )
        lo, hi = m.c_profile_ci95
        out.append(
            f"<p>c: profile-likelihood 95% interval [{lo:.3g}, {hi:.3g}].</p>"
            if m.c_identifiable
            else "<p>c is not identifiable on these points (its profile is flat over a factor of "
            "20: SNR &gt;&gt; 1, where scaling ln a, α, β and c together changes nothing); it is "
            "fixed at 1 nat and ln a, α, β are in units of c.</p>"
        )
        pool = (
            f"k_c ≤ D_ext + N with D_ext = {m.d_ext}" if m.d_ext else "D_ext unknown: k_c unbounded"
        )
        out.append(
            "<p>Predicted optimal allocation (P = N (k_e + k_c); k_e only from an integer d_m, "
            f"{pool}); the last row extrapolates beyond the sweep:</p>"
        )
        out.append(_table(an.model_optima))
    if an.held_out is not None:
        out.append("<h4>Held-out largest budget: power law vs information model</h4>")
        out.append(_table(an.held_out))

    out.append("<h3>Figures</h3>")
    split = "test" if "test" in an.loss else "val"
    blind = input_blind(an.trials)[f"{split}_loss"]  # NaN (no line) when the table lacks it
    figs = []
    if len(an.optima):
        figs.append(
            (
                plots.plot_tradeoffs(
                    an.points, fig_dir / f"{tag}_tradeoffs.png", an.loss, an.model, blind
                ),
                "tradeoff curves",
            )
        )
        figs.append(
            (
                plots.plot_allocation(
                    an.optima,
                    fig_dir / f"{tag}_allocation.png",
                    an.N_fit,
                    an.k_e_fit,
                    an.model,
                    {n: an.boot.interval(n) for n in ("N_exp", "k_e_exp")} if an.boot else None,
                ),
                "optimal allocation",
            )
        )
    okp = an.points[an.points["n_ok"] > 0]
    if len(okp):
        figs.append(
            (
                plots.plot_frontier(
                    okp,
                    fig_dir / f"{tag}_frontier_P_core.png",
                    an.loss,
                    "P_core",
                    an.optima,
                    an.power_law,
                    an.boot,
                    baseline=blind,
                ),
                "frontier over P_core",
            )
        )
        figs.append(
            (
                plots.plot_frontier(
                    okp, fig_dir / f"{tag}_frontier_P_total.png", an.loss, "P_total", baseline=blind
                ),
                "frontier over P_total",
            )
        )
        figs.append(
            (
                plots.plot_frontier(
                    okp,
                    fig_dir / f"{tag}_frontier_flops.png",
                    an.loss,
                    "train_flops",
                    baseline=blind,
                ),
                "frontier over training FLOPs",
            )
        )
        if okp["arch"].nunique() > 1:
            figs.append(
                (
                    plots.plot_baselines(okp, fig_dir / f"{tag}_baselines.png", an.loss, blind),
                    "baselines",
                )
            )
    out += [_img(p, alt) for p, alt in figs]

    out.append("<h3>Trials excluded (status not ok)</h3>")
    out.append(_table(an.excluded))
    return "\n".join(out)


CLAIMS_MIN_BOOT = 50
LOSS_CHOICES = ("final_val_loss", "final_test_loss", "val_loss", "test_loss")


def resolve_loss(trials: pd.DataFrame, loss: str) -> str:
    """``auto`` -> ``final_val_loss`` when any ok trial has one, else ``val_loss``.

    Raises:
      ValueError: ``loss`` is not ``auto`` or one of :data:`LOSS_CHOICES`.
    """
    if loss == "auto":
        ok = trials["status"] == "ok"
        has_final = "final_val_loss" in trials.columns and bool(
            np.isfinite(trials.loc[ok, "final_val_loss"].to_numpy(float)).any()
        )
        return "final_val_loss" if has_final else "val_loss"
    if loss not in LOSS_CHOICES:
        raise ValueError(f"loss={loss!r}; valid: 'auto', {', '.join(map(repr, LOSS_CHOICES))}")
    return loss


def build_report(
    sweep_dirs: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    loss: str = "auto",
    n_boot: int = 200,
    seed: int = 0,
    study_replicates: int = 50,
) -> Path:
    """Analyse the sweep directories and write ``out_dir/report.html`` (opening with the
    docs/science.md §8 claims) and ``out_dir/claims.json``; returns the report's path.

    ``study_replicates``: replicates per planted surface of the estimator study in the
    "Scaling law" section (sequential sweeps only; 0: none)."""
    dirs = [sweep_dirs] if isinstance(sweep_dirs, (str, Path)) else list(sweep_dirs)
    out_dir = Path(out_dir) if out_dir is not None else Path(dirs[0]) / "report"
    fig_dir = out_dir / "figures"
    trials = load_sweeps(dirs)
    loss = resolve_loss(trials, loss)
    # the claim tests open the report; their intervals need at least CLAIMS_MIN_BOOT resamples
    blocks = decide_claims(trials, n_boot=max(n_boot, CLAIMS_MIN_BOOT), seed=seed)
    write_claims_json(blocks, out_dir / "claims.json")
    body = [claims_section(blocks, fig_dir, _img), compare.datasets_section(blocks)]
    body.append(
        law_section(
            blocks, trials, dirs, fig_dir, _img, max(n_boot, CLAIMS_MIN_BOOT), seed,
            study_replicates,
        )
    )  # fmt: skip
    body.append(length_section(blocks, trials, max(n_boot, CLAIMS_MIN_BOOT), seed))
    # the length slice (points trained again at another length) is the length check's alone
    trials = trials[trials["slice"] != "length"].reset_index(drop=True)
    body += [
        compare.units_section(trials),
        baseline_section(trials, loss),
        convergence_section(trials),
    ]
    fits = {}
    for key, group in trials.groupby(["dataset", "budget_kind"], sort=True):
        an = analyse(group.reset_index(drop=True), loss=loss, n_boot=n_boot, seed=seed)
        body.append(section(an, fig_dir))
        fits[(str(key[0]), str(key[1]))] = (an.power_law, an.boot)
    body.append(explore.report_section(trials, out_dir, loss, n_boot, seed, fits))
    title = "Sweep analysis: " + ", ".join(sorted(trials["sweep"].unique()))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Budget optima, Pareto frontiers and scaling-law fits (docs/science.md §7), and the "
        "information-theoretic model (docs/science.md §6). Seeds are averaged per architecture "
        "point before any frontier; "
        "trials that did not finish ok are excluded from fits and listed per section.</p>"
        + "\n".join(body)
        + "</body></html>"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    write_text_atomic(path, page)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = cli.ArgumentParser(prog="analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep_dirs", nargs="+", help="sweep directories (results.parquet or trials/*.json)"
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default: FIRST_SWEEP_DIR/report)"
    )
    parser.add_argument(
        "--loss",
        default="auto",
        choices=["auto", *LOSS_CHOICES],
        help="loss fitted in the sections after the claims (auto: final_val_loss when the table "
        "has last-step losses, else val_loss)",
    )
    parser.add_argument(
        "--n-boot", type=_non_negative_int, default=200, help="bootstrap resamples (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    parser.add_argument(
        "--study-replicates",
        type=_non_negative_int,
        default=50,
        help="estimator-study replicates per surface in the scaling-law section (0: none)",
    )
    args = parser.parse_args(argv)
    if args.out is not None:
        _check_out_dir(parser, args.out)
    try:
        path = build_report(
            args.sweep_dirs,
            args.out,
            loss=args.loss,
            n_boot=args.n_boot,
            seed=args.seed,
            study_replicates=args.study_replicates,
        )
    except (OSError, SchemaError) as err:
        if cli.debug_requested():
            raise
        parser.exit(cli.EXIT_USAGE, f"analysis.report: error: {cli.one_line(err)}\n")
    print(path)


def _check_out_dir(parser: argparse.ArgumentParser, out: str) -> None:
    """Fails before any analysis when `out` cannot be created or written."""
    probe = Path(out).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        parser.exit(
            cli.EXIT_USAGE,
            f"analysis.report: error: --out={out}: {probe} is not a writable directory; "
            "choose a directory you can write to\n",
        )


def _non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)
