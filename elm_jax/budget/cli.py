"""Exact parameter and FLOP accounting, and budget enumeration over (N, k_e, k_c).

The budget identity is docs/science.md §3.

The command line of the module `elm_jax.budget`: the architecture points of one budget, as a
table or JSON lines, optionally verified by counting each built model's leaves.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from elm_jax import cli
from elm_jax.budget.enumeration import BUDGET_KINDS, enumerate_points, verify_point
from elm_jax.data.registry import DATASETS


def _int_list(text: str) -> list[int]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not v.is_integer() for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 1,2,4,8)"
        )
    return [int(v) for v in values]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m elm_jax.budget points --budget 1e4 --task shd_adding [--json] [--verify]``.

    Returns the exit code; failures print one line on stderr (docs/cli.md).
    """
    return cli.run(_main, argv, prog="elm_jax.budget")


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="elm_jax.budget", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pts = sub.add_parser("points", help="enumerate the architecture points of one budget")
    pts.add_argument("--budget", type=float, required=True)
    pts.add_argument("--task", required=True, choices=sorted(DATASETS))
    pts.add_argument("--arch", default="elm", choices=["elm", "lstm", "gru", "leaky"])
    pts.add_argument("--budget-kind", default="core", choices=BUDGET_KINDS)
    pts.add_argument("--tolerance", type=float, default=0.05)
    pts.add_argument("--d-m", type=_int_list, default=None, help="comma-separated d_m grid")
    pts.add_argument("--k-c", type=_int_list, default=None, help="comma-separated k_c grid")
    pts.add_argument("--d-tree", type=int, default=4)
    pts.add_argument("--embed-dim", type=int, default=64)
    pts.add_argument("--verify", action="store_true", help="count each built model's leaves")
    pts.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    points = enumerate_points(
        args.budget, args.task, arch=args.arch, budget_kind=args.budget_kind,
        d_m=args.d_m, k_c=args.k_c, tolerance=args.tolerance, d_tree=args.d_tree,
        embed_dim=args.embed_dim,
    )  # fmt: skip
    rows = []
    for p in points:
        row = p.summary()
        if args.verify:
            row["P_counted"] = verify_point(p)["total"]
        rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        cols = list(rows[0])
        print(" ".join(f"{c:>14}" for c in cols))
        for row in rows:
            print(" ".join(f"{row[c]:>14}" for c in cols))
    return 0
