"""bnapp dashboard: data, training and the input-BN parameter table on one page (first shell)."""

from __future__ import annotations

import streamlit as st

from bnapp import analysis, charts, data
from bnapp.export import chart_png, table_csv
from bnapp.jobs import cached_train
from bnapp.model import ArchSpec
from bnapp.train import Protocol, TrainingDiverged

st.set_page_config(page_title="bnapp — BN input layer on dialysis data", layout="wide")


def current_dataset() -> data.Dataset:
    if "dataset" not in st.session_state:
        st.session_state.dataset = data.demo_dataset()
    return st.session_state.dataset


st.title("What a BatchNormalization input layer learns from your dialysis data")
upload = st.sidebar.file_uploader("Upload a CSV or XLSX", type=["csv", "txt", "xlsx"],
                                  help="Stays on this machine. The demo cohort is synthetic.")
if upload is not None and st.session_state.get("upload_id") != upload.file_id:
    st.session_state.upload_id = upload.file_id
    try:
        st.session_state.dataset = data.load_dataset(upload.getvalue(), name=upload.name)
        st.session_state.pop("run", None)
    except data.DataError as err:
        st.sidebar.error(f"{err} — the previous data set is kept.")
ds = current_dataset()
st.sidebar.text(f"Data: {ds.name}\n{ds.n_usable} usable rows, {ds.n_dropped} dropped")

data_tab, train_tab, params_tab = st.tabs(["Data", "Train", "BN parameters"])
with data_tab:
    if ds.name == data.demo_dataset().name:
        st.info("The demo cohort is synthetic: simulated with a two-pool urea-kinetic model.")
    st.text(data.report_text(ds))
    st.dataframe(ds.frame.describe().T)
    if len(ds.dropped):
        st.dataframe(ds.dropped)

with train_tab:
    folds = st.slider("Cross-validation folds", 3, 10, 10, help="k-fold protocol")
    epochs = st.slider("Epochs", 10, 200, 200, step=10, help="Passes over the training rows")
    spec = ArchSpec.study_e2e()
    counts = spec.param_counts(len(data.STUDY_INPUTS))
    st.text(f"{spec.label}: {counts.total} parameters "
            f"({counts.trainable} trainable + {counts.non_trainable} BN moving statistics)")
    if st.button("Train", help="Trains every fold; cached, so the same run is never trained twice"):
        bar = st.progress(0.0)
        try:
            data.require_rows(ds, folds)
            st.session_state.run = cached_train(
                ds.X(data.STUDY_INPUTS), ds.y(), spec, Protocol(folds=folds, epochs=epochs),
                features=list(data.STUDY_INPUTS), target=data.STUDY_TARGET,
                data_key=ds.fingerprint(), row_ids=ds.row_numbers,
                progress=lambda f, _msg: bar.progress(min(max(f, 0.0), 1.0)),
            )
            st.success("Training finished.")
        except (data.DataError, TrainingDiverged) as err:
            st.error(str(err))

with params_tab:
    run = st.session_state.get("run")
    if run is None:
        st.info("Train a run first (Train tab).")
    else:
        per_fold, summary = analysis.bn_parameters(run, "input")
        st.dataframe(summary)
        st.download_button("Table (CSV)", table_csv(summary), "bn_parameters.csv")
        chart = charts.parameter_chart(per_fold)
        st.altair_chart(chart, theme=None)
        st.download_button("Figure (PNG)", chart_png(chart), "bn_parameters.png", "image/png")
