"""Altair figures of agreement: Bland–Altman plots, calibration, and interval coverage."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from bnapp.analyses.agreement import LARGEST
from bnapp.intake.data import STUDY_TARGET
from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report.style import (
    MAX_POINTS,
    METHOD_LABELS,
    OKABE_ITO,
    WIDTH,
    finish,
    message_chart,
    sample,
)

PANEL = 320  # side of one calibration panel
BLAND_ALTMAN_HEIGHT = 380
BAR_HEIGHT = 34  # of one bar in the coverage and share charts, room for its number
COVERAGE_LABELS = {"cv_plus": "CV+ (as Predict gives), nested",
                   "split_conformal": "held-out split-conformal"}


def _method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def quantity_label(quantity: str) -> str:
    """How a quantity is written for users: 'eKt/V' for the dose, a target by its name."""
    return "eKt/V" if quantity == "eKtV" else quantity


def _unit(quantity: str, display: DisplayUnits) -> str:
    """'Ueq, mmol/L'; eKt/V has no unit; any other target in its own ('y, units of y')."""
    return "eKt/V" if quantity == "eKtV" else f"{quantity}, {display.unit(quantity)}"


def quantity_unit(quantity: str, display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """The unit a quantity's values and differences are shown in: 'mmol/L'; eKt/V 'none'."""
    return "none" if quantity == "eKtV" else display.unit(quantity)


# the columns of the agreement tables in the quantity's unit (slopes, p-values, counts and
# shares are not)
SHOWN_COLUMNS = ["measured", "predicted", "mean", "difference", "tolerance", "bias", "sd",
                 "loa_low", "loa_high", "loa_low_ci_low", "loa_low_ci_high", "loa_high_ci_low",
                 "loa_high_ci_high", "bias_ci_low", "bias_ci_high", "intercept",
                 "intercept_ci_low", "intercept_ci_high", "lowess", "mean_width"]


def shown(frame: pd.DataFrame, display: DisplayUnits, quantity: str | None = None
          ) -> pd.DataFrame:
    """An agreement frame's values in the shown unit of each row's quantity (its `quantity`
    column, else `quantity`); eKt/V as it is."""
    if quantity is not None:
        return display.show(frame, quantity, SHOWN_COLUMNS)
    return display.show_by(frame, "quantity", SHOWN_COLUMNS)


def shown_table(frame: pd.DataFrame, display: DisplayUnits = LIBRARY_DISPLAY,
                quantity: str | None = None) -> pd.DataFrame:
    """A page's agreement table as shown and downloaded: `shown`, with a `unit` column naming
    each row's unit (after the quantity's, written as users write it) or `quantity`'s."""
    out = shown(frame, display, quantity).copy()  # not the caller's (cached) frame
    if quantity is not None:
        out["unit"] = quantity_unit(quantity, display)
        return out
    out.insert(out.columns.get_loc("quantity") + 1, "unit",
               [quantity_unit(q, display) for q in out["quantity"]])
    return out.assign(quantity=out["quantity"].map(quantity_label))


def _identity_tooltips(rows: pd.DataFrame, group_name: str | None) -> list[alt.Tooltip]:
    """Which session a dot is: its row in the data file and, when known, its group."""
    found = [alt.Tooltip("data_row:Q", title="row in the data file", format="d")
             ] if "data_row" in rows else []
    return found + ([alt.Tooltip("group:N", title=group_name or "group")]
                    if "group" in rows else [])


