"""One answer to the study's question, per definition of importance: does |γ| track it, and how
surely?

The answer reads one number: the mean over folds of each fold's Spearman ρ between its units'
|γ| and their importance (bnapp.analyses.concordance), i.e. whether one trained network's BN
ranks its units as that importance ranks them, which is the study's claim. Its interval should
be a cohort interval (bnapp.analyses.cohort_intervals): it then says whether cohorts like the
user's would give the same answer.

Two other correlations are easily mistaken for it. Pooled over every fold and unit, |γ| and the
importance mostly differ *between* units (an input with a large scale gets both a large γ and a
large effect); *within* one input, across folds, the two can move the other way. When the pooled
and the within-input correlations disagree in sign, the verdict says so in one sentence. Hidden
nodes are not compared within a node across folds: node k of one fold and node k of another
start from different weights and are unrelated units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnapp.analyses.association import association
from bnapp.analyses.cohort_intervals import run_replicates
from bnapp.analyses.concordance import concordance
from bnapp.analyses.layer_tables import layer_rows, tag_layer
from bnapp.analyses.sensitivity import sensitivity
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.results import INPUT, Layer, RunResult

WHY_DEFINITIONS_DISAGREE = (
    "Why the definitions can disagree: Shapley values, integrated gradients and gradient × input "
    "measure how much the prediction moves with a unit; the ablations measure how much the error "
    "grows without it, and setting a raw input to 0 (the study's choice) asks the network about "
    "sessions far outside the data, so its error says more about extrapolation than about "
    "importance. A unit can move predictions a lot and still cost little error when the others "
    "carry the same information. The Sensitivity page gives the same answer as this one for the "
    "same ablation and ΔMSE.")
STRONG = 0.5  # |ρ| from which a rank agreement is called clear rather than weak
VERDICT_COLUMNS = ("definition", "estimate", "ci_low", "ci_high", "interval", "answer",
                   "sentence", "pooled", "within_unit", "sign_note")
ATTRIBUTIONS = {"shapley": "mean |Shapley value|",
                "integrated_gradients": "mean |integrated gradients|",
                "gradient_x_input": "mean |gradient × input|"}
ABLATIONS = {"zero": "set to 0 (the study's)", "mean": "set to its mean", "permutation": "permuted"}
METRICS = {"delta_mse": "ΔMSE", "bias": "|mean error| (the study's)", "rmse": "RMSE"}


def label(definition: str) -> str:
    """A definition of importance in words: "ΔMSE, permuted", "mean |Shapley value|"."""
    if definition in ATTRIBUTIONS:
        return ATTRIBUTIONS[definition]
    _, mode, *metric = definition.split("_", 2)
    metric = metric[0] if metric else "delta_mse"
    return f"{METRICS.get(metric, metric)}, {ABLATIONS.get(mode, mode)}"


def answer(estimate: float, low: float, high: float) -> str:
    """'yes, clearly', 'yes, weakly', 'inverse', 'compatible with no association' or
    'not enough folds to say', from a rank correlation and its interval."""
    if not np.isfinite([estimate, low, high]).all():
        return "not enough folds to say"
    if low > 0:
        return "yes, clearly" if estimate >= STRONG else "yes, weakly"
    if high < 0:
        return "inverse"
    return "compatible with no association"


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(stats.spearmanr(x, y).statistic)


def sign_note(pooled: float, within: float) -> str:
    """One sentence when the pooled and the within-unit correlations have opposite signs."""
    if not (np.isfinite(pooled) and np.isfinite(within)) or np.sign(pooled) * np.sign(within) >= 0:
        return ""
    rises, falls = ("rises", "falls") if pooled > 0 else ("falls", "rises")
    return (f"Pooled over inputs and folds, importance {rises} with |γ| (ρ {pooled:.2f}), but "
            f"within each input, across folds, it {falls} (mean ρ {within:.2f}): the pooled "
            "association is a difference between inputs, not a link within one.")


def verdict(concordance: pd.DataFrame, importance: pd.DataFrame,
            layer: Layer = INPUT) -> pd.DataFrame:
    """Per definition of importance of one layer: DataFrame[definition, estimate, ci_low,
    ci_high, interval, answer, sentence, pooled, within_unit, sign_note].

    concordance: bnapp.analyses.concordance.concordance's table (best with cohort=, so that the
    interval describes cohorts like this one); importance: the table it was computed from
    (fold, unit, definition, importance, gamma). estimate and its interval are the "spearman"
    row; pooled is Spearman over every fold and unit; within_unit the mean over inputs of the
    Spearman across folds (NaN for a hidden layer: its nodes are not aligned across folds)."""
    rho = layer_rows(concordance, layer)
    rho = rho[rho["statistic"] == "spearman"].set_index("definition")
    rows = []
    for definition, g in layer_rows(importance, layer).dropna(subset=["gamma"]).groupby(
            "definition", sort=False):
        x, y = g["gamma"].abs().to_numpy(float), g["importance"].to_numpy(float)
        pooled = _spearman(x, y)
        within = np.array([_spearman(u["gamma"].abs().to_numpy(float),
                                     u["importance"].to_numpy(float))
                           for _, u in g.groupby("unit", sort=False)] if layer == INPUT else [])
        within = float(np.nanmean(within)) if np.isfinite(within).any() else np.nan
        r = rho.loc[definition]
        said = answer(r["estimate"], r["ci_low"], r["ci_high"])
        sentence = (f"{label(definition)}: {said} (ρ {r['estimate']:.2f}, "
                    f"95% interval {r['ci_low']:.2f} to {r['ci_high']:.2f}).")
        rows.append({"definition": definition, "estimate": r["estimate"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"], "interval": r["interval"],
                     "answer": said, "sentence": sentence, "pooled": pooled,
                     "within_unit": within, "sign_note": sign_note(pooled, within)})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def sensitivity_importance(sens: pd.DataFrame, metric: str = "delta_mse") -> pd.DataFrame:
    """A sensitivity table (bnapp.analyses.sensitivity, tagged with hidden_layer or not) as an
    importance table for concordance and verdict: one definition per ablation mode, named as
    bnapp.analyses.concordance names them for ΔMSE ("ablation_permutation"), with the metric
    appended for another ("ablation_zero_bias"), so that the Sensitivity page's verdict for a
    definition is the Importance page's."""
    suffix = "" if metric == "delta_mse" else f"_{metric}"
    out = sens.assign(definition="ablation_" + sens["mode"] + suffix,
                      importance=sens[metric])
    if "hidden_layer" not in out.columns:
        out = out.assign(hidden_layer=pd.array([pd.NA] * len(out), dtype="Int64"))
    return out[["layer", "hidden_layer", "fold", "unit", "definition", "importance", "gamma"]]


