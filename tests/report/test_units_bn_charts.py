"""The BN and Data charts and tables in the shown urea unit: values divided by the unit's factor
(squared errors by its square), axis titles and headers naming it, dimensionless values kept."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import association
from bnapp.analyses.stages import stage_quantiles
from bnapp.engine.results import INPUT, Layer
from bnapp.intake import columns
from bnapp.intake.units import DisplayUnits
from bnapp.report import bn_charts, data_charts, page_tables
from tests.report.test_charts_builders import (
    make_comparison,
    make_per_fold,
    make_sensitivity,
    make_stages,
)

MMOL, BUN = DisplayUnits("mmol/L"), DisplayUnits("BUN")
FACTORS = {MMOL: 6.006, BUN: 60.06 / 28.014}  # urea's molar mass; BUN counts its two N only
UREA = ("Upre", "U120", "Upos")


def rows_with(spec: dict, *keys: str, without: str = "") -> pd.DataFrame:
    """Every inline data set of a chart's spec whose rows have all `keys` (and not `without`),
    stacked."""
    frames = [pd.DataFrame(rows) for rows in spec["datasets"].values()
              if rows and all(k in rows[0] for k in keys) and without not in rows[0]]
    return pd.concat(frames, ignore_index=True)


def text(spec: dict) -> str:
    return json.dumps(spec, ensure_ascii=False)


# ------------------------------------------------------------------------------- stages

@pytest.mark.parametrize("display", [MMOL, BUN])
def test_stage_boxplot_shows_the_raw_stage_in_each_inputs_unit(display):
    quantiles = stage_quantiles(make_stages(30, folds=2))
    library = rows_with(bn_charts.stage_boxplot(quantiles, "Input BN").to_dict(), "q1",
                        without="extreme")
    spec = bn_charts.stage_boxplot(quantiles, "Input BN", display=display).to_dict()
    shown = rows_with(spec, "q1", without="extreme")
    key = ["fold", "unit", "stage"]
    both = library.merge(shown, on=key, suffixes=("_mg", ""))
    assert len(both) == len(library) == len(shown)
    factor = np.where((both["stage"] == "raw") & both["unit"].isin(UREA), FACTORS[display], 1.0)
    for column in ("q1", "median", "q3", "whisker_low", "whisker_high", "min", "max"):
        np.testing.assert_allclose(both[column], both[f"{column}_mg"] / factor)
    # PP stays in kg and the z-scored stages stay dimensionless
    assert (factor == 1.0).any() and (factor != 1.0).any()
    raw_title = spec["concat"][0]["layer"][0]["encoding"]["y"]["title"]
    assert raw_title == f"raw value ({display.unit('Upre')}, kg, L)"
    assert "z-score (dimensionless)" in text(spec)


def test_stage_table_converts_only_the_raw_urea_rows():
    quantiles = stage_quantiles(make_stages(20, folds=2))
    shown = page_tables.shown_stages(quantiles, MMOL)
    urea_raw = (quantiles["stage"] == "raw") & quantiles["unit"].isin(UREA)
    np.testing.assert_allclose(shown.loc[urea_raw, "median"],
                               quantiles.loc[urea_raw, "median"] / 6.006)
    pd.testing.assert_frame_equal(shown[~urea_raw], quantiles[~urea_raw])


# ------------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("input_mode", ["raw", "zscore"])
def test_parameter_chart_converts_the_stds_of_urea_inputs(input_mode):
    per_fold = make_per_fold()
    spec = bn_charts.parameter_chart(per_fold, "Input BN", display=MMOL,
                                     input_mode=input_mode).to_dict()
    stds = rows_with(spec, "moving_std", "scaler_std").set_index(["fold", "unit"])
    library = per_fold.set_index(["fold", "unit"]).loc[stds.index]
    factor = np.where(library.index.get_level_values("unit").isin(UREA), 6.006, 1.0)
    np.testing.assert_allclose(stds["scaler_std"], library["scaler_std"] / factor)
    moving_factor = factor if input_mode == "raw" else 1.0  # a BN of z-scores: dimensionless
    np.testing.assert_allclose(stds["moving_std"], library["moving_std"] / moving_factor)
    np.testing.assert_allclose(stds["gamma"], library["gamma"])  # γ dimensionless
    words = text(spec)
    assert "training-scaler std (mmol/L, kg, L)" in words
    assert ("BN moving std (mmol/L, kg, L)" in words) == (input_mode == "raw")
    assert ("BN moving std (z-score units, dimensionless)" in words) == (input_mode == "zscore")
    assert "mg/dL" not in words


def test_parameter_tables_convert_means_and_stds_and_name_the_unit():
    per_fold = make_per_fold()
    summary = per_fold.groupby("unit", sort=False).agg(
        **{f"{c}_{s}": (c, "mean" if s == "mean" else "std") for c in
           ("moving_mean", "moving_std", "beta", "gamma", "scaler_mean", "scaler_std")
           for s in ("mean", "sd")}).reset_index()
    table = page_tables.parameter_table(summary, INPUT, display=BUN).set_index("input")
    upre = summary.set_index("unit").loc["Upre"]
    factor = FACTORS[BUN]
    assert table.loc["Upre (BUN mg/dL)", "BN moving mean"] == page_tables.mean_sd(
        upre["moving_mean_mean"] / factor, upre["moving_mean_sd"] / factor)
    assert table.loc["Upre (BUN mg/dL)", "γ (scale)"] == page_tables.mean_sd(
        upre["gamma_mean"], upre["gamma_sd"])
    assert "PP (kg)" in table.index
    folds = page_tables.per_fold_table(per_fold, INPUT, display=MMOL, input_mode="zscore")
    first = folds[folds["input"] == "Upre (mmol/L)"].iloc[0]
    source = per_fold[per_fold["unit"] == "Upre"].iloc[0]
    assert first["z-score scaler std"] == pytest.approx(source["scaler_std"] / 6.006)
    assert first["BN moving std"] == pytest.approx(source["moving_std"])  # of z-scores
    hidden = page_tables.per_fold_table(per_fold.assign(unit="node 1"), Layer.hidden(0),
                                        display=MMOL)
    np.testing.assert_allclose(hidden["Dense output std (training rows)"], per_fold["scaler_std"])


# ------------------------------------------------------------------------------- |γ| scatter

@pytest.mark.parametrize(("metric", "power"), [("rmse", 1), ("delta_mse", 2), ("bias", 1)])
def test_gamma_scatter_points_and_lines_in_the_shown_unit(metric, power):
    sens = make_sensitivity(folds=6)
    lines = association.fit_lines(sens, metric)
    spec = bn_charts.gamma_scatter(sens, lines, metric, "zero", display=MMOL).to_dict()
    factor = 6.006 ** power
    points = rows_with(spec, "abs_gamma", "metric").set_index(["unit", "fold"])
    expected = sens[sens["mode"] == "zero"].set_index(["unit", "fold"]).loc[points.index]
    np.testing.assert_allclose(points["metric"], expected[metric] / factor)
    np.testing.assert_allclose(points["abs_gamma"], expected["abs_gamma"])  # dimensionless
    # the drawn lines are the lines fitted to the converted points (slope and intercept / c)
    shown = rows_with(spec, "x", "y", "kind")
    refit = association.fit_lines(sens.assign(**{metric: sens[metric] / factor}), metric)
    refit = refit[refit["mode"] == "zero"]
    np.testing.assert_allclose(shown["y"], refit["y"], rtol=1e-6)
    unit = "mmol/L" if power == 1 else "(mmol/L)²"
    assert spec["layer"][1]["encoding"]["y"]["title"].endswith(unit)


def test_the_errors_of_a_target_that_is_not_urea_are_unchanged():
    sens = make_sensitivity(folds=4)
    lines = association.fit_lines(sens, "rmse")
    library = bn_charts.gamma_scatter(sens, lines, "rmse", "zero", target="albumin").to_dict()
    shown = bn_charts.gamma_scatter(sens, lines, "rmse", "zero", target="albumin",
                                    display=MMOL).to_dict()
    assert text(shown) == text(library)


def test_input_mode_scatter_in_bun():
    sens, lines = make_comparison(folds=4)
    spec = bn_charts.input_mode_scatter(sens, lines, "bias", "zero", display=BUN).to_dict()
    points = rows_with(spec, "abs_gamma", "metric")
    expected = sens[sens["mode"] == "zero"]
    np.testing.assert_allclose(np.sort(points["metric"]),
                               np.sort(expected["bias"] / FACTORS[BUN]))
    drawn = rows_with(spec, "x", "y", "kind")
    np.testing.assert_allclose(np.sort(drawn["y"]),
                               np.sort(lines[lines["mode"] == "zero"]["y"] / FACTORS[BUN]))
    assert "bias |mean error| (the study's 'MSPE'), BUN mg/dL" in text(spec)


def test_the_zero_ablation_caveat_names_the_shown_unit():
    said = page_tables.association_caveats("bias", "zero", INPUT, "raw", MMOL)
    assert "a urea of 0 mmol/L" in said and "mg/dL" not in said


# ------------------------------------------------------------------------------- Data page

def test_distributions_and_summary_in_mmol():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"Upre": rng.normal(150, 30, 500), "PP": rng.normal(70, 10, 500)})
    library = rows_with(data_charts.distributions_chart(frame, ["Upre", "PP"]).to_dict(), "start")
    spec = data_charts.distributions_chart(frame, ["Upre", "PP"], display=MMOL).to_dict()
    shown = rows_with(spec, "start")
    assert set(shown["variable"]) == {"Upre (mmol/L)", "PP (kg)"}
    mine = shown["variable"] == "Upre (mmol/L)"
    np.testing.assert_allclose(shown.loc[mine, "start"],
                               library.loc[library["variable"] == "Upre (mg/dL)", "start"] / 6.006)
    np.testing.assert_allclose(shown.loc[~mine, "end"],
                               library.loc[library["variable"] == "PP (kg)", "end"])
    table = columns.summary_table(frame, ["Upre", "PP"], BUN).set_index("variable")
    assert table.loc["Upre", "unit"] == "BUN mg/dL" and table.loc["PP", "unit"] == "kg"
    assert table.loc["Upre", "median"] == pytest.approx(frame["Upre"].median() / FACTORS[BUN])
    assert table.loc["Upre", "sd"] == pytest.approx(frame["Upre"].std() / FACTORS[BUN])
    assert table.loc["PP", "mean"] == pytest.approx(frame["PP"].mean())


@pytest.mark.parametrize(("header", "file_units", "states", "read"), [
    ("Upre", "mmol/L", "no unit", "urea mmol/L"),           # no unit stated: the file's
    ("Upre (mmol/L)", "mg/dL", "mmol/L", "urea mmol/L"),   # the header wins
    ("BUN pre", "mmol/L", "BUN mg/dL", "urea mmol/L"),      # BUN and urea are equimolar
    ("Upre mg/dL", "BUN", "mg/dL", "BUN mg/dL"),            # 'mg/dL' alone: the file decides
    ("BUN pre", "mg/dL", "BUN mg/dL", "BUN mg/dL"),
])
def test_each_urea_column_says_its_header_unit_and_the_unit_it_is_read_in(
        header, file_units, states, read):
    table = columns.urea_units_table({"Upre": header, "Ueq": None}, file_units)
    assert table["column"].tolist() == ["Upre"]  # an unmapped column is not listed
    row = table.iloc[0]
    assert (row["header states"], row["read in"]) == (states, read)
    sentence = columns.urea_units_sentence(table)
    assert sentence.startswith(f"Read in: Upre in {read} (") and row["why"] in sentence