def bland_altman_chart(points: pd.DataFrame, table: pd.DataFrame, method: str,
                       quantity: str = "Ueq", *, tolerance: float | None = None,
                       group_name: str | None = None,
                       display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Difference (method − measured) against the pair's mean, with the bias, the 95 % limits
    of agreement, their confidence intervals as shaded bands, the proportional-bias line and,
    given a tolerance, the acceptable difference ± tolerance. Points identified by
    agreement.identify name their row (and group, called group_name) in the tooltip; the
    largest differences are always among the dots drawn. Values, given in library units (the
    tolerance too), are drawn in `display`'s."""
    title = f"Bland–Altman: {_method_label(method)}, {quantity_label(quantity)}"
    rows = points[(points["method"] == method) & (points["quantity"] == quantity)]
    rows = shown(rows.dropna(subset=["mean", "difference"]), display, quantity)
    found = table[(table["method"] == method) & (table["quantity"] == quantity)]
    if rows.empty or found.empty or pd.isna(found.iloc[0]["bias"]):
        return message_chart(title, "Too few test rows with a value for this method.")
    stats = shown(found, display, quantity).iloc[0]
    if tolerance is not None:
        tolerance = tolerance / display.factor(quantity)
    unit = _unit(quantity, display)
    x = alt.X("mean:Q", title=f"mean of method and measured ({unit})", scale=alt.Scale(zero=False))
    y = alt.Y("difference:Q", title=f"method − measured ({unit})")
    largest = rows["difference"].abs().nlargest(LARGEST).index
    drawn = pd.concat([rows.loc[largest], sample(rows.drop(index=largest), MAX_POINTS - LARGEST)])
    dots = alt.Chart(drawn).mark_circle(size=30, opacity=0.6, color=OKABE_ITO[3]).encode(
        x=x, y=y, tooltip=[*_identity_tooltips(rows, group_name),
                           alt.Tooltip("measured:Q", format=".3g"),
                           alt.Tooltip("predicted:Q", format=".3g"),
                           alt.Tooltip("difference:Q", title="method − measured", format=".3g")])
    lines = pd.DataFrame({
        "what": ["bias", "lower limit", "upper limit"],
        "value": [stats["bias"], stats["loa_low"], stats["loa_high"]],
        "low": [stats["bias_ci_low"], stats["loa_low_ci_low"], stats["loa_high_ci_low"]],
        "high": [stats["bias_ci_high"], stats["loa_low_ci_high"], stats["loa_high_ci_high"]],
    })
    bands = alt.Chart(lines).mark_rect(opacity=0.15, color=OKABE_ITO[4]).encode(
        y=alt.Y("low:Q"), y2=alt.Y2("high:Q"))
    rules = alt.Chart(lines).mark_rule(strokeWidth=1.5).encode(
        y=alt.Y("value:Q"),
        strokeDash=alt.StrokeDashValue([6, 4], condition={"test": "datum.what == 'bias'",
                                                          "value": [1, 0]}),
        color=alt.ColorValue(OKABE_ITO[4]),
        tooltip=[alt.Tooltip("what:N"), alt.Tooltip("value:Q", format=".3g"),
                 alt.Tooltip("low:Q", title="CI low", format=".3g"),
                 alt.Tooltip("high:Q", title="CI high", format=".3g")])
    lines["label"] = [f"{what} {value:.3g}" for what, value in zip(lines["what"], lines["value"],
                                                                  strict=True)]
    labels = alt.Chart(lines).mark_text(align="right", dy=-6, fontSize=11, color="#333333").encode(
        y=alt.Y("value:Q"), x=alt.XValue(WIDTH - 180), text=alt.Text("label:N"))
    # the table's proportional bias (the difference regressed on the method's value over every
    # row, not only the dots drawn) passes through (mean predicted, bias); a point of that line
    # at predicted p sits at mean = p - difference / 2 on these axes
    ends = np.array([rows["predicted"].min(), rows["predicted"].max()])
    along = stats["bias"] + stats["proportional_slope"] * (ends - rows["predicted"].mean())
    trend = alt.Chart(pd.DataFrame({"mean": ends - along / 2, "difference": along})).mark_line(
        color="#555555", strokeDash=[2, 2]).encode(x=x, y=y)
    layers = [bands, rules, dots, trend, labels]
    if tolerance is not None:
        layers.append(alt.Chart(pd.DataFrame({"value": [-tolerance, tolerance]})).mark_rule(
            color=OKABE_ITO[2], strokeDash=[2, 4], strokeWidth=2).encode(
            y=alt.Y("value:Q"), tooltip=[alt.Tooltip("value:Q", title="acceptable difference",
                                                     format=".3g")]))
    chart = alt.layer(*layers).properties(width=WIDTH - 180, height=BLAND_ALTMAN_HEIGHT)
    accept = ([f"Green dotted: the acceptable difference ± {tolerance:.3g}"]
              if tolerance is not None else [])
    return finish(chart, title, [
        f"n = {int(stats['n'])} test rows; bias {stats['bias']:.3g}, 95 % limits of agreement "
        f"{stats['loa_low']:.3g} to {stats['loa_high']:.3g}",
        f"Shaded: 95 % CIs ({stats['ci_method']}); dotted: proportional bias (difference on "
        f"the method's value), slope "
        f"{stats['proportional_slope']:.3g} [{stats['proportional_slope_ci_low']:.3g}, "
        f"{stats['proportional_slope_ci_high']:.3g}]", *accept])


def calibration_chart(points: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame,
                      quantity: str = "Ueq", *,
                      display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Measured against predicted, one panel per method: identity line, LOWESS, and the
    calibration slope and intercept in the panel's header; values in `display`'s units."""
    unit = _unit(quantity, display)
    rows = shown(points[points["quantity"] == quantity], display, quantity).dropna(
        subset=["predicted", "measured"])
    if rows.empty:
        return message_chart(f"Calibration, {quantity_label(quantity)}",
                             "No test rows with a value.")
    lo = float(min(rows["predicted"].min(), rows["measured"].min()))
    hi = float(max(rows["predicted"].max(), rows["measured"].max()))
    methods = list(pd.unique(rows["method"]))
    fits = shown(table[table["quantity"] == quantity], display, quantity).set_index("method")
    headers = {m: f"{_method_label(m)}|slope {fits.at[m, 'slope']:.3g} "
                  f"[{fits.at[m, 'slope_ci_low']:.3g}, {fits.at[m, 'slope_ci_high']:.3g}], "
                  f"intercept {fits.at[m, 'intercept']:.3g}" for m in methods}
    smooth = shown(curves[curves["quantity"] == quantity], display, quantity).rename(
        columns={"lowess": "measured"})
    per_panel = MAX_POINTS // len(methods)
    # one faceted chart rather than a panel per method: a third of the time to build and convert
    data = pd.concat([
        *(sample(rows[rows["method"] == m], per_panel).assign(kind="dot") for m in methods),
        smooth.assign(kind="lowess"),
        pd.DataFrame({"method": np.repeat(methods, 2), "predicted": [lo, hi] * len(methods),
                      "measured": [lo, hi] * len(methods), "kind": "identity"}),
    ], ignore_index=True)[["method", "kind", "predicted", "measured"]]
    data["panel"] = data["method"].map(headers)
    scale = alt.Scale(domain=[lo, hi], zero=False, nice=False)
    x = alt.X("predicted:Q", title=f"predicted ({unit})", scale=scale)
    y = alt.Y("measured:Q", title=f"measured ({unit})", scale=scale)
    identity = alt.Chart().mark_line(color="#888888", strokeDash=[4, 4]).encode(x=x, y=y)
    dots = alt.Chart().mark_circle(size=22, opacity=0.55).encode(
        x=x, y=y, color=alt.Color("method:N", legend=None, scale=alt.Scale(
            domain=methods, range=[OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(methods))])))
    line = alt.Chart().mark_line(color="#000000", strokeWidth=2).encode(x=x, y=y)
    chart = alt.layer(identity.transform_filter("datum.kind == 'identity'"),
                      dots.transform_filter("datum.kind == 'dot'"),
                      line.transform_filter("datum.kind == 'lowess'"), data=data).properties(
        width=PANEL, height=PANEL).facet(
        facet=alt.Facet("panel:N", sort=[headers[m] for m in methods], title=None,
                        header=alt.Header(labelExpr="split(datum.value, '|')", labelAnchor="start",
                                          labelAlign="left", labelFontSize=12,
                                          labelLimit=2 * PANEL)), columns=2)
    mine = curves[curves["quantity"] == quantity]
    sampled = mine[mine["fitted_rows"] < mine["rows"]]
    fitted_on = (f", fitted on a random {int(sampled['fitted_rows'].iloc[0]):,} of the "
                 f"{int(sampled['rows'].iloc[0]):,} test rows" if len(sampled) else "")
    largest = int(rows["method"].value_counts().max())
    dots = (f"Dots: a random {per_panel:,} of each method's {largest:,} test rows. "
            if largest > per_panel else "")
    return finish(chart, f"Calibration: measured against predicted {quantity_label(quantity)}", [
        f"{dots}Dashed: identity (perfect calibration); black: smoothed trend{fitted_on}.",
        "Slope and intercept from measured = intercept + slope · predicted, 95 % CIs in "
        "brackets."])


def coverage_chart(coverage: pd.DataFrame, level: float, target: str = STUDY_TARGET, *,
                   display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Share of test rows inside their prediction interval, per method and interval
    construction (conformal.INTERVALS: CV+ nested, held-out split-conformal): the pooled bar
    with its number and one dot per fold, against the nominal level; beside it, the intervals'
    mean width (in the shown unit of `target`), numbered too: a coverage bought by width
    shows."""
    # too few rows for the level give unbounded intervals: no width to draw (JSON has no inf)
    data = shown(coverage.replace([np.inf, -np.inf], np.nan), display, target)
    data = data.assign(label=data["method"].map(_method_label).fillna(data["method"]),
                       construction=data["interval"].map(COVERAGE_LABELS))
    order = list(pd.unique(data["label"]))
    kinds = [COVERAGE_LABELS[k] for k in COVERAGE_LABELS if k in set(data["interval"])]
    pooled, folds = data[data["fold"] == "pooled"], data[data["fold"] != "pooled"]
    y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    offset = alt.YOffset("construction:N", sort=kinds)
    colour = alt.Color("construction:N", sort=kinds, title=None,
                       scale=alt.Scale(domain=kinds, range=list(OKABE_ITO[:len(kinds)])),
                       legend=alt.Legend(orient="bottom", labelLimit=400))
    tooltip = [alt.Tooltip("label:N", title="method"), alt.Tooltip("construction:N"),
               alt.Tooltip("n:Q"), alt.Tooltip("coverage:Q", format=".1%"),
               alt.Tooltip("mean_width:Q", title="mean width", format=".3g")]
    base = alt.Chart(pooled).encode(y=y, yOffset=offset)
    x = alt.X("coverage:Q", title="coverage (share of test rows inside the interval)",
              scale=alt.Scale(domain=[0, 1.15]), axis=alt.Axis(format="%", values=[
                  0, 0.25, 0.5, 0.75, 1]))
    bars = base.mark_bar(opacity=0.6).encode(x=x, color=colour, tooltip=tooltip)
    # the numbers in a column past 100 %, clear of the bars and the fold dots
    numbers = base.mark_text(align="left", dx=6, fontSize=11).encode(
        x=alt.XDatum(1.0), text=alt.Text("coverage:Q", format=".0%"))
    dots = alt.Chart(folds).mark_point(size=30, filled=True, opacity=0.8, color="#333333").encode(
        x=alt.X("coverage:Q"), y=y, yOffset=offset,
        tooltip=[alt.Tooltip("construction:N"), alt.Tooltip("fold:N"),
                 alt.Tooltip("coverage:Q", format=".1%")])
    nominal = alt.Chart(pd.DataFrame({"level": [level]})).mark_rule(
        color=OKABE_ITO[4], strokeDash=[6, 4], strokeWidth=2).encode(x=alt.X("level:Q"))
    height = BAR_HEIGHT * len(kinds) * len(order)
    width = alt.X("mean_width:Q", title=f"mean width ({display.unit(target)})",
                  scale=alt.Scale(domainMax=float(pooled["mean_width"].max() or 1) * 1.3))
    widths = alt.layer(
        base.mark_bar(opacity=0.6).encode(x=width, color=colour, tooltip=tooltip),
        base.mark_text(align="left", dx=4, fontSize=11).encode(
            x=width, text=alt.Text("mean_width:Q", format=".3g")),
    ).properties(width=200, height=height)
    chart = alt.hconcat(
        alt.layer(bars, numbers, dots, nominal).properties(width=WIDTH - 260, height=height),
        widths.encode(y=alt.Y("label:N", sort=order, axis=None)))
    return finish(chart, f"Coverage of the {level:.0%} prediction intervals, and their width", [
        "Bar: all test rows pooled; dots: one per fold; dashed: the nominal level.",
        "CV+: the intervals Predict gives, each fold's rows from models trained without them; "
        "split-conformal: own fold ± the other folds' residuals."])


def share_within_chart(share: pd.DataFrame, quantity: str, *,
                       display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """The share of sessions within the acceptable difference per method (agreement.
    share_within), numbered, with its Wilson interval; the difference in `display`'s unit."""
    data = shown(share[share["quantity"] == quantity], display, quantity)
    title = f"Sessions within the acceptable difference, {quantity_label(quantity)}"
    if data.empty or data["n"].eq(0).all():
        return message_chart(title, "No test rows with a value.")
    data = data.assign(label=data["method"].map(_method_label).fillna(data["method"]))
    tolerance = float(data["tolerance"].iloc[0])
    unit = "" if quantity == "eKtV" else f" {display.unit(quantity)}"
    y = alt.Y("label:N", sort=list(data["label"]), title=None, axis=alt.Axis(labelLimit=260))
    x = alt.X("share:Q", title=f"share of test sessions within ± {tolerance:.3g}{unit}",
              scale=alt.Scale(domain=[0, 1.15]), axis=alt.Axis(format="%", values=[
                  0, 0.25, 0.5, 0.75, 1]))
    tooltip = [alt.Tooltip("label:N", title="method"), alt.Tooltip("within:Q"),
               alt.Tooltip("n:Q", title="sessions"), alt.Tooltip("share:Q", format=".1%"),
               alt.Tooltip("ci_low:Q", title="95 % CI low", format=".1%"),
               alt.Tooltip("ci_high:Q", title="95 % CI high", format=".1%")]
    base = alt.Chart(data).encode(y=y)
    chart = alt.layer(
        base.mark_bar(opacity=0.6, color=OKABE_ITO[2]).encode(x=x, tooltip=tooltip),
        base.mark_rule(color="#333333", strokeWidth=1.5).encode(x=alt.X("ci_low:Q"),
                                                                  x2=alt.X2("ci_high:Q")),
        base.mark_text(align="left", dx=4, dy=-8, fontSize=11).encode(
            x=alt.X("ci_high:Q"), text=alt.Text("share:Q", format=".0%")),
    ).properties(width=WIDTH - 180, height=BAR_HEIGHT * len(data))
    # sized as Vega-Lite sizes it, titles and axes around the bars: Streamlit otherwise fits the
    # whole figure into the bars' height, 8 px a bar under a two-line title
    return finish(chart, title, [
        f"Bar: the share of sessions whose method − measured is within ± {tolerance:.3g}{unit}; "
        "line: its 95 % Wilson interval."]).properties(
        autosize=alt.AutoSizeParams(type="pad", contains="padding"))