def ablation_report(run: RunResult, layer: Layer, ablation: str, metric: str = "delta_mse", *,
                    groups=None, n_replicates: int = SETTINGS.n_replicates,
                    n_permutations: int = SETTINGS.n_permutations,
                    n_boot: int = SETTINGS.n_boot,
                    seed: int = SETTINGS.seed) -> dict[str, pd.DataFrame]:
    """The Sensitivity page's numbers for one layer, ablation and error measure: {"association"
    (bnapp.analyses.association's table), "verdict" (one row: this definition's answer)}, both
    with intervals that describe cohorts like this one (run_replicates(run, groups,
    n_replicates); the folds' when there are none). For ΔMSE the verdict is the Importance
    page's for the same ablation: the same sensitivity, replicates and concordance."""
    def sens_of(trained: RunResult) -> pd.DataFrame:
        return tag_layer(sensitivity(trained, layer, (ablation,), n_permutations, seed), layer)

    sens = sens_of(run)
    replicates = run_replicates(run, groups, n_replicates, seed)
    replicated = None if replicates is None else replicates.map(sens_of)
    table = sensitivity_importance(sens, metric)
    cohort = None if replicated is None else replicated.map(
        lambda t: sensitivity_importance(t, metric))
    return {"association": association(sens, metric, n_boot=n_boot, seed=seed,
                                       cohort=replicated),
            "verdict": verdict(concordance(table, n_boot, seed, cohort=cohort), table, layer)}
