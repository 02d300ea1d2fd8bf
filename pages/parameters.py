"""BN parameters: the study's table 2, what each BN layer learned, as mean ± SD and per fold."""

from __future__ import annotations

import streamlit as st

from bnapp.analyses.stages import beta_is_zero
from bnapp.intake import units
from bnapp.jobs import page_analyses
from bnapp.report import bn_charts, page_tables
from bnapp.ui import state, widgets

HIDDEN_NODES_UNALIGNED = (
    "Hidden nodes are not the same units from fold to fold: each fold's network starts from its "
    "own random weights, so node k of one fold and node k of another are unrelated. The mean "
    "and SD of a node over folds describe no single node; read the per-fold table below.")

entry = widgets.need_run()
spec = entry.run.spec
st.title("BN parameters")
st.markdown(
    "What each batch-normalization (BN) layer learned, the study's table 2.\n"
    "- **γ (scale)**: how strongly the layer scales that input after normalising it; |γ| near "
    "0 means the network mutes it.\n"
    "- **β (shift)**: the value the layer adds after scaling, so the normalized input can be "
    "centred away from 0; β near 0 means no shift.\n"
    "- **BN moving mean and moving std**: the centre and spread the layer learned from the "
    "training batches, beside the mean and SD a z-score scaler computes from the same training "
    "rows. If they agree, the BN layer standardizes the inputs by itself.")
st.caption(f"Run: {widgets.escape_md(entry.label)}")

left, right = st.columns([3, 2])
layer = widgets.layer_picker(spec, key="params-layer", container=left)
sample_sd = right.toggle(
    "Sample SD (n − 1)", key="params-sample-sd",
    help="Off: the SD over folds dividing by the number of folds, as the study's table 2 "
         "printed. On: the sample SD, dividing by folds − 1 (a little larger).")

per_fold, summary = widgets.compute_call(entry, page_analyses.bn_parameters(layer,
                                                                         sample_sd=sample_sd))
title = page_tables.layer_title(spec, layer)
n_folds = per_fold["fold"].nunique()
if not page_tables.has_bn(spec, layer):
    st.info(f"{title}: this layer has no batch normalization, so it has no γ, β or moving "
            "statistics (shown as —); only the scaler's mean and SD over the training rows are "
            "given.")

display, input_mode = state.display_units(), spec.input_mode
st.subheader("Mean ± SD over folds")
st.caption(f"{n_folds} folds; {'sample' if sample_sd else 'population'} SD. Means and SDs in "
           "the variable's unit, named beside it (urea in "
           f"{display.unit(units.STUDY_TARGET)}); γ and β are dimensionless."
           + (" On z-scored inputs the BN moving mean and std are of z-scores, dimensionless."
              if input_mode == "zscore" and layer.kind == "input" else ""))
if layer.kind == "hidden":
    st.warning(HIDDEN_NODES_UNALIGNED)
beta_zero = beta_is_zero(per_fold)
if beta_zero:
    st.info(page_tables.beta_zero_sentence(per_fold))
widgets.table(page_tables.parameter_table(summary, layer, beta_zero=beta_zero, display=display,
                                          input_mode=input_mode),
              f"bn_parameters_{layer.stem}")
widgets.figure(bn_charts.parameter_chart(per_fold, title, display=display, input_mode=input_mode),
               f"bn_parameters_{layer.stem}")

st.subheader("Per fold")
folds_table = page_tables.per_fold_table(per_fold, layer, display=display, input_mode=input_mode)
widgets.table(folds_table, f"bn_parameters_per_fold_{layer.stem}",
              column_config={c: st.column_config.NumberColumn(format="%.4g")
                             for c in folds_table.columns[2:]})
