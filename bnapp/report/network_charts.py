"""Altair figures of the networks: the layers of one (study figure 1), its training curves,
the grid search over architectures, and its error beside the clinical formulas'.

Every builder returns a chart with its data inline and already small (epochs thinned to a point
budget here, on the server); the look and the helpers are the style kit's (bnapp.report.style).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from bnapp.engine.model import ArchSpec
from bnapp.intake.units import DESCRIPTIONS, LIBRARY_DISPLAY, STUDY_TARGET, DisplayUnits
from bnapp.report.style import (
    MAX_POINTS,
    METHOD_LABELS,
    OKABE_ITO,
    WIDTH,
    finish,
    log_axis,
    message_chart,
    metric_label,
    ordered,
    show_metrics,
    unit_scale,
)

# ---------------------------------------------------------------- figure 1: architecture

def _output_name(target: str, display: DisplayUnits) -> str:
    """'equilibrated urea Ueq (mmol/L)': the target in words and the unit it is shown in."""
    words = DESCRIPTIONS.get(target)
    return f"{words} {display.label(target)}" if words else target


def _layer_boxes(spec: ArchSpec, n_inputs: int, features: Sequence[str] | None,
                 target: str, display: DisplayUnits) -> pd.DataFrame:
    mode = "raw values" if spec.input_mode == "raw" else "z-scored with the training scaler"
    names = f": {', '.join(features)}" if features else ""
    rows = [("input", f"Input — {n_inputs} variables{names}", f"{mode}", 0, 0)]
    if spec.input_bn:
        rows.append(("bn", f"Batch normalization ({n_inputs})",
                     "γ, β per input; moving mean, variance", 2 * n_inputs, 2 * n_inputs))
    width = n_inputs
    for i, h in enumerate(spec.hidden, 1):
        act = spec.activation if not spec.hidden_bn else "no activation: BN comes first"
        rows.append(("dense", f"Dense {i} ({h} units)", act, width * h + h, 0))
        if spec.hidden_bn:
            rows.append(("bn", f"Batch normalization ({h}) → {spec.activation}",
                         "γ, β per unit; moving mean, variance", 2 * h, 2 * h))
        width = h
    rows.append(("output", f"Output (1 unit): {_output_name(target, display)}",
                 f"{spec.output_activation} activation", width + 1, 0))
    out = pd.DataFrame(rows, columns=["kind", "name", "detail", "trainable", "non_trainable"])
    out["params"] = [
        "no parameters" if t + nt == 0
        else f"{t} trainable" + (f" + {nt} non-trainable" if nt else "")
        for t, nt in zip(out["trainable"], out["non_trainable"], strict=True)
    ]
    return out


def architecture_chart(spec: ArchSpec, n_inputs: int, features: Sequence[str] | None = None, *,
                       target: str = STUDY_TARGET,
                       display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Study figure 1: the layers top to bottom as boxes with unit and parameter counts; the
    output named with the unit `display` shows the target in."""
    boxes = _layer_boxes(spec, n_inputs, features, target, display)
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
    chart = alt.layer(rect, shaft, head, name, detail, params).properties(width=WIDTH,
                                                                          height=height)
    moving = " (the BN moving statistics)" if counts.non_trainable else ""
    return finish(chart, "Network architecture", [
        spec.label,
        f"{counts.trainable + counts.non_trainable} parameters: {counts.trainable} trainable, "
        f"{counts.non_trainable} non-trainable{moving}",
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


def gamma_trajectories(gamma_curves: pd.DataFrame, *, band: bool = True,
                       max_points: int = MAX_POINTS) -> alt.TopLevelMixin:
    """Input-BN γ over the training epochs per unit: the median over folds with a band from
    their 25th to 75th percentile (default), or each fold a thin line (band=False); epochs
    thinned to max_points."""
    if gamma_curves.empty:
        return message_chart("γ during training", "No training history: imported models carry "
                             "only their final weights.")
    data = gamma_curves.assign(unit=gamma_curves["unit"].astype(str))
    units = ordered(data["unit"])
    color = alt.Color("unit:N", scale=unit_scale(units), title="input", sort=units,
                      legend=alt.Legend(symbolStrokeWidth=3))
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False))
    if band:
        by_epoch = data.groupby(["unit", "epoch"], sort=False)["gamma"]
        stats = pd.DataFrame({"median": by_epoch.median(), "low": by_epoch.quantile(0.25),
                              "high": by_epoch.quantile(0.75)}).reset_index()
        stats, thinned = _thin_epochs(stats, 3 * len(units), max_points)
        area = alt.Chart(stats).mark_area(opacity=0.2).encode(
            x=x, y=alt.Y("low:Q", title="γ (dimensionless)"), y2=alt.Y2("high:Q"),
            color=alt.Color("unit:N", scale=unit_scale(units), legend=None))
        line = alt.Chart(stats).mark_line(strokeWidth=2).encode(
            x=x, y=alt.Y("median:Q"), color=color,
            tooltip=[alt.Tooltip("unit:N", title="input"), alt.Tooltip("epoch:Q"),
                     alt.Tooltip("median:Q", format=".3f", title="median γ")])
        chart = alt.layer(area, line)
        how = ("the line is the median over the folds, the band holds the middle half of "
               "the folds")
    else:
        series = data.groupby(["unit", "fold"]).ngroups
        thin, thinned = _thin_epochs(data, series, max_points)
        chart = alt.Chart(thin).mark_line(strokeWidth=1.2, opacity=0.7).encode(
            x=x, y=alt.Y("gamma:Q", title="γ (dimensionless)"), color=color,
            detail=alt.Detail("fold:N"),
            tooltip=[alt.Tooltip("unit:N"), alt.Tooltip("fold:N"), alt.Tooltip("epoch:Q"),
                     alt.Tooltip("gamma:Q", format=".3f", title="γ")])
        how = "one line per fold"
    return finish(chart.properties(width=WIDTH, height=320), "Input-BN γ during training",
                  f"Each input's BN scale γ per epoch ({how}); γ starts at 1.{thinned}")


