"""How strongly |gamma| tracks importance: fitted lines per unit and correlations with CIs.

Rows of one fold share a model, so they are not independent. The intervals that describe
cohorts like the run's come from bnapp.analyses.cohort_intervals (sessions resampled, the folds
retrained); without them, a bootstrap of whole folds (all of a fold's units together) describes
this data set's folds only.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bnapp.analyses.cohort_intervals import FOLD_INTERVAL, Replicated, with_intervals
from bnapp.analyses.settings import SETTINGS

# scipy.stats and statsmodels are imported where used: together they take ~1.5 s to import, which
# every page of the dashboard would otherwise pay before its first paint

LOWESS_FRAC = 0.6  # the study's figures
LINE_POINTS = 20
ASSOCIATION_METRICS = ("bias", "delta_mse", "rmse")  # the study's bias, and two better-posed ones
# columns whose values are never pooled, where sens has them: the runs of both input modes
# stacked (bnapp.analyses.layer_tables), and the hidden layers of a deep network
SPLIT_COLUMNS = ("input_mode", "layer", "hidden_layer", "mode")


def _usable(sens: pd.DataFrame, metric: str) -> pd.DataFrame:
    if metric not in sens.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sensitivity table")
    return sens.dropna(subset=["abs_gamma", metric])


def _split(sens: pd.DataFrame) -> list[str]:
    return [c for c in SPLIT_COLUMNS if c in sens.columns]


def _typed(out: pd.DataFrame, sens: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The group columns back in sens's dtypes (row dicts turn a nullable int into objects)."""
    return out.astype({k: sens[k].dtype for k in keys})


def fit_lines(sens: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per layer, mode and unit, over folds: |gamma| vs metric as a linear fit and a LOWESS curve.

    DataFrame[layer, mode, unit, kind ("linear"|"lowess"), x, y], plus the input_mode and
    hidden_layer columns when sens has them; a unit needs at least two distinct |gamma| values for a
    line and three points for LOWESS.
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess

    keys = [*_split(sens), "unit"]
    parts = []
    for values, g in _usable(sens, metric).groupby(keys, sort=False, dropna=False):
        group = dict(zip(keys, values, strict=True))
        x, y = g["abs_gamma"].to_numpy(float), g[metric].to_numpy(float)
        if np.unique(x).size < 2:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), LINE_POINTS)
        parts.append(pd.DataFrame({**group, "kind": "linear", "x": grid,
                                   "y": intercept + slope * grid}))
        if len(x) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = lowess(y, x, frac=LOWESS_FRAC, return_sorted=True)
            parts.append(pd.DataFrame({**group, "kind": "lowess", "x": curve[:, 0],
                                       "y": curve[:, 1]}))
    columns = [*keys, "kind", "x", "y"]
    out = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    return _typed(out, sens, keys)


def rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (B, n) arrays (NaN where a row is constant)."""
    xc = x - x.mean(1, keepdims=True)
    yc = y - y.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(1) / np.sqrt((xc**2).sum(1) * (yc**2).sum(1))


def rowwise_kendall_tau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of (B, n) arrays, as scipy.stats.kendalltau gives it
    (NaN where a row is constant): written out because scipy's call costs ~0.5 ms, which the
    cohort intervals pay for every fold of every replicate."""
    i, j = np.triu_indices(x.shape[1], 1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(1) / np.sqrt(np.abs(sx).sum(1) * np.abs(sy).sum(1))


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def fold_mean_ci(per_fold: np.ndarray, n_boot: int, rng: np.random.Generator,
                 level: float) -> tuple[float, float, float, int]:
    """(mean, CI low, CI high, n) of a statistic's finite per-fold values, the interval a
    percentile bootstrap over the folds; NaNs when no fold defines it."""
    finite = np.asarray(per_fold, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return np.nan, np.nan, np.nan, 0
    boot = finite[rng.integers(0, finite.size, size=(n_boot, finite.size))].mean(1)
    low, high = _percentile_ci(boot, level)
    return float(finite.mean()), low, high, int(finite.size)


def _group_association(g: pd.DataFrame, metric: str, n_boot: int, rng: np.random.Generator,
                       level: float) -> list[dict]:
    from scipy import stats

    codes, folds = pd.factorize(g["fold"])
    order = np.argsort(codes, kind="stable")  # rows grouped by fold: a fold is a block
    x, y = g["abs_gamma"].to_numpy(float)[order], g[metric].to_numpy(float)[order]
    sizes = np.bincount(codes)
    picks = rng.integers(0, len(folds), size=(n_boot, len(folds)))
    boot_idx = None
    if n_boot and len(set(sizes)) == 1:  # equal blocks: every resample has the same length
        starts = np.cumsum([0, *sizes[:-1]])
        boot_idx = (starts[picks][:, :, None] + np.arange(sizes[0])).reshape(n_boot, -1)
    out = []
    for name, transform in (("pearson", None), ("spearman", stats.rankdata)):
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fx, fy = (x, y) if transform is None else (transform(x), transform(y))
            estimate = float(rowwise_pearson(fx[None], fy[None])[0])
            low = high = np.nan
            if boot_idx is not None:
                bx, by = x[boot_idx], y[boot_idx]
                if transform is not None:
                    bx, by = transform(bx, axis=1), transform(by, axis=1)
                low, high = _percentile_ci(rowwise_pearson(bx, by), level)
        out.append({"statistic": name, "estimate": estimate, "ci_low": low, "ci_high": high,
                    "n": len(x), "n_folds": len(folds)})
    # per fold Kendall tau between the |gamma| ranking and the ablation ranking
    blocks = np.cumsum(sizes)[:-1]
    taus = np.array([rowwise_kendall_tau(a[None], b[None])[0]
                     for a, b in zip(np.split(x, blocks), np.split(y, blocks), strict=True)])
    estimate, low, high, n = fold_mean_ci(taus, n_boot, rng, level)
    out.append({"statistic": "kendall_tau", "estimate": estimate, "ci_low": low, "ci_high": high,
                "n": n, "n_folds": len(folds)})
    return out


def association(sens: pd.DataFrame, metric: str, n_boot: int = SETTINGS.n_boot,
                seed: int = SETTINGS.seed, level: float = 0.95, *,
                cohort: Replicated | None = None) -> pd.DataFrame:
    """Per layer and mode: pooled Pearson and Spearman of |gamma| vs metric, mean per-fold
    Kendall tau, with intervals.

    DataFrame[layer, mode, metric, statistic, estimate, ci_low, ci_high, n, n_folds, interval],
    plus the input_mode and hidden_layer columns when sens has them (each value its own group):
    n counts the pooled rows (for kendall_tau, the folds with a defined tau).
    cohort: the same sensitivity table of every bootstrap replicate of the run
    (bnapp.analyses.cohort_intervals); the intervals then describe cohorts like this one.
    Without it they are percentile intervals of a bootstrap over folds (NaN for the pooled ones
    when folds contribute unequal numbers of usable rows), which describe this data set's folds.
    `interval` says which.
    """
    rng = np.random.default_rng(seed)
    keys = _split(sens)
    rows = []
    for values, g in _usable(sens, metric).groupby(keys, sort=False, dropna=False):
        group = dict(zip(keys, values, strict=True))
        for r in _group_association(g, metric, n_boot, rng, level):
            rows.append({**group, "metric": metric, **r})
    columns = [*keys, "metric", "statistic", "estimate", "ci_low", "ci_high", "n", "n_folds"]
    out = _typed(pd.DataFrame(rows, columns=columns), sens, keys)
    if cohort is None:
        return out.assign(interval=FOLD_INTERVAL)
    return with_intervals(out, cohort.map(lambda s: association(s, metric, n_boot=0)),
                          [*keys, "statistic"], level)
