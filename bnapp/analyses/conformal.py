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
(benchmarks/bench_coverage.py, 400 synthetic training sessions, 5 seeds, 90 %: 89.7 % of new
sessions for OLS, 98.9 % for the network, whose fold models differ). With
`normalized=True` the residuals are divided by the spread s(x) of the fold models' predictions
(SD across folds) and the interval half-widths multiplied by it: wider where the folds disagree.
The clinical formulas fit nothing and have no spread: their intervals are the same construction
with one fixed model, which is split-conformal on their residuals.

Empirical coverage, two figures, each labelled for what it is (`held_out_coverage`):

- "cv_plus" (`nested_cv_plus_intervals`), the coverage of the intervals users get. A row's CV+
  interval may not use the row, and every fold model but its own was trained on it; so each
  outer fold's test rows get a CV+ interval from an inner run trained without them: the run's
  other folds with those rows taken out of their training, validation and test sets, trained
  under the same protocol (nested cross-validation; K(K-1) models for K folds, ~0.3 s on
  Urea.csv). Outer folds are taken in order until NESTED_ROWS test rows are covered.
- "split_conformal" (`held_out_intervals`): each test row of fold k gets its own fold's
  prediction plus or minus the conformal quantile of the residuals outside fold k
  (split-conformal, the other folds as calibration set). Near the level by construction; it is
  not the interval Predict gives, and is narrower than CV+ when the fold models disagree
  (synthetic check, issue 26: 0.895 here against 0.984 for the network's CV+).

With k-fold every row has one residual. With repeated k-fold or the study's random splits a row
is tested by several models and every (row, model) pair counts: an approximation without the
formal guarantee.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnapp.analyses.baselines import (
    KINETIC_METHODS,
    LeastSquares,
    fold_predictions,
    hours_per_row,
)
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.results import RunResult

DEFAULT_LEVEL = SETTINGS.interval_level
# the interval constructions whose coverage is reported, and what each is
INTERVALS = {
    "cv_plus": "CV+, the intervals Predict gives (nested: from models that never saw the rows)",
    "split_conformal": "held-out split-conformal: own fold's prediction ± the other folds' "
                       "residual quantile",
}
NESTED_ROWS = 5_000  # outer folds of the nested check, until their test rows reach this many


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


def method_models(run: RunResult, method: str, x: np.ndarray, t_hours=4.0,
                  access: str = "arterial") -> np.ndarray:
    """(folds, m) each fold's model of `method` at raw inputs x: the fold networks, OLS refitted
    on each fold's training rows, or a formula (the same for every fold) for sessions of
    t_hours (one, or one per row of x) through `access`."""
    x = np.asarray(x, dtype=np.float64)
    if method == "network":
        return run.ensemble_predictions(x)
    if method == "linear_regression":
        ols = LeastSquares(run.X, run.y)
        return np.stack([ols.predict(ols.fit(f.train_rows), x) for f in run.folds])
    if method in KINETIC_METHODS:
        from bnapp.intake.kinetics import predict_ueq  # as in baselines: kinetics is optional

        formula = predict_ueq(pd.DataFrame(x, columns=run.features), method, t_hours, access)
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
                       preds: pd.DataFrame | None = None, t_hours=4.0,
                       access: str = "arterial") -> pd.DataFrame:
    """Every method's test rows with an out-of-sample interval (see the module docstring):
    DataFrame[method, fold, row, truth, prediction, pi_low, pi_high, interval, covered],
    interval "split_conformal"; the formulas' sessions of t_hours through `access`."""
    check_level(level)
    preds = fold_predictions(run, t_hours, access) if preds is None else preds
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
        parts.append(_with_coverage(part.assign(interval="split_conformal")))
    return pd.concat(parts, ignore_index=True)


def _with_coverage(part: pd.DataFrame) -> pd.DataFrame:
    part["covered"] = (part["truth"] >= part["pi_low"]) & (part["truth"] <= part["pi_high"])
    return part


