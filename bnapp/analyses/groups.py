"""Validation across groups (patients, dialysis centres): per held-out group, the network
against the formulas, and whether the inputs' |γ| ranking learnt without that group is the same as without another."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from bnapp.analyses.association import rowwise_kendall_tau, rowwise_pearson
from bnapp.analyses.baselines import fold_predictions, quality
from bnapp.analyses.cohort_intervals import Replicated, run_replicates, with_intervals
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.protocols import group_hash
from bnapp.engine.results import INPUT, RunResult

COMPARISON_COLUMNS = ["held_out", "fold", "method", "n", "rmse", "mae", "mean_error", "r2",
                "rmse_minus_network"]
RANK_COLUMNS = ["held_out_a", "held_out_b", "spearman", "kendall", "same_order", "order_a",
                "order_b"]
SUMMARY_COLUMNS = ["statistic", "estimate", "ci_low", "ci_high", "n_pairs", "interval"]


def _check_groups(run: RunResult, groups) -> np.ndarray:
    labels = np.asarray([str(v) for v in np.asarray(groups, dtype=object).tolist()])
    if labels.shape != (len(run.y),):
        raise ValueError(f"{labels.size} group labels for the run's {len(run.y)} rows")
    expected = run.protocol.get("group_hash")
    if expected is not None and group_hash(groups) != expected:
        raise ValueError(f"these are not the labels of {run.protocol.get('group_by')!r} the run "
                         "was trained with")
    return labels


def held_out_names(run: RunResult, groups) -> dict[int, str]:
    """fold -> the group(s) its test rows come from, as text ("0", or "3, 7, 12")."""
    labels = _check_groups(run, groups)
    return {f.fold: ", ".join(_sorted_labels(labels[f.test_rows])) for f in run.folds}


def _sorted_labels(values: np.ndarray) -> list[str]:
    unique = list(dict.fromkeys(values.tolist()))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return sorted(unique)


def held_out_comparison(run: RunResult, groups, t_hours=4.0,
                        access: str = "arterial") -> pd.DataFrame:
    """DataFrame[held_out, fold, method, n, rmse, mae, mean_error, r2, rmse_minus_network]: each
    method (network, linear regression, the kinetic formulas with these session lengths and
    access, `baselines.fold_predictions`) on the test rows of every fold, i.e. on the held-out
    group(s) after training on the others. rmse_minus_network > 0: the network had the smaller
    error on that group."""
    names = held_out_names(run, groups)
    preds = fold_predictions(run, t_hours, access)
    rows = []
    for (fold, method), g in preds.groupby(["fold", "method"], sort=False):
        q = quality(g["truth"].to_numpy(), g["prediction"].to_numpy())
        rows.append({"held_out": names[fold], "fold": fold, "method": method,
                     **{k: q[k] for k in ("n", "rmse", "mae", "mean_error", "r2")}})
    out = pd.DataFrame(rows)
    network = out[out["method"] == "network"].set_index("fold")["rmse"]
    out["rmse_minus_network"] = out["rmse"] - out["fold"].map(network)
    return out[COMPARISON_COLUMNS]


def gamma_by_held_out_group(run: RunResult, groups) -> pd.DataFrame:
    """DataFrame[held_out, fold, input, abs_gamma, rank]: the input BN's |γ| of each fold's
    network (trained without that fold's group(s)); rank 1 = largest |γ|. Empty without an
    input BN layer."""
    names = held_out_names(run, groups)
    rows = []
    for fold in run.folds:
        bn = fold.bn(INPUT)
        if bn is None:
            continue
        size = np.abs(bn.gamma)
        ranks = stats.rankdata(-size, method="average")
        rows += [{"held_out": names[fold.fold], "fold": fold.fold, "input": name,
                  "abs_gamma": float(g), "rank": float(r)}
                 for name, g, r in zip(run.features, size, ranks, strict=True)]
    return pd.DataFrame(rows, columns=["held_out", "fold", "input", "abs_gamma", "rank"])


def gamma_rank_agreement(run: RunResult, groups) -> pd.DataFrame:
    """Every pair of folds: Spearman's ρ and Kendall's τ between their inputs' |γ|, whether the
    order (largest first) is identical, and both orders. Empty without an input BN layer or
    with fewer than 2 inputs (no ranking to compare)."""
    gammas = gamma_by_held_out_group(run, groups)
    if gammas.empty or len(run.features) < 2:
        return pd.DataFrame(columns=RANK_COLUMNS)
    per_fold = {fold: g.set_index("input")["abs_gamma"].reindex(run.features)
                for fold, g in gammas.groupby("fold", sort=True)}
    names = gammas.drop_duplicates("fold").set_index("fold")["held_out"]
    rows = []
    for a, b in itertools.combinations(per_fold, 2):
        x, y = per_fold[a].to_numpy(), per_fold[b].to_numpy()
        order_a, order_b = _order(per_fold[a]), _order(per_fold[b])
        rows.append({"held_out_a": names[a], "held_out_b": names[b],
                     "spearman": float(stats.spearmanr(x, y).statistic),
                     "kendall": float(stats.kendalltau(x, y).statistic),
                     "same_order": order_a == order_b, "order_a": order_a, "order_b": order_b})
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


def _order(abs_gamma: pd.Series) -> str:
    return " > ".join(abs_gamma.sort_values(ascending=False, kind="stable").index)


def _pairwise_agreement(run: RunResult) -> pd.DataFrame:
    """DataFrame[statistic, estimate, n_pairs]: over every pair of folds, the mean Spearman ρ
    and Kendall τ between their inputs' |γ| and the share with the same order (as
    gamma_rank_agreement's rows); NaN without an input BN, 2 inputs or 2 folds."""
    gammas = np.array([np.abs(f.bn(INPUT).gamma) for f in run.folds
                       if f.bn(INPUT) is not None]).reshape(-1, len(run.features))
    a, b = np.triu_indices(len(gammas), 1)
    usable = len(a) and len(run.features) > 1
    x, y = gammas[a], gammas[b]
    values = ([np.nanmean(rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))),
               np.nanmean(rowwise_kendall_tau(x, y)),
               np.mean((np.argsort(-x, 1, kind="stable") == np.argsort(-y, 1, kind="stable"))
                       .all(1))] if usable else [np.nan] * 3)
    return pd.DataFrame({"statistic": ["mean_spearman", "mean_kendall", "share_same_order"],
                         "estimate": values, "n_pairs": len(a)})


