"""HTML of the docs/science.md §8 claim tests: the table that opens the report, and its figures."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims.decide import ClaimsBlock
from analysis.report import plots_claims

_COLOURS = {"supported": "#d8f0d0", "contradicted": "#f6d0d0", "not_testable": "#eeeeee"}


def _fmt(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.4g}"


def claims_table_html(block: ClaimsBlock) -> str:
    """One row per claim: decision (coloured), statistic, 95 % interval, n, note."""
    rows = []
    for c in block.claims.values():
        ci = "–" if c.ci95 is None else f"[{_fmt(c.ci95[0])}, {_fmt(c.ci95[1])}]"
        rows.append(
            f"<tr><td><code>{c.name}</code></td>"
            f'<td style="background:{_COLOURS[c.decision]}"><b>{c.decision}</b></td>'
            f"<td>{_fmt(c.statistic)}</td><td>{ci}</td><td>{c.n}</td>"
            f"<td>{html.escape(c.note)}</td></tr>"
        )
    return (
        "<table><tr><th>claim</th><th>decision</th><th>statistic</th><th>95% interval</th>"
        "<th>n</th><th>note</th></tr>" + "".join(rows) + "</table>"
    )


def _budget_table(block: ClaimsBlock) -> str:
    cols = [
        "budget",
        "learned",
        "k_c",
        "n_points",
        "n_diverged",
        "c",
        "c_lo",
        "c_hi",
        "interior_fraction",
        "N_star",
        "N_star_lo",
        "N_star_hi",
        "k_e_star",
        "L_star",
        "L_star_test",
        "decision",
        "note",
    ]
    b = block.budgets
    if len(b) == 0:
        return "<p><i>(no budget slice)</i></p>"
    b = b[[c for c in cols if c in b.columns]]
    return b.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")


def claims_section(blocks: list[ClaimsBlock], fig_dir: Path, img) -> str:
    """The opening section: per block the claim table, the per-budget table and the figures.

    ``img(path, alt)`` turns a PNG into embedded HTML (as the report does for its figures).
    """
    out = [
        "<h2>Claims (docs/science.md §8)</h2>",
        "<p>Each claim is a statistic with a 95% interval from a bootstrap that keeps the design "
        "fixed and resamples seeds within every architecture point; losses are final (last-step) "
        "seed means, the optimum is chosen on validation and read on test too. An interval that "
        "holds 0 decides nothing (<i>not_testable</i>, inconclusive). A budget whose best point "
        "is not below the input-blind loss by more than 3 SE has not learned and is left out. "
        "The same is written to <code>claims.json</code>.</p>",
    ]
    for block in blocks:
        tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{block.dataset}_{block.budget_kind}")
        blind = block.input_blind
        out.append(
            f"<h3>Data set <code>{html.escape(block.dataset)}</code>, budgets on "
            f"P_{html.escape(block.budget_kind)}</h3>"
            f"<p>Losses: <code>{html.escape(block.loss_columns['val'])}</code> (validation), "
            f"<code>{html.escape(block.loss_columns['test'])}</code> (test); input-blind loss "
            f"{_fmt(blind['val_loss'])} (validation), {_fmt(blind['test_loss'])} (test), metric "
            f"{_fmt(blind['val_metric'])}; {block.n_boot} resamples.</p>"
        )
        if block.note:
            out.append(f'<div class="note">{html.escape(block.note)}</div>')
        out.append(claims_table_html(block))
        out.append("<h4>Per budget: parabola in log N</h4>")
        out.append(_budget_table(block))
        for fn, name, alt in (
            (plots_claims.plot_parabolas, "parabolas", "per-budget parabolas"),
            (plots_claims.plot_optimum_moves, "optimum_moves", "N* and k_e* against P"),
            (plots_claims.plot_axes, "axes", "axis slices"),
        ):
            path = fn(block, fig_dir / f"claims_{tag}_{name}.png")
            if path is not None:
                out.append(img(path, alt))
    return "\n".join(out)


def claims_frame(blocks: list[ClaimsBlock]) -> pd.DataFrame:
    """All blocks' claims in one frame (dataset, budget_kind, claim, decision, ...)."""
    frames = [b.table().assign(dataset=b.dataset, budget_kind=b.budget_kind) for b in blocks]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


POINT_FIELDS = ["dataset", "slice", "budget_kind", "budget", "arch", "N", "d_m", "k_c"]


