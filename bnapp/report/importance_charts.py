"""Figures and plain-words readings of the importance analyses: concordance of |γ| with every
definition of importance, importance per definition, ICE/PDP and a Shapley waterfall."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from bnapp.intake.data import STUDY_TARGET
from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report.markup import escape_md
from bnapp.report.style import (
    MAX_POINTS,
    METRIC_WORDS,
    OKABE_ITO,
    finish,
    interval_text,
    ordered,
    unit_scale,
    with_unit,
)

DEFINITION_TITLES = {
    "shapley": "mean |Shapley value|",
    "integrated_gradients": "mean |integrated gradients|",
    "gradient_x_input": "mean |gradient × input|",
    "ablation_zero": "ΔMSE, set to 0 (the study's)",
    "ablation_mean": "ΔMSE, held at its mean",
    "ablation_permutation": "ΔMSE, permuted",
}
STATISTIC_TITLES = {"spearman": "Spearman ρ", "kendall_tau": "Kendall τ",
                    "top_unit_agreement": "same top unit (share of folds)"}
GAMMA = "|γ|"


def concordance_table(conc: pd.DataFrame) -> pd.DataFrame:
    """One layer's concordance as a readable table: definition × statistic with its interval."""
    return pd.DataFrame({
        "definition of importance": [DEFINITION_TITLES.get(d, d) for d in conc["definition"]],
        "statistic": [STATISTIC_TITLES.get(s, s) for s in conc["statistic"]],
        "estimate": conc["estimate"].round(3).to_numpy(),
        "95% interval": [interval_text(lo, hi)
                         for lo, hi in zip(conc["ci_low"], conc["ci_high"], strict=True)],
        "folds": conc["n_folds"].to_numpy(),
    })


TOP_UNIT = "top_unit_agreement"


def concordance_heatmap(conc: pd.DataFrame, layer_label: str, *,
                        n_units: int) -> alt.TopLevelMixin:
    """Definition × rank statistic, coloured by the estimate (−1 to 1), labelled with the
    interval; beside it, on its own 0–1 scale, the share of folds where both name the same top
    unit, with chance (1 / n_units: a unit picked at random) marked."""
    data = conc.assign(
        definition_title=[DEFINITION_TITLES.get(d, d) for d in conc["definition"]],
        statistic_title=[STATISTIC_TITLES.get(s, s) for s in conc["statistic"]],
        label=[f"{e:.2f} [{lo:.2f}, {hi:.2f}]" if math.isfinite(e) else "n/a"
               for e, lo, hi in zip(conc["estimate"], conc["ci_low"], conc["ci_high"],
                                    strict=True)])
    rows = ordered(data["definition_title"])
    y = alt.Y("definition_title:N", sort=rows, title=None)
    tooltip = [alt.Tooltip("definition_title:N", title="definition"),
               alt.Tooltip("statistic_title:N", title="statistic"),
               alt.Tooltip("estimate:Q", format=".3f"), alt.Tooltip("label:N", title="95% CI"),
               alt.Tooltip("n_folds:Q", title="folds")]
    ranks = data[data["statistic"] != TOP_UNIT]
    cols = ordered(ranks["statistic_title"])
    base = alt.Chart(ranks).encode(
        x=alt.X("statistic_title:N", sort=cols, title=None, axis=alt.Axis(labelAngle=0)), y=y)
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color("estimate:Q", scale=alt.Scale(scheme="blueorange", domain=[-1, 1]),
                        title="agreement with |γ|"), tooltip=tooltip)
    heat = alt.layer(cells, base.mark_text(fontSize=12).encode(text=alt.Text("label:N")))
    panels = [heat.properties(width=180 * len(cols), height=34 * len(rows))]
    top = data[data["statistic"] == TOP_UNIT]
    chance = 1 / n_units
    if len(top):
        same_rows = alt.Y("definition_title:N", sort=rows, axis=None)  # named on the left
        panels.append(_top_unit_panel(top, same_rows, tooltip, chance).properties(
            width=240, height=34 * len(rows)))
    chart = alt.hconcat(*panels, spacing=16).resolve_scale(y="shared")
    return finish(chart, f"{layer_label}: does |γ| rank units as each definition of importance "
                         "does?",
                  ["Left: mean over folds of each fold's rank correlation over the units, "
                   "[95% bootstrap interval over folds]; 1: the same order, 0: unrelated, "
                   "−1: reversed.",
                   "Right: share of folds where |γ| and the definition name the same most "
                   "important unit, with its interval;",
                   f"dashed: chance ({chance:.0%}, one of {n_units} units picked at random)."])


