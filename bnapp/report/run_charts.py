"""Every figure of one run, drawn from run_tables' output (library units) in the units shown:
what the Export page's ZIP and HTML report and `analyze` draw."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd

from bnapp.analyses import agreement, stages
from bnapp.analyses.layer_tables import layer_rows
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import RunResult, network_layers
from bnapp.intake.duration import STUDY_ACCESS, STUDY_HOURS
from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report import agreement_charts, bn_charts, importance_charts, network_charts, page_tables


def gamma_figures(sens: pd.DataFrame, lines: pd.DataFrame, spec: ArchSpec, target: str, *,
                  metric: str = "bias", suffix: str = "",
                  display: DisplayUnits = LIBRARY_DISPLAY) -> dict[str, alt.TopLevelMixin]:
    """|γ| against `metric` per layer with a BN and ablation mode: one run's (gamma_scatter) or,
    when the tables carry `input_mode`, both input modes side by side (input_mode_scatter)."""
    chart = (bn_charts.input_mode_scatter if "input_mode" in sens.columns
             else bn_charts.gamma_scatter)
    lines = lines[lines["metric"] == metric].drop(columns="metric")
    figures = {}
    for layer in network_layers(spec):
        rows = layer_rows(sens, layer)
        for mode in rows.dropna(subset=["gamma"])["mode"].unique():
            figures[f"gamma_vs_{metric}_{layer.stem}_{mode}{suffix}"] = chart(
                rows, layer_rows(lines, layer), metric, mode, target=target, display=display)
    return figures


def run_figures(run: RunResult, tables: Mapping[str, pd.DataFrame], *,
                display: DisplayUnits = LIBRARY_DISPLAY, t_hours=STUDY_HOURS,
                access: str = STUDY_ACCESS) -> dict[str, alt.TopLevelMixin]:
    """The charts of run_tables' output (library units; run_tables' t_hours and access), keyed
    by file stem, in `display`'s units."""
    figures = {
        "architecture": network_charts.architecture_chart(
            run.spec, len(run.features), run.features, target=run.target, display=display),
        "baselines": network_charts.baseline_chart(tables["baselines"], target=run.target,
                                                   display=display),
    }
    for layer in network_layers(run.spec):
        title = page_tables.layer_title(run.spec, layer)
        per_fold = layer_rows(tables["bn_parameters_per_fold"], layer)
        figures[f"parameters_{layer.stem}"] = bn_charts.parameter_chart(
            per_fold.drop(columns=["layer", "hidden_layer"]), title, display=display,
            input_mode=run.spec.input_mode)
        quantiles = layer_rows(tables["stage_quantiles"], layer)
        figures[f"stages_{layer.stem}"] = bn_charts.stage_boxplot(
            quantiles.drop(columns=["layer", "hidden_layer"]), title, layer=layer.kind,
            display=display)
    figures |= gamma_figures(tables["sensitivity"], tables["fit_lines"], run.spec, run.target,
                             display=display)
    if len(tables["loss_curves"]):
        figures["loss"] = network_charts.loss_curves(
            tables["loss_curves"], stages.held_out_errors(run), target=run.target,
            display=display)
    if len(tables["gamma_curves"]):  # γ has no unit
        figures["gamma_trajectories"] = network_charts.gamma_trajectories(tables["gamma_curves"])
    return (figures | agreement_figures(run, tables, t_hours=t_hours, access=access,
                                        display=display)
            | importance_figures(run, tables, display=display))


def agreement_figures(run: RunResult, tables: Mapping[str, pd.DataFrame], *,
                      display: DisplayUnits = LIBRARY_DISPLAY, t_hours=STUDY_HOURS,
                      access: str = STUDY_ACCESS) -> dict[str, alt.TopLevelMixin]:
    """Per quantity, the share within the acceptable difference, a Bland–Altman plot per method
    (dots named by their row in the data file, the acceptable difference drawn) and
    calibration; interval coverage."""
    points = agreement.identify(agreement.agreement_points(run, t_hours=t_hours, access=access),
                                run.row_ids)
    curves = agreement.calibration_curves(points)
    share = tables["share_within"]
    figures = {}
    # each chart filters the rows it is given: split the points (a million sessions: 8M lines)
    # once, not once per chart
    for quantity, of_quantity in points.groupby("quantity", sort=False):
        figures[f"share_within_{quantity}"] = agreement_charts.share_within_chart(
            share, quantity, display=display)
        tolerance = share.loc[share["quantity"] == quantity, "tolerance"].iloc[0]
        for method, rows in of_quantity.groupby("method", sort=False):
            figures[f"bland_altman_{method}_{quantity}"] = agreement_charts.bland_altman_chart(
                rows, tables["agreement"], method, quantity, tolerance=float(tolerance),
                display=display)
        figures[f"calibration_{quantity}"] = agreement_charts.calibration_chart(
            of_quantity, curves, tables["calibration"], quantity, display=display)
    coverage = tables["coverage"]
    figures["interval_coverage"] = agreement_charts.coverage_chart(
        coverage, float(coverage["level"].iloc[0]), run.target, display=display)
    return figures


def importance_figures(run: RunResult, tables: Mapping[str, pd.DataFrame], *,
                       display: DisplayUnits = LIBRARY_DISPLAY) -> dict[str, alt.TopLevelMixin]:
    """The Importance page's figures: per layer the importance per definition and, where the
    layer has a BN, the concordance heatmap; ICE/PDP of the inputs."""
    figures = {}
    for layer in network_layers(run.spec):
        title = page_tables.layer_title(run.spec, layer)
        conc = layer_rows(tables["concordance"], layer)
        if len(conc):  # ranks: no unit
            figures[f"concordance_{layer.stem}"] = importance_charts.concordance_heatmap(
                conc, title, n_units=len(run.unit_names(layer)))
        figures[f"importance_{layer.stem}"] = importance_charts.importance_bars(
            layer_rows(tables["importance"], layer), title, target=run.target, display=display)
    figures["ice_pdp"] = importance_charts.ice_pdp_chart(tables["ice"], tables["pdp"],
                                                         target=run.target, display=display)
    return figures
