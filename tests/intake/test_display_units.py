"""DisplayUnits: what a page shows in the user's urea unit equals the library's mg/dL value
divided by the molar factor (6.006 for mmol/L, 60.06/28.014 for BUN mg/dL); weight, volume and
a user's own column are never converted; a squared error is divided by the factor squared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnapp.intake.units import LIBRARY_DISPLAY, UREA_COLUMNS, UREA_UNITS, DisplayUnits
from bnapp.report import style

# independent of the module's constants: molar masses of urea and of its two nitrogen atoms
MMOL = 60.06 / 10
BUN = 60.06 / (2 * 14.007)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_factors_are_the_molar_conversions():
    assert DisplayUnits("mmol/L").factor("Upre") == pytest.approx(MMOL, rel=1e-12)
    assert DisplayUnits("BUN").factor("Ueq") == pytest.approx(BUN, rel=1e-12)
    assert LIBRARY_DISPLAY.factor("U120") == 1.0
    for column in ("PP", "UF", "my score"):
        assert DisplayUnits("mmol/L").factor(column) == 1.0


def test_units_and_labels_name_what_is_shown():
    mmol = DisplayUnits("mmol/L")
    assert [mmol.unit(c) for c in ("Ueq", "PP", "UF")] == ["mmol/L", "kg", "L"]
    assert DisplayUnits("BUN").label("Upos") == "Upos (BUN mg/dL)"
    assert mmol.label("my score") == "my score" and mmol.unit("my score") == "units of my score"


def test_an_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="mmol/L"):
        DisplayUnits("mol")


@given(st.lists(values, min_size=1, max_size=20), st.sampled_from(UREA_UNITS))
def test_show_divides_urea_quantities_and_keeps_the_rest(xs, unit):
    display = DisplayUnits(unit)
    factor = {"mg/dL": 1.0, "mmol/L": MMOL, "BUN": BUN}[unit]
    frame = pd.DataFrame({"rmse": xs, "mse": xs, "r2": xs})
    shown = display.show(display.show(frame, "Ueq", ["rmse"]), "Ueq", ["mse"], power=2)
    np.testing.assert_allclose(shown["rmse"], np.asarray(xs) / factor, rtol=1e-12)
    np.testing.assert_allclose(shown["mse"], np.asarray(xs) / factor**2, rtol=1e-12)
    np.testing.assert_array_equal(shown["r2"], xs)
    np.testing.assert_array_equal(display.show(frame, "PP", ["rmse"])["rmse"], xs)


@given(st.lists(st.sampled_from([*UREA_COLUMNS, "PP", "UF"]), min_size=1, max_size=12), values)
def test_show_by_converts_each_row_by_its_own_column(names, x):
    frame = pd.DataFrame({"unit": names, "mean": x})
    shown = DisplayUnits("mmol/L").show_by(frame, "unit", ["mean"])
    want = [x / MMOL if n in UREA_COLUMNS else x for n in names]
    np.testing.assert_allclose(shown["mean"], want, rtol=1e-12)


def test_metrics_follow_their_power_of_the_target_unit():
    mmol = DisplayUnits("mmol/L")
    frame = pd.DataFrame({"rmse": [MMOL], "mse": [MMOL**2], "delta_mse": [MMOL**2], "r2": [0.5],
                          "mean_percent_error": [3.0]})
    shown = style.show_metrics(frame, "Ueq", mmol)
    np.testing.assert_allclose(shown.iloc[0].to_numpy(), [1.0, 1.0, 1.0, 0.5, 3.0], rtol=1e-12)
    assert style.show_metrics(frame, "PP", mmol).equals(frame)  # a weight target stays in kg
    assert style.metric_label("mse", "Ueq", mmol) == "MSE, (mmol/L)²"
    assert style.metric_label("rmse", "Ueq", DisplayUnits("BUN")) == "RMSE, BUN mg/dL"


def test_a_file_whose_headers_state_mmol_is_shown_in_mmol(tmp_path):
    from bnapp.intake import data

    frame = data.demo_dataset().frame[list(data.STUDY_COLUMNS)]
    urea = ("Upre", "U120", "Upos", "Ueq")
    written = frame.assign(**{c: frame[c] / MMOL for c in urea}).rename(
        columns={c: f"{c} (mmol/L)" for c in urea})
    path = tmp_path / "stated.csv"
    written.to_csv(path, index=False)
    ds = data.load_dataset(path)  # the file's unit left at mg/dL: the headers say otherwise
    assert ds.units == "mg/dL" and ds.urea_units == "mmol/L"
    mixed = written.rename(columns={"Upre (mmol/L)": "Upre"})
    mixed.assign(Upre=frame["Upre"]).to_csv(path, index=False)
    assert data.load_dataset(path).urea_units == "mg/dL"  # columns disagree: the file's unit