def _top_unit_panel(top: pd.DataFrame, y: alt.Y, tooltip: list,
                    chance: float) -> alt.LayerChart:
    """Same top unit: a dot and its interval per definition on a 0–1 scale, chance dashed."""
    x = alt.X("estimate:Q", scale=alt.Scale(domain=[0, 1]), title=STATISTIC_TITLES[TOP_UNIT],
              axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1]))
    spread = alt.Chart(top).mark_rule(strokeWidth=2, color="#555555").encode(
        x=alt.X("ci_low:Q", scale=alt.Scale(domain=[0, 1])), x2=alt.X2("ci_high:Q"), y=y)
    dots = alt.Chart(top).mark_point(filled=True, size=80, color=OKABE_ITO[4],
                                     opacity=1).encode(x=x, y=y, tooltip=tooltip)
    line = alt.Chart(pd.DataFrame({"chance": [chance]})).mark_rule(
        strokeDash=[4, 4], color="#333333").encode(x=alt.X("chance:Q"))
    return alt.layer(line, spread, dots)


def importance_power(definition: str) -> int:
    """The power of the target's unit a definition's importance is in: the ablations' ΔMSE is
    squared, Shapley values and the gradients are in the target's unit."""
    return METRIC_WORDS["delta_mse"][1] if definition.startswith("ablation_") else 1


def _unit_power(unit: str, power: int) -> str:
    return unit if power == 1 else f"({unit})²"


def shown_importance(importance: pd.DataFrame, target: str = STUDY_TARGET,
                     display: DisplayUnits = LIBRARY_DISPLAY) -> pd.DataFrame:
    """The per-fold importance table as shown and downloaded: each definition's importance in
    the shown unit of the target (ΔMSE in its square), named in `importance_unit`; γ as is."""
    powers = importance["definition"].astype(str).map(importance_power)
    factor = display.factor(target) ** powers.to_numpy()
    unit = display.unit(target)
    return importance.assign(importance=importance["importance"] / factor,
                             importance_unit=[_unit_power(unit, p) for p in powers])


