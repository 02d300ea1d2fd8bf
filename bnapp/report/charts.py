"""Altair figures of the study, built from the analyses' tidy DataFrames.

Every builder returns a chart with its data inline and already small (binned, summarized or
sampled here, on the server), so neither the browser nor an export ever receives raw patient
rows or loads anything from the network. Text from a user's file (column names, units) is only
ever used as data values and titles, which Vega draws as plain text — never as field names,
which Vega-Lite would parse for dots and brackets.

One module, over 600 lines, on purpose: every figure of the study shares this theme, palette,
sampling bound and labelling, and reads best as one visual language in one place. Figures of
the newer analyses live beside it in their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from bnapp.engine.model import INPUT_MODES, ArchSpec
from bnapp.intake.data import STUDY_TARGET
from bnapp.intake.units import LIBRARY_UNITS as UNITS
from bnapp.intake.units import label as column_label
from bnapp.intake.units import target_unit

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

STAGE_TITLES = {
    "raw": "Raw",
    "zscore": "z-scored (training scaler)",
    "bn_normalized": "BN-normalized (before γ, β)",
    "bn_output": "BN output (after γ, β)",
}
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


def metric_label(metric: str, target: str = STUDY_TARGET) -> str:
    """An axis title with the unit of the predicted column: 'RMSE, mg/dL', 'MSE, (kg)²'."""
    if metric not in METRIC_WORDS:
        return metric
    words, power = METRIC_WORDS[metric]
    unit = target_unit(target)
    return words if power == 0 else f"{words}, {unit}" if power == 1 else f"{words}, ({unit})²"


METRIC_LABELS = {metric: metric_label(metric) for metric in METRIC_WORDS}  # predicting Ueq
MODE_LABELS = {
    ("input", "zero"): "input set to 0 (the study's ablation)",
    ("input", "mean"): "input held at its training mean (BN output = β)",
    ("input", "permutation"): "input permuted across test rows",
    ("hidden", "zero"): "node's weights zeroed, one node at a time (the study's ablation)",
    ("hidden", "mean"): "node held at β, the mean of its BN output",
    ("hidden", "permutation"): "node permuted across test rows",
}
METHOD_LABELS = {
    "network": "Network",
    "linear_regression": "Linear regression (OLS)",
    "rate_equation": "Rate equation (Daugirdas–Schneditz)",
    "tattersall": "Tattersall",
}
GAMMA_TITLE = "|γ| (dimensionless)"
FIT_NAMES = {"linear": "linear fit", "lowess": "LOWESS (frac 0.6)"}
INPUT_MODE_TITLES = {"raw": "Raw inputs", "zscore": "Z-scored inputs"}


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


def _finish(chart: alt.TopLevelMixin, title: str,
            subtitle: str | Sequence[str] = ()) -> alt.TopLevelMixin:
    """Title the chart and apply the theme (as the chart's own config, so exports and the UI
    look the same whatever Altair theme is active)."""
    params = {"text": title}
    if subtitle:
        params["subtitle"] = subtitle
    chart = chart.properties(title=alt.TitleParams(**params))
    chart.config = theme()
    return chart


def _text_panel(message: str, width: int, height: int) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"message": [message]})).mark_text(
        fontSize=13, color="#444444").encode(text=alt.Text("message:N")).properties(width=width,
                                                                            height=height)


def _message_chart(title: str, message: str) -> alt.Chart:
    """A figure that says why there is nothing to draw (e.g. an imported model has no history)."""
    return _finish(_text_panel(message, WIDTH, 80), title)


def _unit_scale(units: Sequence[str]) -> alt.Scale:
    return alt.Scale(domain=list(units), range=[OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(units))])


def _shape_scale(units: Sequence[str]) -> alt.Scale:
    return alt.Scale(domain=list(units), range=[SHAPES[i % len(SHAPES)] for i in range(len(units))])


def _ordered(values: pd.Series) -> list[str]:
    """Distinct values in order of first appearance (units keep the data's order, not A-Z)."""
    return [str(v) for v in pd.unique(values.astype(str))]


def _log_axis(lo: float, hi: float, title: str) -> dict:
    """Scale and axis of a log axis spanning whole decades with 1-2-5 ticks (Vega's default
    log ticks crowd a paper figure)."""
    first, last = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    if last == first:
        last += 1
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if e < last or m == 1]
    return {"scale": alt.Scale(type="log", domain=[10.0**first, 10.0**last], nice=False),
            "axis": alt.Axis(values=ticks, format="~g"), "title": title}


def _with_unit(name: str) -> str:
    unit = UNITS.get(name)
    return f"{name} ({unit})" if unit else name


# ---------------------------------------------------------------- figure 1: architecture

