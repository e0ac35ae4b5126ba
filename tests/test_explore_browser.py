"""The Pareto explorer page (analysis.explore.views) in a real headless Chromium, and its command line.

The sweep is the synthetic fixture plus an input-blind baseline column and a copy of its budget
1000 slice counted on P_total, so that every control of the page has something to show. The
expected counts (points, frontier) are computed here from the table with plain pandas.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from headless_browser import HeadlessBrowser, find_browser

from analysis.explore import views as explore
from analysis.load import aggregate_seeds, load_sweeps
from analysis.report.build import build_report
from analysis.stats.pareto import budget_optima
from analysis.stats.scaling import fit_power_law

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sweep_small"
BASELINE = 2.794
GROUP = ["arch", "point_id", "slice", "budget"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    table = pd.read_parquet(FIXTURE / "results.parquet")
    table["input_blind_val_loss"] = BASELINE
    total = table[(table["slice"] == "budget") & (table["budget"] == 1000.0)].copy()
    total["budget_kind"] = "total"
    total["trial_id"] = total["trial_id"] + "-total"
    total["point_id"] = total["point_id"] + "-total"
    # A second data set with an axis slice only: no budget, so no tradeoff and no law.
    other = table[table["slice"] == "axis_N"].assign(dataset="shd@10ms")
    other["trial_id"] = other["trial_id"] + "-10ms"
    directory = tmp_path_factory.mktemp("sweep")
    frame = pd.concat([table, total, other], ignore_index=True)
    frame.to_parquet(directory / "results.parquet")
    return directory


@pytest.fixture(scope="module")
def page(sweep_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("page") / "explore.html"
    assert explore.main([str(sweep_dir), "--out", str(out), "--n-boot", "10"]) == 0
    return out


def seed_means(table: pd.DataFrame, kind: str, dataset: str = "shd-default") -> pd.DataFrame:
    ok = table[(table["status"] == "ok") & np.isfinite(table["val_loss"])]
    ok = ok[(ok["budget_kind"] == kind) & (ok["dataset"] == dataset)]
    return ok.groupby(GROUP, dropna=False).agg(
        P_core=("P_core", "first"),
        train_flops=("train_flops", "first"),
        N=("N", "first"),
        loss=("val_loss", "mean"),
    )


def frontier_size(x: np.ndarray, y: np.ndarray) -> int:
    """Non-dominated (x, y) pairs, both minimised, exact duplicates counted once (brute force)."""
    pairs = set(zip(x.tolist(), y.tolist(), strict=True))
    return sum(
        not any(a <= px and b <= py and (a, b) != (px, py) for a, b in pairs) for px, py in pairs
    )


# The graph div's traces, by name: how many points plotly drew (SVG markers) and the data.
TRACES = """Array.from(document.querySelectorAll("#%s .scatterlayer .trace")).map((el, i) => ({
  name: document.getElementById("%s").data[i].name,
  drawn: el.querySelectorAll("path.point").length,
  y: document.getElementById("%s").data[i].y,
  hover: document.getElementById("%s").data[i].hovertext || []}))"""


def traces(browser: HeadlessBrowser, div: str) -> dict[str, dict]:
    return {t["name"]: t for t in browser.evaluate(TRACES % (div, div, div, div))}


def choose(browser: HeadlessBrowser, selector: str, value: str) -> str:
    """Set a control like a user would and return the page's view key after redrawing."""
    browser.evaluate(
        f"(() => {{ const el = document.querySelector({selector!r});"
        f" if (el.type === 'radio') el.checked = true; else el.value = {value!r};"
        " el.dispatchEvent(new Event('change')); })()"
    )
    return browser.evaluate("document.body.dataset.view")


