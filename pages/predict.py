"""Predict: Ueq and the dose it implies for one typed-in patient or a file of sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from bnapp.analyses import conformal, predict
from bnapp.intake import data, duration
from bnapp.intake.data import DataError
from bnapp.intake.units import (
    DESCRIPTIONS,
    DETAILS,
    UNIT_LABELS,
    UREA_COLUMNS,
    UREA_UNITS,
    DisplayUnits,
    label,
)
from bnapp.report.export import table_csv
from bnapp.ui import state, whatif, widgets

MAX_SHOWN = 5000  # sessions drawn in the table; the download holds all
UREA_STEPS = {"mg/dL": 1.0, "mmol/L": 0.1, "BUN": 0.5}  # a form's urea step: about 0.5 mg/dL


def field_label(name: str, units: str) -> str:
    """'pre-dialysis urea Upre (BUN mg/dL)'; another input by its name, made inert."""
    return label(name, units) if name in DESCRIPTIONS else widgets.escape_md(name)


def patient_frame(run, display: DisplayUnits) -> pd.DataFrame | None:
    """One patient's values from the form, urea typed in the shown unit and read into mg/dL
    (defaults: the training data's medians)."""
    units = display.urea
    typical = dict(zip(run.features, np.median(run.X, axis=0), strict=True))
    values = {}
    with st.form("predict-form", border=True):
        st.caption(f"Defaults are the median of the data the network was trained on. Urea in "
                   f"{UNIT_LABELS[units]}, as the sidebar's 'Show urea in' says.")
        columns = st.columns(3)
        for i, name in enumerate(run.features):
            urea = name in UREA_COLUMNS
            default = typical.get(name)
            values[name] = columns[i % 3].number_input(
                field_label(name, units),
                value=None if default is None else round(default / display.factor(name), 2),
                min_value=0.0 if name in DESCRIPTIONS else None,
                step=UREA_STEPS[units] if urea else 0.1, format="%.2f",
                key=f"predict-{name}-{units}" if urea else f"predict-{name}",
                help=DETAILS.get(name, "An input of the trained network"))
        st.form_submit_button("Predict", key="predict-submit", type="primary",
                              help="Compute the network's prediction for these values")
    try:
        return data.parse_patient(values, units, required=run.features)
    except DataError as err:
        st.error(widgets.escape_md(str(err)))
        return None


@st.cache_data(max_entries=8, show_spinner="Reading the sessions…")
def read_upload(content: bytes, name: str, features: tuple[str, ...], units: str) -> data.Dataset:
    return data.load_sessions(content, features, name, units=units)


def sessions_frame(run, display: DisplayUnits) -> pd.DataFrame | None:
    """A file's sessions, read in the file's own urea unit (not the shown one: a file is
    written in one unit whatever the pages show), in mg/dL."""
    unit_col, upload_col = st.columns([1, 3])
    units = unit_col.selectbox(
        "Urea units in this file", UREA_UNITS, format_func=UNIT_LABELS.get,
        index=UREA_UNITS.index(state.dataset().units), key="predict-file-units",
        help="The unit the file's urea values are written in; it starts at the loaded data "
             "set's. A column whose name states its unit (e.g. 'Upre (mmol/L)') is read in "
             "that one. Results are shown in the sidebar's unit "
             f"({display.unit(data.STUDY_TARGET)}), whatever the file's.")
    upload = upload_col.file_uploader(
        "Sessions file (CSV or XLSX)", type=["csv", "xlsx"], key="predict-upload",
        help="One row per session with the network's input columns (named as on the Data page; "
             "the measured Ueq is not needed). Urea in the unit chosen beside it.")
    if upload is None:
        st.info("Upload a file of sessions, one per row, with the columns "
                + widgets.escape_md(", ".join(run.features)) + ".")
        return None
    try:
        sessions = read_upload(upload.getvalue(), upload.name, tuple(run.features), units)
    except DataError as err:
        st.error(widgets.escape_md(str(err)))
        return None
    st.text(f"{sessions.name}: {sessions.n_usable} of {sessions.n_read} sessions usable; urea "
            f"read as {UNIT_LABELS[units]} unless a column's name states its unit, shown in "
            f"{display.unit(data.STUDY_TARGET)}")
    if not sessions.dropped.empty:
        st.warning("Some rows were skipped; the list says which value was wrong in each.")
        widgets.table(sessions.dropped, "predict_skipped_rows")
    return predict.indexed_by_row(sessions)


def _interval(low: float, high: float, digits: int) -> str:
    """'52.1 to 60.3'; an end the data cannot bound (too few rows for the level) says so."""
    def end(v: float) -> str:
        return "unbounded" if not np.isfinite(v) else f"{v:.{digits}f}"
    return f"{end(low)} to {end(high)}"


def headline(row: pd.Series, labels: dict[str, str], n_folds: int, level: float,
             digits: int = 1) -> None:
    """The single patient's answer: the network's Ueq and dose with their prediction intervals,
    beside the rate equation; Ueq to `digits` decimals (one more for the SD)."""
    net, ektv, rate = st.columns(3)
    net.metric(widgets.escape_md(labels["ueq_network"]), f"{row['ueq_network']:.{digits}f}",
               help=f"Mean of the {n_folds} fold models' predictions")
    net.markdown(f"**{level:.0%} prediction interval: "
                 f"{_interval(row['ueq_network_pi_low'], row['ueq_network_pi_high'], digits)}**",
                 help="CV+ interval (Barber et al. 2021) from the cross-validation residuals: "
                      f"it contains the measured Ueq in about {level:.0%} of sessions like "
                      "those the network was trained on (see the Agreement page for its "
                      "coverage on the test rows). It errs on the wide side when the fold "
                      "models disagree: on the synthetic cohort about 97 % of new sessions "
                      "fall inside the network's 90 % interval")
    if n_folds > 1:
        net.caption(f"across folds: SD {row['ueq_network_sd']:.{digits + 1}f}, range "
                    f"{row['ueq_network_min']:.{digits}f}–{row['ueq_network_max']:.{digits}f} "
                    "(how much the answer depends on the training rows; not a prediction "
                    "interval)")
    if "ektv_network" in row:
        ektv.metric(widgets.escape_md(labels["ektv_network"]), f"{row['ektv_network']:.2f}",
                    help="Daugirdas' formula with Ueq in place of Upos: the equilibrated dose")
        ektv.markdown(f"**{level:.0%} interval: "
                      f"{_interval(row['ektv_network_pi_low'], row['ektv_network_pi_high'], 2)}**",
                      help="The doses the two ends of the Ueq interval imply (a higher Ueq is "
                           "a lower dose)")
        rate.metric(widgets.escape_md(labels["ueq_rate_equation"]),
                    f"{row['ueq_rate_equation']:.{digits}f}",
                    help="Daugirdas–Schneditz rate equation (arterial access), for comparison")
        rate.caption(f"eKt/V {row['ektv_rate_equation']:.2f} · spKt/V {row['spktv']:.2f}")


st.title("Predict")
st.caption("Equilibrated post-dialysis urea (Ueq) for new sessions from the active run: every "
           "fold's network predicts, and the spread across them shows how much the answer "
           "depends on the training rows; the prediction interval says where the measured Ueq "
           "is likely to lie. eKt/V is the dose that Ueq implies.")
entry = widgets.need_run()
run = entry.run
st.text(entry.label)
if run.target != data.STUDY_TARGET:
    st.warning("This network predicts " + widgets.escape_md(run.target) + ", not Ueq: the "
               "columns named Ueq hold its prediction, and the dose and the formulas are left out.")
display = state.display_units()
hours_col, source_col, level_col = st.columns(3)
length = state.session_length()
hours = hours_col.number_input(
    "Session time (h)", min_value=1.0, max_value=12.0, value=length.minutes / 60, step=0.25,
    key="predict-hours",
    help="Length of the dialysis session, used by the Kt/V formulas (the study's: 4 h; the "
         "Data page's length in minutes). A file of sessions with a length column (e.g. "
         "'Td (min)') gives each session its own. The network itself was trained on sessions "
         "of the training data's length.")
source = source_col.radio(
    "Sessions", ["form", "file"], key="predict-source", horizontal=True,
    format_func={"form": "one patient", "file": "a file of sessions"}.get,
    help="Type one patient's values, or upload a CSV/XLSX with one session per row")

level = level_col.slider(
    "Prediction interval", 0.5, 0.99, conformal.DEFAULT_LEVEL, 0.01, key="predict-level",
    help="Level of the prediction interval around the network's Ueq: the share of sessions "
         "whose measured Ueq it should contain (default 90 %)")
normalized = level_col.toggle(
    "Scale by the fold spread", key="predict-normalized",
    help="Wider intervals where the fold models disagree, narrower where they agree")

frame = patient_frame(run, display) if source == "form" else sessions_frame(run, display)
if frame is None:
    widgets.end_page()
try:
    t_hours, length_column = duration.frame_hours(frame, hours, "sessions")
except DataError as err:
    st.error(widgets.escape_md(str(err)))
    widgets.end_page()
if length_column is not None:
    st.caption(f"Session lengths from the column {widgets.escape_md(length_column)}.")
result = predict.predict_sessions(run, frame, t_hours, level=level, normalized=normalized,
                                  access=length.access)
shown, labels = predict.in_units(result, display, run.target)
if source == "form":
    headline(shown.iloc[0], labels, len(run.folds), level, 2 if display.urea == "mmol/L" else 1)
if result["outside_training_range"].ne("").any():
    st.warning("Some inputs lie outside the range of the data the network was trained on; "
               "its Ueq there is an extrapolation (see the last column).")
if source == "file":
    shown = shown.reset_index()
    labels["row"] = "row in your file"
if len(shown) <= MAX_SHOWN:
    widgets.table(shown, "predictions", column_config=labels)
else:
    st.caption(f"The first {MAX_SHOWN} of {len(shown)} sessions; the download holds all.")
    st.dataframe(shown.head(MAX_SHOWN), hide_index=True, column_config=labels)
    everything = widgets.with_headers(shown, labels)
    st.download_button("All predictions (CSV)", lambda: table_csv(everything), "predictions.csv",
                       "text/csv", key="predict-download-all", on_click="ignore",
                       icon=":material/download:", help="Every session's prediction as CSV")

st.divider()
whatif.what_if_section(entry, display)