def _layer_boxes(spec: ArchSpec, n_inputs: int, features: Sequence[str] | None,
                 target: str) -> pd.DataFrame:
    mode = "raw values" if spec.input_mode == "raw" else "z-scored with the training scaler"
    names = f": {', '.join(features)}" if features else ""
    rows = [("input", f"Input — {n_inputs} variables{names}", f"{mode}", 0, 0)]
    if spec.input_bn:
        rows.append(("bn", f"Batch normalization ({n_inputs})", "γ, β per input; moving mean, variance",
                     2 * n_inputs, 2 * n_inputs))
    width = n_inputs
    for i, h in enumerate(spec.hidden, 1):
        act = spec.activation if not spec.hidden_bn else "no activation: BN comes first"
        rows.append(("dense", f"Dense {i} ({h} units)", act, width * h + h, 0))
        if spec.hidden_bn:
            rows.append(("bn", f"Batch normalization ({h}) → {spec.activation}",
                         "γ, β per unit; moving mean, variance", 2 * h, 2 * h))
        width = h
    rows.append(("output", f"Output (1 unit): {column_label(target)}",
                 f"{spec.output_activation} activation", width + 1, 0))
    out = pd.DataFrame(rows, columns=["kind", "name", "detail", "trainable", "non_trainable"])
    out["params"] = [
        "no parameters" if t + nt == 0 else f"{t} trainable" + (f" + {nt} non-trainable" if nt else "")
        for t, nt in zip(out["trainable"], out["non_trainable"], strict=True)
    ]
    return out


def architecture_chart(spec: ArchSpec, n_inputs: int, features: Sequence[str] | None = None, *,
                       target: str = STUDY_TARGET) -> alt.TopLevelMixin:
    """Study figure 1: the layers top to bottom as boxes with unit and parameter counts."""
    boxes = _layer_boxes(spec, n_inputs, features, target)
    step, box_h = 56, 40
    boxes["top"] = np.arange(len(boxes)) * step
    boxes["bottom"] = boxes["top"] + box_h
    boxes["mid"] = boxes["top"] + box_h / 2
    boxes = boxes.assign(left=0, right=100, text_left=2, text_right=98)
    height = len(boxes) * step - (step - box_h)
    x_scale = alt.Scale(domain=[0, 100])
    y_scale = alt.Scale(domain=[0, height], reverse=True)

    def x(field: str) -> alt.X:
        return alt.X(f"{field}:Q", scale=x_scale, axis=None)

    def y(field: str) -> alt.Y:
        return alt.Y(f"{field}:Q", scale=y_scale, axis=None)

    kinds = {"input": "#bbbbbb", "bn": OKABE_ITO[0], "dense": OKABE_ITO[1], "output": OKABE_ITO[2]}
    kind_scale = alt.Scale(domain=list(kinds), range=list(kinds.values()))
    base = alt.Chart(boxes)
    rect = base.mark_rect(cornerRadius=4, strokeWidth=1.5, fillOpacity=0.3).encode(
        x=x("left"), x2=alt.X2("right:Q"), y=y("top"), y2=alt.Y2("bottom:Q"),
        fill=alt.Fill("kind:N", scale=kind_scale, legend=None),
        stroke=alt.Stroke("kind:N", scale=kind_scale, legend=None))
    name = base.mark_text(align="left", baseline="bottom", dy=-1, fontSize=13, fontWeight="bold",
                          limit=380).encode(x=x("text_left"), y=y("mid"), text=alt.Text("name:N"))
    detail = base.mark_text(align="left", baseline="top", dy=2, fontSize=11, color="#333333",
                            limit=330).encode(x=x("text_left"), y=y("mid"),
                                              text=alt.Text("detail:N"))
    params = base.mark_text(align="right", baseline="middle", fontSize=12).encode(
        x=x("text_right"), y=y("mid"), text=alt.Text("params:N"))
    arrows = pd.DataFrame({"start": boxes["bottom"].iloc[:-1].to_numpy(),
                           "end": boxes["top"].iloc[1:].to_numpy(), "centre": 50})
    shaft = alt.Chart(arrows).mark_rule(strokeWidth=1.5, color="#555555").encode(
        x=x("centre"), y=y("start"), y2=alt.Y2("end:Q"))
    head = alt.Chart(arrows.assign(tip=arrows["end"] - 4)).mark_point(
        shape="triangle-down", filled=True, size=60, color="#555555", opacity=1).encode(
        x=x("centre"), y=y("tip"))
    counts = spec.param_counts(n_inputs)
    chart = alt.layer(rect, shaft, head, name, detail, params).properties(width=WIDTH, height=height)
    moving = " (the BN moving statistics)" if counts.non_trainable else ""
    return _finish(chart, "Network architecture", [
        spec.label,
        f"{counts.trainable + counts.non_trainable} parameters: {counts.trainable} trainable, "
        f"{counts.non_trainable} non-trainable{moving}",
    ])