def test_explorer_draws_every_point_frontier_law_and_tradeoffs_in_headless_chromium(
    sweep_dir, page, tmp_path
):
    binary = find_browser()
    if binary is None:
        pytest.skip(
            "no Chromium browser found (chromium, chromium-browser, google-chrome); "
            "`make browser` installs it with apt-get when run as root"
        )
    table = pd.read_parquet(sweep_dir / "results.parquet")
    core, total = seed_means(table, "core"), seed_means(table, "total")
    with HeadlessBrowser(binary, tmp_path / "profile", timeout=60) as browser:
        browser.open(page)
        assert browser.wait_for("document.body.dataset.view") == "shd-default|core|P_core|1e+05"

        front = traces(browser, "frontier")
        points = {n: t for n, t in front.items() if n.endswith(" points")}
        assert {n: t["drawn"] for n, t in points.items()} == {
            f"{a} points": n for a, n in core.groupby("arch").size().items()
        }
        assert front["Pareto frontier"]["drawn"] == frontier_size(
            core["P_core"].to_numpy(), core["loss"].to_numpy()
        )
        assert "fitted law" in front and "95% bootstrap band" in front
        assert front["input-blind baseline"]["y"] == [BASELINE, BASELINE]
        hover = "".join(h for t in points.values() for h in t["hover"])
        shown = (table["budget_kind"] == "core") & (table["dataset"] == "shd-default")
        ok_ids = table.loc[shown & (table["status"] == "ok"), "trial_id"]
        assert all(t in hover for t in ok_ids)
        assert "N=" in hover and "k_e=" in hover and "k_c=" in hover and "seed spread" in hover

        for label, budget in (("1e+05", 1e5), ("1000", 1e3)):
            assert choose(browser, "#budget", label) == f"shd-default|core|P_core|{label}"
            trade = traces(browser, "tradeoff")
            at_budget = core.xs(("elm", "budget"), level=("arch", "slice"))
            n_expected = int((at_budget.index.get_level_values("budget") == budget).sum())
            assert sum(t["drawn"] for n, t in trade.items() if n.startswith("k_c=")) == n_expected
            assert any(n.startswith("parabola in log N") for n in trade)
            fitted = [t for n, t in trade.items() if n.startswith("fitted points (")]
            assert len(fitted) == 1 and fitted[0]["drawn"] >= 4
            assert trade["parabola optimum N*"]["drawn"] == 1

        assert choose(browser, "#xaxis", "train_flops").endswith("|train_flops|1000")
        front = traces(browser, "frontier")
        assert "fitted law" not in front
        assert front["Pareto frontier"]["drawn"] == frontier_size(
            core["train_flops"].to_numpy(), core["loss"].to_numpy()
        )

        assert (
            choose(browser, "input[value=total]", "total") == "shd-default|total|train_flops|1000"
        )
        front = traces(browser, "frontier")
        assert sum(t["drawn"] for n, t in front.items() if n.endswith(" points")) == len(total)
        assert browser.evaluate("document.querySelector('input[value=core]').disabled") is False

        assert choose(browser, "#dataset", "shd@10ms") == "shd@10ms|core|train_flops|"
        front = traces(browser, "frontier")
        drawn = sum(t["drawn"] for n, t in front.items() if n.endswith(" points"))
        assert drawn == len(seed_means(table, "core", "shd@10ms")) > 0
        notes = browser.evaluate("document.getElementById('notes').innerText")
        assert notes.count("No ELM budget slice here") == 1
        assert browser.evaluate("document.querySelector('input[value=total]').disabled") is True
        assert choose(browser, "#dataset", "shd-default") == "shd-default|core|train_flops|1e+05"

        shot = browser.screenshot(tmp_path / "explorer.png")
        assert browser.errors == []
        assert all(url.startswith("file:") for url in browser.requests), browser.requests
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_page_is_self_contained_with_plotly_inlined(page):
    html = page.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # the plotly.js bundle is inside


def test_missing_directory_gives_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no_such_sweep"
    assert explore.main([str(missing), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_sweep" in err[0] and "does not exist" in err[0]
    assert not (tmp_path / "x.html").exists()


def test_out_that_is_a_directory_or_a_negative_n_boot_gives_one_line_and_exit_2(tmp_path, capsys):
    assert explore.main([str(FIXTURE), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out=" in err[0] and "is a directory" in err[0]
    with pytest.raises(SystemExit) as exit_info:
        explore.main([str(FIXTURE), "--out", str(tmp_path / "x.html"), "--n-boot", "-3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n-boot" in err[0] and "'-3' is not an integer >= 0" in err[0]


def test_directory_without_results_gives_one_line_and_exit_2(tmp_path, capsys):
    assert explore.main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no results.parquet" in err[0]


def test_table_without_an_ok_point_gives_one_line_and_exit_2(tmp_path, capsys):
    table = pd.read_parquet(FIXTURE / "results.parquet")
    table.assign(status="failed", reason="out of memory").to_parquet(tmp_path / "results.parquet")
    assert explore.main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no point has an ok seed" in err[0]


def test_report_links_the_explorer_written_next_to_it_with_the_reports_fit(tmp_path):
    report = build_report(FIXTURE, tmp_path, loss="final_val_loss", n_boot=4).read_text()
    assert "<a href='explore.html'>explore.html</a>" in report and "<script" not in report
    page = (tmp_path / "explore.html").read_text(encoding="utf-8")
    optima = budget_optima(aggregate_seeds(load_sweeps(FIXTURE)), "final_val_loss")
    law = fit_power_law(optima["budget"], optima["L_star"])
    assert f"E={law.E:.4g}, A={law.A:.4g}, α={law.alpha:.3g}" in page


def test_final_losses_can_be_drawn_with_their_own_baseline(sweep_dir, tmp_path):
    out = tmp_path / "final.html"
    args = [str(sweep_dir), "--out", str(out), "--n-boot", "0", "--loss", "final_val_loss"]
    assert explore.main(args) == 0
    page = out.read_text(encoding="utf-8")
    table = pd.read_parquet(sweep_dir / "results.parquet")
    means = table[table["status"] == "ok"].groupby(GROUP, dropna=False)["final_val_loss"].mean()
    assert all(f"final_val_loss mean {m:.4g} over" in page for m in means)
    assert f"input-blind baseline {BASELINE:.4g}" in page
