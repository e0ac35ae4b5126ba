"""The estimator study of the law sweep (docs/analysis.md): its real design simulated on planted
surfaces, to know what claim 4 (docs/science.md §8) can decide before any compute is spent.

    python -m analysis.synthetic.law [--replicates 200] [--n-boot 100] [--seed 0] [--sweep law]

Each replicate runs the sweep's design as the sweep runs it (``sweeps/configs/law.py``: its
budgets in ascending order, the fixed wide grid of the first ones, every later budget placed by
:func:`analysis.claims.placement.place_budget` from the replicate's own results so far, 4 seeds, the
axis slices), with seed-level noise of ``--noise`` nats (default 0.022: the seed spread behind
the default sweep's measured axis-slope intervals, ``sweeps/configs/default.py``), then decides
the claims with :func:`analysis.claims.decide.decide_claims` (the information model skipped). Two
planted surfaces, with ``x = log N`` and the per-neuron size ``s = P / N = k_e + k_c``:

* ``power law``: ``L = E + a N^-u + b s^-v``; its budget optimum is exactly ``N* ~ P^(v/(u+v))``
  and ``L*(P) = E + K P^-alpha``, ``alpha = uv/(u+v)``. Planted: N* = 12 at P = 1,000 with
  slope 0.78 (the default sweep's measured law), alpha = 0.3, L*(1,000) = 2.45 and L*(5,000) =
  2.33 (a fall of the size the default sweep's budget optima show). The curve in log N is
  asymmetric (a parabola only approximates it), curvature 0.08 at 1,000 (measured: 0.05-0.06).
* ``saturating``: the same surface whose L* stops falling beyond the largest fitted budget (a
  floor change: ``L - L*(P) + L*(min(P, P_fit_max))``); N* keeps moving. Not a power law.

Printed: the coverage of the 95 % intervals of the N* slope (claim 3), of alpha (claim 4's
statistic, all budgets) and of the law's prediction of L*(P_held) (from the fitted budgets);
the bias of the N* slope; how often claim 4 comes out supported, contradicted and undecided on
each surface. Nothing here is a measurement of the network.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.claims.decide import decide_claims
from analysis.claims.placement import budget_optima, grid_candidates, place_budget
from analysis.load import validate
from analysis.synthetic.trials import _row, k_e_of
from elm_jax import cli

NOISE = 0.022
SURFACES = ("power law", "saturating")
N_STAR_1E3, N_STAR_SLOPE = 12.0, 0.78
ALPHA = 0.3
L_1E3, L_5E3 = 2.45, 2.33


@dataclass(frozen=True)
class PlantedLaw:
    """``L = E + a N^-u + b (P/N)^-v`` with its exact optimum law (module docstring)."""

    E: float
    a: float
    b: float
    u: float
    v: float
    saturate_at: float | None = None  # L* flat beyond this budget (the saturating surface)

    @classmethod
    def calibrated(cls, saturate_at: float | None = None) -> PlantedLaw:
        """The module docstring's planted figures."""
        v_share = N_STAR_SLOPE  # v / (u + v)
        u = ALPHA / v_share
        v = v_share * u / (1.0 - v_share)
        K = (L_1E3 - L_5E3) / (1e3**-ALPHA - 5e3**-ALPHA)
        E = L_1E3 - K * 1e3**-ALPHA
        # at P = 1 the optimum is N* = n0 with a u N*^-u = b v (P/N*)^-v = m, L* - E = K
        n0 = N_STAR_1E3 / 1e3**N_STAR_SLOPE
        m = K * u * v / (u + v)
        return cls(E=E, a=m / u * n0**u, b=m / v * n0**-v, u=u, v=v, saturate_at=saturate_at)

    @property
    def alpha(self) -> float:
        return self.u * self.v / (self.u + self.v)

    @property
    def n_star_slope(self) -> float:
        return self.v / (self.u + self.v)

    def n_star(self, P) -> np.ndarray:
        return (self.a * self.u / (self.b * self.v)) ** (1 / (self.u + self.v)) * np.asarray(
            P, float
        ) ** self.n_star_slope

    def power_law_star(self, P) -> np.ndarray:
        N = self.n_star(P)
        return self.E + self.a * N**-self.u + self.b * (np.asarray(P, float) / N) ** -self.v

    def l_star(self, P) -> np.ndarray:
        """The true budget optimum (after saturation)."""
        P = np.asarray(P, float)
        if self.saturate_at is None:
            return self.power_law_star(P)
        return self.power_law_star(np.minimum(P, self.saturate_at))

    def loss(self, N, P) -> np.ndarray:
        N, P = np.asarray(N, float), np.asarray(P, float)
        clean = self.E + self.a * N**-self.u + self.b * (P / N) ** -self.v
        return clean - self.power_law_star(P) + self.l_star(P)


