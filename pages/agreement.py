"""Agreement: Bland–Altman, calibration and prediction-interval coverage of every method."""

from __future__ import annotations

import streamlit as st

from bnapp.analyses import conformal
from bnapp.intake.units import target_unit
from bnapp.jobs import page_analyses
from bnapp.report import agreement_charts
from bnapp.report.style import METHOD_LABELS
from bnapp.ui import state, widgets

QUANTITIES = {"Ueq": "equilibrated urea Ueq (mg/dL)", "eKtV": "the dose it implies, eKt/V"}
# the predicted column is the run's target: Ueq for the study, anything for another run
CI_METHODS = {"exact": "exact (Carkeet 2015, non-central t)",
              "approximate": "approximate (Bland & Altman 1999)"}
READING = """
**How to read a Bland–Altman plot.** Each dot is one test session: across, the mean of the
method and the measured value; up, how far the method is from the measured value. The solid
line is the bias (the average error) and the dashed lines the 95 % limits of agreement: 95 % of
sessions should fall between them, so ask whether a difference that large would change your
decision. The shaded bands are the limits' confidence intervals (how sure we are of the limits
with this many sessions); a dotted line that slopes means the error grows with the urea level
(proportional bias).

**Proportional bias** is the slope of the difference against the method's own value, which is
1 − the calibration slope below: a slope near 0 (a p-value above 0.05) means the method is as
far off at high values as at low ones. It is not regressed on the mean of the two, as Bland and
Altman do for two instruments: a prediction varies less than the measurement it predicts, so on
the mean every good predictor would show a spurious slope (docs/statistics.md).
"""
INTERVALS = """
**Prediction intervals.** The Predict page gives each method's {level:.0%} interval by CV+
(Barber et al., Ann Stat 2021) from the cross-validation residuals: it should contain the
measured value in {level:.0%} of new sessions. Two coverages are shown, each the share of test
rows inside an interval built without them:

- **CV+ (as Predict gives), nested**: the coverage of those intervals. Each fold's rows get a
  CV+ interval from the other folds trained again without them, so no model saw the row. It
  is above {level:.0%} when the fold models disagree (CV+ spans their spread).
- **held-out split-conformal**: each row's own fold's prediction ± the residual quantile of the
  other folds. Near {level:.0%} by construction; it is the interval of `predictions.csv`, not
  the one a new session gets.

The clinical formulas fit nothing, so both of their intervals are their value ± a quantile of
their own residuals.
"""

st.title("Agreement")
st.caption("Would the network's Ueq stand in for the measured one? Agreement, calibration and "
           "prediction intervals, judged as in method-comparison studies, for the network and "
           "every baseline on the test rows of the run's folds.")
entry = widgets.need_run()
run = entry.run
length = state.formula_length(entry.run)  # the formulas' session length and access
st.text(entry.label)

left, middle, right = st.columns(3)
level = left.slider("Prediction interval level", 0.5, 0.99, conformal.DEFAULT_LEVEL, 0.01,
                    key="agreement-level",
                    help="The share of new sessions whose measured value the interval should "
                         "contain (default 90 %)")
normalized = middle.toggle("Scale intervals by the fold spread", key="agreement-normalized",
                           help="Wider intervals where the fold models disagree, narrower where "
                                "they agree (the formulas have no spread and are unchanged)")
ci_method = right.selectbox("CI of the limits of agreement", list(CI_METHODS),
                            format_func=CI_METHODS.get, key="agreement-ci",
                            help="Carkeet's exact intervals are right for small samples; Bland "
                                 "and Altman's approximation is the classic one")

points = widgets.compute_call(entry, page_analyses.agreement_points(*length))
table = widgets.compute_call(entry, page_analyses.agreement(ci_method, *length))
quantities = list(dict.fromkeys(points["quantity"]))
if "eKtV" not in quantities:
    st.info("eKt/V needs a run that predicts Ueq from Upre, Upos, PP and UF; only the "
            "predicted value itself is compared.")
quantity = st.radio("Compare", quantities, format_func=lambda q: QUANTITIES.get(q, q),
                    horizontal=True,
                    key="agreement-quantity")

st.subheader("Bland–Altman plots")
st.markdown(READING)
# one plot, for the method picked: drawing every method's takes longer than the page should
method = st.segmented_control("Method", list(dict.fromkeys(points["method"])),
                              format_func=lambda m: METHOD_LABELS.get(m, m), key="agreement-method",
                              required=True, default=points["method"].iloc[0])
widgets.figure(agreement_charts.bland_altman_chart(points, table, method, quantity),
               f"bland_altman_{method}_{quantity}")

st.subheader("Agreement table")
widgets.table(table, "agreement", column_config={
    "method": "method", "quantity": "quantity", "bias": "bias (method − measured)",
    "loa_low": "lower limit of agreement", "loa_high": "upper limit of agreement",
    "loa_low_ci_low": "lower limit, CI low", "loa_low_ci_high": "lower limit, CI high",
    "loa_high_ci_low": "upper limit, CI low", "loa_high_ci_high": "upper limit, CI high",
    "n": "test rows", "bias_ci_low": "bias, CI low", "bias_ci_high": "bias, CI high",
    "sd": "SD of the differences",
    "proportional_slope": "proportional bias (slope on the method's value)",
    "proportional_slope_ci_low": "slope, CI low", "proportional_slope_ci_high": "slope, CI high",
    "proportional_p": "p (slope = 0)", "ci_method": "CI method"})
st.caption(f"Units: {widgets.escape_md(target_unit(run.target))} for "
           f"{widgets.escape_md(run.target)}, none for eKt/V. Limits: bias ± 1.96 SD; CIs at "
           f"95 % ({CI_METHODS[ci_method]}).")

st.subheader("Calibration")
calibration = widgets.compute_call(entry, page_analyses.calibration(*length))
curves = widgets.compute_call(entry, page_analyses.calibration_curves(*length))
widgets.figure(agreement_charts.calibration_chart(points, curves, calibration, quantity),
               f"calibration_{quantity}", caption=(
                   "A slope below 1 means predictions spread wider than the measured values "
                   "(too extreme), above 1 too timid; the intercept is the offset at "
                   "predicted = 0."))
if box := widgets.details("Calibration lines: the numbers", key="agreement-calibration-table"):
    with box:
        widgets.table(calibration, "calibration", column_config={
            "n": "test rows", "intercept_ci_low": "intercept, CI low", "intercept_ci_high":
            "intercept, CI high", "slope_ci_low": "slope, CI low", "slope_ci_high":
            "slope, CI high"})

st.subheader("Prediction intervals and their coverage")
st.markdown(INTERVALS.format(level=level))
coverage = widgets.compute_call(entry, page_analyses.coverage(level, *length,
                                                              normalized=normalized))
widgets.figure(agreement_charts.coverage_chart(coverage, level), "interval_coverage")
if box := widgets.details("Coverage per fold and pooled: the numbers",
                          key="agreement-coverage-table"):
    with box:
        widgets.table(coverage, "interval_coverage", column_config={
            "interval": "interval (cv_plus: as Predict gives, nested)",
            "fold": "fold ('pooled' = all test rows)", "n": "test rows", "level": "nominal level",
            "coverage": st.column_config.NumberColumn("coverage", format="percent"),
            "mean_width": "mean width"})
