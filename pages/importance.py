"""Importance: |γ| against every definition of importance (Shapley, IG, ablations), and ICE/PDP."""

from __future__ import annotations

import functools

import streamlit as st

from bnapp.analyses import concordance, explain, verdict
from bnapp.analyses.layer_tables import layer_rows
from bnapp.analyses.settings import SETTINGS
from bnapp.jobs import page_analyses
from bnapp.report import importance_charts, page_tables, style
from bnapp.ui import state, widgets

entry = widgets.need_run()
spec, target = entry.run.spec, entry.run.target
display = state.display_units()
st.title("Importance: is |γ| importance under every definition?")
st.markdown(
    "The study measured an input's importance one way, the error when it is set to 0. Model "
    "explanation offers several others: **Shapley values** (each input's fair share of every "
    f"prediction, against {SETTINGS.n_background} training rows of the fold), **integrated "
    "gradients** (the gradient "
    "summed along a straight path from the training mean to the session), **gradient × input**, "
    "and the error when the input is set to 0, held at its mean or permuted. Here, fold by fold, "
    "|γ| is ranked against each: does the input with the larger |γ| matter more?")
st.caption(f"Run: {widgets.escape_md(entry.label)}")

layer = widgets.layer_picker(
    spec, key="imp-layer",
    help="Input BN: the patient variables. Hidden BN: the hidden nodes, each explained as an "
         "input of the rest of the network.")
report = widgets.compute_soon(entry, page_analyses.importance(layer, state.run_groups(entry)))
title = page_tables.layer_title(spec, layer)
if max(len(f.test_rows) for f in entry.run.folds) > concordance.MAX_ROWS:
    st.caption(f"Shapley values, integrated gradients and gradient × input are averaged over "
               f"{concordance.MAX_ROWS:,} test rows per fold, drawn at random (seeded); "
               "`python -m bnapp explain` explains every row.")
if len(entry.run.unit_names(layer)) > explain.EXACT_MAX_UNITS:
    st.caption(f"This layer has more than {explain.EXACT_MAX_UNITS} units: its Shapley values are "
               f"estimated from {SETTINGS.n_orders} sampled orders of the units and their "
               "reverses (exact up to 10 units), still adding up exactly to each prediction.")
stem = layer.stem
conc = layer_rows(report["concordance"], layer)
importance = layer_rows(report["importance"], layer)

if not page_tables.has_bn(spec, layer):
    st.info(f"{title}: this network has no batch normalization here, so there is no γ to "
            "compare with; the importance of each unit is still shown below.")
else:
    st.subheader("The answer, definition by definition")
    st.markdown(
        f"Across {int(conc['n_folds'].max())} folds, does |γ| order the units as each "
        "definition of importance does (Spearman ρ over the units of each fold, averaged over "
        f"folds)? The 95% intervals describe {conc['interval'].iloc[0]}.")
    verdicts = verdict.verdict(report["concordance"], report["importance"], layer)
    st.markdown("\n".join(importance_charts.concordance_answers(verdicts, conc)))
    st.caption(verdict.WHY_DEFINITIONS_DISAGREE)
    widgets.figure(importance_charts.concordance_heatmap(
        conc, title, n_units=len(entry.run.unit_names(layer))), f"concordance_{stem}")
    widgets.table(importance_charts.concordance_table(conc), f"concordance_{stem}")

st.subheader("Importance of each unit under each definition")
widgets.figure(importance_charts.importance_bars(importance, title, target=target,
                                                 display=display), f"importance_{stem}")
if box := widgets.details("Per fold and unit: the importance behind the figures",
                          key="imp-per-fold"):
    with box:
        widgets.table(importance_charts.shown_importance(importance, target, display),
                      f"importance_per_fold_{stem}")

if layer.kind == "input":
    st.subheader("How the prediction moves with each input")
    ice, pdp = widgets.compute_call(entry, page_analyses.ice_pdp())
    ice_pdp = functools.partial(importance_charts.ice_pdp_chart, ice, pdp, target=target,
                                display=display)
    widgets.figure(ice_pdp(max_points=style.SCREEN_LINE_POINTS), "ice_pdp", export=ice_pdp)
    if box := widgets.details("Each test row's Shapley values (base value + their sum = the "
                              "prediction)", key="imp-shapley"):
        with box:
            widgets.table(importance_charts.shapley_table(report["shapley"], target, display),
                          "shapley_values")
    st.caption("To explain one session of your own, and change its values, use the what-if "
               "section at the end of the Predict page.")
