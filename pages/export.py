"""Export: every figure and table of the active run in one ZIP, and a self-contained HTML report.

The bundle is built by a background job (drawing the figures takes seconds); a reloaded page,
or another tab with the same run and settings, finds the finished one.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from bnapp.analyses.settings import SETTINGS
from bnapp.engine import export_model
from bnapp.intake.units import UREA_UNIT_NAMES, unit_label
from bnapp.jobs.scheduler import Job
from bnapp.report import model_card, run_report
from bnapp.report.cells import table_csv
from bnapp.report.markup import escape_md
from bnapp.ui import state, widgets

BUILT = "export_built"  # session key: this session has asked for a build before
NETWORK_FORMATS = {"keras": "Keras (.h5)", "torch": "torch (.pt)", "onnx": "ONNX (.onnx)"}


@st.fragment(run_every=widgets.POLL_SECONDS)
@widgets.guarded
def _progress(job: Job) -> None:
    """Progress and Cancel while the bundle is built; the page redraws once it is done."""
    if job.state in ("queued", "running"):
        widgets.job_status(job, key="export")
    else:
        st.rerun(scope="app")


def _lacks(entry: state.RunEntry) -> None:
    """What an export built without the run's own data set leaves out, and why."""
    missing = ["the data set's validation report (rows read, dropped and why)",
               "the data summary's rows, columns, units and mapping"]
    column = entry.run.protocol.get("group_by")
    if column:
        missing.append(f"the intervals over cohorts resampled by {escape_md(column)} (without "
                       "the run's groups its intervals are the folds' only)")
    st.info(f"This export lacks {'; '.join(missing)}. This run was trained on "
            f"{widgets.other_data(entry, state.dataset())}, and only that data set has them. "
            "Load its file on the Data page with the same columns, units and rules, then build "
            "again.", icon=":material/info:")


entry = widgets.need_run()
st.title("Export")
st.text(entry.label)

st.subheader("The trained networks")
fmt_col, networks_col = st.columns([2, 1], vertical_alignment="bottom")
fmt = fmt_col.radio(
    "Format", list(NETWORK_FORMATS), format_func=NETWORK_FORMATS.get, horizontal=True,
    key="export-network-format",
    help="Keras: HDF5 that keras.models.load_model reads (float32, as Keras saves); torch: "
         "TorchScript that torch.jit.load runs alone (float64); ONNX: for onnxruntime and other "
         "runtimes (float64)")
run = entry.run
networks_col.download_button(
    "Download the networks",
    partial(export_model.networks_zip, run, fmt,
            {c: unit_label(c) for c in [*run.features, run.target] if unit_label(c)},
            csv=table_csv),
    f"bnapp_networks_{fmt}.zip", "application/zip", key="export-networks", on_click="ignore",
    icon=":material/download:",
    help="A ZIP with every fold's network, predictions.csv (each network on every usable row) "
         "and README.txt (inputs, their order and units, the scaler of z-scored networks, how "
         "to load each file); built when you click")
st.caption("The networks take the inputs as they were trained on: raw values, or for a z-scored "
           "network values z-scored with its fold's scaler (in the ZIP's scaler.csv).")

st.subheader("Figures, tables and report")
st.markdown(
    "One **ZIP** with every figure of this run as PNG (for slides) and SVG (for journals) and "
    "every table as CSV and Excel, including the data set's validation report; and one "
    "**HTML report** that opens offline in any browser: the data summary, the architecture, all "
    "figures, the main tables and the settings (with the command line) that reproduce the run.")

left, right = st.columns(2)
n_permutations = left.number_input(
    "Shuffles per input for the permutation ablation", min_value=1, max_value=500,
    value=SETTINGS.n_permutations, key="export-permutations",
    help="How often each input (or hidden node) is shuffled across the test rows to measure its "
         "importance; more shuffles give steadier errors and take longer")
n_boot = right.number_input(
    "Bootstrap resamples for the confidence intervals", min_value=10, max_value=20000,
    value=SETTINGS.n_boot, step=100, key="export-boot",
    help="Resamples behind the 95% intervals of the γ-versus-importance correlations; the "
         f"default, {SETTINGS.n_boot}, is what the pages show and the usual choice for a paper")
if not state.has_own_data(entry):
    _lacks(entry)
hours, access = state.formula_length(run)  # the session lengths the pages' formulas use
length_column = state.session_length().column if np.ndim(hours) else None
display = state.display_units()
st.caption(f"Values are shown in {UREA_UNIT_NAMES[display.urea]} for urea (the sidebar's "
           "choice); the formulas and eKt/V take "
           f"{model_card.session_words(hours, access, length_column)} (the Data page's choice).")
options = run_report.export_options(display, length_column, n_permutations=n_permutations,
                                    n_boot=n_boot, t_hours=hours, access=access)
job = state.export_job(entry, options)

if st.button("Build the ZIP and the HTML report", type="primary", key="export-build",
             icon=":material/package_2:",
             help="Computes every analysis and draws every figure at print resolution, in the "
                  "background; takes a few seconds"):
    job = state.submit_export(entry, options)
    st.session_state[BUILT] = True

if job is None:
    if st.session_state.get(BUILT):
        st.info("No bundle is kept for this run and these settings (they changed since the "
                "last build, or the bundle was freed from memory): build again.")
    widgets.end_page()
if job.state in ("queued", "running"):
    _progress(job)
    widgets.end_page()
if job.state != "done":
    widgets.job_status(job, key="export")  # failed (with its message) or cancelled
    widgets.end_page()

bundle = job.result()
zip_col, html_col, _ = st.columns([1, 1, 2])
zip_col.download_button(
    "ZIP of figures and tables", bundle.zip_bytes, bundle.zip_name, "application/zip",
    key="export-zip", on_click="ignore", icon=":material/folder_zip:",
    help="Every figure as PNG and SVG, every table as CSV and XLSX (text cells made safe to "
         "open in a spreadsheet)")
html_col.download_button(
    "HTML report", bundle.html.encode("utf-8"), bundle.html_name, "text/html",
    key="export-html", on_click="ignore", icon=":material/description:",
    help="One self-contained page: it loads nothing from the internet and runs no script")
st.subheader("What the ZIP contains")
st.dataframe(run_report.zip_contents(bundle.zip_bytes), hide_index=True)
