"""The result of a run, said: its cross-validated errors beside the baselines' and one sentence
(better, cannot be told apart, or worse), as the Train and Baselines pages open with it."""

from __future__ import annotations

import streamlit as st

from bnapp.analyses.baselines import verdict
from bnapp.jobs import page_analyses
from bnapp.report import page_tables
from bnapp.ui import state, widgets
from bnapp.ui.state import RunEntry


def verdict_sentence(entry: RunEntry) -> str:
    """The run's verdict sentence (Markdown), from the paired comparison the pages share."""
    paired = widgets.compute_call(entry, page_analyses.paired_comparison(
        *state.formula_length(entry.run)))
    return page_tables.verdict_sentence(verdict(paired), entry.run.target,
                                        state.display_units())


def show(entry: RunEntry) -> None:
    """The sentence and the pooled RMSE, MAE and R² of the network and every baseline."""
    display, target = state.display_units(), entry.run.target
    unit = display.unit(target)
    st.markdown(verdict_sentence(entry))
    table = display.show(page_tables.result_table(widgets.compute_call(
        entry, page_analyses.baselines(*state.formula_length(entry.run)))), target,
        ["rmse", "mae"])
    number = "%.2f"
    widgets.table(table, "result", column_config={
        "method": "method",
        "rmse": st.column_config.NumberColumn(f"RMSE ({unit})", format=number),
        "mae": st.column_config.NumberColumn(f"MAE ({unit})", format=number),
        "r2": st.column_config.NumberColumn("R²", format="%.3f")})
    st.caption("All test rows of the run's folds pooled, every method scored on the same rows; "
               "the sentence compares per-fold RMSE, paired by fold (the Baselines page has the "
               "details).")