def importance_bars(importance: pd.DataFrame, layer_label: str, *, target: str | None = None,
                    display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Per definition (and |γ|), each unit's mean importance across folds with the fold range.
    Given the run's `target`, in its shown unit, each panel naming it (ΔMSE's squared); without
    it, as held and unnamed."""
    data = importance.dropna(subset=["importance"])
    titles = [DEFINITION_TITLES.get(d, d) for d in data["definition"]]
    if target is not None:
        data = shown_importance(data, target, display)
        titles = [f"{t}, {u}" for t, u in zip(titles, data["importance_unit"], strict=True)]
    gamma = data.drop_duplicates(["fold", "unit"]).dropna(subset=["gamma"])
    parts = [data.assign(panel=titles)]
    if len(gamma):
        parts.insert(0, gamma.assign(panel=GAMMA, importance=gamma["gamma"].abs()))
    both = pd.concat(parts, ignore_index=True).assign(unit=lambda d: d["unit"].astype(str))
    stats = (both.groupby(["panel", "unit"], sort=False)["importance"]
             .agg(mean="mean", low="min", high="max").reset_index())
    units = ordered(both["unit"])
    y = alt.Y("unit:N", sort=units, title=None)
    bars = alt.Chart().mark_bar(opacity=0.85).encode(
        x=alt.X("mean:Q", title=None), y=y,
        color=alt.Color("unit:N", scale=unit_scale(units), legend=None),
        tooltip=[alt.Tooltip("panel:N", title="definition"), alt.Tooltip("unit:N"),
                 alt.Tooltip("mean:Q", format=".4g", title="mean over folds"),
                 alt.Tooltip("low:Q", format=".4g", title="lowest fold"),
                 alt.Tooltip("high:Q", format=".4g", title="highest fold")])
    spread = alt.Chart().mark_rule(color="black").encode(x=alt.X("low:Q"), x2=alt.X2("high:Q"), y=y)
    chart = alt.layer(bars, spread, data=stats).properties(
        width=170, height=22 * len(units) + 10).facet(
        facet=alt.Facet("panel:N", sort=ordered(stats["panel"]), title=None), columns=4,
    ).resolve_scale(x="independent")
    return finish(chart, f"{layer_label}: importance of each unit under each definition",
                  ["Bar: mean over folds; line: lowest to highest fold. Each panel on its own "
                   "scale (Shapley and IG in the target's unit, ablations in its square)."])


def shapley_table(shapley: pd.DataFrame, target: str = STUDY_TARGET,
                  display: DisplayUnits = LIBRARY_DISPLAY) -> pd.DataFrame:
    """Each test row's Shapley values with base value and prediction, in the shown unit of the
    target, their headers naming it."""
    unit = display.unit(target)
    columns = {"value": f"Shapley value ({unit})", "base_value": f"base value ({unit})",
               "prediction": f"prediction ({unit})"}
    return display.show(shapley, target, columns).rename(columns=columns)


def _inputs_shown(frame: pd.DataFrame, values: list[str], target: str,
                  display: DisplayUnits, predictions: list[str]) -> pd.DataFrame:
    """A long frame of inputs (`unit` names the input) with its input `values` in each input's
    shown unit, `predictions` in the target's, and each input named with its unit."""
    shown = display.show(display.show_by(frame, "unit", values), target, predictions)
    return shown.assign(unit=[with_unit(str(u), display) for u in shown["unit"]])


