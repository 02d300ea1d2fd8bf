"""The Data, BN stages, BN parameters and Sensitivity pages in the urea unit the sidebar shows:
values divided by the unit's factor (squared errors by its square), headers naming the unit,
dimensionless values (γ, β, z-scores) unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import stages
from bnapp.engine.results import INPUT
from bnapp.intake import data
from tests.apptest import app_at, demo_run, texts

DATA, STAGES, PARAMETERS, SENSITIVITY = ("pages/data.py", "pages/stages.py",
                                         "pages/parameters.py", "pages/sensitivity.py")
MMOL, BUN = 6.006, 60.06 / 28.014


def shown_in(at, urea: str):
    """The page run again with urea shown in `urea`, as the sidebar's switch does."""
    at.session_state["display_units"] = urea
    at.run()
    assert not at.exception
    return at


def frame_with(at, column: str) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def spec_texts(at) -> str:
    return " ".join(json.dumps(json.loads(c.proto.spec), ensure_ascii=False)
                    for c in [*at.get("vega_lite_chart"), *at.get("arrow_vega_lite_chart")])


# ------------------------------------------------------------------------------- Data

def test_the_data_page_shows_urea_in_the_sidebars_unit():
    demo = data.demo_dataset().frame
    at = shown_in(app_at(DATA), "mmol/L")
    summary = frame_with(at, "median").set_index("variable")
    assert summary.loc["Upre", "unit"] == "mmol/L" and summary.loc["PP", "unit"] == "kg"
    assert summary.loc["Upre", "median"] == pytest.approx(demo["Upre"].median() / MMOL)
    assert summary.loc["Ueq", "sd"] == pytest.approx(demo["Ueq"].std() / MMOL)
    assert summary.loc["PP", "mean"] == pytest.approx(demo["PP"].mean())
    assert "Upre (mmol/L)" in spec_texts(at) and "Upre (mg/dL)" not in spec_texts(at)
    assert "urea in mmol/L, weight in kg" in texts(at)
    features, target = at.multiselect(key="data_features"), at.selectbox(key="data_target")
    assert "urea in mmol/L" in features.label and "(urea, mmol/L)" in features.help
    assert target.label == "Target (urea in mmol/L)" and "Ueq (mmol/L)" in target.help
    shown_in(at, "BUN")
    summary = frame_with(at, "median").set_index("variable")
    assert summary.loc["Upre", "unit"] == "BUN mg/dL"
    assert summary.loc["Upre", "max"] == pytest.approx(demo["Upre"].max() / BUN)


def test_the_unit_selector_says_what_each_header_states_and_which_unit_wins():
    demo = pd.read_csv(data.DEMO_PATH)
    written = demo.assign(Upre=(demo["Upre"] / MMOL).round(2), U120=(demo["U120"] / MMOL).round(2))
    written = written.rename(columns={"Upre": "Upre (mmol/L)", "U120": "BUN 120"})
    at = app_at(DATA)
    at.file_uploader(key="upload").set_value(
        ("mixed.csv", written.to_csv(index=False).encode(), "text/csv")).run()
    at.selectbox(key="data_units").set_value("mmol/L")
    at.button(key="apply_mapping").click().run()
    assert not at.exception
    ds = at.session_state["dataset"]
    assert ds.name == "mixed.csv"
    read = frame_with(at, "read in").set_index("column")
    assert read.loc["Upre", "header states"] == "mmol/L"
    assert read.loc["U120", "header states"] == "BUN mg/dL"
    assert read.loc["Upos", "header states"] == "no unit"
    # BUN in mmol/L is urea in mmol/L: every column read in the unit the data set holds
    assert read["read in"].tolist() == ["urea mmol/L"] * 4
    assert {c: f"urea {u}" for c, u in ds.column_units.items()} == read["read in"].to_dict()
    sentence = [c.value.replace("\\", "") for c in at.caption if "Read in" in c.value]
    assert len(sentence) == 1 and "BUN in mmol/L equals urea in mmol/L" in sentence[0]
    # the upload's own unit is the one shown: the values as written
    summary = frame_with(at, "median").set_index("variable")
    kept = written["Upre (mmol/L)"].to_numpy()[ds.row_numbers - 2]  # header = row 1
    assert summary.loc["Upre", "median"] == pytest.approx(np.median(kept), rel=1e-9)


