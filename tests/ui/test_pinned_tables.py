"""Tables keep their key column (what each row is) in view at any window width: widgets.table
pins a table's first column unless told otherwise."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from bnapp.ui import widgets
from tests.apptest import app_at, demo_run


def _pinned(element) -> dict:
    """column name -> pinned, from the dataframe element's column config as sent to the browser."""
    config = json.loads(element.proto.columns)
    return {name: spec.get("pinned") for name, spec in config.items()}


def test_the_first_column_is_pinned_and_keeps_its_label():
    frame = pd.DataFrame({"method": ["a"], "rmse": [1.0]})
    config = widgets._pin_key_column(frame, {"method": "Method", "rmse": None})
    assert config["method"]["pinned"] is True and config["method"]["label"] == "Method"
    assert config["rmse"] is None, "another column's setting is kept"
    unpinned = {"method": st.column_config.TextColumn("m", pinned=False)}
    assert widgets._pin_key_column(frame, unpinned)["method"]["pinned"] is False
    assert widgets._pin_key_column(frame, {"method": None}) == {"method": None}, "hidden stays"


def test_every_table_of_the_baselines_page_pins_its_key_column():
    entry = demo_run()
    at = app_at("pages/baselines.py", runs=(entry,))
    assert not at.exception and at.dataframe
    for element in at.dataframe:
        first = str(element.value.columns[0])
        assert _pinned(element).get(first) is True, (first, _pinned(element))
