"""Agreement: Bland–Altman, calibration and prediction-interval coverage of every method."""

from __future__ import annotations

import streamlit as st

from bnapp.analyses import agreement, conformal
from bnapp.intake import units
from bnapp.intake.groups import group_labels
from bnapp.jobs import cache, page_analyses
from bnapp.report import agreement_charts
from bnapp.report.agreement_charts import quantity_label, shown_table
from bnapp.report.markup import unit_md
from bnapp.report.style import METHOD_LABELS
from bnapp.ui import state, widgets

DOSE = "the dose it implies, eKt/V"
NUMBER = st.column_config.NumberColumn(format="%.3g")  # no cell of four decimals
AGREEMENT_NUMBERS = {
    "bias": "bias (method − measured)", "loa_low": "lower limit of agreement",
    "loa_high": "upper limit of agreement", "loa_low_ci_low": "lower limit, CI low",
    "loa_low_ci_high": "lower limit, CI high", "loa_high_ci_low": "upper limit, CI low",
    "loa_high_ci_high": "upper limit, CI high", "bias_ci_low": "bias, CI low",
    "bias_ci_high": "bias, CI high", "sd": "SD of the differences",
    "proportional_slope": "proportional bias (slope on the method's value)",
    "proportional_slope_ci_low": "slope, CI low", "proportional_slope_ci_high": "slope, CI high"}
CALIBRATION_NUMBERS = {"intercept": "intercept", "intercept_ci_low": "intercept, CI low",
                       "intercept_ci_high": "intercept, CI high", "slope": "slope",
                       "slope_ci_low": "slope, CI low", "slope_ci_high": "slope, CI high"}
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


def _identified(entry: state.RunEntry, points):
    """The points with each session's row in the data file and, for a grouped run whose data
    set is loaded, its group; and that group column's name (None when not shown)."""
    run, ds = entry.run, state.dataset()
    group_by = run.protocol.get("group_by")
    if group_by and cache.trained_on(entry.key, run, ds):
        return agreement.identify(points, run.row_ids, group_labels(ds, group_by)), group_by
    return agreement.identify(points, run.row_ids), None


def _quantity_title(quantity: str) -> str:
    """'equilibrated urea Ueq', the dose in words, another target by its name."""
    if quantity == "eKtV":
        return DOSE
    words = units.DESCRIPTIONS.get(quantity)
    return f"{words} {quantity}" if words else quantity


def _tolerance(run, display: units.DisplayUnits, column) -> float:
    """The acceptable difference for the run's target, typed in the shown unit (one widget per
    unit, starting at the library's default in it), in library units for the analysis."""
    factor = display.factor(run.target)
    shown = column.number_input(
        f"Acceptable difference for {widgets.escape_md(run.target)} "
        f"({unit_md(display, run.target)})", min_value=0.0,
        value=agreement.default_tolerance(run) / factor, step=float(f"{0.5 / factor:.1g}"),
        format="%.4g", key=f"agreement-tolerance-{display.urea}",
        help="How far from the measured value a method may be before it would change a "
             "decision")
    # 12 significant figures drop the round trip's float noise (5 / 6.006 * 6.006), so the
    # default is the library's 5.0 and its share-within is the one the first visit cached
    return float(f"{shown * factor:.12g}")


st.title("Agreement")
st.caption("Would the network's Ueq stand in for the measured one? Agreement, calibration and "
           "prediction intervals, judged as in method-comparison studies, for the network and "
           "every baseline on the test rows of the run's folds.")
entry = widgets.need_run()
run = entry.run
display = state.display_units()
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
# options in words only (the browser sends back the label picked: one naming the shown unit
# would lose the choice when the unit is switched); the unit is in its help
quantity = st.radio("Compare", quantities, format_func=_quantity_title, horizontal=True,
                    key="agreement-quantity",
                    help=f"{widgets.escape_md(run.target)} in {unit_md(display, run.target)}; "
                         "eKt/V has no unit")


st.subheader("Within a clinically acceptable difference")
unit = display.unit(run.target)
left, right = st.columns(2)
tolerance = _tolerance(run, display, left)
dose_tolerance = right.number_input(
    "Acceptable difference for eKt/V", min_value=0.0, value=agreement.TOLERANCES["eKtV"],
    step=0.01, key="agreement-dose-tolerance", disabled="eKtV" not in quantities,
    help="The dose each method's value implies, against the dose of the measured value")
share = widgets.compute_call(entry, page_analyses.share_within(tolerance, dose_tolerance,
                                                              *length))