# ------------------------------------------------------------------------------- BN pages

@pytest.mark.slow
def test_the_stages_page_shows_raw_urea_in_bun_and_z_scores_as_they_are():
    entry = demo_run()
    at = shown_in(app_at(STAGES, runs=(entry,)), "BUN")
    shown = frame_with(at, "whisker_low")
    library = stages.stage_summary(entry.run, INPUT)
    library = library[library["fold"] == -1].reset_index(drop=True)
    shown = shown.reset_index(drop=True)
    assert shown[["unit", "stage"]].astype(str).equals(library[["unit", "stage"]].astype(str))
    factor = np.where((library["stage"] == "raw") & library["unit"].isin(["Upre", "U120", "Upos"]),
                      BUN, 1.0)
    assert (factor != 1.0).any()
    np.testing.assert_allclose(shown["median"], library["median"] / factor)
    charts = spec_texts(at)
    assert "raw value (BUN mg/dL, kg, L)" in charts and "mg/dL," not in charts.replace(
        "BUN mg/dL,", "")
    assert "Upre (BUN mg/dL)" in texts(at).replace("\\", "")


@pytest.mark.slow
def test_the_parameters_page_converts_urea_statistics_not_gamma():
    entry = demo_run()
    at = shown_in(app_at(PARAMETERS, runs=(entry,)), "mmol/L")
    per_fold, _ = stages.bn_parameters(entry.run, INPUT)
    folds = frame_with(at, "fold")
    upre = folds[folds["input"] == "Upre (mmol/L)"].reset_index(drop=True)
    source = per_fold[per_fold["unit"] == "Upre"].reset_index(drop=True)
    np.testing.assert_allclose(upre["BN moving mean"], source["moving_mean"] / MMOL)
    np.testing.assert_allclose(upre["z-score scaler std"], source["scaler_std"] / MMOL)
    np.testing.assert_allclose(upre["γ (scale)"], source["gamma"])
    pp = folds[folds["input"] == "PP (kg)"].reset_index(drop=True)
    np.testing.assert_allclose(pp["BN moving std"], per_fold.loc[per_fold["unit"] == "PP",
                                                                  "moving_std"])
    table = [d.value for d in at.dataframe if "fold" not in d.value.columns]  # mean ± SD
    assert "Upre (mmol/L)" in table[0]["input"].tolist()
    assert "training-scaler std (mmol/L, kg, L)" in spec_texts(at)
    assert "urea in mmol/L" in texts(at)


@pytest.mark.slow
def test_the_sensitivity_page_converts_errors_and_squared_errors():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    library = frame_with(at, "abs_gamma")
    shown_in(at, "mmol/L")
    shown = frame_with(at, "abs_gamma")
    np.testing.assert_allclose(shown["rmse"], library["rmse"] / MMOL)
    np.testing.assert_allclose(shown["delta_mse"], library["delta_mse"] / MMOL**2)
    np.testing.assert_allclose(shown["abs_gamma"], library["abs_gamma"])
    if "r2" in library:
        np.testing.assert_allclose(shown["r2"], library["r2"])
    assert at.selectbox(key="sens-metric").label == "Error measure, in mmol/L (ΔMSE in (mmol/L)²)"
    assert "ΔMSE vs intact model, (mmol/L)²" in spec_texts(at)
    assert "a raw urea of 0 mmol/L" in at.radio(key="sens-mode").help
    assert "in mmol/L" in at.selectbox(key="sens-metric").help
    assert "squared errors (MSE, ΔMSE) in (mmol/L)²" in texts(at)


@pytest.mark.slow
def test_a_unit_switch_keeps_the_choices_of_the_pickers():
    """The browser returns a picker's label: a label with the unit in it would be orphaned by
    the switch and the choice reset."""
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    at.selectbox(key="sens-metric").set_value("bias").run()
    shown_in(at, "mmol/L")
    assert at.selectbox(key="sens-metric").value == "bias"
    assert "bias |mean error| (the study's 'MSPE'), mmol/L" in spec_texts(at)
    data_page = app_at(DATA)
    data_page.selectbox(key="data_target").set_value("Upos").run()
    shown_in(data_page, "BUN")
    assert data_page.selectbox(key="data_target").value == "Upos"