@dataclass(frozen=True)
class Design:
    """The parts of a sweep config the simulation reproduces."""

    budgets: tuple[float, ...]
    fixed: int
    points: int
    spread: float
    k_c: int
    d_m_max: int
    d_m: tuple[int, ...]
    max_points: int
    tolerance: float
    seeds: int
    axis: tuple[tuple[int, int, int], ...]  # (N, d_m, k_c) of the axis slices' points
    fixed_seeds: int = 0  # seeds of the fixed-grid budgets' points (0: ``seeds``)

    @classmethod
    def from_sweep(cls, name: str = "law") -> Design:
        """The design of ``sweeps/configs/<name>.py``."""
        import importlib

        config = importlib.import_module(f"sweeps.configs.{name}").get_config()
        seq = config.sequential
        values = config.axis["values"]
        d0, k0 = int(config.axis.d_m), int(config.axis.k_c)
        N0 = round(float(config.axis.center_budget) / (k_e_of(d0) + k0))
        axis = tuple(
            [(int(n), d0, k0) for n in values["N"]]
            + [(N0, int(d), k0) for d in values["k_e"]]
            + [(N0, d0, int(k)) for k in values["k_c"]]
        )
        return cls(
            budgets=tuple(float(b) for b in seq.budgets),
            fixed=int(seq.fixed),
            points=int(seq.points),
            spread=float(seq.spread),
            k_c=int(seq.k_c),
            d_m_max=int(seq.d_m_max),
            d_m=tuple(int(d) for d in config.d_m),
            max_points=int(config.max_points),
            tolerance=float(config.tolerance),
            seeds=len(config.seeds),
            axis=axis,
            fixed_seeds=len(seq.get("fixed_seeds", None) or config.seeds),
        )

    def fixed_grid(self, budget: float) -> list[tuple[int, int]]:
        """The budget_slice of sweeps.slices: the grid's networks, thinned to max_points."""
        found = sorted(grid_candidates(budget, self.k_c, self.d_m, self.tolerance),
                       key=lambda c: (c[1], c[0]))  # fmt: skip
        if len(found) > self.max_points:
            step = (len(found) - 1) / (self.max_points - 1)
            found = [found[round(i * step)] for i in range(self.max_points)]
        return found


def _rows(surface, budget, slice_, nets, seeds, noise, rng) -> list[dict]:
    rows = []
    for d_m, N, k_c in nets:
        k_e = k_e_of(d_m)
        clean = float(surface.loss(N, N * (k_e + k_c)))
        for s in range(seeds):
            loss = clean + noise * rng.standard_normal()
            rows.append(
                _row("law", "planted", slice_, budget, "elm", N, d_m, k_c, k_e, s, loss,
                     final_gap=0.0)
            )  # fmt: skip
    return rows