widgets.figure(agreement_charts.share_within_chart(share, quantity, display=display),
               f"share_within_{quantity}")
widgets.table(shown_table(share, display), "share_within",
              column_config={
                  "tolerance": NUMBER, "n": "test sessions", "within": "within",
                  "share": st.column_config.NumberColumn("share within", format="percent"),
                  "ci_low": st.column_config.NumberColumn("95 % CI low (Wilson)",
                                                          format="percent"),
                  "ci_high": st.column_config.NumberColumn("95 % CI high (Wilson)",
                                                           format="percent")})

st.subheader("Bland–Altman plots")
st.markdown(READING)
# one plot, for the method picked: drawing every method's takes longer than the page should
method = st.segmented_control("Method", list(dict.fromkeys(points["method"])),
                              format_func=lambda m: METHOD_LABELS.get(m, m), key="agreement-method",
                              required=True, default=points["method"].iloc[0])
identified, group_by = _identified(entry, points)
allowed = dose_tolerance if quantity == "eKtV" else tolerance
widgets.figure(agreement_charts.bland_altman_chart(identified, table, method, quantity,
                                                   tolerance=allowed, group_name=group_by,
                                                   display=display),
               f"bland_altman_{method}_{quantity}")
st.markdown(f"**The {agreement.LARGEST} largest differences** "
            f"({METHOD_LABELS.get(method, method)}, "
            f"{widgets.escape_md(quantity_label(quantity))}): the sessions "
            "to look at first, by their row in the data file.")
largest = shown_table(agreement.largest_differences(identified, method, quantity),
                      display, quantity).drop(columns=["row"])
widgets.table(largest, f"largest_differences_{method}_{quantity}", column_config={
    "data_row": st.column_config.NumberColumn("row in the data file", format="%d"),
    "group": group_by, "measured": NUMBER, "predicted": NUMBER,
    "mean": st.column_config.NumberColumn("mean of the two", format="%.3g"),
    "difference": st.column_config.NumberColumn("method − measured", format="%.3g")})

st.subheader("Agreement table")
widgets.table(shown_table(table, display), "agreement",
              column_config={column: st.column_config.NumberColumn(label, format="%.3g")
                             for column, label in AGREEMENT_NUMBERS.items()} | {
                  "method": "method", "quantity": "quantity", "n": "test rows",
                  "proportional_p": st.column_config.NumberColumn("p (slope = 0)",
                                                                  format="%.2g"),
                  "ci_method": "CI method"})
st.caption(f"Units: {widgets.escape_md(unit)} for "
           f"{widgets.escape_md(run.target)}, none for eKt/V. Limits: bias ± 1.96 SD; CIs at "
           f"95 % ({CI_METHODS[ci_method]}).")

st.subheader("Calibration")
calibration = widgets.compute_call(entry, page_analyses.calibration(*length))
curves = widgets.compute_call(entry, page_analyses.calibration_curves(*length))
widgets.figure(agreement_charts.calibration_chart(points, curves, calibration, quantity,
                                                  display=display),
               f"calibration_{quantity}", caption=(
                   "A slope below 1 means predictions spread wider than the measured values "
                   "(too extreme), above 1 too timid; the intercept is the offset at "
                   "predicted = 0."))
if box := widgets.details("Calibration lines: the numbers", key="agreement-calibration-table"):
    with box:
        widgets.table(shown_table(calibration, display), "calibration", column_config={
            column: st.column_config.NumberColumn(label, format="%.3g")
            for column, label in CALIBRATION_NUMBERS.items()} | {"n": "test rows"})

st.subheader("Prediction intervals and their coverage")
st.markdown(INTERVALS.format(level=level))
coverage = widgets.compute_call(entry, page_analyses.coverage(level, *length,
                                                              normalized=normalized))
widgets.figure(agreement_charts.coverage_chart(coverage, level, run.target, display=display),
               "interval_coverage")
if box := widgets.details("Coverage per fold and pooled: the numbers",
                          key="agreement-coverage-table"):
    with box:
        widgets.table(shown_table(coverage, display, run.target), "interval_coverage",
                      column_config={
                          "interval": "interval (cv_plus: as Predict gives, nested)",
                          "fold": "fold ('pooled' = all test rows)", "n": "test rows",
                          "level": "nominal level",
                          "coverage": st.column_config.NumberColumn("coverage",
                                                                    format="percent"),
                          "mean_width": st.column_config.NumberColumn(f"mean width ({unit})",
                                                                      format="%.3g")})
