"""Baselines: does the network beat linear regression and the clinical formulas on its own folds?"""

from __future__ import annotations

import streamlit as st

from bnapp.analyses.baselines import KINETIC_INPUTS
from bnapp.analyses.groups import gamma_rank_agreement, gamma_rank_summary, held_out_comparison
from bnapp.intake.data import STUDY_TARGET
from bnapp.intake.groups import group_labels
from bnapp.jobs import cache, page_analyses
from bnapp.report import network_charts, page_tables, style
from bnapp.ui import result, state, widgets

# the options in words only: the browser sends back the label picked, so a label naming the
# shown unit would lose the user's choice when the unit is switched
METRICS = {
    "rmse": "RMSE: typical size of an error, large errors weigh more",
    "mae": "mean absolute error",
    "bias": "bias |mean error|, the study's 'MSPE'",
    "r2": "R²: share of the variance in {target} explained",
}
METHODS_TEXT = """
- **Network**: the trained network of each fold, predicting the run's target for that fold's
  test rows.
- **Linear regression (OLS)**: ordinary least squares on the same inputs, fitted on each fold's
  training rows, the simplest model a statistician would try first.
- **Rate equation (Daugirdas–Schneditz)**: spKt/V from Upre, Upos, UF and weight, turned into
  eKt/V by eKt/V = spKt/V − 0.6·spKt/V/t + 0.03 (arterial access; 0.47 and 0.02 for a venous
  catheter) and back into Ueq; nothing is fitted.
- **Tattersall**: the same, with eKt/V = spKt/V · T/(T + 35), T in minutes; nothing is fitted.

t (T) is each session's length as the Data page sets it: a column of the file, or one length
(the study's 240 min).
"""

st.title("Baselines")
st.caption("Does the network predict equilibrated urea (Ueq) better than what clinicians "
           "already use? Every method is scored on the same test rows of the run's folds.")
entry = widgets.need_run()
length = state.formula_length(entry.run)  # the formulas' session length and access
target, display = entry.run.target, state.display_units()
unit = display.unit(target)  # every error and difference below is shown in it
st.text(entry.label)
st.info(result.verdict_sentence(entry))
st.markdown(METHODS_TEXT)
if target != STUDY_TARGET:
    st.info(f"The clinical formulas predict equilibrated urea (Ueq); this run predicts "
            f"{widgets.escape_md(target)}, so only the network and linear regression "
            "are compared.")
elif not set(KINETIC_INPUTS) <= set(entry.run.features):
    st.info("The clinical formulas need Upre, Upos, PP and UF among the inputs; this run "
            "lacks some of them, so only the network and linear regression are compared.")

table = widgets.compute_call(entry, page_analyses.baselines(*length))
metric = st.selectbox(
    f"Error measure, in {unit} (R² has none)", list(METRICS), key="baselines-metric",
    format_func=lambda m: METRICS[m].format(target=target),
    help="RMSE and MAE say how far predictions typically are from the measured value; bias says "
         "whether a method is systematically high or low; R² near 1 is best. ")
widgets.figure(network_charts.baseline_chart(table, metric, target=target, display=display),
               f"baselines_{metric}")
st.subheader("Per fold and pooled")
widgets.table(style.show_metrics(table, target, display), "baselines", column_config={
    "method": "method", "fold": "fold ('pooled' = all test rows)", "n": "test rows",
    "rmse": f"RMSE ({unit})", "mae": f"MAE ({unit})", "bias": f"bias ({unit})",
    "mean_error": f"mean error, predicted − measured ({unit})", "r2": "R²"})

st.subheader("Network against each baseline, fold by fold")
paired = widgets.compute_call(entry, page_analyses.paired_comparison(*length))
st.markdown(page_tables.paired_reading(len(entry.run.folds)))
widgets.table(display.show(paired, target, page_tables.PAIRED_DIFFERENCES), "paired_comparison", column_config={
    "baseline": "baseline", "n_folds": "folds", "network_rmse": f"network RMSE ({unit})",
    "baseline_rmse": f"baseline RMSE ({unit})", "difference": f"difference ({unit})",
    "ci_low": f"95% CI low ({unit})", "ci_high": f"95% CI high ({unit})",
    "t_statistic": "corrected t",
    "p_value": "p (corrected t): read this one",
    "wilcoxon_p": "p (Wilcoxon, uncorrected for the overlap)",
    "network_better_folds": "folds the network won"})

group_by = entry.run.protocol.get("group_by")
if group_by:
    st.subheader(f"Each held-out {widgets.escape_md(group_by)}, trained on the others")
    ds = state.dataset()
    if not cache.trained_on(entry.key, entry.run, ds):
        st.info(f"Load the data set this run was trained on ({widgets.escape_md(entry.data_name)})"
                f" on the Data page to see its results per {widgets.escape_md(group_by)}.")
    else:
        labels = tuple(str(v) for v in group_labels(ds, group_by))  # hashable for the memo
        per_group = widgets.compute(entry, held_out_comparison, labels, *length)
        st.markdown(
            f"Every fold's test rows are whole {widgets.escape_md(group_by)} groups the network "
            "never saw: this is how it would do in a new unit or on new patients. A positive "
            "'baseline RMSE − network RMSE' means the network was closer on that group.")
        widgets.table(display.show(per_group, target, page_tables.GROUP_ERRORS), "groups", column_config={
            "held_out": f"held-out {group_by}", "fold": "fold", "method": "method",
            "n": "test rows", "rmse": f"RMSE ({unit})", "mae": f"MAE ({unit})",
            "mean_error": f"mean error ({unit})", "r2": "R²",
            "rmse_minus_network": f"baseline RMSE − network RMSE ({unit})"})
        ranks = widgets.compute(entry, gamma_rank_agreement, labels)
        if not ranks.empty:
            st.markdown(
                "Does the input BN rank the inputs the same way whichever group is left out? "
                "Spearman's ρ and Kendall's τ between the inputs' |γ| of two folds: 1 = the "
                "same order, 0 = unrelated, −1 = reversed.")
            summary = widgets.compute(entry, gamma_rank_summary, labels)
            st.markdown(page_tables.rank_summary_text(summary))
            widgets.table(ranks, "groups_gamma_rank", column_config={
                "held_out_a": "held out (a)", "held_out_b": "held out (b)",
                "spearman": "Spearman ρ", "kendall": "Kendall τ",
                "same_order": "same order", "order_a": "|γ| order (a)",
                "order_b": "|γ| order (b)"})