def simulate(
    surface: PlantedLaw, design: Design, noise: float, rng: np.random.Generator
) -> pd.DataFrame:
    """One replicate of the sequential sweep on ``surface``: its trial table."""
    rows: list[dict] = []
    for slice_ in ("axis_N", "axis_k_e", "axis_k_c"):
        part = {"axis_N": design.axis[:3], "axis_k_e": design.axis[3:6],
                "axis_k_c": design.axis[6:9]}[slice_]  # fmt: skip
        rows += _rows(surface, np.nan, slice_, [(d, n, k) for n, d, k in part], design.seeds,
                      noise, rng)  # fmt: skip
    for i, P in enumerate(design.budgets):
        if i < design.fixed:
            chosen = design.fixed_grid(P)
        else:
            done = pd.DataFrame(rows)
            optima, notes = budget_optima(done, design.budgets[:i])
            candidates = grid_candidates(P, design.k_c, range(1, design.d_m_max + 1),
                                         design.tolerance)  # fmt: skip
            placed = place_budget(P, candidates, optima, notes, design.points, design.spread)
            chosen = list(placed.chosen) if placed else design.fixed_grid(P)
        seeds = (design.fixed_seeds or design.seeds) if i < design.fixed else design.seeds
        rows += _rows(surface, P, "budget", [(d, n, design.k_c) for d, n in chosen],
                      seeds, noise, rng)  # fmt: skip
    return validate(pd.DataFrame(rows))


def replicate(surface: PlantedLaw, design: Design, noise: float, n_boot: int, seed: int) -> dict:
    """Decide the claims on one simulated sweep; the figures the study reports."""
    rng = np.random.default_rng(seed)
    trials = simulate(surface, design, noise, rng)
    [block] = decide_claims(trials, n_boot=n_boot, seed=seed, information_model=False)
    law, moves = block.claims["scaling_law"], block.claims["optimum_moves"]
    P_held = design.budgets[-1]
    d = law.details
    out = {
        "decision": law.decision,
        "moves": moves.decision,
        "interior": block.claims["interior_optimum"].decision,
        "interior_note": block.claims["interior_optimum"].note,
        "alpha": law.statistic,
        "alpha_ci": law.ci95,
        "n_star_slope": moves.details.get("N_star_slope"),
        "n_star_ci": moves.details.get("N_star_ci95"),
        "pred_ci": d.get("predicted_ci95"),
        "true_l_held": float(surface.l_star(P_held)),
    }
    return out


def _covers(ci, truth) -> float:
    if ci is None or not np.all(np.isfinite(ci)):
        return np.nan
    return float(ci[0] <= truth <= ci[1])