LOSS_SERIES = {"loss": "training", "val_loss": "validation"}
HELD_OUT = "test (held out)"


def loss_curves(loss: pd.DataFrame, held_out: pd.DataFrame | None = None, *,
                target: str = STUDY_TARGET, display: DisplayUnits = LIBRARY_DISPLAY,
                max_points: int = MAX_POINTS) -> alt.TopLevelMixin:
    """Training and validation loss (MSE) per epoch, a thin line per fold, log scale, and each
    model's test error (held_out[fold, epoch, mse]) as a dot at the epoch it kept; a series
    without rows has no legend entry; epochs thinned to max_points. Every MSE is shown in the
    square of the unit `display` shows `target` in."""
    if loss.empty:
        return message_chart("Loss during training", "No training history: imported models "
                             "carry only their final weights.")
    long = loss.melt(id_vars=["fold", "epoch"], value_vars=list(LOSS_SERIES),
                     var_name="series", value_name="mse").dropna(subset=["mse"])
    long = display.show(long[long["mse"] > 0], target, ["mse"], power=2)
    if long.empty:
        return message_chart("Loss during training", "The recorded losses are not positive "
                             "numbers, so there is no curve to draw.")
    long["series"] = long["series"].map(LOSS_SERIES)
    long, thinned = _thin_epochs(long, long.groupby(["series", "fold"]).ngroups, max_points)
    dots = pd.DataFrame(columns=["fold", "epoch", "mse"]) if held_out is None else held_out
    dots = display.show(dots[dots["mse"] > 0], target, ["mse"], power=2).assign(series=HELD_OUT)
    colours = dict(zip([*LOSS_SERIES.values(), HELD_OUT], OKABE_ITO[3:6], strict=True))
    shown = [name for name in colours if name in set(long["series"]) | set(dots["series"])]
    values = pd.concat([long["mse"], dots["mse"]])
    mse = metric_label("mse", target, display)
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False))
    y = alt.Y("mse:Q", **log_axis(values.min(), values.max(), f"loss: {mse}"))
    color = alt.Color("series:N", title="rows", scale=alt.Scale(
        domain=shown, range=[colours[name] for name in shown]),
        legend=alt.Legend(symbolStrokeWidth=3))
    tooltip = [alt.Tooltip("series:N", title="rows"), alt.Tooltip("fold:N"),
               alt.Tooltip("epoch:Q"), alt.Tooltip("mse:Q", format=".4g", title=mse)]
    chart = alt.Chart(long).mark_line(strokeWidth=1.2, opacity=0.75).encode(
        x=x, y=y, color=color, detail=alt.Detail("fold:N"), tooltip=tooltip)
    said = ""
    if len(dots):
        chart = alt.layer(chart, alt.Chart(dots).mark_point(
            shape="diamond", filled=True, size=60, opacity=0.9).encode(
            x=x, y=y, color=color, tooltip=tooltip))
        said = (" Dots: each model's error on its test rows, which it never trained on, at the "
                "epoch whose network it kept.")
    return finish(chart.properties(width=WIDTH, height=320), "Loss during training",
                  f"Mean squared error per epoch, one line per fold (log scale).{said}{thinned}")


# ---------------------------------------------------------------- baselines

