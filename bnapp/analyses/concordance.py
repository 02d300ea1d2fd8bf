"""Does |γ| rank units like each definition of importance does? Global importance and concordance.

Per fold and unit, importance under six definitions: mean |Shapley value|, mean |integrated
gradients| (baseline: the training mean), mean |gradient × input| over the fold's test rows, and
the ΔMSE of the three ablations of `bnapp.analyses.sensitivity`. Per fold, the rank agreement of
|γ| with each (Spearman ρ and Kendall τ over the layer's units, and whether both name the same
most important unit); pooled as the mean over folds, with intervals over cohorts like the run's
from `bnapp.analyses.cohort_intervals`, or else a percentile bootstrap over its folds (which
describes those folds only; `bnapp.analyses.association` does the same for its τ).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bnapp.analyses import explain
from bnapp.analyses.association import fold_mean_ci, rowwise_kendall_tau, rowwise_pearson
from bnapp.analyses.cohort_intervals import (
    FOLD_INTERVAL,
    Replicated,
    run_replicates,
    with_intervals,
)
from bnapp.analyses.layer_tables import layer_rows, replicates_sensitivity, tag_layer
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
                       "ci_high", "n_folds", "interval")


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


def _rank_statistics(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(F, 3): STATISTICS of each row pair of (F, units) arrays without NaN. numpy, not scipy's
    spearmanr and kendalltau (~1 ms a call; the cohort intervals make folds x definitions x
    replicates of them); a constant row gives NaN as scipy does."""
    return np.column_stack([
        rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)),
        rowwise_kendall_tau(x, y),
        (np.argmax(x, axis=1) == np.argmax(y, axis=1)).astype(float)])


def _per_fold(g: pd.DataFrame) -> pd.DataFrame:
    """STATISTICS of |γ| against the importance over each fold's units with both known (NaN
    with fewer than two), folds in order of appearance."""
    fold, folds = pd.factorize(g["fold"])
    unit, units = pd.factorize(g["unit"])
    x = np.full((len(folds), len(units)), np.nan)
    y = x.copy()
    x[fold, unit], y[fold, unit] = np.abs(g["gamma"].to_numpy(float)), g["importance"]
    known = ~(np.isnan(x) | np.isnan(y))
    out = np.full((len(folds), len(STATISTICS)), np.nan)
    full = known.all(1) & (len(units) >= 2)
    out[full] = _rank_statistics(x[full], y[full])
    for f in np.flatnonzero(~full & (known.sum(1) >= 2)):  # a fold with unknown units
        out[f] = _rank_statistics(x[f, known[f]][None], y[f, known[f]][None])[0]
    return pd.DataFrame(out, columns=list(STATISTICS))


def concordance(importance: pd.DataFrame, n_boot: int = SETTINGS.n_boot, seed: int = SETTINGS.seed,
                level: float = 0.95, *, cohort: Replicated | None = None) -> pd.DataFrame:
    """Per layer and definition: the mean over folds of each fold's Spearman ρ and Kendall τ
    between |γ| and the importance over units, and the share of folds where both name the same
    most important unit, with intervals.

    DataFrame[layer, hidden_layer, definition, statistic, estimate, ci_low, ci_high, n_folds,
    interval] (n_folds: folds where the statistic is defined); layers without γ are left out.
    cohort: the same importance table of every bootstrap replicate of the run
    (bnapp.analyses.cohort_intervals); the intervals then describe cohorts like this one.
    Without it they are percentile intervals of a bootstrap over folds, which describe this data
    set's folds. `interval` says which.
    """
    rng = np.random.default_rng(seed)
    rows = []
    usable = importance.dropna(subset=["gamma"])
    keys = ["layer", "hidden_layer", "definition"]
    for values, g in usable.groupby(keys, sort=False, dropna=False):
        per_fold = _per_fold(g)
        for statistic in STATISTICS:
            estimate, low, high, n = fold_mean_ci(per_fold[statistic], n_boot, rng, level)
            rows.append({**dict(zip(keys, values, strict=True)), "statistic": statistic,
                         "estimate": estimate, "ci_low": low, "ci_high": high, "n_folds": n,
                         "interval": FOLD_INTERVAL})
    out = pd.DataFrame(rows, columns=list(CONCORDANCE_COLUMNS))
    out = out.astype({"hidden_layer": "Int64", "n_folds": int})
    if cohort is None:
        return out
    return with_intervals(out, cohort.map(lambda t: concordance(t, n_boot=0)),
                          [*keys, "statistic"], level, {"top_unit_agreement": (0.0, 1.0)})


def importance_report(run: RunResult, layers: list[Layer] | None = None, *,
                      n_background: int = SETTINGS.n_background,
                      n_permutations: int = SETTINGS.n_permutations, n_boot: int = SETTINGS.n_boot,
                      seed: int = SETTINGS.seed, sens: pd.DataFrame | None = None,
                      max_rows: int | None = MAX_ROWS, groups=None,
                      n_replicates: int = SETTINGS.n_replicates,
                      replicates: Replicated | None = None) -> dict[str, pd.DataFrame]:
    """{"shapley" (the input layer's per-row Shapley values with base value and prediction),
    "importance", "concordance"} over the given layers (default: every layer).

    sens: importance_tables' "sensitivity" (every layer, every mode), when already computed;
    max_rows: test rows explained per fold (a seeded sample beyond it; None: all);
    the concordance intervals describe cohorts like this one, from `replicates` (the runs of
    bnapp.analyses.cohort_intervals.replicate_runs, when already trained) or else from
    run_replicates(run, groups, n_replicates); with none (n_replicates 0, a very large run)
    they describe its folds."""
    layers = network_layers(run.spec) if layers is None else layers
    if replicates is None:
        replicates = run_replicates(run, groups, n_replicates, seed)
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
    cohort = None
    if replicates is not None:
        shared = replicates_sensitivity(replicates, layers, ABLATIONS, n_permutations, seed)
        cohort = Replicated([importance_report(r, layers, n_background=n_background,
                                               n_permutations=n_permutations, n_boot=0,
                                               seed=seed, sens=s, max_rows=max_rows,
                                               n_replicates=0)["importance"]
                             for r, s in zip(replicates.items, shared.items, strict=True)],
                            replicates.describes)
    return {"importance": table, "concordance": concordance(table, n_boot, seed, cohort=cohort),
            "shapley": shapley if shapley is not None else pd.DataFrame()}
