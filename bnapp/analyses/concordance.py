"""Does |γ| rank units like each definition of importance does? Global importance and concordance.

Per fold and unit, importance under six definitions: mean |Shapley value|, mean |integrated
gradients| (baseline: the training mean), mean |gradient × input| over the fold's test rows, and
the ΔMSE of the three ablations of `bnapp.analyses.sensitivity`. Per fold, the rank agreement of
|γ| with each (Spearman ρ and Kendall τ over the layer's units, and whether both name the same
most important unit); pooled as the mean over folds with a percentile bootstrap over folds, as
folds are the independent units (`bnapp.analyses.association` does the same for its τ).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bnapp.analyses import explain
from bnapp.analyses.association import fold_mean_ci
from bnapp.analyses.layer_tables import layer_rows, tag_layer
from bnapp.analyses.sensitivity import ABLATIONS, sensitivity
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.results import INPUT, Layer, RunResult, network_layers

DEFINITIONS = ("shapley", "integrated_gradients", "gradient_x_input", "ablation_zero",
               "ablation_mean", "ablation_permutation")
STATISTICS = ("spearman", "kendall_tau", "top_unit_agreement")
IMPORTANCE_COLUMNS = ("layer", "hidden_layer", "fold", "unit", "definition", "importance",
                      "gamma")
MAX_ROWS = 2000  # test rows per fold the dashboard and the export explain (the CLI: all)
CONCORDANCE_COLUMNS = ("layer", "hidden_layer", "definition", "statistic", "estimate", "ci_low",
                       "ci_high", "n_folds")


def explanations(run: RunResult, layer: Layer = INPUT, *,
                 n_background: int = SETTINGS.n_background, n_orders: int = SETTINGS.n_orders,
                 ig_baseline: str = "mean", seed: int = SETTINGS.seed,
                 max_rows: int | None = None) -> dict[str, pd.DataFrame]:
    """Per-row attributions of every fold's test rows over one layer's units: {"shapley",
    "shapley_rows", "integrated_gradients", "integrated_gradients_rows", "gradient_x_input"}.

    n_orders: sampled orders of the units for Shapley values above EXACT_MAX_UNITS units;
    max_rows: at most this many test rows per fold (a seeded sample), default all."""
    shap, shap_rows = explain.shapley_values(run, layer, n_background=n_background,
                                             n_orders=n_orders, seed=seed,
                                             max_rows=max_rows)
    ig, ig_rows = explain.integrated_gradients(run, layer, baseline=ig_baseline, seed=seed,
                                               max_rows=max_rows)
    return {"shapley": shap, "shapley_rows": shap_rows, "integrated_gradients": ig,
            "integrated_gradients_rows": ig_rows,
            "gradient_x_input": explain.gradient_x_input(run, layer, seed=seed,
                                                         max_rows=max_rows)}


def global_importance(run: RunResult, explained: dict[str, pd.DataFrame],
                      layer: Layer = INPUT, *, n_permutations: int = SETTINGS.n_permutations,
                      seed: int = SETTINGS.seed, sens: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per fold x unit x definition: DataFrame[layer, hidden_layer, fold, unit,
    definition, importance, gamma] (gamma NaN where the layer has no BN).

    sens: the layer's sensitivity table with every mode, when already computed."""
    parts = [explained[name].assign(value=explained[name]["value"].abs())
             .groupby(["fold", "unit"], sort=False)["value"].mean()
             .rename("importance").reset_index().assign(definition=name)
             for name in ("shapley", "integrated_gradients", "gradient_x_input")]
    if sens is None:
        sens = sensitivity(run, layer, ABLATIONS, n_permutations, seed)
    parts.append(sens.rename(columns={"delta_mse": "importance"})
                 .assign(definition="ablation_" + sens["mode"])[["fold", "unit", "importance",
                                                                  "definition"]])
    gammas = pd.DataFrame([{"fold": fold.fold, "unit": name,
                            "gamma": float(bn.gamma[u]) if bn is not None else np.nan}
                           for fold in run.folds
                           for bn in [fold.bn(layer)]
                           for u, name in enumerate(run.unit_names(layer))])
    out = pd.concat(parts, ignore_index=True).merge(gammas, on=["fold", "unit"], how="left")
    return tag_layer(out, layer)[list(IMPORTANCE_COLUMNS)]