def ice_pdp_chart(ice: pd.DataFrame, pdp: pd.DataFrame, *, target: str = STUDY_TARGET,
                  max_points: int = MAX_POINTS,
                  display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Per input: ICE curves of sampled rows (grey, as many rows as max_points allows), partial
    dependence (black) with the range of the folds' own partial dependence (band); shaded where
    the values lie beyond some fold's training rows (pdp's in_training_range). Each panel's x
    in its input's shown unit (named in its header), y in the target's."""
    ice = _inputs_shown(ice, ["value"], target, display, ["prediction"])
    pdp = _inputs_shown(pdp, ["value"], target, display, ["pdp", "pdp_low", "pdp_high", "pdp_sd"])
    inputs = ordered(pdp["unit"])
    y_title = f"predicted {target} ({display.unit(target)})"
    x = alt.X("value:Q", title=None, scale=alt.Scale(zero=False))
    beyond = alt.Chart().mark_rect(color="#dddddd", opacity=0.6).encode(
        x=x, x2=alt.X2("value_end:Q"))
    lines = alt.Chart().mark_line(color="#999999", opacity=0.35, strokeWidth=1).encode(
        x=x, y=alt.Y("prediction:Q", title=y_title, scale=alt.Scale(zero=False)),
        detail=alt.Detail("row:N"))
    band = alt.Chart().mark_area(color=OKABE_ITO[3], opacity=0.25).encode(
        x=x, y=alt.Y("pdp_low:Q"), y2=alt.Y2("pdp_high:Q"))
    mean = alt.Chart().mark_line(color="black", strokeWidth=2.5).encode(
        x=x, y=alt.Y("pdp:Q"), tooltip=[alt.Tooltip("value:Q", format=".4g"),
                                 alt.Tooltip("pdp:Q", format=".4g", title="partial dependence")])
    rows = ice["row"].unique()
    keep = rows[:max(1, max_points // max(1, len(ice) // len(rows)))]  # curves, not points, thinned
    outside = _beyond_training(pdp)
    data = pd.concat([ice[ice["row"].isin(keep)].assign(kind="ice"),
                      pdp[["unit", "value", "pdp", "pdp_low", "pdp_high"]].assign(kind="pdp"),
                      outside.assign(kind="beyond")], ignore_index=True)
    data["unit"] = data["unit"].astype(str)
    chart = alt.layer(beyond.transform_filter("datum.kind == 'beyond'"),
                      lines.transform_filter("datum.kind == 'ice'"),
                      band.transform_filter("datum.kind == 'pdp'"),
                      mean.transform_filter("datum.kind == 'pdp'"), data=data).properties(
        width=220, height=180).facet(
        facet=alt.Facet("unit:N", sort=inputs, title=None), columns=3).resolve_scale(x="independent")
    return finish(chart, "How the prediction moves with each input (ICE and partial dependence)", [
        f"Grey: {_sessions(len(keep), len(rows))}, only that input changed.",
        "Black: their mean (fold ensemble); band: range of the folds' own partial dependence.",
        "x: the input's 1st–99th percentile, in the unit its panel names.",
        *_extrapolation_note(outside)])


def _beyond_training(pdp: pd.DataFrame) -> pd.DataFrame:
    """[unit, value, value_end]: the stretches of each input's grid beyond some fold's training
    rows (at the ends: a range is an interval), drawn shaded."""
    if "in_training_range" not in pdp:
        return pd.DataFrame(columns=["unit", "value", "value_end"])
    spans = []
    for unit, g in pdp.groupby("unit", sort=False):
        values, inside = g["value"].to_numpy(), g["in_training_range"].to_numpy(bool)
        if inside.all():
            continue
        if not inside.any():
            spans.append((unit, values[0], values[-1]))
            continue
        first, last = np.flatnonzero(inside)[[0, -1]]
        if first > 0:
            spans.append((unit, values[0], values[first]))
        if last < len(values) - 1:
            spans.append((unit, values[last], values[-1]))
    return pd.DataFrame(spans, columns=["unit", "value", "value_end"])


def _extrapolation_note(outside: pd.DataFrame) -> list[str]:
    if outside.empty:
        return []
    return ["Shaded: values beyond some fold's training rows; the curves extrapolate there.",
            f"Shaded in: {', '.join(ordered(outside['unit'].astype(str)))}."]


def _sessions(drawn: int, sampled: int) -> str:
    return (f"each of the {sampled} sampled sessions" if drawn == sampled else
            f"{drawn} of the {sampled} sampled sessions, one line each")


def shapley_waterfall(contributions: pd.DataFrame, base_value: float, *,
                      target: str = STUDY_TARGET,
                      display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Base value → each input's contribution (bar from the running total) → prediction, in
    the target's shown unit; each input's value in its own."""
    c = display.show(display.show_by(contributions, "unit", ["value"]), target,
                     ["contribution", "contribution_sd"]).reset_index(drop=True)
    base_value = base_value / display.factor(target)
    ends = base_value + np.cumsum(c["contribution"].to_numpy())
    starts = np.concatenate([[base_value], ends[:-1]])
    labels = [f"{with_unit(str(u), display)} = {v:.4g}" for u, v in zip(c["unit"], c["value"], strict=True)]
    prediction = float(ends[-1]) if len(ends) else base_value
    steps = pd.DataFrame({
        "step": ["base value (mean prediction)", *labels, "prediction"],
        "start": [0.0, *starts, 0.0], "end": [base_value, *ends, prediction],
        "amount": [base_value, *c["contribution"], prediction],
        "kind": ["total", *np.where(c["contribution"] >= 0, "raises", "lowers"), "total"]})
    order = list(steps["step"])
    lo = float(min(steps[["start", "end"]].to_numpy()[1:-1].min(initial=base_value),
                   base_value, prediction))
    hi = float(max(steps[["start", "end"]].to_numpy()[1:-1].max(initial=base_value),
                   base_value, prediction))
    pad = 0.15 * (hi - lo) or 1.0
    steps.loc[steps["kind"] == "total", "start"] = lo - pad
    steps["right"] = steps[["start", "end"]].max(axis=1)
    bars = alt.Chart(steps).mark_bar(size=22).encode(
        y=alt.Y("step:N", sort=order, title=None),
        x=alt.X("start:Q", scale=alt.Scale(domain=[lo - pad, hi + pad], nice=False, zero=False),
                title=f"predicted {target} ({display.unit(target)})",
                axis=alt.Axis(tickCount=8)),
        x2=alt.X2("end:Q"),
        color=alt.Color("kind:N", scale=alt.Scale(domain=["total", "raises", "lowers"],
                                                  range=["#777777", OKABE_ITO[4], OKABE_ITO[3]]),
                        title=None),
        tooltip=[alt.Tooltip("step:N"),
                 alt.Tooltip("amount:Q", format="+.4g", title="contribution / value")])
    text = alt.Chart(steps).mark_text(align="left", dx=4).encode(
        y=alt.Y("step:N", sort=order), x=alt.X("right:Q"),
        text=alt.Text("amount:Q", format=".3g"))
    chart = alt.layer(bars, text).properties(width=480, height=30 * len(steps))
    return finish(chart, "Why this prediction: Shapley values of the inputs",
                  ["From the mean prediction over the training rows, each input's contribution "
                   "(mean over folds) adds up exactly to the prediction."])