def study(
    replicates: int, n_boot: int, noise: float, seed: int, sweep: str = "law",
    progress: Callable[[str], None] | None = None, surfaces: Sequence[str] = SURFACES,
    **overrides,
) -> pd.DataFrame:  # fmt: skip
    """One row per (surface, replicate) with the decisions and the interval checks;
    ``overrides``: Design fields replaced (e.g. ``spread=2.0``)."""
    design = dataclasses.replace(Design.from_sweep(sweep), **overrides)
    planted = {
        "power law": PlantedLaw.calibrated(),
        "saturating": PlantedLaw.calibrated(saturate_at=design.budgets[-2]),
    }
    rows = []
    start = time.time()
    for k, (name, surface) in enumerate(planted.items()):
        if name not in surfaces:
            continue
        for r in range(replicates):
            got = replicate(surface, design, noise, n_boot, seed + k * 100_000 + r)
            got.update(
                surface=name,
                replicate=r,
                # a saturating surface has no alpha to cover
                alpha_covered=_covers(got["alpha_ci"], surface.alpha)
                if surface.saturate_at is None
                else np.nan,
                n_star_covered=_covers(got["n_star_ci"], surface.n_star_slope),
                prediction_covered=_covers(got["pred_ci"], got["true_l_held"]),
            )
            rows.append(got)
            if progress and (r + 1) % 25 == 0:
                progress(f"{name}: {r + 1}/{replicates} replicates, {time.time() - start:.0f} s")
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame, surface_truth: dict[str, PlantedLaw]) -> pd.DataFrame:
    """The study's table: per surface, coverage, bias and decision rates."""
    out = []
    for name, g in frame.groupby("surface", sort=False):
        truth = surface_truth[name]
        slope = g["n_star_slope"].astype(float)
        out.append(
            {
                "surface": name,
                "replicates": len(g),
                "N* slope coverage": g["n_star_covered"].mean(),
                "N* slope bias": float(np.nanmean(slope) - truth.n_star_slope),
                "alpha coverage": g["alpha_covered"].mean(),
                "L*(P_held) coverage": g["prediction_covered"].mean(),
                "claim 4 supported": (g["decision"] == "supported").mean(),
                "claim 4 contradicted": (g["decision"] == "contradicted").mean(),
                "claim 4 undecided": (g["decision"] == "not_testable").mean(),
                "claim 2 supported": (g["interior"] == "supported").mean(),
                "claim 3 supported": (g["moves"] == "supported").mean(),
            }
        )
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (rates as percentages, the bias in slope units)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("surface", "replicates"):
                cells.append(str(v))
            elif c == "N* slope bias":
                cells.append(f"{v:+.3f}")
            else:
                cells.append("–" if not np.isfinite(v) else f"{100 * v:.0f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: prints the table (Markdown) and one JSON line."""
    parser = cli.ArgumentParser(prog="analysis.synthetic.law", description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=200, help="per planted surface")
    parser.add_argument("--n-boot", type=int, default=100, help="resamples per replicate")
    parser.add_argument("--noise", type=float, default=NOISE, help="seed sd (nats)")
    parser.add_argument("--seed", type=int, default=0, help="first replicate's random seed")
    parser.add_argument("--sweep", default="law", help="sweep config name in sweeps/configs")
    parser.add_argument("--out", default=None, help="also write every replicate (CSV)")
    parser.add_argument("--spread", type=float, default=None, help="override the design's x spread")
    parser.add_argument("--points", type=int, default=None, help="override points per budget")
    parser.add_argument(
        "--fixed-seeds", type=int, default=None, help="override the fixed-grid budgets' seeds"
    )
    parser.add_argument(
        "--surfaces", default=",".join(SURFACES), help=f"planted surfaces: {', '.join(SURFACES)}"
    )
    args = parser.parse_args(argv)
    overrides = {
        k: getattr(args, k)
        for k in ("spread", "points", "fixed_seeds")
        if getattr(args, k) is not None
    }
    surfaces = tuple(args.surfaces.split(","))
    if set(surfaces) - set(SURFACES):
        parser.error(f"--surfaces={args.surfaces}: valid {', '.join(SURFACES)}")
    if args.replicates < 1 or args.n_boot < 20:
        parser.error("--replicates must be >= 1 and --n-boot >= 20")
    start = time.time()
    frame = study(
        args.replicates, args.n_boot, args.noise, args.seed, args.sweep,
        progress=lambda m: print(m, file=sys.stderr, flush=True), surfaces=surfaces,
        **overrides,
    )  # fmt: skip
    design = dataclasses.replace(Design.from_sweep(args.sweep), **overrides)
    truth = {
        "power law": PlantedLaw.calibrated(),
        "saturating": PlantedLaw.calibrated(saturate_at=design.budgets[-2]),
    }
    table = summary(frame, truth)
    if args.out:
        frame.to_csv(args.out, index=False)
    print(markdown(table))
    print(json.dumps({"study": "synthetic_law", "sweep": args.sweep, **overrides,
                      "replicates": args.replicates,
                      "n_boot": args.n_boot, "noise": args.noise, "seed": args.seed,
                      "wall_s": round(time.time() - start, 1),
                      "table": table.to_dict(orient="records")}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="analysis.synthetic.law"))