def _per_fold(g: pd.DataFrame) -> dict[str, float]:
    x, y = np.abs(g["gamma"].to_numpy(float)), g["importance"].to_numpy(float)
    known = ~(np.isnan(x) | np.isnan(y))  # a mask, not dropna: this runs for every fold
    x, y = x[known], y[known]
    if len(x) < 2:
        return dict.fromkeys(STATISTICS, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column: the statistic is NaN
        return {"spearman": stats.spearmanr(x, y).statistic,
                "kendall_tau": stats.kendalltau(x, y).statistic,
                "top_unit_agreement": float(np.argmax(x) == np.argmax(y))}


def concordance(importance: pd.DataFrame, n_boot: int = SETTINGS.n_boot, seed: int = SETTINGS.seed,
                level: float = 0.95) -> pd.DataFrame:
    """Per layer and definition: the mean over folds of each fold's Spearman ρ and Kendall τ
    between |γ| and the importance over units, and the share of folds where both name the same
    most important unit, with percentile bootstrap intervals over folds.

    DataFrame[layer, hidden_layer, definition, statistic, estimate, ci_low, ci_high, n_folds]
    (n_folds: folds where the statistic is defined); layers without γ are left out.
    """
    rng = np.random.default_rng(seed)
    rows = []
    usable = importance.dropna(subset=["gamma"])
    keys = ["layer", "hidden_layer", "definition"]
    for values, g in usable.groupby(keys, sort=False, dropna=False):
        per_fold = pd.DataFrame([_per_fold(f) for _, f in g.groupby("fold", sort=False)])
        for statistic in STATISTICS:
            estimate, low, high, n = fold_mean_ci(per_fold[statistic], n_boot, rng, level)
            rows.append({**dict(zip(keys, values, strict=True)), "statistic": statistic,
                         "estimate": estimate, "ci_low": low, "ci_high": high, "n_folds": n})
    out = pd.DataFrame(rows, columns=list(CONCORDANCE_COLUMNS))
    return out.astype({"hidden_layer": "Int64", "n_folds": int})


def importance_report(run: RunResult, layers: list[Layer] | None = None, *,
                      n_background: int = SETTINGS.n_background,
                      n_permutations: int = SETTINGS.n_permutations, n_boot: int = SETTINGS.n_boot,
                      seed: int = SETTINGS.seed, sens: pd.DataFrame | None = None,
                      max_rows: int | None = MAX_ROWS) -> dict[str, pd.DataFrame]:
    """{"shapley" (the input layer's per-row Shapley values with base value and prediction),
    "importance", "concordance"} over the given layers (default: every layer).

    sens: importance_tables' "sensitivity" (every layer, every mode), when already computed;
    max_rows: test rows explained per fold (a seeded sample beyond it; None: all)."""
    layers = network_layers(run.spec) if layers is None else layers
    importance, shapley = [], None
    for layer in layers:
        explained = explanations(run, layer, n_background=n_background, seed=seed,
                                 max_rows=max_rows)
        if layer.kind == "input":
            shapley = explained["shapley"].merge(explained["shapley_rows"], on=["fold", "row"])
        importance.append(global_importance(
            run, explained, layer, n_permutations=n_permutations, seed=seed,
            sens=None if sens is None else layer_rows(sens, layer).drop(columns="hidden_layer")))
    table = pd.concat(importance, ignore_index=True)
    return {"importance": table, "concordance": concordance(table, n_boot, seed),
            "shapley": shapley if shapley is not None else pd.DataFrame()}
