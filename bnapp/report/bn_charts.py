"""Altair figures of what the BN layers hold and learn: each unit's values at the four BN
stages (study figure 2), γ and β across folds, and |γ| against the error when a unit is turned
off (study figures 3-5).

Every builder returns a chart with its data inline and already small (summarized or sampled
here, on the server); the look and the helpers are the style kit's (bnapp.report.style).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from bnapp.analyses.stages import beta_is_zero
from bnapp.engine.model import INPUT_MODES
from bnapp.intake.units import LIBRARY_DISPLAY, STUDY_TARGET, DisplayUnits
from bnapp.report.page_tables import shown_parameters, shown_stages
from bnapp.report.style import (
    MAX_POINTS,
    WIDTH,
    finish,
    log_axis,
    message_chart,
    metric_label,
    metric_power,
    ordered,
    sample,
    shape_scale,
    text_panel,
    unit_scale,
)

STAGE_TITLES = {
    "raw": "Raw",
    "zscore": "z-scored (training scaler)",
    "bn_normalized": "BN-normalized (before γ, β)",
    "bn_output": "BN output (after γ, β)",
}
MODE_LABELS = {
    ("input", "zero"): "input set to 0 (the study's ablation)",
    ("input", "mean"): "input held at its training mean (BN output = β)",
    ("input", "permutation"): "input permuted across test rows",
    ("hidden", "zero"): "node's weights zeroed, one node at a time (the study's ablation)",
    ("hidden", "mean"): "node held at β, the mean of its BN output",
    ("hidden", "permutation"): "node permuted across test rows",
}
GAMMA_TITLE = "|γ| (dimensionless)"
FIT_NAMES = {"linear": "linear fit", "lowess": "smoothed trend"}  # LOWESS, frac 0.6
INPUT_MODE_TITLES = {"raw": "Raw inputs", "zscore": "Z-scored inputs"}
STAGE_AXES = {
    "raw": "raw value (each variable in its own unit)",
    "zscore": "z-score (dimensionless)",
    "bn_normalized": "normalized value (dimensionless)",
    "bn_output": "BN output (dimensionless)",
}
HIDDEN_RAW_AXIS = "Dense output (dimensionless)"


# ---------------------------------------------------------------- figure 2: stages

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
        color=alt.Color("unit:N", scale=unit_scale(units), legend=None),
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


def _data_units(units: list[str], display: DisplayUnits) -> str | None:
    """'mmol/L, kg, L': the shown units of the study columns among `units` in order, or None
    when one of them is not a study column (a user's own column: its unit is not known)."""
    shown = [display.unit(u) for u in units]
    if any(s.startswith("units of ") for s in shown):
        return None
    return ", ".join(dict.fromkeys(shown))


def _raw_axis(units: list[str], layer: str, display: DisplayUnits) -> str:
    if layer == "hidden":
        return HIDDEN_RAW_AXIS
    known = _data_units(units, display)
    return f"raw value ({known})" if known else STAGE_AXES["raw"]


def stage_boxplot(quantiles: pd.DataFrame, layer_label: str, *, per_fold: bool = False,
                  layer: str = "input",
                  display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Study figure 2: test-set values per unit at the four stages, one box per unit.

    Drawn from `stage_quantiles` output only (a few numbers per box): pooled folds (fold -1) by
    default, or one box per fold side by side with per_fold=True. layer: "input" or "hidden"
    (names the raw stage's axis). The raw stage is drawn in `display`'s units, each input in
    its own; the other stages are dimensionless.
    """
    if "value" in quantiles.columns:
        raise ValueError("stage_boxplot takes the box summaries: pass stage_quantiles(stages)")
    quantiles = shown_stages(quantiles, display)
    data = quantiles[quantiles["fold"] != -1] if per_fold else quantiles[quantiles["fold"] == -1]
    data = data.assign(stage=data["stage"].astype(str), unit=data["unit"].astype(str))
    units = ordered(data["unit"])
    panels = [
        _stage_panel(data[data["stage"] == stage], units, STAGE_TITLES[stage],
                     _raw_axis(units, layer, display) if stage == "raw" else STAGE_AXES[stage], per_fold)
        for stage in STAGE_TITLES if (data["stage"] == stage).any()
    ]
    chart = alt.concat(*panels, columns=2, spacing=28)
    folds = "one box per fold" if per_fold else "all folds pooled"
    return finish(chart, f"{layer_label}: test-set values at each stage", [
        f"Boxes: quartiles and median ({folds}); whiskers: 1.5 IQR; dots: min/max beyond them.",
    ])


# ---------------------------------------------------------------- figures 3-5: |gamma| vs error

def _scatter_rows(sens: pd.DataFrame, metric: str, mode: str, target: str,
                  display: DisplayUnits) -> pd.DataFrame:
    if metric not in sens.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sensitivity table")
    rows = sens[sens["mode"] == mode].dropna(subset=["abs_gamma", metric])
    return display.show(rows, target, [metric], metric_power(metric))


def _shown_lines(lines: pd.DataFrame, metric: str, target: str,
                 display: DisplayUnits) -> pd.DataFrame:
    """fit_lines' curves in the shown unit: fitted in library units, their y divided by the
    metric's factor. The same lines as fitted to converted points: a least-squares line of y/c
    on x has slope/c and intercept/c, and LOWESS (weights from residuals relative to their
    median) scales with y alike."""
    return display.show(lines, target, ["y"], metric_power(metric))


def _layer_names(points: pd.DataFrame) -> list[str]:
    """'input layer', 'hidden layer' (or 'hidden layer 2' where the table numbers them)."""
    numbers = points.get("hidden_layer", pd.Series(pd.NA, index=points.index))
    return ordered(pd.Series([f"{layer} layer" + ("" if pd.isna(n) else f" {n}")
                              for layer, n in zip(points["layer"], numbers, strict=True)]))


def _scatter_panel(points: pd.DataFrame, fits: pd.DataFrame, metric: str, units: list[str],
                   legend: str, y_title: str, width: int) -> alt.LayerChart:
    """Dots (one per unit and fold) under the fitted lines of each unit."""
    points = points[["unit", "fold", "abs_gamma", "gamma", metric]].rename(
        columns={metric: "metric"}).assign(unit=lambda d: d["unit"].astype(str))
    fits = fits.assign(unit=fits["unit"].astype(str), fit=fits["kind"].map(FIT_NAMES))
    color = alt.Color("unit:N", scale=unit_scale(units), title=legend, sort=units)
    dots = alt.Chart(points).mark_point(size=60, filled=True, opacity=0.8).encode(
        x=alt.X("abs_gamma:Q", title=GAMMA_TITLE),
        y=alt.Y("metric:Q", title=y_title),
        color=color,
        shape=alt.Shape("unit:N", scale=shape_scale(units), title=legend, sort=units),
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
    kinds = ordered(points["layer"])
    sampled = (f" (a random {n_shown:,} of {len(points):,} points shown)"
               if len(points) > n_shown else "")
    return [
        "Ablation: " + "; ".join(MODE_LABELS.get((kind, mode), mode) for kind in kinds)
        + f"; one point per unit and fold{sampled}.",
        "γ is the BN scale each unit learns: how strongly the network amplifies that unit.",
    ]


def _legend_title(points: pd.DataFrame) -> str:
    kinds = ordered(points["layer"])
    return "input" if kinds == ["input"] else "node" if "input" not in kinds else "unit"


def gamma_scatter(sens: pd.DataFrame, lines: pd.DataFrame, metric: str, mode: str, *,
                  target: str = STUDY_TARGET,
                  display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Study figures 3-5: |γ| against the error with one unit turned off, per unit and fold.

    `lines` is fit_lines(sens, metric): a linear fit (solid) and LOWESS curve (dashed) per unit.
    More than MAX_POINTS points are sampled (the lines use every point). target: the predicted
    column, whose unit the error axis is in (the unit `display` shows it in).
    """
    points = _scatter_rows(sens, metric, mode, target, display)
    if points.empty:
        return message_chart("|γ| against the error", f"No sensitivity rows for mode {mode!r}.")
    fits = lines[(lines["mode"] == mode) & lines["layer"].isin(points["layer"].unique())]
    units = ordered(sens.loc[sens["mode"] == mode, "unit"])
    chart = _scatter_panel(sample(points), _shown_lines(fits, metric, target, display), metric,
                           units, _legend_title(points), metric_label(metric, target, display),
                           WIDTH)
    return finish(chart, "|γ| against the error with one unit turned off — "
                  f"{' and '.join(_layer_names(points))} BN",
                  _scatter_subtitle(points, mode, MAX_POINTS))


def input_mode_scatter(sens: pd.DataFrame, lines: pd.DataFrame, metric: str, mode: str, *,
                       target: str = STUDY_TARGET,
                       display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Study figures 3 and 4 side by side: gamma_scatter of the raw-input run beside that of the
    z-score run, on shared axes.

    sens, lines: compare_input_modes' "sensitivity" and "fit_lines" (for one metric), tables
    with an input_mode column. Each panel samples MAX_POINTS / 2 points; the error axis in
    `display`'s unit of the target.
    """
    points = _scatter_rows(sens, metric, mode, target, display)
    if points.empty:
        return message_chart("|γ| against the error", f"No sensitivity rows for mode {mode!r}.")
    units = ordered(sens.loc[sens["mode"] == mode, "unit"])
    legend, y_title = _legend_title(points), metric_label(metric, target, display)
    lines = _shown_lines(lines, metric, target, display)
    panels = []
    for input_mode in INPUT_MODES:
        mine = points[points["input_mode"] == input_mode]
        title = alt.TitleParams(INPUT_MODE_TITLES[input_mode], anchor="middle", fontSize=13)
        if mine.empty:
            panels.append(text_panel("No γ: this run has no BN on this layer.", WIDTH // 2,
                                     380).properties(title=title))
            continue
        fits = lines[(lines["input_mode"] == input_mode) & (lines["mode"] == mode)
                     & lines["layer"].isin(mine["layer"].unique())]
        panels.append(_scatter_panel(sample(mine, MAX_POINTS // 2), fits, metric, units, legend,
                                     y_title, WIDTH // 2).properties(title=title))
    chart = alt.hconcat(*panels, spacing=24).resolve_scale(x="shared", y="shared")
    return finish(chart, "|γ| against the error, raw against z-scored inputs — "
                  f"{' and '.join(_layer_names(points))} BN",
                  [*_scatter_subtitle(points, mode, MAX_POINTS), "The same network on the "
                    "same folds; both panels share their axes."])


# ---------------------------------------------------------------- parameters

def _std_titles(units: list[str], display: DisplayUnits, input_mode: str) -> tuple[str, str]:
    """Axis titles of the scaler's std and the BN moving std: the inputs' shown units, the
    moving std of z-scored inputs dimensionless; 'data units' for hidden nodes and columns of
    the user's own."""
    known = _data_units(units, display)
    moving = ("z-score units, dimensionless" if known and input_mode == "zscore"
              else known or "data units")
    return f"training-scaler std ({known or 'data units'})", f"BN moving std ({moving})"


def parameter_chart(per_fold: pd.DataFrame, layer_label: str = "", *,
                    display: DisplayUnits = LIBRARY_DISPLAY,
                    input_mode: str = "raw") -> alt.TopLevelMixin:
    """γ and β of each unit across folds, beside the BN moving std against the scaler std;
    layer_label (page_tables.layer_title) names the layer in the title. The stds in `display`'s
    units (page_tables.shown_parameters: the BN's of a run on z-scored inputs stay z-scores;
    input_mode is the run's); γ and β are dimensionless."""
    data = shown_parameters(per_fold, display, input_mode)
    data = data.assign(unit=data["unit"].astype(str))
    units = ordered(data["unit"])
    color = alt.Color("unit:N", scale=unit_scale(units), legend=None)
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

    panels, words = [], ["γ, β: one dot per fold; bar: mean ± SD."]
    if data["gamma"].notna().any():
        panels.append(strip("gamma", "γ (scale, dimensionless)"))
        if beta_is_zero(data):
            words = ["γ: one dot per fold; bar: mean ± SD.",
                     f"β is 0 in every fold up to rounding (largest |β| "
                     f"{data['beta'].abs().max():.0e}), so it is not drawn."]
        else:
            panels.append(strip("beta", "β (shift, dimensionless)"))
    stds = data.dropna(subset=["moving_std", "scaler_std"])
    if not stds.empty:
        lo = float(min(stds["moving_std"].min(), stds["scaler_std"].min()))
        hi = float(max(stds["moving_std"].max(), stds["scaler_std"].max()))
        x_title, y_title = _std_titles(units, display, input_mode)
        if lo > 0 and hi / lo > 20:
            x_axis = log_axis(lo, hi, x_title)
            y_axis = {**x_axis, "title": y_title}
        else:
            pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
            scale = alt.Scale(zero=False, nice=False, domain=[lo - pad, hi + pad])
            x_axis = {"scale": scale, "title": x_title}
            y_axis = {"scale": scale, "title": y_title}
        ends = x_axis["scale"].domain
        diagonal = alt.Chart(pd.DataFrame({"a": ends})).mark_line(
            color="#888888", strokeDash=[4, 4]).encode(x=alt.X("a:Q", scale=x_axis["scale"]),
                                                       y=alt.Y("a:Q", scale=y_axis["scale"]))
        dots = alt.Chart(stds).mark_point(size=45, opacity=0.8, filled=True).encode(
            x=alt.X("scaler_std:Q", **x_axis), y=alt.Y("moving_std:Q", **y_axis),
            color=alt.Color("unit:N", scale=unit_scale(units), title="unit", sort=units),
            shape=alt.Shape("unit:N", scale=shape_scale(units), title="unit", sort=units),
            tooltip=[*tooltip, alt.Tooltip("moving_std:Q", format=".4g"),
                     alt.Tooltip("scaler_std:Q", format=".4g")])
        panels.append(alt.layer(diagonal, dots).properties(width=230, height=230))
    if not panels:
        return message_chart(f"{layer_label or 'BN'} parameters",
                             "This layer has no batch normalization.")
    chart = alt.hconcat(*panels, spacing=24).resolve_scale(color="independent", shape="independent")
    title = f"{layer_label}: what it learned" if layer_label else "What the BN layer learned"
    return finish(chart, f"{title}, per unit across folds", [
        *words, "Right: the BN moving std against the z-score scaler's std (dashed: equal)."])
