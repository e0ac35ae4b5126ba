"""The report's "Scaling law" section (docs/science.md §8, claim 4; docs/analysis.md): for every
claims block whose scaling law could be fitted with a held-out budget, the law with its band,
the fitted and held-out budgets, the held-out test against the naive prediction, the information
model's optimum against the parabolas, the written-down predictions scored against the outcome
(with the file's hash and time), the training-length check, and the estimator study's table.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims.decide import ClaimsBlock
from analysis.claims.length import check_length
from analysis.claims.predictions import (
    FILENAME,
    PredictionError,
    read_predictions,
    score_predictions,
)
from analysis.report import plots_law


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, float, np.floating)):
        return "–" if not np.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _kv(rows: Sequence[tuple[str, object]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{k}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _frame(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")


def _predictions_html(sweep_dirs: Sequence[str | Path], block: ClaimsBlock) -> str:
    out = []
    for d in sweep_dirs:
        got = read_predictions(Path(d) / FILENAME)
        if got is None:
            continue
        content, digest = got
        if (
            content.get("dataset") not in (None, block.dataset)
            or content.get("budget_kind", block.budget_kind) != block.budget_kind
        ):
            continue
        out.append(
            f"<h4>Written-down predictions (<code>{html.escape(str(Path(d) / FILENAME))}</code>)</h4>"
            f"<p>Written {html.escape(str(content.get('created_utc', '?')))} UTC, before the "
            f"held-out budget {_fmt(content.get('held_out_budget'))} trained; sha256 "
            f"<code>{digest}</code>; never rewritten.</p>"
        )
        if "error" in content:
            out.append(
                f'<div class="note">No prediction could be made: {_fmt(content["error"])}</div>'
            )
            continue
        try:
            out.append(_frame(score_predictions(content, block)))
        except PredictionError as err:
            out.append(f'<div class="note">Not scored: {html.escape(str(err))}</div>')
            continue
        d_law = block.claims["scaling_law"].details
        written = content["power_law"]["L_star"]["predicted"]
        same = abs(written - d_law.get("predicted", np.nan)) <= 1e-9 * abs(written)
        out.append(
            "<p>The claim test recomputed the law's prediction from the same fitted budgets: "
            + (
                "the same figure as written.</p>"
                if same
                else f"{_fmt(d_law.get('predicted'))} against the written {_fmt(written)} "
                "(the data or the code changed since it was written).</p>"
            )
        )
    return "\n".join(out)


def _study_html(sweep: str, replicates: int, seed: int) -> str:
    from analysis.synthetic import law as synthetic_law

    try:
        design = synthetic_law.Design.from_sweep(sweep)
    except (ImportError, AttributeError, KeyError) as err:
        return (
            f"<p>No estimator study: sweep <code>{html.escape(sweep)}</code> has no sequential "
            f"design to simulate ({html.escape(type(err).__name__)}).</p>"
        )
    frame = synthetic_law.study(replicates, 50, synthetic_law.NOISE, seed, sweep)
    truth = {
        "power law": synthetic_law.PlantedLaw.calibrated(),
        "saturating": synthetic_law.PlantedLaw.calibrated(saturate_at=design.budgets[-2]),
    }
    table = synthetic_law.summary(frame, truth)
    return (
        f"<h4>Estimator study of this design ({replicates} replicates per surface, 50 resamples)"
        "</h4><p>The sweep's design simulated on a planted power law and on a surface whose L* "
        "saturates beyond the largest fitted budget (<code>python -m analysis.synthetic.law "
        f"--sweep {html.escape(sweep)}</code> runs 200; docs/analysis.md has its table).</p>"
        + _frame(table)
    )


def length_section(
    blocks: Sequence[ClaimsBlock], trials: pd.DataFrame, n_boot: int = 200, seed: int = 0
) -> str:
    """HTML of the training-length check of every block whose sweep trained points again at
    another length ('' when none did): each claim decided again at the longer training."""
    out = []
    for block in blocks:
        part = trials[(trials["dataset"] == block.dataset)]
        part = part[(part["slice"] != "budget") | (part["budget_kind"] == block.budget_kind)]
        check = check_length(part.reset_index(drop=True), block, n_boot=n_boot, seed=seed)
        if check is None:
            continue
        out.append(
            f"<h3>Data set <code>{html.escape(block.dataset)}</code>, budgets on "
            f"P_{html.escape(block.budget_kind)}: {check.steps[0]} and {check.steps[1]} steps</h3>"
            "<p>Each re-trained point's paired seed difference; a line through two of them is "
            "added to its budget's parabola or axis slope, and every claim is decided again "
            "(docs/science.md §8). A claim whose decision differs between the lengths is decided "
            "by where training stopped.</p>"
        )
        out.append(_frame(check.table(block)))
        out.append(_frame(check.deltas.drop(columns=["point_id"])))
    if not out:
        return ""
    return "<h2>Training length</h2>" + "\n".join(out)


def law_section(
    blocks: Sequence[ClaimsBlock],
    trials: pd.DataFrame,
    sweep_dirs: Sequence[str | Path],
    fig_dir: Path,
    img: Callable[[Path, str], str],
    n_boot: int = 200,
    seed: int = 0,
    study_replicates: int = 50,
) -> str:
    """HTML of the section ('' when no block has a held-out test)."""
    out = []
    for block in blocks:
        law = block.claims["scaling_law"]
        d = law.details
        if "held_out_budget" not in d:
            continue
        tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{block.dataset}_{block.budget_kind}")
        out.append(
            f"<h3>Data set <code>{html.escape(block.dataset)}</code>, budgets on "
            f"P_{html.escape(block.budget_kind)}</h3>"
        )
        out.append(
            _kv(
                [
                    ("fitted budgets", d["fitted_budgets"]),
                    ("held-out budget", d["held_out_budget"]),
                    ("law on the fitted budgets: E, A, α", (d["E_fitted"], d["A_fitted"], d["alpha_fitted"])),
                    ("α on the fitted budgets, 95%", d["alpha_fitted_ci95"]),
                    ("α on every budget (the claim's statistic), 95%", (law.statistic, law.ci95)),
                    ("law's prediction of the held-out L*, 95%", (d["predicted"], d["predicted_ci95"])),
                    ("held-out L* (outcome)", d["observed"]),
                    ("prediction error, its SE, the tolerance", (d["error"], d["error_se"], d["tolerance"])),
                    ("naive prediction L*(largest fitted), its error", (d["naive"], d["naive_error"])),
                    ("L* falls across the fitted budgets (95%)", d["fitted_fall_ci95"]),
                    ("decision", law.decision),
                    ("why", law.note),
                ]
            )
        )  # fmt: skip
        path = plots_law.plot_law(block, fig_dir / f"law_{tag}.png")
        if path is not None:
            out.append(img(path, "scaling law and the held-out budget"))
        info = block.claims["information_model"]
        out.append(
            f"<h4>Information model against the parabolas: <b>{info.decision}</b></h4>"
            f"<p>{html.escape(info.note)}</p>"
        )
        d_tree = trials["d_tree"].replace(0, np.nan).dropna()
        path = plots_law.plot_model_against_parabolas(
            block, fig_dir / f"law_model_{tag}.png", int(d_tree.iloc[0]) if len(d_tree) else 4
        )
        if path is not None:
            out.append(img(path, "information model against the parabolas"))
        out.append(_predictions_html(sweep_dirs, block))
        if study_replicates > 0:
            for sweep in sorted(trials["sweep"].unique()):
                out.append(_study_html(str(sweep), study_replicates, seed))
    if not out:
        return ""
    return (
        "<h2>Scaling law (docs/science.md §8, claim 4)</h2><p>The largest budget is held out: the "
        "law fitted on the others must predict its L* within max(2 SE, 25% of the drop) and "
        "better than the naive 'no further improvement'. Loss figures show the input-blind loss "
        "(dotted).</p>" + "\n".join(out)
    )
