"""The sweep notebook (analysis/notebooks/explore_sweep.ipynb) executed on a real tiny sweep.

The tiny sweep (sweeps/configs/tiny.py: budgets 200 and 400, 3 points, 2 seeds) is trained by the
real trainer on small SHD-format files written here, as in test_sweep_e2e; the notebook then
reads its directory. Expected values come from the sweep's own results table.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sweep_fakes
from nbclient import NotebookClient

from sweeps import run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "analysis" / "notebooks" / "explore_sweep.ipynb"
DEFAULT_DIR = '"../../tests/fixtures/sweep_small"'


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    directory = tmp_path_factory.mktemp("tiny_sweep")
    spec = f"tiny:data=shd_adding,data_dir={data_dir},steps=4,checkpoint_every=2"
    assert run.main(["--sweep", spec, "--dir", str(directory), "--quiet"]) == 0
    return directory


def execute(sweep_dir: Path, out_file: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = nb.cells[1]
    assert "parameters" in params.metadata.get("tags", []) and DEFAULT_DIR in params.source
    params.source = (
        params.source.replace(DEFAULT_DIR, repr(str(sweep_dir)))
        .replace("N_BOOT = 200", "N_BOOT = 20")
        .replace("OUT_FILE = None", f"OUT_FILE = {str(out_file)!r}")
    )
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    return nb


def cell_outputs(nb: nbformat.NotebookNode, marker: str) -> list:
    """The outputs of the code cell whose source contains ``marker``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return cell.outputs


def text_of(outputs: list) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


def test_notebook_on_the_tiny_sweep_shows_its_table_claims_explorer_and_tradeoffs(
    tiny_sweep, tmp_path
):
    table = pd.read_parquet(tiny_sweep / "results.parquet")
    assert len(table) == 6 and (table["status"] == "ok").all(), table[["status", "reason"]]
    page_file = tmp_path / "explore.html"
    nb = execute(tiny_sweep, page_file)
    every = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in every if o.output_type == "error"]

    # 1. The overview: the budget slice's 6 ok trials of 3 points, 2 seeds, budgets 200 and 400.
    overview = text_of(cell_outputs(nb, "overview = ("))
    (dataset,) = table["dataset"].unique()
    assert re.search(rf"{re.escape(dataset)}\s+core\s+budget\s+6\s+6\s+3\s+2\s+200, 400", overview)
    assert "0 trial(s) not ok" in overview

    # 2. The claims: too small a sweep to decide the budget claims, and the table says so.
    claims = text_of(cell_outputs(nb, "decide_claims("))
    for name in ("monotone_N", "interior_optimum", "optimum_moves", "scaling_law"):
        assert re.search(rf"{name}\s+not_testable", claims), claims

    # 3. The explorer page: embedded, written, with every trial and every point's seed mean.
    frames = [o for o in cell_outputs(nb, "build_views(") if "text/html" in o.get("data", {})]
    assert len(frames) == 1 and "<iframe srcdoc=" in frames[0]["data"]["text/html"]
    page = page_file.read_text()
    assert all(t in page for t in table["trial_id"])
    for _, mean in table.groupby("point_id")["val_loss"].mean().items():
        assert f"val_loss mean {mean:.4g} over 2 seeds" in page

    # 4. One tradeoff figure per budget; no parabola (fewer than 4 N per budget), said per budget.
    trade = cell_outputs(nb, 'view["tradeoff"]')
    figures = [o for o in trade if "Plotly.newPlot" in o.get("data", {}).get("text/html", "")]
    assert len(figures) == 2
    notes = text_of(trade)
    assert "Budget 200: no parabola" in notes and "Budget 400: no parabola" in notes
