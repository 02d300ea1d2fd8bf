"""The sidebar's urea unit switch: it starts at the data set's own units and follows a newly
loaded data set; the Train page's result sentence and table follow it. (AppTest runs only
the page script after switch_page, so the sidebar, drawn by app.py, is read on the Data page.)"""

from __future__ import annotations

import numpy as np
import pytest

from bnapp.analyses import baselines
from bnapp.intake import data
from bnapp.report.page_tables import result_table
from bnapp.ui import state
from tests.apptest import app_at, demo_run

FACTORS = {"mmol/L": 60.06 / 10, "BUN": 60.06 / 28.014}  # urea mg/dL per unit, by molar mass


def _switch(at):
    assert "Show urea in" in [s.label for s in at.sidebar.selectbox]
    return at.selectbox(key=state.DISPLAY_SWITCH)


def test_the_switch_starts_at_the_data_sets_units_and_follows_a_new_one(tmp_path):
    at = app_at()
    assert _switch(at).value == "mg/dL"
    _switch(at).set_value("BUN").run()
    assert at.session_state[state.DISPLAY_KEY] == "BUN"
    frame = data.demo_dataset().frame[list(data.STUDY_COLUMNS)]
    in_mmol = frame.assign(**{c: frame[c] / FACTORS["mmol/L"] for c in ("Upre", "U120", "Upos",
                                                                         "Ueq")})
    path = tmp_path / "mmol.csv"
    in_mmol.to_csv(path, index=False)
    at.session_state["data_units"] = "mmol/L"  # the file's unit, as on the Data page's form
    at.file_uploader(key="upload").set_value(("mmol.csv", path.read_bytes(), "text/csv")).run()
    assert not at.exception
    assert state.DISPLAY_KEY in at.session_state and at.session_state["dataset"].units == "mmol/L"
    # a new upload is shown in its own units (after its rerun AppTest draws the page only)
    assert at.session_state[state.DISPLAY_KEY] == "mmol/L"


@pytest.mark.parametrize("unit", ["mmol/L", "BUN"])
def test_the_result_follows_the_switch(unit):
    entry = demo_run()
    at = app_at(runs=(entry,))
    _switch(at).set_value(unit).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    pooled = result_table(baselines.baselines(entry.run))
    shown = next(d.value for d in at.dataframe if list(d.value.columns) == ["method", "rmse",
                                                                             "mae", "r2"])
    np.testing.assert_allclose(shown["rmse"], pooled["rmse"] / FACTORS[unit], rtol=1e-9)
    np.testing.assert_allclose(shown["mae"], pooled["mae"] / FACTORS[unit], rtol=1e-9)
    np.testing.assert_array_equal(shown["r2"], pooled["r2"])
    sentence = next(m.value for m in at.markdown if "cross-validated RMSE" in m.value)
    unit_words = {"mmol/L": "mmol/L", "BUN": "BUN mg/dL"}[unit]
    assert f"{unit_words} against" in sentence
