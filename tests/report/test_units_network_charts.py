"""The network charts in the user's urea unit (issue 27, item 1): the loss curves, the baselines
chart and the grid heat-map convert their errors (an MSE by the factor squared) and name the
unit; R² and a target that is not urea stay as they are."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bnapp.engine.model import ArchSpec
from bnapp.intake.units import UREA_FACTORS, DisplayUnits
from bnapp.report import network_charts
from tests.report.test_charts_builders import make_baselines, make_curves, make_grid

MMOL, BUN = DisplayUnits("mmol/L"), DisplayUnits("BUN")


def inline(chart) -> list[pd.DataFrame]:
    return [pd.DataFrame(rows) for rows in chart.to_dict()["datasets"].values()]


def encoding(chart, channel: str) -> dict:
    spec = chart.to_dict()
    spec = spec.get("spec", spec)  # a faceted chart's inner one
    return spec["layer"][0]["encoding"][channel]


def text_of(chart) -> str:
    return json.dumps(chart.to_dict(), ensure_ascii=False)


# ------------------------------------------------------------------------------ loss curves

def loss_and_dots() -> tuple[pd.DataFrame, pd.DataFrame]:
    loss, _ = make_curves(epochs=30, folds=3)
    held_out = pd.DataFrame({"fold": [0, 1, 2], "epoch": [30, 30, 12], "mse": [41.0, 44.0, 39.0]})
    return loss.assign(val_loss=np.nan), held_out


def test_the_loss_curves_are_in_the_square_of_the_unit_shown():
    loss, held_out = loss_and_dots()
    chart = network_charts.loss_curves(loss, held_out, display=MMOL)
    assert encoding(chart, "y")["title"] == "loss: MSE, (mmol/L)²"
    lines, dots = inline(chart)
    # the training loss of each fold and epoch, from the mg/dL frame given
    want = loss.set_index(["fold", "epoch"])["loss"] / 6.006 ** 2
    got = lines.set_index(["fold", "epoch"])["mse"]
    np.testing.assert_allclose(got, want.loc[got.index], rtol=1e-12)
    np.testing.assert_allclose(dots["mse"], held_out["mse"] / 6.006 ** 2, rtol=1e-12)
    # the log axis follows the converted values
    assert encoding(chart, "y")["scale"]["domain"][0] <= held_out["mse"].min() / 6.006 ** 2


def test_the_loss_of_a_target_that_is_not_urea_stays_as_it_is():
    loss, held_out = loss_and_dots()
    chart = network_charts.loss_curves(loss, held_out, target="UF", display=MMOL)
    assert encoding(chart, "y")["title"] == "loss: MSE, (L)²"
    np.testing.assert_allclose(inline(chart)[1]["mse"], held_out["mse"])


# -------------------------------------------------------------------------------- baselines

@pytest.mark.parametrize(("display", "unit"), [(MMOL, "mmol/L"), (BUN, "BUN mg/dL")])
def test_the_baselines_chart_shows_errors_in_the_unit_shown(display, unit):
    table = make_baselines()
    chart = network_charts.baseline_chart(table, "rmse", display=display)
    assert encoding(chart, "x")["title"] == f"RMSE, {unit}"
    (shown,) = inline(chart)[:1]
    want = table["rmse"].to_numpy() / UREA_FACTORS[display.urea]
    pooled = table["fold"] == "pooled"
    np.testing.assert_allclose(np.sort(shown["rmse"]), np.sort(want[pooled]), rtol=1e-12)
    folds = inline(chart)[1]
    np.testing.assert_allclose(np.sort(folds["rmse"]), np.sort(want[~pooled]), rtol=1e-12)


def test_the_baselines_r2_is_not_converted():
    table = make_baselines()
    chart = network_charts.baseline_chart(table, "r2", display=MMOL)
    assert "mmol/L" not in text_of(chart)
    for frame in inline(chart):
        np.testing.assert_allclose(frame["r2"], 0.9)


# ------------------------------------------------------------------------------ grid search

def test_the_grid_heatmap_is_in_the_square_of_the_unit_shown():
    grid = make_grid()
    mg = network_charts.grid_heatmap(grid)
    chart = network_charts.grid_heatmap(grid, display=MMOL)
    colour = encoding(chart, "color")
    assert colour["title"] == ["CV MSE", "(mmol/L)²"]
    (cells,) = inline(chart)
    want = grid.set_index("label")["cv_mse_mean"] / 6.006 ** 2
    np.testing.assert_allclose(cells["cv_mse_mean"], want.loc[cells["label"]], rtol=1e-12)
    # the colour scale's span (up to 10 x the best) is a ratio: the same cells are clamped
    np.testing.assert_allclose(colour["scale"]["domain"],
                               np.array(encoding(mg, "color")["scale"]["domain"]) / 6.006 ** 2)
    assert "(mmol/L)²" in json.dumps(encoding(chart, "tooltip"), ensure_ascii=False)


def test_the_grid_of_a_target_that_is_not_urea_stays_as_it_is():
    grid = make_grid()
    chart = network_charts.grid_heatmap(grid, target="UF", display=BUN)
    assert encoding(chart, "color")["title"] == ["CV MSE", "(L)²"]
    (cells,) = inline(chart)
    want = grid.set_index("label")["cv_mse_mean"]
    np.testing.assert_allclose(cells["cv_mse_mean"], want.loc[cells["label"]])


# --------------------------------------------------------------------------- architecture

def test_the_architecture_names_the_output_in_the_unit_shown():
    spec = ArchSpec.study_e2e()
    assert "equilibrated urea Ueq (mg/dL)" in text_of(network_charts.architecture_chart(spec, 5))
    shown = text_of(network_charts.architecture_chart(spec, 5, display=BUN))
    assert "equilibrated urea Ueq (BUN mg/dL)" in shown and "(mg/dL)" not in shown