def points_vs_baseline(trials: pd.DataFrame, loss: str) -> pd.DataFrame:
    """One row per architecture point: seed-mean `loss` of its ok trials, its standard error,
    the input-blind loss of the same split and whether the point learned (mean below the
    baseline by more than 3 SE; with one seed, below it). Empty without a baseline column."""
    split = "test" if loss.startswith(("test", "final_test")) else "val"
    blind_col = f"input_blind_{split}_loss"
    ok = trials[trials["status"] == "ok"]
    if blind_col not in ok.columns or loss not in ok.columns or ok.empty:
        return pd.DataFrame()
    keys = [c for c in POINT_FIELDS if c in ok.columns]
    rows = []
    for key, g in ok.groupby(keys, dropna=False, sort=True):
        values = pd.to_numeric(g[loss], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        blind = pd.to_numeric(g[blind_col], errors="coerce").median()
        if not len(values) or not np.isfinite(blind):
            continue
        se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        mean = float(values.mean())
        rows.append(
            {**dict(zip(keys, key, strict=True)), "seeds": len(values), "loss": mean, "se": se,
             "input_blind": float(blind), "learned": bool(mean < blind - 3 * se)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def baseline_section(trials: pd.DataFrame, loss: str) -> str:
    """Says plainly which points (and budgets) are not better than the input-blind baseline."""
    frame = points_vs_baseline(trials, loss)
    out = ["<h2>Against the input-blind baseline</h2>"]
    if frame.empty:
        out.append(
            "<p>The table carries no input-blind baseline, so no point can be compared with it.</p>"
        )
        return "\n".join(out)
    bad = frame[~frame["learned"]]
    out.append(
        f"<p>{len(frame) - len(bad)} of {len(frame)} architecture points have a seed-mean "
        f"<code>{html.escape(loss)}</code> below the input-blind loss (predicting the split's "
        "label prior) by more than 3 standard errors.</p>"
    )
    if len(bad):
        out.append(
            "<p><b>Not better than the input-blind baseline</b> (these points learned nothing "
            "measurable; no claim rests on them):</p>"
        )
        out.append(bad.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–"))
        budgets = frame[frame["slice"] == "budget"].groupby(["budget_kind", "budget"])["learned"]
        for (kind, budget), learned in budgets.any().items():
            if not learned:
                out.append(
                    f"<p><b>Budget {budget:g} (P_{html.escape(str(kind))}): no point is better "
                    "than the input-blind baseline.</b></p>"
                )
    return "\n".join(out)


def convergence_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture point: training steps, the median step of the best validation
    loss (`best_step`), and the seed-mean fall of the validation loss over the last
    evaluation interval (`val_last_drop`, > 0 still falling) with its standard error. Empty
    when the table has no such columns (sweeps written before they existed)."""
    ok = trials[trials["status"] == "ok"]
    if "val_last_drop" not in ok.columns or ok["val_last_drop"].notna().sum() == 0:
        return pd.DataFrame()
    keys = [c for c in POINT_FIELDS if c in ok.columns]
    rows = []
    for key, g in ok.groupby(keys, dropna=False, sort=True):
        drop = pd.to_numeric(g["val_last_drop"], errors="coerce").to_numpy(float)
        drop = drop[np.isfinite(drop)]
        if not len(drop):
            continue
        se = float(drop.std(ddof=1) / np.sqrt(len(drop))) if len(drop) > 1 else float("nan")
        best = pd.to_numeric(g.get("best_step"), errors="coerce")
        rows.append(
            {**dict(zip(keys, key, strict=True)), "steps": int(g["steps"].max()),
             "best_step": float(best.median()) if best is not None else float("nan"),
             "last_interval": float(pd.to_numeric(g["val_last_drop_steps"], errors="coerce").median()),
             "last_drop": float(drop.mean()), "drop_se": se,
             "still_falling": bool(np.isfinite(se) and drop.mean() - 2 * se > 0)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def convergence_section(trials: pd.DataFrame) -> str:
    """How near its plateau each point ended: the fall of its validation loss over the last
    evaluation interval. A claim decided on points that were still falling compares them at a
    fixed training length, not at convergence; the report says which."""
    frame = convergence_frame(trials)
    out = ["<h2>Near the plateau?</h2>"]
    if frame.empty:
        out.append("<p>The table has no validation history per trial (no convergence check).</p>")
        return "\n".join(out)
    falling = frame[frame["still_falling"]]
    worst = frame.loc[frame["last_drop"].idxmax()]
    out.append(
        f"<p>{len(falling)} of {len(frame)} architecture points were still improving when "
        "training stopped: their seed-mean validation loss fell by more than 2 standard errors "
        f"over the last evaluation interval (median {frame['last_interval'].median():g} steps). "
        f"The largest fall was {worst['last_drop']:.4f} nats (N = {int(worst['N'])}, "
        f"d_m = {int(worst['d_m'])}, k_c = {int(worst['k_c'])}). The claims compare points at "
        "equal training length; where many are still falling, longer training may change the "
        "differences between them.</p>"
    )
    out.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–"))
    return "\n".join(out)
