"""widgets.table: a table keeps its key column (what each row is) in view at any window width
(its first column pinned unless told otherwise), and its downloads carry the headers it is shown
with, units included."""

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


def test_downloads_carry_the_shown_headers():
    frame = pd.DataFrame({"method": ["a"], "rmse": [1.0], "r2": [0.5], "n": [3]})
    config = {"rmse": st.column_config.NumberColumn("RMSE (mmol/L)", format="%.2f"),
              "r2": "R²", "n": None}
    shown = widgets.with_headers(frame, config)
    assert list(shown.columns) == ["method", "RMSE (mmol/L)", "R²", "n"]
    assert shown["RMSE (mmol/L)"].tolist() == [1.0]


def test_the_result_tables_download_names_its_unit(monkeypatch):
    downloads = {}  # file name -> what its button would download
    real_button = st.download_button

    def recording(label, data_, file_name, *args, **kwargs):
        downloads[file_name] = data_
        return real_button(label, data_, file_name, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording)
    at = app_at(runs=(demo_run(),))
    at.session_state["display_units"] = "mmol/L"
    at.switch_page("pages/train.py").run()
    assert not at.exception
    header = downloads["result.csv"]().decode("utf-8-sig").splitlines()[0]
    assert header == "method,RMSE (mmol/L),MAE (mmol/L),R²", header
