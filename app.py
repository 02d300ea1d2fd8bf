"""bnapp dashboard: what a BatchNormalization input layer learns from hemodialysis data.

Start it with `make run` (or `streamlit run app.py`); it serves on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import warnings

import altair as alt
import streamlit as st
from streamlit import config, delta_generator

import bnapp
from bnapp.ui import warmup, widgets


def _log_to_stderr() -> None:
    """bnapp's INFO lines (e.g. each job started) on the server's stderr; Streamlit configures
    only its own loggers. Once per process: this script runs again on every rerun."""
    log = logging.getLogger("bnapp")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


_log_to_stderr()
warnings.showwarning = bnapp.show_warning  # the server's terminal: one plain line each
# Streamlit's first element of a process checks whether it runs in a REPL (to print a warning
# `streamlit run` never needs) with inspect.stack(), which resolves the path of every loaded
# module: 0.3 s of the first page's script run. Skipped by marking the warning as shown.
delta_generator._use_warning_has_been_displayed = True
# Altair checks every chart object against the Vega-Lite schema as it is built ("debug mode"),
# about a fifth of a page's drawing time. The report tests build every chart with it on; the
# dashboard draws the same builders without it.
alt.utils.schemapi.disable_debug_mode()

st.set_page_config(page_title="bnapp · BN input layer on dialysis data", layout="wide",
                   page_icon=widgets.FAVICON)

PAGES = {
    "Your data": [
        st.Page("pages/data.py", title="Data", icon=":material/table:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    ],
    "What the BN layer learns": [
        st.Page("pages/stages.py", title="BN stages", icon=":material/stacked_line_chart:"),
        st.Page("pages/parameters.py", title="BN parameters", icon=":material/tune:"),
        st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/scatter_plot:"),
        st.Page("pages/importance.py", title="Importance", icon=":material/leaderboard:"),
    ],
    "Models and use": [
        st.Page("pages/grid.py", title="Grid search", icon=":material/grid_on:"),
        st.Page("pages/baselines.py", title="Baselines", icon=":material/compare_arrows:"),
        st.Page("pages/agreement.py", title="Agreement", icon=":material/join_inner:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/calculate:"),
        st.Page("pages/export.py", title="Export", icon=":material/download:"),
    ],
}

with warmup.script_run():  # the warm-up's imports wait while a page is drawn
    page = st.navigation(PAGES)
    widgets.guarded(widgets.sync_jobs, "reading this tab's jobs")()
    try:
        widgets.run_page(page)
    finally:  # also when the page ends early (widgets.end_page: no run yet)
        widgets.guarded(widgets.sidebar, "in the sidebar")()
# Once per process, after the first page is drawn (so as not to slow it down): a training
# worker, then what the other pages import. AppTest (which patches config.get_option only) runs
# the app inside a test: no warm-up there.
if not config.get_option("global.appTest"):
    warmup.start()
