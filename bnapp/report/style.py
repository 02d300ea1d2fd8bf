"""The chart style kit: the one look, words and helpers every figure of bnapp shares.

The palette, marker shapes, font, width and point budgets; the words of the metrics and methods
on axes and legends; and the helpers the figure modules build with (title and theme, a message
instead of an empty figure, colour and shape scales in the data's order, log axes, sampling).
The figures live in modules named for what they draw: `data_charts`, `network_charts`,
`bn_charts`, `importance_charts` and `agreement_charts`.

Every figure holds its data inline and already small (binned, summarized or sampled on the
server), so neither the browser nor an export ever receives raw patient rows or loads anything
from the network. Text from a user's file (column names, units) is only ever used as data values
and titles, which Vega draws as plain text, never as field names, which Vega-Lite would parse
for dots and brackets.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from bnapp.intake.units import LIBRARY_DISPLAY, STUDY_TARGET, DisplayUnits

# Okabe & Ito (2008), the colour-blind-safe qualitative palette; yellow last (weak on white).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000",
             "#F0E442")
SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "wedge",
          "stroke")
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
WIDTH = 600
MAX_POINTS = 3000  # points per chart beyond which scatters are sampled and lines thinned
# a line chart's budget on screen: a browser on a 2-core machine draws ~0.1 ms per point, so a
# run's two curve charts at MAX_POINTS took 0.6 s after the Train click, and the ICE curves
# half the Importance page's first visit; their downloads keep MAX_POINTS
SCREEN_LINE_POINTS = 800

# metric -> its words and the power of the target's unit it is in (0: unit given in the words)
METRIC_WORDS = {
    "bias": ("bias |mean error| (the study's 'MSPE')", 1),
    "mean_error": ("mean error", 1),
    "std_error": ("SD of the error", 1),
    "mse": ("MSE", 2),
    "rmse": ("RMSE", 1),
    "mae": ("mean absolute error", 1),
    "delta_mse": ("ΔMSE vs intact model", 2),
    "mean_percent_error": ("mean percent error, %", 0),
    "std_percent_error": ("SD of the percent error, %", 0),
    "r2": ("R² (dimensionless)", 0),
}


def metric_power(metric: str) -> int:
    """The power of the target's unit a metric is in (MSE 2, RMSE 1, R² 0); 1 for a metric
    METRIC_WORDS does not name."""
    return METRIC_WORDS.get(metric, ("", 1))[1]


def metric_label(metric: str, target: str = STUDY_TARGET,
                 display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """An axis title with the shown unit of the predicted column: 'RMSE, mmol/L', 'MSE, (kg)²'."""
    if metric not in METRIC_WORDS:
        return metric
    words, power = METRIC_WORDS[metric]
    unit = display.unit(target)
    return words if power == 0 else f"{words}, {unit}" if power == 1 else f"{words}, ({unit})²"


def show_metrics(frame: pd.DataFrame, target: str, display: DisplayUnits,
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
    """`frame` with the metric columns it holds (METRIC_WORDS' names, or only `columns`) in the
    shown unit of `target`: for urea in mmol/L, RMSE ÷ 6.006 and MSE ÷ 6.006²."""
    for metric in columns if columns is not None else METRIC_WORDS:
        power = metric_power(metric)
        if metric in frame.columns and power:
            frame = display.show(frame, target, [metric], power)
    return frame


METRIC_LABELS = {metric: metric_label(metric) for metric in METRIC_WORDS}  # predicting Ueq
METHOD_LABELS = {  # a method of the baselines and agreement tables -> its name
    "network": "Network",
    "linear_regression": "Linear regression (OLS)",
    "rate_equation": "Rate equation (Daugirdas–Schneditz)",
    "tattersall": "Tattersall",
}


def theme() -> alt.Config:
    """The one look of every figure: readable at paper size, fonts >= 11 px, no chart border."""
    return alt.Config(
        font=FONT,
        background="white",
        padding=8,
        view=alt.ViewConfig(stroke=None, continuousWidth=WIDTH, continuousHeight=320),
        axis=alt.AxisConfig(labelFontSize=12, titleFontSize=13, titleFontWeight="normal",
                            gridColor="#e6e6e6", domainColor="#555555", tickColor="#555555"),
        legend=alt.LegendConfig(labelFontSize=12, titleFontSize=13, titleFontWeight="normal",
                                labelLimit=320),
        header=alt.HeaderConfig(labelFontSize=13, titleFontSize=13, labelFontWeight="bold"),
        title=alt.TitleConfig(fontSize=15, subtitleFontSize=12, anchor="start",
                              subtitleColor="#444444", offset=10),
        range=alt.RangeConfig(category=list(OKABE_ITO)),
        text=alt.MarkConfig(fontSize=12),
    )


def finish(chart: alt.TopLevelMixin, title: str,
           subtitle: str | Sequence[str] = ()) -> alt.TopLevelMixin:
    """Title the chart and apply the theme (as the chart's own config, so exports and the UI
    look the same whatever Altair theme is active)."""
    params = {"text": title}
    if subtitle:
        params["subtitle"] = subtitle
    chart = chart.properties(title=alt.TitleParams(**params))
    chart.config = theme()
    return chart


def text_panel(message: str, width: int, height: int) -> alt.Chart:
    """A panel of the given size holding one line of grey text (a panel with nothing to draw)."""
    return alt.Chart(pd.DataFrame({"message": [message]})).mark_text(
        fontSize=13, color="#444444").encode(text=alt.Text("message:N")).properties(
        width=width, height=height)


def message_chart(title: str, message: str) -> alt.Chart:
    """A figure that says why there is nothing to draw (e.g. an imported model has no history)."""
    return finish(text_panel(message, WIDTH, 80), title)


def unit_scale(units: Sequence[str]) -> alt.Scale:
    """A colour per unit in the given order, the palette repeating past its eight colours."""
    return alt.Scale(domain=list(units),
                     range=[OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(units))])


def shape_scale(units: Sequence[str]) -> alt.Scale:
    """A marker shape per unit in the given order, beside unit_scale's colours (for print)."""
    return alt.Scale(domain=list(units),
                     range=[SHAPES[i % len(SHAPES)] for i in range(len(units))])


def ordered(values: pd.Series) -> list[str]:
    """Distinct values in order of first appearance (units keep the data's order, not A-Z)."""
    return [str(v) for v in pd.unique(values.astype(str))]


def log_axis(lo: float, hi: float, title: str) -> dict:
    """Scale and axis of a log axis spanning whole decades with 1-2-5 ticks (Vega's default
    log ticks crowd a paper figure)."""
    first, last = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    if last == first:
        last += 1
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if e < last or m == 1]
    return {"scale": alt.Scale(type="log", domain=[10.0**first, 10.0**last], nice=False),
            "axis": alt.Axis(values=ticks, format="~g"), "title": title}


def with_unit(name: str, display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """A column's name with its shown unit, 'Upre (mg/dL)'; other names as they are."""
    return display.label(name)


def sample(frame: pd.DataFrame, limit: int = MAX_POINTS, seed: int = 0) -> pd.DataFrame:
    """At most `limit` rows of the frame, a seeded random sample when it has more."""
    return frame if len(frame) <= limit else frame.sample(n=limit, random_state=seed)



def interval_text(low: float, high: float) -> str:
    """A 95% interval in tables and sentences, 'low to high', or 'not available' when either
    end is not finite."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not available"
    return f"{low:.2f} to {high:.2f}"
