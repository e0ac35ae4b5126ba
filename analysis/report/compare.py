"""HTML of the report's comparisons across what one sweep alone cannot show: the claims of
several data sets side by side (``analysis.report DIR_A DIR_B`` with sweeps on two tasks), and
the ELM networks against the simple units (LSTM, GRU, leaky) of the same budget.

Both read what the claims and the trial table already hold; neither decides a claim.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from analysis.claims.decide import CLAIM_NAMES, ClaimsBlock

# Two-sided 95 % normal quantile: the interval of a difference of two seed means.
Z95 = 1.959963984540054


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def _claim_cell(block: ClaimsBlock, name: str) -> str:
    claim = block.claims.get(name)
    if claim is None:
        return "–"
    ci = "" if claim.ci95 is None else f" [{_fmt(claim.ci95[0], 3)}, {_fmt(claim.ci95[1], 3)}]"
    stat = "" if claim.statistic is None else f" {_fmt(claim.statistic, 3)}"
    return f"<b>{html.escape(claim.decision)}</b>{stat}{ci}"


def datasets_frame(blocks: list[ClaimsBlock]) -> pd.DataFrame:
    """One row per claim, one column per data set (its P_core block, else its first): the
    decision, statistic and 95 % interval as text."""
    chosen: dict[str, ClaimsBlock] = {}
    for block in blocks:
        if block.dataset not in chosen or block.budget_kind == "core":
            chosen[block.dataset] = block
    rows = []
    for name in CLAIM_NAMES:
        if not any(name in b.claims for b in chosen.values()):
            continue
        rows.append({"claim": name, **{d: _claim_cell(b, name) for d, b in chosen.items()}})
    return pd.DataFrame(rows)


def optima_frame(blocks: list[ClaimsBlock]) -> pd.DataFrame:
    """Per data set and budget: the parabola's N* with its interval, k_e* at N*, the best
    seed-mean loss L* and the input-blind loss beside it (where each task puts its optimum)."""
    rows = []
    for block in blocks:
        for row in block.budgets.to_dict(orient="records"):
            rows.append(
                {
                    "dataset": block.dataset,
                    "budget_kind": block.budget_kind,
                    "budget": row.get("budget"),
                    "learned": row.get("learned"),
                    "N_star": row.get("N_star"),
                    "N_star_lo": row.get("N_star_lo"),
                    "N_star_hi": row.get("N_star_hi"),
                    "k_e_star": row.get("k_e_star"),
                    "L_star": row.get("L_star"),
                    "input_blind": block.input_blind.get("val_loss"),
                    "interior": row.get("decision"),
                }
            )
    return pd.DataFrame(rows)


def datasets_section(blocks: list[ClaimsBlock]) -> str:
    """The claims of every data set side by side, and where each puts its optimum ('' with
    fewer than two data sets)."""
    if len({b.dataset for b in blocks}) < 2:
        return ""
    out = [
        "<h2>The data sets side by side</h2>",
        "<p>Each claim as decided on each data set's own sweep (its P_core block), with the "
        "statistic and its 95% interval: the same tradeoff on both tasks would show the same "
        "decisions. Below, where each budget's optimum sits: N* of the parabola in log N with "
        "its interval, k_e* at N*, and the best loss beside the data set's input-blind loss "
        "(losses in nats; the tasks' losses are not on one scale).</p>",
        datasets_frame(blocks).to_html(index=False, escape=False, na_rep="–"),
    ]
    optima = optima_frame(blocks)
    if len(optima):
        out.append(optima.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–"))
    moves = []
    for block in blocks:
        claim = block.claims.get("optimum_moves")
        details = {} if claim is None else claim.details
        if "N_star_slope" in details:
            k_e_lo, k_e_hi = details.get("k_e_star_ci95") or (None, None)
            moves.append(
                f"<li><code>{html.escape(block.dataset)}</code> (P_{html.escape(block.budget_kind)})"
                f": log N* slope {_fmt(details['N_star_slope'], 3)} "
                f"[{_fmt(details['N_star_ci95'][0], 3)}, {_fmt(details['N_star_ci95'][1], 3)}], "
                f"log k_e* slope {_fmt(details.get('k_e_star_slope'), 3)} "
                f"[{_fmt(k_e_lo, 3)}, {_fmt(k_e_hi, 3)}]</li>"
            )
    if moves:
        out.append("<p>How the optimum moves with the budget:</p><ul>" + "".join(moves) + "</ul>")
    return "\n".join(out)


def _seed_stats(rows: pd.DataFrame, column: str) -> tuple[float, float, int]:
    """Mean, standard error and count of the finite values of ``column`` over ``rows``."""
    values = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, 0
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), se, len(values)


def _metric(elm: pd.DataFrame, unit: pd.DataFrame) -> dict:
    """The task's metric (bits per byte on text, accuracy, ...) of both on test, seed means,
    beside the input-blind model's."""
    return {
        "metric": str(elm["metric_name"].iloc[0]),
        "elm_test_metric": _seed_stats(elm, "final_test_metric")[0],
        "unit_test_metric": _seed_stats(unit, "final_test_metric")[0],
        "input_blind_test_metric": _seed_stats(elm, "input_blind_test_metric")[0],
    }


