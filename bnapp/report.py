"""Every table and figure of one run, shared by `python -m bnapp analyze` and the Export page."""

from __future__ import annotations

import altair as alt
import pandas as pd

from bnapp import analysis, charts
from bnapp.association import ASSOCIATION_METRICS
from bnapp.results import RunResult

LAYERS = ("input", "hidden")  # the input BN and the first hidden layer; deeper ones via the library


def run_tables(run: RunResult, *, n_permutations: int = 10, n_boot: int = 2000,
               seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every analysis table of a run, keyed by file stem."""
    per_fold, summary = analysis.bn_parameters(run)
    sens = pd.concat([analysis.sensitivity(run, layer, n_permutations=n_permutations, seed=seed)
                      for layer in LAYERS], ignore_index=True)
    quantiles = pd.concat([analysis.stage_quantiles(analysis.bn_stages(run, layer))
                           .assign(layer=layer) for layer in LAYERS], ignore_index=True)
    loss, gamma = analysis.training_curves(run)
    return {
        "bn_parameters": summary,
        "bn_parameters_per_fold": per_fold,
        "stage_quantiles": quantiles,
        "sensitivity": sens,
        "fit_lines": pd.concat([analysis.fit_lines(sens, m).assign(metric=m)
                                for m in ASSOCIATION_METRICS], ignore_index=True),
        "association": pd.concat([analysis.association(sens, m, n_boot=n_boot, seed=seed)
                                  for m in ASSOCIATION_METRICS], ignore_index=True),
        "baselines": analysis.baselines(run),
        "paired_comparison": analysis.paired_comparison(run),
        "loss_curves": loss,
        "gamma_curves": gamma,
    }


def run_figures(run: RunResult, tables: dict[str, pd.DataFrame]) -> dict[str, alt.TopLevelMixin]:
    """The charts of run_tables' output, keyed by file stem."""
    sens, lines = tables["sensitivity"], tables["fit_lines"]
    figures = {
        "architecture": charts.architecture_chart(run.spec, len(run.features)),
        "parameters": charts.parameter_chart(tables["bn_parameters_per_fold"]),
        "baselines": charts.baseline_chart(tables["baselines"]),
    }
    quantiles = tables["stage_quantiles"]
    for layer in quantiles["layer"].unique():
        figures[f"stages_{layer}"] = charts.stage_boxplot(
            quantiles[quantiles["layer"] == layer].drop(columns="layer"), f"{layer} BN",
            layer=layer)
    for (layer, mode), _ in sens.dropna(subset=["gamma"]).groupby(["layer", "mode"]):
        line_pick = (lines["layer"] == layer) & (lines["metric"] == "bias")
        figures[f"gamma_vs_bias_{layer}_{mode}"] = charts.gamma_scatter(
            sens[sens["layer"] == layer], lines[line_pick].drop(columns="metric"), "bias", mode)
    if len(tables["loss_curves"]):
        figures["loss"] = charts.loss_curves(tables["loss_curves"])
    if len(tables["gamma_curves"]):
        figures["gamma_trajectories"] = charts.gamma_trajectories(tables["gamma_curves"])
    return figures
