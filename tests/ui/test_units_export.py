"""The Export page builds its files in the sidebar's units and with the session lengths and
access the other pages' formulas use (issue 27, items 1 and 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from bnapp.intake import data, duration
from bnapp.jobs.scheduler import JobManager
from bnapp.ui import state
from tests.apptest import APP, demo_run, texts
from tests.ui.test_export_page import PAGE, export_job, small_build

LENGTH = "session_length"  # ui.state's session key of the Data page's choice


def export_page(entry, *, units: str, length: duration.SessionLength,
                dataset: data.Dataset | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if dataset is not None:
        at.session_state["dataset"] = dataset
    at.session_state["runs"] = {entry.key: entry}
    at.session_state["active_run"] = entry.key
    at.session_state[state.DISPLAY_KEY] = units
    at.session_state[LENGTH] = length
    at.run()
    return at.switch_page(PAGE).run()


@pytest.fixture
def asked(monkeypatch) -> list[dict]:
    """The options the page looks its export job up with, each run."""
    seen = []
    monkeypatch.setattr(state, "export_job", lambda entry, options: seen.append(options))
    return seen


@pytest.mark.parametrize("units", ["mmol/L", "BUN"])
def test_the_options_carry_the_shown_units_and_one_session_length(asked, units):
    entry = demo_run()
    at = export_page(entry, units=units, length=duration.SessionLength(None, 180.0, "venous"))
    assert not at.exception
    options = asked[-1]
    assert options["display"] == units
    assert (options["t_hours"], options["access"], options["length_column"]) == (3.0, "venous",
                                                                                  None)
    shown = {"mmol/L": "mmol/L", "BUN": "BUN mg/dL"}[units]
    assert f"shown in {shown} for urea" in texts(at)
    assert "180 minutes for every session; venous access" in texts(at)
    mg_dl = {**options, "display": "mg/dL"}
    key = JobManager.export_key(entry.key, entry.data_name, None, options)
    assert key != JobManager.export_key(entry.key, entry.data_name, None, mg_dl)


def test_a_length_column_gives_each_session_its_own_hours(asked):
    entry = demo_run()
    frame = pd.read_csv(data.DEMO_PATH)
    frame["Td (min)"] = 180.0 + 30.0 * (np.arange(len(frame)) % 3)
    ds = data.load_dataset(frame.to_csv(index=False).encode(), name=data.DEMO_PATH.name)
    length = duration.SessionLength("Td (min)", 240.0, "arterial")
    at = export_page(entry, units="mg/dL", length=length, dataset=ds)
    assert not at.exception
    options = asked[-1]
    pos = pd.Index(ds.row_numbers).get_indexer(entry.run.row_ids)
    np.testing.assert_array_equal(options["t_hours"], duration.session_hours(ds, length)[pos])
    assert options["length_column"] == "Td (min)" and options["display"] == "mg/dL"
    assert "each session's own, 180–240 minutes" in texts(at)


@pytest.mark.slow
def test_the_built_report_is_in_mmol_for_180_minute_sessions():
    entry = demo_run()
    at = small_build(export_page(entry, units="mmol/L",
                                 length=duration.SessionLength(None, 180.0, "arterial")))
    assert not at.exception
    html = export_job(at).result().html
    assert "180 minutes for every session; arterial access" in html
    assert "mmol/L for urea" in html and "Ueq (mmol/L)" in html
