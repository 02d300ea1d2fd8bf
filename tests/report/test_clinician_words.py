"""Words a clinician reads (issue 27, item 12): a smoothed trend, not 'LOWESS (frac 0.6)';
top-unit agreement on its own scale with chance marked; the ICE caption in lines that fit; a
note where the ICE and partial-dependence curves extrapolate beyond the training rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bnapp.analyses import agreement, concordance, explain
from bnapp.engine.model import ArchSpec
from bnapp.report import importance_charts as ic
from bnapp.report.agreement_charts import calibration_chart
from tests.analyses.test_metrics import make_run
from tests.report.test_agreement_charts import make_points
from tests.report.test_charts_builders import all_charts

ICE_FACET_WIDTH, ICE_COLUMNS = 220, 3
SUBTITLE_CHAR_PX = 7  # DejaVu Sans at the theme's 12 px subtitle: at most ~7 px a character


def words(chart) -> str:
    return json.dumps(chart.to_dict(), ensure_ascii=False)


def test_the_fits_are_a_smoothed_trend_in_every_chart():
    points = make_points(200, 0.05, 1)
    charts = {**all_charts(), "calibration": calibration_chart(
        points, agreement.calibration_curves(points), agreement.calibration(None, points=points))}
    for name, chart in charts.items():
        assert "LOWESS" not in words(chart) and "frac 0.6" not in words(chart), name
    assert "smoothed trend" in words(charts["scatter"])
    assert "smoothed trend" in words(charts["calibration"])


def concordance_of(run):
    report = concordance.importance_report(run, n_boot=50, n_replicates=0)
    return report["concordance"][report["concordance"]["layer"] == "input"]


def test_top_unit_agreement_has_its_own_scale_and_the_chance_level():
    run = make_run(ArchSpec(), folds=3)
    conc = concordance_of(run)
    spec = ic.concordance_heatmap(conc, "Input BN", n_units=len(run.features)).to_dict()
    heat, top = spec["hconcat"]
    heat_rows = spec["datasets"][(heat.get("data") or heat["layer"][0]["data"])["name"]]
    assert {row["statistic"] for row in heat_rows} == {"spearman", "kendall_tau"}
    assert heat["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-1, 1]
    chance, spread, dots = top["layer"]
    assert spec["datasets"][chance["data"]["name"]] == [{"chance": 1 / len(run.features)}]
    assert dots["encoding"]["x"]["scale"]["domain"] == [0, 1]
    shown = pd.DataFrame(spec["datasets"][dots["data"]["name"]])
    expected = conc[conc["statistic"] == "top_unit_agreement"]
    np.testing.assert_allclose(shown["estimate"], expected["estimate"])
    assert "chance (25%, one of 4 units" in words(ic.concordance_heatmap(conc, "x", n_units=4))


def subtitle(chart) -> list[str]:
    return chart.to_dict()["title"]["subtitle"]


def test_the_ice_caption_is_in_lines_that_fit_the_figure():
    run = make_run(ArchSpec(), folds=3)
    ice, pdp = explain.ice_pdp(run)
    for line in subtitle(ic.ice_pdp_chart(ice, pdp)):
        assert len(line) * SUBTITLE_CHAR_PX <= ICE_COLUMNS * ICE_FACET_WIDTH, line


def test_values_beyond_a_folds_training_rows_are_flagged_and_shaded():
    run = make_run(ArchSpec(), folds=3)
    # fold 0 trains on the middle of input a only: the grid's ends lie beyond its rows
    a = run.X[:, 0]
    middle = np.flatnonzero((a > np.percentile(a, 25)) & (a < np.percentile(a, 75)))
    run.folds[0].train_rows = middle
    _, pdp = explain.ice_pdp(run)
    grid = explain.ice_grid(run)
    for j, unit in enumerate(run.features):  # independently: pandas per fold
        rows = pdp[pdp["unit"] == unit]
        ranges = [pd.Series(run.X[f.train_rows, j]).agg(["min", "max"]) for f in run.folds]
        expected = [all(r["min"] <= v <= r["max"] for r in ranges) for v in grid[:, j]]
        assert list(rows["in_training_range"]) == expected, unit
    flagged = pdp[~pdp["in_training_range"]]
    assert set(flagged["unit"]) >= {"a"} and flagged["unit"].eq("a").sum() >= 2
    chart = ic.ice_pdp_chart(*explain.ice_pdp(run))
    note = " ".join(subtitle(chart))
    assert "Shaded in: a" in note and "extrapolate" in note
    shaded = pd.DataFrame([row for rows in chart.to_dict()["datasets"].values() for row in rows
                           if row.get("kind") == "beyond"])
    low, high = ranges_of(run, 0)
    a_spans = shaded[shaded["unit"] == "a"]
    assert a_spans["value"].min() < low and a_spans["value_end"].max() > high


def ranges_of(run, j: int) -> tuple[float, float]:
    """The range every fold's training rows cover for input j."""
    return (max(run.X[f.train_rows, j].min() for f in run.folds),
            min(run.X[f.train_rows, j].max() for f in run.folds))


def test_no_note_when_the_curves_stay_within_the_training_rows():
    run = make_run(ArchSpec(), folds=3)
    for fold in run.folds:
        fold.train_rows = np.arange(len(run.y))  # every row: nothing lies beyond
    _, pdp = explain.ice_pdp(run)
    assert pdp["in_training_range"].all()
    assert "Shaded" not in " ".join(subtitle(ic.ice_pdp_chart(*explain.ice_pdp(run))))
