"""The claim tests of SPEC §8 on a sweep table.

Public entry points: :func:`fit_budget_parabola` (the per-budget parabola in log N, with its
seeds-only bootstrap; returns a frozen :class:`ParabolaFit`).
"""

from __future__ import annotations

from analysis.parabola import ParabolaFit, fit_budget_parabola

__all__ = ["ParabolaFit", "fit_budget_parabola"]