def units_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """Per data set, budget kind, budget and simple unit (every non-ELM architecture of the
    budget slice): the best ELM point of the budget, chosen on its seed-mean final validation
    loss, against the unit's point.

    Columns: the ELM point (N, d_m, k_c), the budgeted count of each (``elm_P``, ``unit_P``)
    and their P_total (on next-byte prediction the decoder, 256 (N + 1), makes a many-simple
    point's P_total several times a unit's of the same P_core), both seed-mean final validation and test losses with
    standard errors, the test difference ELM - unit with its 95 % interval (normal, from the
    two standard errors), the task's metric on test for both beside the input-blind model's
    (bits per byte on text: the unigram), the verdict on test (``beats``: the interval below 0, ``loses``:
    above, ``ties``: it holds 0; test, because validation chose the ELM point among several),
    and the wall seconds per training step of each (median over its trials of the trainer
    call's wall time over its steps: compilation and evaluation included, so a ratio of two is
    the cost a sweep pays, not the train step alone)."""
    ok = trials[(trials["status"] == "ok") & (trials["slice"] == "budget")]
    rows = []
    for (dataset, kind, budget), g in ok.groupby(["dataset", "budget_kind", "budget"], sort=True):
        elm = g[g["arch"] == "elm"]
        units = sorted(set(g["arch"]) - {"elm"})
        if elm.empty or not units:
            continue
        best = None
        for key, p in elm.groupby(["N", "d_m", "k_c"], sort=True):
            val = _seed_stats(p, "final_val_loss")
            if np.isfinite(val[0]) and (best is None or val[0] < best[1][0]):
                best = (key, val, p)
        if best is None:
            continue
        (n, d_m, k_c), elm_val, elm_rows = best
        elm_test = _seed_stats(elm_rows, "final_test_loss")
        elm_step = float((elm_rows["wall_s"] / elm_rows["steps"]).median())
        for unit in units:
            u = g[g["arch"] == unit]
            u_val = _seed_stats(u, "final_val_loss")
            u_test = _seed_stats(u, "final_test_loss")
            diff = elm_test[0] - u_test[0]
            half = Z95 * math.sqrt(elm_test[1] ** 2 + u_test[1] ** 2)
            if not np.isfinite(half):
                verdict = "undecided (one seed)"
            elif diff + half < 0:
                verdict = "beats"
            elif diff - half > 0:
                verdict = "loses"
            else:
                verdict = "ties"
            u_step = float((u["wall_s"] / u["steps"]).median())
            metric = _metric(elm_rows, u)
            rows.append(
                {
                    "dataset": dataset, "budget_kind": kind, "budget": budget,
                    "elm_N": int(n), "elm_d_m": int(d_m), "elm_k_c": int(k_c),
                    "elm_P": int(elm_rows[f"P_{kind}"].iloc[0]),
                    "elm_P_total": int(elm_rows["P_total"].iloc[0]),
                    "unit": unit, "unit_N": int(u["N"].iloc[0]),
                    "unit_P": int(u[f"P_{kind}"].iloc[0]),
                    "unit_P_total": int(u["P_total"].iloc[0]),
                    "elm_val": elm_val[0], "unit_val": u_val[0],
                    "elm_test": elm_test[0], "elm_test_se": elm_test[1],
                    "unit_test": u_test[0], "unit_test_se": u_test[1],
                    "test_diff": diff, "test_diff_lo": diff - half, "test_diff_hi": diff + half,
                    "verdict": verdict, **metric,
                    "elm_s_per_step": elm_step, "unit_s_per_step": u_step,
                    "step_ratio": elm_step / u_step if u_step > 0 else math.nan,
                    "seeds": f"{elm_test[2]}/{u_test[2]}",
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def units_section(trials: pd.DataFrame) -> str:
    """The ELM networks against the simple units of the same budget ('' when the sweep has no
    unit at any budget)."""
    frame = units_frame(trials)
    if frame.empty:
        return ""
    return "\n".join(
        [
            "<h2>ELM networks against simple units of the same budget</h2>",
            "<p>At each budget the ELM point with the lowest seed-mean final validation loss "
            "against each simple unit's network of the same budget (losses in nats). The "
            "verdict is read on the test split, because validation chose the ELM point among "
            "several: <i>beats</i> when the 95% interval of the test difference (ELM − unit) "
            "lies below 0, <i>loses</i> when above, <i>ties</i> when it holds 0. Seconds per "
            "step: the trainer call's wall time over its steps, compilation and evaluation "
            "included, so the ratio is what a sweep pays per point, not the train step "
            "alone. <code>elm_P</code> and <code>unit_P</code> are the budgeted count; their "
            "P_total columns add the input and output layers, which the budget leaves out.</p>",
            frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–"),
        ]
    )