def session_ice_chart(ice: pd.DataFrame, session: pd.DataFrame, *,
                      target: str = STUDY_TARGET,
                      display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """Per input, the ensemble's prediction as that one input of the session moves (band: the
    folds' range), with the session's own value marked; x in the input's shown unit (named in
    the panel's header), y in the target's."""
    ice = _inputs_shown(ice, ["value"], target, display, ["prediction", "low", "high"])
    session = _inputs_shown(session, ["value"], target, display, [])
    inputs = ordered(ice["unit"])
    data = pd.concat([ice.assign(kind="curve"),
                      session[["unit", "value"]].assign(kind="session")], ignore_index=True)
    data["unit"] = data["unit"].astype(str)
    x = alt.X("value:Q", title=None, scale=alt.Scale(zero=False))
    band = alt.Chart().mark_area(color=OKABE_ITO[1], opacity=0.3).encode(
        x=x, y=alt.Y("low:Q", title=f"predicted {target} ({display.unit(target)})",
                     scale=alt.Scale(zero=False)), y2=alt.Y2("high:Q"))
    line = alt.Chart().mark_line(color=OKABE_ITO[3], strokeWidth=2).encode(
        x=x, y=alt.Y("prediction:Q"), tooltip=[alt.Tooltip("value:Q", format=".4g"),
                                        alt.Tooltip("prediction:Q", format=".4g")])
    here = alt.Chart().mark_rule(color=OKABE_ITO[4], strokeDash=[4, 3]).encode(x=x)
    chart = alt.layer(band.transform_filter("datum.kind == 'curve'"),
                      line.transform_filter("datum.kind == 'curve'"),
                      here.transform_filter("datum.kind == 'session'"), data=data).properties(
        width=200, height=150).facet(facet=alt.Facet("unit:N", sort=inputs, title=None),
                                     columns=3).resolve_scale(x="independent")
    return finish(chart, "This session as one input moves (ICE)",
                  ["Line: fold-ensemble prediction; band: range of the folds; dashed: the "
                   "session's value."])


# ------------------------------------------------------------------------------- plain words

def concordance_answers(verdicts: pd.DataFrame, conc: pd.DataFrame) -> list[str]:
    """One Markdown line per definition: the verdict's sentence (bnapp.analyses.verdict, the
    one every page and report prints), how often the largest |γ| is the most important unit,
    and the verdict's note where pooled and within-input correlations disagree in sign."""
    top = conc[conc["statistic"] == "top_unit_agreement"].set_index("definition")
    lines = []
    for _, row in verdicts.iterrows():
        line = f"- {escape_md(row['sentence'])}"
        if row["definition"] in top.index and math.isfinite(top.loc[row["definition"], "estimate"]):
            t = top.loc[row["definition"]]
            line += (f" The unit with the largest |γ| is also the most important in "
                     f"{t['estimate']:.0%} of folds ({interval_text(t['ci_low'], t['ci_high'])}).")
        if row["sign_note"]:
            line += f" {escape_md(row['sign_note'])}"
        lines.append(line)
    return lines