def nested_cv_plus_intervals(run: RunResult, level: float = DEFAULT_LEVEL, *,
                             normalized: bool = False, max_rows: int = NESTED_ROWS, t_hours=4.0,
                             access: str = "arterial") -> pd.DataFrame:
    """Each outer fold's test rows with the CV+ interval of every method from an inner run
    that never saw them (see the module docstring), the first folds of the first repeat until
    max_rows rows: DataFrame[interval, method, fold, row, truth, prediction, pi_low, pi_high,
    covered], prediction the inner folds' mean (as Predict gives). Empty for a run whose models
    bnapp did not train (a checkpoint import: retraining would judge other models)."""
    check_level(level)
    empty = pd.DataFrame(columns=["interval", "method", "fold", "row", "truth", "prediction",
                                  "pi_low", "pi_high", "covered"])
    if run.source != "trained":
        return empty
    parts, tested = [], 0
    hours = hours_per_row(run, t_hours)  # an inner run has the run's rows: the same lengths
    for outer in [f for f in run.folds if f.repeat == run.folds[0].repeat]:
        if tested >= max_rows:
            break
        held = outer.test_rows
        inner = _inner_run(run, held)
        if inner is None:
            continue
        preds = fold_predictions(inner, hours, access)
        x, length = run.X[held], {"t_hours": hours[held], "access": access}
        for method in pd.unique(preds["method"]):
            low, high = new_intervals(inner, x, method, level, normalized=normalized,
                                      preds=preds, **length)
            parts.append(_with_coverage(pd.DataFrame({
                "interval": "cv_plus", "method": method, "fold": outer.fold, "row": held,
                "truth": run.y[held],
                "prediction": method_models(inner, method, x, **length).mean(axis=0),
                "pi_low": low, "pi_high": high})))
        tested += len(held)
    return pd.concat(parts, ignore_index=True) if parts else empty


def _inner_run(run: RunResult, held: np.ndarray) -> RunResult | None:
    """The run's other folds with the rows `held` taken out of all their rows, trained again
    under the run's protocol (each keeps its fold's initial weights and batch order); None when
    no fold keeps rows to train and test on (two groups left out in turn: each trained on
    the other's rows only)."""
    from bnapp.engine.protocols import Protocol
    from bnapp.engine.train import Split, train_run

    protocol = Protocol.from_dict(run.protocol)
    splits = []
    for f in run.folds:
        test = np.setdiff1d(f.test_rows, held)
        train, val = (np.setdiff1d(rows, held).astype(f.train_rows.dtype)
                      for rows in (f.train_rows, f.val_rows))
        if len(test) and len(train):  # the outer fold itself, and study splits inside it, have
            # no test rows left
            splits.append(Split(f.repeat, f.fold - f.repeat * protocol.folds, train, val, test))
    if not splits:
        return None
    return train_run(run.X, run.y, run.spec, protocol, features=run.features,
                     target=run.target, splits=splits)


def coverage(intervals: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """DataFrame[interval, method, fold, n, level, coverage, mean_width]: per construction
    (INTERVALS) and method, per fold (fold as text) and pooled over all its test rows."""
    out = []
    width = intervals["pi_high"] - intervals["pi_low"]
    frame = intervals.assign(width=width)
    for (interval, method), g in frame.groupby(["interval", "method"], sort=False):
        groups = [(str(f), gf) for f, gf in g.groupby("fold", sort=True)] + [("pooled", g)]
        out += [{"interval": interval, "method": method, "fold": fold, "n": len(gf),
                 "level": level, "coverage": float(gf["covered"].mean()),
                 "mean_width": float(gf["width"].mean())}
                for fold, gf in groups]
    return pd.DataFrame(out)


def held_out_coverage(run: RunResult, level: float = DEFAULT_LEVEL, *, normalized: bool = False,
                      preds: pd.DataFrame | None = None, t_hours=4.0,
                      access: str = "arterial") -> pd.DataFrame:
    """coverage of the CV+ intervals (nested) and of the held-out split-conformal ones, every
    method: the Agreement page's table and chart (cached as one analysis) and the exports'
    coverage table. preds: fold_predictions(run), when computed."""
    length = {"t_hours": t_hours, "access": access}
    both = [nested_cv_plus_intervals(run, level, normalized=normalized, **length),
            held_out_intervals(run, level, normalized=normalized, preds=preds, **length)]
    return coverage(pd.concat([part for part in both if len(part)], ignore_index=True), level)


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
                  preds: pd.DataFrame | None = None, t_hours=4.0,
                  access: str = "arterial") -> tuple[np.ndarray, np.ndarray]:
    """CV+ interval (low, high) of `method` for new sessions x (raw inputs, library units) of
    t_hours through `access` (the formulas'; the scores are the run's own test rows')."""
    preds = fold_predictions(run) if preds is None else preds
    rows = _scored(run, preds, method, normalized)
    models = method_models(run, method, x, t_hours, access)
    positions = _fold_positions(run)
    centres = models[[positions[f] for f in rows["fold"]]]
    scale = _spread(models) if normalized and method not in KINETIC_METHODS else None
    return cv_plus(rows["score"].to_numpy(), centres, level, scale)