def baseline_chart(baselines: pd.DataFrame, metric: str = "rmse", *,
                   target: str = STUDY_TARGET,
                   display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Error of the network and the clinical formulas: pooled bar, one dot per fold; an error
    in the unit `display` shows `target` in (R² as it is)."""
    data = show_metrics(baselines, target, display, [metric]).assign(
        fold=baselines["fold"].astype(str), method=baselines["method"].astype(str))
    data["label"] = data["method"].map(METHOD_LABELS).fillna(data["method"])
    order = [METHOD_LABELS.get(m, m) for m in ordered(data["method"])]
    pooled, folds = data[data["fold"] == "pooled"], data[data["fold"] != "pooled"]
    title = metric_label(metric, target, display)
    y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    color = alt.Color("label:N", sort=order,
                      scale=alt.Scale(domain=order, range=list(OKABE_ITO[:len(order)])),
                      legend=None)
    reach = folds.groupby("label")[metric].max()
    pooled = pooled.assign(text_x=np.fmax(pooled[metric], pooled["label"].map(reach).to_numpy()))
    bars = alt.Chart(pooled).mark_bar(opacity=0.5, height=22).encode(
        x=alt.X(f"{metric}:Q", title=title), y=y, color=color,
        tooltip=[alt.Tooltip("label:N", title="method"), alt.Tooltip("n:Q"),
                 alt.Tooltip(f"{metric}:Q", format=".3f", title=title)])
    values = alt.Chart(pooled).mark_text(align="left", dx=10, fontSize=12,
                                         fontWeight="bold").encode(
        x=alt.X("text_x:Q"), y=y, text=alt.Text(f"{metric}:Q", format=".2f"))
    dots = alt.Chart(folds).mark_point(size=40, filled=True, opacity=0.8, color="#333333").encode(
        x=alt.X(f"{metric}:Q"), y=y,
        tooltip=[alt.Tooltip("label:N", title="method"), alt.Tooltip("fold:N"),
                 alt.Tooltip(f"{metric}:Q", format=".3f", title=title)])
    chart = alt.layer(bars, dots, values).properties(width=WIDTH - 180, height=52 * len(order))
    return finish(chart, "Network against the clinical formulas",
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


def grid_heatmap(grid_df: pd.DataFrame, *, target: str = STUDY_TARGET,
                 display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Cross-validated MSE over hidden layers x nodes, a panel per input mode and BN (columns)
    and activations (rows); the best network of each input mode is outlined. The MSEs are in
    the square of the unit `display` shows `target` in.

    A cell holding several configurations (e.g. uneven widths) shows the best of them.
    """
    data = display.show(grid_df, target, ["cv_mse_mean", "cv_mse_sd"], power=2).copy()
    mode = data["input_mode"].map({"raw": "raw", "zscore": "z-scored"}).fillna(data["input_mode"])
    data["col"] = mode.astype(str) + ", " + data.apply(_bn_label, axis=1)
    data["row"] = data["activation"].astype(str) + " → " + data["output_activation"].astype(str)
    cells = (data.dropna(subset=["cv_mse_mean"])
             .sort_values("cv_mse_mean", kind="stable")
             .drop_duplicates(["row", "col", "n_layers", "width"]))
    if cells.empty:
        return message_chart("Grid search", "No configuration has a finite cross-validated error.")
    lo, hi = float(cells["cv_mse_mean"].min()), float(cells["cv_mse_mean"].max())
    # one exploding network (CV MSE 1e36) would turn every other cell the same colour: the
    # colours span up to GRID_COLOUR_SPAN x the best, and worse networks share the last one
    top = min(hi, GRID_COLOUR_SPAN * lo) if lo > 0 else hi
    beyond = int((cells["cv_mse_mean"] > top).sum())
    cells = cells.assign(best=~cells.duplicated("input_mode"))[
        ["row", "col", "n_layers", "width", "cv_mse_mean", "cv_mse_sd", "label", "best"]]
    squared = f"({display.unit(target)})²"
    base = alt.Chart().encode(
        x=alt.X("width:O", title="nodes per layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("n_layers:O", title=None))
    rect = base.mark_rect().encode(
        color=alt.Color("cv_mse_mean:Q", title=["CV MSE", squared],
                        scale=alt.Scale(scheme="viridis", reverse=True, domain=[lo, top],
                                        clamp=True,
                                        type="log" if lo > 0 and top / lo > 3 else "linear")),
        tooltip=[alt.Tooltip("label:N", title="network"),
                 alt.Tooltip("cv_mse_mean:Q", format=".4g", title=f"CV MSE, {squared}"),
                 alt.Tooltip("cv_mse_sd:Q", format=".3g", title=f"SD over folds, {squared}")])
    best = base.mark_rect(fill=None, stroke="black", strokeWidth=2.5).transform_filter(
        alt.datum.best)
    rows, cols = ordered(data["row"]), ordered(data["col"])
    chart = alt.layer(rect, best, data=cells).properties(
        width=26 * cells["width"].nunique(), height=20 * cells["n_layers"].nunique())
    chart = chart.facet(
        row=alt.Row("row:N", sort=rows, title="hidden → output activation",
                    header=alt.Header(labelAngle=0, labelAlign="left")),
        column=alt.Column("col:N", sort=cols, title=None), spacing=8)
    winners = cells[cells["best"]]
    text = "; ".join(f"{w['label']}: {w['cv_mse_mean']:.4g}" for _, w in winners.iterrows())
    return finish(chart, "Grid search: cross-validated error of each network", [
        "In each panel: hidden layers down, nodes per layer across. Lower is better; outlined: "
        "the best network per input mode; blank: training diverged.",
        f"Best: {text}.",
        *([f"Colours stop at {GRID_COLOUR_SPAN:g} × the lowest CV MSE ({top:.4g}): {beyond} "
           f"network{'s' if beyond > 1 else ''} beyond it share the darkest colour."]
          if beyond else []),
    ])