# ---------------------------------------------------------------- data page

def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Freedman-Diaconis bin count, kept between 10 and 40 (numpy's "fd" would allocate one
    edge per bin first, which a single far outlier can make billions)."""
    q1, q3 = np.percentile(values, [25, 75])
    width = 2 * (q3 - q1) / len(values) ** (1 / 3)
    bins = int(np.clip(np.ptp(values) / width, 10, 40)) if width > 0 else 10
    return np.histogram(values, bins=bins)


def distributions_chart(frame: pd.DataFrame, columns: Sequence[str]) -> alt.TopLevelMixin:
    """One histogram per variable, binned here with numpy so the browser gets only the counts."""
    missing = [str(c) for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in the data: {', '.join(missing)}")
    parts = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            continue
        counts, edges = _histogram(values)
        parts.append(pd.DataFrame({"variable": _with_unit(str(col)), "start": edges[:-1],
                                   "end": edges[1:], "count": counts}))
    if not parts:
        return _message_chart("Distributions", "No numeric values to show in the chosen columns.")
    data = pd.concat(parts, ignore_index=True)
    order = _ordered(data["variable"])
    bars = alt.Chart(data).mark_rect(color=OKABE_ITO[3], stroke="white", strokeWidth=0.5).encode(
        x=alt.X("start:Q", title="value", scale=alt.Scale(zero=False, nice=False)),
        x2=alt.X2("end:Q"),
        y=alt.Y("count:Q", title="patients (rows)"),
        tooltip=[alt.Tooltip("variable:N"), alt.Tooltip("start:Q", format=".4g", title="from"),
                 alt.Tooltip("end:Q", format=".4g", title="to"), alt.Tooltip("count:Q")],
    ).properties(width=180, height=130)
    chart = bars.facet(
        facet=alt.Facet("variable:N", sort=order, title=None), columns=3,
    ).resolve_scale(x="independent", y="independent")
    n = len(frame)
    return _finish(chart, "Distribution of each variable", f"{n:,} usable rows")


# ---------------------------------------------------------------- figure 2: stages

STAGE_AXES = {
    "raw": "raw value (each variable in its own unit)",
    "zscore": "z-score (dimensionless)",
    "bn_normalized": "normalized value (dimensionless)",
    "bn_output": "BN output (dimensionless)",
}
HIDDEN_RAW_AXIS = "Dense output (dimensionless)"


def _stage_panel(data: pd.DataFrame, units: list[str], title: str, y_title: str,
                 per_fold: bool) -> alt.LayerChart:
    """Box plots of one stage drawn from the summaries: rule, bar, median tick, min/max dots."""
    panel_width = 270
    n_folds = data["fold"].nunique() if per_fold else 1
    size = max(2, min(30, int(0.6 * panel_width / max(len(units) * n_folds, 1))))
    x = alt.X("unit:N", sort=units, title=None, axis=alt.Axis(labelAngle=0, labelLimit=90))
    offset = {"xOffset": alt.XOffset("fold:N")} if per_fold else {}
    y = alt.Y("whisker_low:Q", title=y_title, scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=x, **offset)
    whisker = base.mark_rule(color="#333333").encode(y=y, y2=alt.Y2("whisker_high:Q"))
    box = base.mark_bar(size=size, stroke="#333333", strokeWidth=0.8).encode(
        y=alt.Y("q1:Q"), y2=alt.Y2("q3:Q"),
        color=alt.Color("unit:N", scale=_unit_scale(units), legend=None),
        tooltip=[alt.Tooltip("unit:N"), alt.Tooltip("fold:N"), alt.Tooltip("n:Q"),
                 *(alt.Tooltip(f"{c}:Q", format=".4g") for c in
                   ("min", "whisker_low", "q1", "median", "q3", "whisker_high", "max"))])
    median = base.mark_tick(color="black", thickness=2, size=size).encode(y=alt.Y("median:Q"))
    # min/max beyond the whiskers stand in for the outliers the summary does not carry
    low, high = data[data["min"] < data["whisker_low"]], data[data["max"] > data["whisker_high"]]
    extremes = pd.concat([low.assign(extreme=low["min"]), high.assign(extreme=high["max"])])
    dots = alt.Chart(extremes).mark_point(shape="circle", size=14, color="#333333").encode(
        x=x, y=alt.Y("extreme:Q"), **offset)
    return alt.layer(whisker, box, median, dots).properties(
        width=panel_width, height=220, title=alt.TitleParams(title, anchor="middle", fontSize=13))


def _raw_axis(units: list[str], layer: str) -> str:
    if layer == "hidden":
        return HIDDEN_RAW_AXIS
    known = {UNITS[u] for u in units if u in UNITS}
    if len(known) > 1 and all(u in UNITS for u in units):
        return "raw value (" + ", ".join(sorted(known, key=list(UNITS.values()).index)) + ")"
    return STAGE_AXES["raw"]


def stage_boxplot(quantiles: pd.DataFrame, layer_label: str, *, per_fold: bool = False,
                  layer: str = "input") -> alt.TopLevelMixin:
    """Study figure 2: test-set values per unit at the four stages, one box per unit.

    Drawn from `stage_quantiles` output only (a few numbers per box): pooled folds (fold -1) by
    default, or one box per fold side by side with per_fold=True. layer: "input" or "hidden"
    (names the raw stage's axis).
    """
    if "value" in quantiles.columns:
        raise ValueError("stage_boxplot takes the box summaries: pass stage_quantiles(stages)")
    data = quantiles[quantiles["fold"] != -1] if per_fold else quantiles[quantiles["fold"] == -1]
    data = data.assign(stage=data["stage"].astype(str), unit=data["unit"].astype(str))
    units = _ordered(data["unit"])
    panels = [
        _stage_panel(data[data["stage"] == stage], units, STAGE_TITLES[stage],
                     _raw_axis(units, layer) if stage == "raw" else STAGE_AXES[stage], per_fold)
        for stage in STAGE_TITLES if (data["stage"] == stage).any()
    ]
    chart = alt.concat(*panels, columns=2, spacing=28)
    folds = "one box per fold" if per_fold else "all folds pooled"
    return _finish(chart, f"{layer_label}: test-set values at each stage", [
        f"Boxes: quartiles and median ({folds}); whiskers: 1.5 IQR; dots: min/max beyond them.",
    ])


# ---------------------------------------------------------------- figures 3-5: |gamma| vs error

def _sample(frame: pd.DataFrame, limit: int = MAX_POINTS, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= limit else frame.sample(n=limit, random_state=seed)


def _scatter_rows(sens: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    if metric not in sens.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sensitivity table")
    return sens[sens["mode"] == mode].dropna(subset=["abs_gamma", metric])


def _layer_names(points: pd.DataFrame) -> list[str]:
    """'input layer', 'hidden layer' (or 'hidden layer 2' where the table numbers them)."""
    numbers = points.get("hidden_layer", pd.Series(pd.NA, index=points.index))
    return _ordered(pd.Series([f"{layer} layer" + ("" if pd.isna(n) else f" {n}")
                               for layer, n in zip(points["layer"], numbers, strict=True)]))


def _scatter_panel(points: pd.DataFrame, fits: pd.DataFrame, metric: str, units: list[str],
                   legend: str, y_title: str, width: int) -> alt.LayerChart:
    """Dots (one per unit and fold) under the fitted lines of each unit."""
    points = points[["unit", "fold", "abs_gamma", "gamma", metric]].rename(
        columns={metric: "metric"}).assign(unit=lambda d: d["unit"].astype(str))
    fits = fits.assign(unit=fits["unit"].astype(str), fit=fits["kind"].map(FIT_NAMES))
    color = alt.Color("unit:N", scale=_unit_scale(units), title=legend, sort=units)
    dots = alt.Chart(points).mark_point(size=60, filled=True, opacity=0.8).encode(
        x=alt.X("abs_gamma:Q", title=GAMMA_TITLE),
        y=alt.Y("metric:Q", title=y_title),
        color=color,
        shape=alt.Shape("unit:N", scale=_shape_scale(units), title=legend, sort=units),
        tooltip=[alt.Tooltip("unit:N"), alt.Tooltip("fold:N"),
                 alt.Tooltip("gamma:Q", format=".3f", title="γ"),
                 alt.Tooltip("metric:Q", format=".3f", title=y_title)],
    )
    fit = alt.Chart(fits).mark_line(strokeWidth=2).encode(
        x=alt.X("x:Q"), y=alt.Y("y:Q"), color=color, detail=alt.Detail("kind:N"),
        strokeDash=alt.StrokeDash("fit:N", title="line",
                                  scale=alt.Scale(domain=list(FIT_NAMES.values()),
                                                  range=[[1, 0], [6, 4]]),
                                  legend=alt.Legend(symbolSize=600, symbolStrokeWidth=2)),
    )
    return alt.layer(fit, dots).properties(width=width, height=380)


def _scatter_subtitle(points: pd.DataFrame, mode: str, n_shown: int) -> list[str]:
    kinds = _ordered(points["layer"])
    sampled = f" (a random {n_shown:,} of {len(points):,} points shown)" if len(points) > n_shown else ""
    return [
        "Ablation: " + "; ".join(MODE_LABELS.get((kind, mode), mode) for kind in kinds)
        + f"; one point per unit and fold{sampled}.",
        "γ is the BN scale each unit learns: how strongly the network amplifies that unit.",
    ]


def _legend_title(points: pd.DataFrame) -> str:
    kinds = _ordered(points["layer"])
    return "input" if kinds == ["input"] else "node" if "input" not in kinds else "unit"


def gamma_scatter(sens: pd.DataFrame, lines: pd.DataFrame, metric: str, mode: str, *,
                  target: str = STUDY_TARGET) -> alt.TopLevelMixin:
    """Study figures 3-5: |γ| against the error with one unit turned off, per unit and fold.

    `lines` is fit_lines(sens, metric): a linear fit (solid) and LOWESS curve (dashed) per unit.
    More than MAX_POINTS points are sampled (the lines use every point). target: the predicted
    column, whose unit the error axis is in.
    """
    points = _scatter_rows(sens, metric, mode)
    if points.empty:
        return _message_chart("|γ| against the error", f"No sensitivity rows for mode {mode!r}.")
    fits = lines[(lines["mode"] == mode) & lines["layer"].isin(points["layer"].unique())]
    units = _ordered(sens.loc[sens["mode"] == mode, "unit"])
    chart = _scatter_panel(_sample(points), fits, metric, units, _legend_title(points),
                           metric_label(metric, target), WIDTH)
    return _finish(chart, "|γ| against the error with one unit turned off — "
                   f"{' and '.join(_layer_names(points))} BN",
                   _scatter_subtitle(points, mode, MAX_POINTS))


def input_mode_scatter(sens: pd.DataFrame, lines: pd.DataFrame, metric: str, mode: str, *,
                       target: str = STUDY_TARGET) -> alt.TopLevelMixin:
    """Study figures 3 and 4 side by side: gamma_scatter of the raw-input run beside that of the
    z-score run, on shared axes.

    sens, lines: compare_input_modes' "sensitivity" and "fit_lines" (for one metric), tables
    with an input_mode column. Each panel samples MAX_POINTS / 2 points.
    """
    points = _scatter_rows(sens, metric, mode)
    if points.empty:
        return _message_chart("|γ| against the error", f"No sensitivity rows for mode {mode!r}.")
    units = _ordered(sens.loc[sens["mode"] == mode, "unit"])
    legend, y_title = _legend_title(points), metric_label(metric, target)
    panels = []
    for input_mode in INPUT_MODES:
        mine = points[points["input_mode"] == input_mode]
        title = alt.TitleParams(INPUT_MODE_TITLES[input_mode], anchor="middle", fontSize=13)
        if mine.empty:
            panels.append(_text_panel("No γ: this run has no BN on this layer.", WIDTH // 2,
                                      380).properties(title=title))
            continue
        fits = lines[(lines["input_mode"] == input_mode) & (lines["mode"] == mode)
                     & lines["layer"].isin(mine["layer"].unique())]
        panels.append(_scatter_panel(_sample(mine, MAX_POINTS // 2), fits, metric, units, legend,
                                     y_title, WIDTH // 2).properties(title=title))
    chart = alt.hconcat(*panels, spacing=24).resolve_scale(x="shared", y="shared")
    return _finish(chart, "|γ| against the error, raw against z-scored inputs — "
                   f"{' and '.join(_layer_names(points))} BN",
                   [*_scatter_subtitle(points, mode, MAX_POINTS), "The same network on the "
                    "same folds; both panels share their axes."])


# ---------------------------------------------------------------- parameters

def parameter_chart(per_fold: pd.DataFrame, layer_label: str = "") -> alt.TopLevelMixin:
    """γ and β of each unit across folds, beside the BN moving std against the scaler std;
    layer_label (views.layer_title) names the layer in the title."""
    data = per_fold.assign(unit=per_fold["unit"].astype(str))
    units = _ordered(data["unit"])
    color = alt.Color("unit:N", scale=_unit_scale(units), legend=None)
    y = alt.Y("unit:N", sort=units, title=None)
    tooltip = [alt.Tooltip("unit:N"), alt.Tooltip("fold:N")]

    def strip(column: str, title: str) -> alt.LayerChart:
        usable = data.dropna(subset=[column])
        stats = usable.groupby("unit", sort=False)[column].agg(["mean", "std"]).reset_index()
        stats["low"], stats["high"] = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
        tiny = usable[column].abs().max() < 1e-2  # e.g. the study's beta of ~1e-7
        axis = alt.Axis(format=".1e" if tiny else "~g", tickCount=5)
        dots = alt.Chart(usable).mark_point(size=45, opacity=0.7).encode(
            x=alt.X(f"{column}:Q", title=title, axis=axis), y=y, color=color,
            tooltip=[*tooltip, alt.Tooltip(f"{column}:Q", format=".4g")])
        spread = alt.Chart(stats).mark_rule(strokeWidth=2, color="black").encode(
            x=alt.X("low:Q"), x2=alt.X2("high:Q"), y=y)
        mean = alt.Chart(stats).mark_tick(color="black", thickness=2.5, size=16).encode(
            x=alt.X("mean:Q"), y=y)
        return alt.layer(dots, spread, mean).properties(width=190, height=28 * len(units) + 20)

    panels = []
    if data["gamma"].notna().any():
        panels += [strip("gamma", "γ (scale, dimensionless)"), strip("beta", "β (shift, dimensionless)")]
    stds = data.dropna(subset=["moving_std", "scaler_std"])
    if not stds.empty:
        lo = float(min(stds["moving_std"].min(), stds["scaler_std"].min()))
        hi = float(max(stds["moving_std"].max(), stds["scaler_std"].max()))
        if lo > 0 and hi / lo > 20:
            x_axis = _log_axis(lo, hi, "training-scaler std (data units)")
            y_axis = {**x_axis, "title": "BN moving std (data units)"}
        else:
            pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
            scale = alt.Scale(zero=False, nice=False, domain=[lo - pad, hi + pad])
            x_axis = {"scale": scale, "title": "training-scaler std (data units)"}
            y_axis = {"scale": scale, "title": "BN moving std (data units)"}
        ends = x_axis["scale"].domain
        diagonal = alt.Chart(pd.DataFrame({"a": ends})).mark_line(
            color="#888888", strokeDash=[4, 4]).encode(x=alt.X("a:Q", scale=x_axis["scale"]),
                                                       y=alt.Y("a:Q", scale=y_axis["scale"]))
        dots = alt.Chart(stds).mark_point(size=45, opacity=0.8, filled=True).encode(
            x=alt.X("scaler_std:Q", **x_axis), y=alt.Y("moving_std:Q", **y_axis),
            color=alt.Color("unit:N", scale=_unit_scale(units), title="unit", sort=units),
            shape=alt.Shape("unit:N", scale=_shape_scale(units), title="unit", sort=units),
            tooltip=[*tooltip, alt.Tooltip("moving_std:Q", format=".4g"),
                     alt.Tooltip("scaler_std:Q", format=".4g")])
        panels.append(alt.layer(diagonal, dots).properties(width=230, height=230))
    if not panels:
        return _message_chart(f"{layer_label or 'BN'} parameters",
                              "This layer has no batch normalization.")
    chart = alt.hconcat(*panels, spacing=24).resolve_scale(color="independent", shape="independent")
    title = f"{layer_label}: what it learned" if layer_label else "What the BN layer learned"
    return _finish(chart, f"{title}, per unit across folds", [
        "γ, β: one dot per fold; bar: mean ± SD. Right: the BN moving std against the z-score "
        "scaler's std (dashed: equal).",
    ])


# ---------------------------------------------------------------- training curves

def _thin_epochs(frame: pd.DataFrame, series: int, limit: int) -> tuple[pd.DataFrame, str]:
    """Every k-th epoch (and the last) so `series` lines stay within `limit` points, and the
    words saying so ("" when every epoch is kept)."""
    epochs = np.sort(frame["epoch"].unique())
    step = max(1, int(np.ceil(len(epochs) * max(series, 1) / limit)))
    if step == 1:
        return frame, ""
    keep = set(epochs[::step]) | {epochs[-1]}
    return frame[frame["epoch"].isin(keep)], f" Every {_ordinal(step)} epoch drawn."


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def gamma_trajectories(gamma_curves: pd.DataFrame, *, band: bool = False,
                       max_points: int = MAX_POINTS) -> alt.TopLevelMixin:
    """Input-BN γ over the training epochs, a line per unit: each fold a thin line (default)
    or the mean over folds with a ± SD band (band=True); epochs thinned to max_points."""
    if gamma_curves.empty:
        return _message_chart("γ during training", "No training history: imported models carry "
                              "only their final weights.")
    data = gamma_curves.assign(unit=gamma_curves["unit"].astype(str))
    units = _ordered(data["unit"])
    color = alt.Color("unit:N", scale=_unit_scale(units), title="input", sort=units,
                      legend=alt.Legend(symbolStrokeWidth=3))
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False))
    if band:
        stats = data.groupby(["unit", "epoch"], sort=False)["gamma"].agg(["mean", "std"]).reset_index()
        stats["std"] = stats["std"].fillna(0.0)
        stats["low"], stats["high"] = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
        stats, thinned = _thin_epochs(stats, 3 * len(units), max_points)
        area = alt.Chart(stats).mark_area(opacity=0.2).encode(
            x=x, y=alt.Y("low:Q", title="γ (dimensionless)"), y2=alt.Y2("high:Q"),
            color=alt.Color("unit:N", scale=_unit_scale(units), legend=None))
        line = alt.Chart(stats).mark_line(strokeWidth=2).encode(x=x, y=alt.Y("mean:Q"), color=color)
        chart, how = alt.layer(area, line), "mean over folds ± SD"
    else:
        series = data.groupby(["unit", "fold"]).ngroups
        thin, thinned = _thin_epochs(data, series, max_points)
        chart = alt.Chart(thin).mark_line(strokeWidth=1.2, opacity=0.7).encode(
            x=x, y=alt.Y("gamma:Q", title="γ (dimensionless)"), color=color,
            detail=alt.Detail("fold:N"),
            tooltip=[alt.Tooltip("unit:N"), alt.Tooltip("fold:N"), alt.Tooltip("epoch:Q"),
                     alt.Tooltip("gamma:Q", format=".3f", title="γ")])
        how = "one line per fold"
    return _finish(chart.properties(width=WIDTH, height=320), "Input-BN γ during training",
                   f"Each unit's BN scale γ per epoch ({how}); γ starts at 1.{thinned}")


def loss_curves(loss: pd.DataFrame, *, target: str = STUDY_TARGET,
                max_points: int = MAX_POINTS) -> alt.TopLevelMixin:
    """Training and validation loss (MSE) per epoch, a thin line per fold, log scale; epochs
    thinned to max_points."""
    if loss.empty:
        return _message_chart("Loss during training", "No training history: imported models "
                              "carry only their final weights.")
    long = loss.melt(id_vars=["fold", "epoch"], value_vars=["loss", "val_loss"],
                     var_name="series", value_name="mse").dropna(subset=["mse"])
    long = long[long["mse"] > 0]
    if long.empty:
        return _message_chart("Loss during training", "The recorded losses are not positive "
                              "numbers, so there is no curve to draw.")
    long["series"] = long["series"].map({"loss": "training", "val_loss": "validation"})
    long, thinned = _thin_epochs(long, long.groupby(["series", "fold"]).ngroups, max_points)
    chart = alt.Chart(long).mark_line(strokeWidth=1.2, opacity=0.75).encode(
        x=alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False)),
        y=alt.Y("mse:Q", **_log_axis(long["mse"].min(), long["mse"].max(), f"loss: {metric_label('mse', target)}")),
        color=alt.Color("series:N", title="rows", scale=alt.Scale(
            domain=["training", "validation"], range=[OKABE_ITO[3], OKABE_ITO[4]]),
            legend=alt.Legend(symbolStrokeWidth=3)),
        detail=alt.Detail("fold:N"),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("fold:N"), alt.Tooltip("epoch:Q"),
                 alt.Tooltip("mse:Q", format=".4g", title="MSE")],
    ).properties(width=WIDTH, height=320)
    return _finish(chart, "Loss during training", "Mean squared error per epoch, one line per fold "
                   f"(log scale).{thinned}")


# ---------------------------------------------------------------- baselines

def baseline_chart(baselines: pd.DataFrame, metric: str = "rmse", *,
                   target: str = STUDY_TARGET) -> alt.TopLevelMixin:
    """Error of the network and the clinical formulas: pooled bar, one dot per fold."""
    data = baselines.assign(fold=baselines["fold"].astype(str), method=baselines["method"].astype(str))
    data["label"] = data["method"].map(METHOD_LABELS).fillna(data["method"])
    order = [METHOD_LABELS.get(m, m) for m in _ordered(data["method"])]
    pooled, folds = data[data["fold"] == "pooled"], data[data["fold"] != "pooled"]
    title = metric_label(metric, target)
    y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    color = alt.Color("label:N", sort=order, scale=alt.Scale(domain=order, range=list(OKABE_ITO[:len(order)])),
                      legend=None)
    reach = folds.groupby("label")[metric].max()
    pooled = pooled.assign(text_x=np.fmax(pooled[metric], pooled["label"].map(reach).to_numpy()))
    bars = alt.Chart(pooled).mark_bar(opacity=0.5, height=22).encode(
        x=alt.X(f"{metric}:Q", title=title), y=y, color=color,
        tooltip=[alt.Tooltip("label:N", title="method"), alt.Tooltip("n:Q"),
                 alt.Tooltip(f"{metric}:Q", format=".3f")])
    values = alt.Chart(pooled).mark_text(align="left", dx=10, fontSize=12, fontWeight="bold").encode(
        x=alt.X("text_x:Q"), y=y, text=alt.Text(f"{metric}:Q", format=".2f"))
    dots = alt.Chart(folds).mark_point(size=40, filled=True, opacity=0.8, color="#333333").encode(
        x=alt.X(f"{metric}:Q"), y=y,
        tooltip=[alt.Tooltip("label:N", title="method"), alt.Tooltip("fold:N"),
                 alt.Tooltip(f"{metric}:Q", format=".3f")])
    chart = alt.layer(bars, dots, values).properties(width=WIDTH - 180, height=52 * len(order))
    return _finish(chart, "Network against the clinical formulas",
                   "Bar and number: all test rows pooled; dots: one per fold. "
                   + ("Higher is better." if metric == "r2" else "Lower is better."))


# ---------------------------------------------------------------- grid search

GRID_COLOUR_SPAN = 10.0  # the heat-map's colours run from the best CV MSE to this many times it


def _bn_label(row: pd.Series) -> str:
    if "input_bn" in row and "hidden_bn" in row:
        both = {(True, True): "BN", (True, False): "input BN",
                (False, True): "hidden BN", (False, False): "no BN"}
        return both[(bool(row["input_bn"]), bool(row["hidden_bn"]))]
    return "BN" if row["bn"] else "no BN"


def grid_heatmap(grid_df: pd.DataFrame, *, target: str = STUDY_TARGET) -> alt.TopLevelMixin:
    """Cross-validated MSE over hidden layers x nodes, a panel per input mode and BN (columns)
    and activations (rows); the best network of each input mode is outlined.

    A cell holding several configurations (e.g. uneven widths) shows the best of them.
    """
    data = grid_df.copy()
    mode = data["input_mode"].map({"raw": "raw", "zscore": "z-scored"}).fillna(data["input_mode"])
    data["col"] = mode.astype(str) + ", " + data.apply(_bn_label, axis=1)
    data["row"] = data["activation"].astype(str) + " → " + data["output_activation"].astype(str)
    cells = (data.dropna(subset=["cv_mse_mean"])
             .sort_values("cv_mse_mean", kind="stable")
             .drop_duplicates(["row", "col", "n_layers", "width"]))
    if cells.empty:
        return _message_chart("Grid search", "No configuration has a finite cross-validated error.")
    lo, hi = float(cells["cv_mse_mean"].min()), float(cells["cv_mse_mean"].max())
    # one exploding network (CV MSE 1e36) would turn every other cell the same colour: the
    # colours span up to GRID_COLOUR_SPAN x the best, and worse networks share the last one
    top = min(hi, GRID_COLOUR_SPAN * lo) if lo > 0 else hi
    beyond = int((cells["cv_mse_mean"] > top).sum())
    cells = cells.assign(best=~cells.duplicated("input_mode"))[
        ["row", "col", "n_layers", "width", "cv_mse_mean", "cv_mse_sd", "label", "best"]]
    base = alt.Chart().encode(
        x=alt.X("width:O", title="nodes per layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("n_layers:O", title=None))
    rect = base.mark_rect().encode(
        color=alt.Color("cv_mse_mean:Q", title=["CV MSE", f"({target_unit(target)})²"],
                        scale=alt.Scale(scheme="viridis", reverse=True, domain=[lo, top],
                                        clamp=True,
                                        type="log" if lo > 0 and top / lo > 3 else "linear")),
        tooltip=[alt.Tooltip("label:N", title="network"),
                 alt.Tooltip("cv_mse_mean:Q", format=".4g", title="CV MSE"),
                 alt.Tooltip("cv_mse_sd:Q", format=".3g", title="SD over folds")])
    best = base.mark_rect(fill=None, stroke="black", strokeWidth=2.5).transform_filter(
        alt.datum.best)
    rows, cols = _ordered(data["row"]), _ordered(data["col"])
    chart = alt.layer(rect, best, data=cells).properties(
        width=26 * cells["width"].nunique(), height=20 * cells["n_layers"].nunique())
    chart = chart.facet(
        row=alt.Row("row:N", sort=rows, title="hidden → output activation",
                    header=alt.Header(labelAngle=0, labelAlign="left")),
        column=alt.Column("col:N", sort=cols, title=None), spacing=8)
    winners = cells[cells["best"]]
    text = "; ".join(f"{w['label']}: {w['cv_mse_mean']:.4g}" for _, w in winners.iterrows())
    return _finish(chart, "Grid search: cross-validated error of each network", [
        "In each panel: hidden layers down, nodes per layer across. Lower is better; outlined: "
        "the best network per input mode; blank: training diverged.",
        f"Best: {text}.",
        *([f"Colours stop at {GRID_COLOUR_SPAN:g} × the lowest CV MSE ({top:.4g}): {beyond} "
           f"network{'s' if beyond > 1 else ''} beyond it share the darkest colour."]
          if beyond else []),
    ])
