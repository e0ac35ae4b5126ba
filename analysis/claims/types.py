"""The decided claim (docs/science.md §8): a statistic, its interval, the decision and the reason;
and a block of them (one data set and budget kind) as ``claims.json`` records it.

Shared by :mod:`analysis.claims.decide`, :mod:`analysis.claims.law` and :mod:`analysis.claims.model`;
:meth:`Claim.to_json` is the ``claims.json`` entry (docs/analysis.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from analysis.stats.parabola import ParabolaFit

from elm_jax.files import jsonable

DECISIONS = ("supported", "contradicted", "not_testable")


@dataclass(frozen=True)
class Claim:
    """One decided claim; ``details`` holds further statistics (JSON-ready)."""

    name: str
    decision: str
    statistic: float | None
    ci95: tuple[float, float] | None
    n: int
    note: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision={self.decision!r}; valid: {list(DECISIONS)}")

    def to_json(self) -> dict:
        """The claims.json entry (NaN written as null)."""
        return {
            "decision": self.decision,
            "statistic": num(self.statistic),
            "ci95": None if self.ci95 is None else [num(v) for v in self.ci95],
            "n": int(self.n),
            "note": self.note,
            "details": jsonable(self.details),
        }


def num(v) -> float | None:
    """A finite float, or None (written as JSON null)."""
    return None if v is None or not math.isfinite(float(v)) else float(v)


def not_testable(name: str, reason: str, n: int = 0, **details) -> Claim:
    """A claim that the data cannot decide, with the reason."""
    return Claim(name, "not_testable", None, None, n, reason, details)


def decide_sign(
    name: str, statistic: float, ci: tuple[float, float], n: int, want: str, note: str, **details
) -> Claim:
    """Supported when the interval lies on the ``want`` side of 0 ("negative"/"positive"),
    contradicted when it lies on the other side, not testable (inconclusive) when it holds 0."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return not_testable(name, f"no interval could be computed; {note}".strip("; "), n)
    good, bad = (hi < 0, lo > 0) if want == "negative" else (lo > 0, hi < 0)
    if good:
        decision, why = "supported", ""
    elif bad:
        decision, why = "contradicted", f"interval on the wrong side of 0 (wanted {want})"
    else:
        decision, why = (
            "not_testable",
            f"inconclusive: the 95% interval [{lo:.3g}, {hi:.3g}] contains 0",
        )
    return Claim(
        name,
        decision,
        float(statistic),
        (float(lo), float(hi)),
        n,
        "; ".join(x for x in (why, note) if x),
        details,
    )


@dataclass(frozen=True)
class ClaimsBlock:
    """The claims of one data set and budget kind, with what the figures need."""

    dataset: str
    budget_kind: str
    claims: dict[str, Claim]
    input_blind: dict[str, float]  # val_loss, val_metric, test_loss, test_metric (NaN: unknown)
    loss_columns: dict[str, str]
    n_boot: int
    budgets: pd.DataFrame = field(repr=False)  # one row per budget: learned, c, N*, L*, decision
    parabolas: dict[float, ParabolaFit] = field(default_factory=dict, repr=False)
    note: str = ""

    def table(self) -> pd.DataFrame:
        """One row per claim: name, decision, statistic, interval, n, note."""
        return pd.DataFrame(
            [
                {
                    "claim": c.name,
                    "decision": c.decision,
                    "statistic": c.statistic,
                    "ci95_lo": c.ci95[0] if c.ci95 else None,
                    "ci95_hi": c.ci95[1] if c.ci95 else None,
                    "n": c.n,
                    "note": c.note,
                }
                for c in self.claims.values()
            ]
        )

    def to_json(self) -> dict:
        """One block of claims.json."""
        return {
            "dataset": self.dataset,
            "budget_kind": self.budget_kind,
            "claims": {k: c.to_json() for k, c in self.claims.items()},
            "input_blind": {
                "loss": num(self.input_blind["val_loss"]),
                "metric": num(self.input_blind["val_metric"]),
                "test_loss": num(self.input_blind["test_loss"]),
                "test_metric": num(self.input_blind["test_metric"]),
            },
            "loss_columns": self.loss_columns,
            "n_boot": self.n_boot,
            "budgets": jsonable(self.budgets.to_dict(orient="records")),
            "note": self.note,
        }


def write_claims_json(blocks: list[ClaimsBlock], path: str | Path) -> Path:
    """Write ``{"blocks": [block, ...]}`` (one block per data set and budget kind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"blocks": [b.to_json() for b in blocks]}, indent=1, allow_nan=False))
    tmp.replace(path)
    return path
