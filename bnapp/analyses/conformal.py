"""Prediction intervals with a coverage guarantee: CV+ (Barber et al. 2021) from a run's folds.

CV+ (Barber, Candès, Ramdas, Tibshirani, "Predictive inference with the jackknife+", Ann Stat
2021;49:486-507, section 3 "K-fold CV+"). Every row i was tested by the model of its fold k(i),
trained without it, which left the out-of-fold residual R_i = |y_i - mu_{-k(i)}(x_i)|. A new
session x gets

    low  = the floor(a (n+1))-th smallest of  mu_{-k(i)}(x) - R_i,
    high = the ceil((1-a)(n+1))-th smallest of mu_{-k(i)}(x) + R_i,      a = 1 - level,

so each fold's model is shifted by the other rows' errors. Coverage is guaranteed to be at least
1 - 2a - sqrt(2/n) for any model and distribution. It is close to 1 - a when the fold models
agree, and above it when they disagree, since the interval spans their spread too
(benchmarks/bench_coverage.py, synthetic cohort, 20 seeds, 90 %: 90.1 % for OLS, 97.5 % for
the network, whose fold models differ by an SD of about 2 mg/dL). With
`normalized=True` the residuals are divided by the spread s(x) of the fold models' predictions
(SD across folds) and the interval half-widths multiplied by it: wider where the folds disagree.
The clinical formulas fit nothing and have no spread: their intervals are the same construction
with one fixed model, which is split-conformal on their residuals.

Empirical coverage (`held_out_intervals`): a row's CV+ interval may not use the row itself, and
every fold model but its own was trained on it. So the check gives each test row of fold k its
own fold's prediction plus or minus the conformal quantile of the residuals of the rows outside
fold k (split-conformal with the other folds as the calibration set): an honest, out-of-sample
interval whose coverage estimates that of CV+.

With k-fold every row has one residual. With repeated k-fold or the study's random splits a row
is tested by several models and every (row, model) pair counts: an approximation without the
formal guarantee.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnapp.analyses.baselines import KINETIC_METHODS, LeastSquares, fold_predictions
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.results import RunResult

DEFAULT_LEVEL = SETTINGS.interval_level


def check_level(level: float) -> float:
    """The level as a float in (0, 1); a clear error otherwise."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be between 0 and 1 (e.g. 0.9), not {level}")
    return level


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil(level (n+1))-th smallest score (split-conformal's quantile); inf when that rank
    exceeds n (too few rows for the level: the interval is unbounded)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    rank = _rank(level, len(scores))
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


def _rank(level: float, n: int) -> int:
    """ceil(level (n+1)), the conformal rank. The product is rounded first: a decimal level is
    not exact in binary (1 - 0.8 is 0.19999999999999996), and ceil/floor of a product that is a
    whole number in exact arithmetic must not move by one."""
    return math.ceil(round(check_level(level) * (n + 1), 9))


def cv_plus(scores: np.ndarray, centres: np.ndarray, level: float = DEFAULT_LEVEL,
            scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CV+ interval (low, high) for m new points.

    scores: (n,) out-of-fold residuals |y_i - mu_{-k(i)}(x_i)| (divided by s(x_i) when scaled);
    centres: (n, m) mu_{-k(i)}(x) for each new point x; scale: (m,) s(x) or None.
    """
    scores = np.asarray(scores, dtype=np.float64)[:, None]
    centres = np.asarray(centres, dtype=np.float64)
    n = len(scores)
    spread = scores if scale is None else scores * np.asarray(scale, dtype=np.float64)[None, :]
    k_high = _rank(level, n)
    k_low = n + 1 - k_high  # floor(alpha (n+1)), alpha = 1 - level
    m = centres.shape[1]
    low = (np.partition(centres - spread, k_low - 1, axis=0)[k_low - 1] if k_low >= 1
           else np.full(m, -np.inf))
    high = (np.partition(centres + spread, k_high - 1, axis=0)[k_high - 1] if k_high <= n
            else np.full(m, np.inf))
    return low, high


# ------------------------------------------------------------------------- the run's methods

def _fold_positions(run: RunResult) -> dict[int, int]:
    return {fold.fold: i for i, fold in enumerate(run.folds)}


def method_models(run: RunResult, method: str, x: np.ndarray) -> np.ndarray:
    """(folds, m) each fold's model of `method` at raw inputs x: the fold networks, OLS refitted
    on each fold's training rows, or a formula (the same for every fold)."""
    x = np.asarray(x, dtype=np.float64)
    if method == "network":
        return run.ensemble_predictions(x)
    if method == "linear_regression":
        ols = LeastSquares(run.X, run.y)
        return np.stack([ols.predict(ols.fit(f.train_rows), x) for f in run.folds])
    if method in KINETIC_METHODS:
        from bnapp.intake.kinetics import predict_ueq  # as in baselines: kinetics is optional

        formula = predict_ueq(pd.DataFrame(x, columns=run.features), method=method)
        return np.broadcast_to(np.asarray(formula, dtype=np.float64), (len(run.folds), len(x)))
    raise ValueError(f"unknown method {method!r}")


def _spread(models: np.ndarray) -> np.ndarray:
    """SD across folds (ddof 1), floored so a point where all folds agree divides by no zero."""
    sd = models.std(axis=0, ddof=1) if len(models) > 1 else np.zeros(models.shape[1])
    floor = 1e-9 * max(1.0, float(np.nanmax(np.abs(models)))) if models.size else 1e-9
    return np.maximum(sd, floor)


def _scored(run: RunResult, preds: pd.DataFrame, method: str, normalized: bool) -> pd.DataFrame:
    """One method's out-of-fold rows with their score (residual, over s(x) when normalized) and
    scale s(x) (1 when not normalized, or for a formula, which has no spread)."""
    rows = preds[preds["method"] == method].dropna(subset=["prediction"]).copy()
    scale = np.ones(len(rows))
    if normalized and method not in KINETIC_METHODS:
        scale = _spread(method_models(run, method, run.X))[rows["row"].to_numpy()]
    rows["scale"] = scale
    rows["score"] = np.abs(rows["truth"] - rows["prediction"]) / scale
    return rows


def held_out_intervals(run: RunResult, level: float = DEFAULT_LEVEL, *, normalized: bool = False,
                       preds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every method's test rows with an out-of-sample interval (see the module docstring):
    DataFrame[method, fold, row, truth, prediction, pi_low, pi_high, covered]."""
    check_level(level)
    preds = fold_predictions(run) if preds is None else preds
    parts = []
    for method in pd.unique(preds["method"]):
        rows = _scored(run, preds, method, normalized)
        fold = rows["fold"].to_numpy()
        row = rows["row"].to_numpy()
        half = np.empty(len(rows))
        for k in np.unique(fold):
            mine = fold == k
            calibration = ~np.isin(row, row[mine])  # other folds' pairs, never these rows
            half[mine] = conformal_quantile(rows["score"].to_numpy()[calibration], level)
        half *= rows["scale"].to_numpy()
        part = rows[["method", "fold", "row", "truth", "prediction"]].copy()
        part["pi_low"] = part["prediction"] - half
        part["pi_high"] = part["prediction"] + half
        part["covered"] = (part["truth"] >= part["pi_low"]) & (part["truth"] <= part["pi_high"])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def coverage(intervals: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """DataFrame[method, fold, n, level, coverage, mean_width]: per fold (fold as text) and
    pooled over all test rows, from held_out_intervals."""
    out = []
    width = intervals["pi_high"] - intervals["pi_low"]
    frame = intervals.assign(width=width)
    for method, g in frame.groupby("method", sort=False):
        groups = [(str(f), gf) for f, gf in g.groupby("fold", sort=True)] + [("pooled", g)]
        out += [{"method": method, "fold": fold, "n": len(gf), "level": level,
                 "coverage": float(gf["covered"].mean()), "mean_width": float(gf["width"].mean())}
                for fold, gf in groups]
    return pd.DataFrame(out)


def held_out_coverage(run: RunResult, level: float = DEFAULT_LEVEL, *, normalized: bool = False,
                      preds: pd.DataFrame | None = None) -> pd.DataFrame:
    """coverage of held_out_intervals: the Agreement page's table and chart (cached as one
    analysis) and the exports' coverage table. preds: fold_predictions(run), when computed."""
    return coverage(held_out_intervals(run, level, normalized=normalized, preds=preds), level)


def network_predictions(run: RunResult, level: float = DEFAULT_LEVEL, *,
                        normalized: bool = False, preds: pd.DataFrame | None = None) -> pd.DataFrame:
    """The network's test rows with their held-out interval, one line per (row, fold): the
    `predictions.csv` of `analyze`. `row` is the row number in the user's file when known.
    preds: fold_predictions(run), when already computed."""
    preds = fold_predictions(run) if preds is None else preds
    net = held_out_intervals(run, level, normalized=normalized,
                             preds=preds[preds["method"] == "network"])
    rows = net["row"].to_numpy()
    shown = run.row_ids[rows] if run.row_ids is not None else rows
    return pd.DataFrame({"row": shown, "fold": net["fold"], "measured": net["truth"],
                         "predicted": net["prediction"], "pi_low": net["pi_low"],
                         "pi_high": net["pi_high"]})


def new_intervals(run: RunResult, x: np.ndarray, method: str = "network",
                  level: float = DEFAULT_LEVEL, *, normalized: bool = False,
                  preds: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CV+ interval (low, high) of `method` for new sessions x (raw inputs, library units)."""
    preds = fold_predictions(run) if preds is None else preds
    rows = _scored(run, preds, method, normalized)
    models = method_models(run, method, x)
    positions = _fold_positions(run)
    centres = models[[positions[f] for f in rows["fold"]]]
    scale = _spread(models) if normalized and method not in KINETIC_METHODS else None
    return cv_plus(rows["score"].to_numpy(), centres, level, scale)
