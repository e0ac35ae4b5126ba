"""The decided claim (docs/science.md §8): a statistic, its interval, the decision and the reason.

Shared by :mod:`analysis.claims` and :mod:`analysis.claim_law`; :meth:`Claim.to_json` is the
``claims.json`` entry (docs/analysis.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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