def gamma_rank_summary(run: RunResult, groups, *, cohort: Replicated | None = None,
                       n_replicates: int = SETTINGS.n_replicates, seed: int = SETTINGS.seed,
                       level: float = 0.95) -> pd.DataFrame:
    """How alike the inputs' |γ| orders are whichever group is held out, in one row per
    statistic: DataFrame[statistic (mean_spearman, mean_kendall, share_same_order), estimate,
    ci_low, ci_high, n_pairs, interval], the means over gamma_rank_agreement's pairs of folds.

    cohort: the runs of bnapp.analyses.cohort_intervals.replicate_runs (groups resampled and
    the folds retrained), else run_replicates(run, groups, n_replicates); the intervals then
    describe cohorts like this one. Without replicates there is no interval: the folds' pairs
    share their training groups and are no sample to take one from."""
    _check_groups(run, groups)
    if cohort is None:
        cohort = run_replicates(run, groups, n_replicates, seed)
    out = _pairwise_agreement(run)
    if cohort is None:
        return out.assign(ci_low=np.nan, ci_high=np.nan,
                          interval="none (no replicates given)")[SUMMARY_COLUMNS]
    return with_intervals(out, cohort.map(_pairwise_agreement), ["statistic"], level,
                          {"share_same_order": (0.0, 1.0)})[SUMMARY_COLUMNS]
