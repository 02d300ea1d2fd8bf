"""Does the network beat what clinicians already use? Baselines on the network's own folds.

Methods: the network; ordinary least squares on the same inputs (fitted on each fold's training
rows); and Ueq from the Daugirdas-Schneditz rate equation and from Tattersall's formula
(`bnapp.intake.kinetics.predict_ueq`, no fitting, needs Upre, Upos, PP and UF among the features)
for sessions of t_hours (one length, or one per row of the run) through an access ('arterial' or
'venous').
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnapp.analyses.cohort_intervals import run_replicates, with_intervals
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.results import RunResult
from bnapp.intake.data import STUDY_TARGET

KINETIC_METHODS = ("rate_equation", "tattersall")
KINETIC_INPUTS = ("Upre", "Upos", "PP", "UF")
METHODS = ("network", "linear_regression", *KINETIC_METHODS)


class LeastSquares:
    """Ordinary least squares with an intercept on any subset of a run's rows, from the normal
    equations of the standardized inputs: the Gram matrix of every row once, then per subset that
    of the rows outside it subtracted. A fold costs a gather of its ~10 % other rows and a
    (p+1)² solve instead of an SVD of its training rows (3 s of a million-session run's 10 folds);
    standardizing keeps the Gram matrix about as well conditioned as the inputs' correlations."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y = X, y
        self.centre, scale = X.mean(0), X.std(0)
        self.scale = np.where(scale > 0, scale, 1.0)
        design = self.design(X)
        self.gram, self.moment = design.T @ design, design.T @ y

    def design(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(x)), (x - self.centre) / self.scale])

    def fit(self, train_rows: np.ndarray) -> np.ndarray:
        """The coefficients fitted on train_rows (distinct row numbers)."""
        outside = np.ones(len(self.X), dtype=bool)
        outside[train_rows] = False
        rest = np.flatnonzero(outside)
        other = self.design(self.X[rest])
        # lstsq on the small system: the minimum-norm fit, as lstsq on the rows would give,
        # when inputs are collinear
        coef, *_ = np.linalg.lstsq(self.gram - other.T @ other,
                                   self.moment - other.T @ self.y[rest], rcond=None)
        return coef

    def predict(self, coef: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Predictions at raw inputs x (m, p)."""
        return self.design(x) @ coef


def hours_per_row(run: RunResult, t_hours) -> np.ndarray:
    """One session length per row of the run, from one length or one per row."""
    return np.broadcast_to(np.asarray(t_hours, dtype=np.float64), run.y.shape)


def fold_predictions(run: RunResult, t_hours=4.0, access: str = "arterial") -> pd.DataFrame:
    """Every method's test-row predictions: DataFrame[method, fold, row, truth, prediction]."""
    # the clinical formulas predict Ueq: against any other target they would score nonsense
    kinetic = run.target == STUDY_TARGET and set(KINETIC_INPUTS) <= set(run.features)
    if kinetic:
        from bnapp.intake.kinetics import (
            predict_ueq,  # imported here: kinetics is optional for analyses
        )
    parts = []
    hours = hours_per_row(run, t_hours)
    ols = LeastSquares(run.X, run.y)
    for fold in run.folds:
        rows = fold.test_rows
        preds = {
            "network": run.test_predictions(fold),
            "linear_regression": ols.predict(ols.fit(fold.train_rows), run.X[rows]),
        }
        if kinetic:
            frame = pd.DataFrame(run.X[rows], columns=run.features)
            for method in KINETIC_METHODS:
                preds[method] = np.asarray(predict_ueq(frame, method, hours[rows], access),
                                           dtype=np.float64)
        for method, p in preds.items():
            parts.append(pd.DataFrame({"method": method, "fold": fold.fold, "row": rows,
                                       "truth": run.y[rows], "prediction": p}))
    return pd.concat(parts, ignore_index=True)


def quality(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """rmse, mae, mean_error (prediction - truth), bias = |mean_error| and r2 (1 - SSE/SST)."""
    e = np.asarray(prediction, float) - np.asarray(truth, float)
    sst = float(np.sum((truth - np.mean(truth)) ** 2))
    mean_error = float(e.mean())
    return {
        "n": len(e),
        "rmse": float(np.sqrt(np.mean(e**2))),
        "mae": float(np.mean(np.abs(e))),
        "mean_error": mean_error,
        "bias": abs(mean_error),
        "r2": 1.0 - float(np.sum(e**2)) / sst if sst > 0 else np.nan,
    }


def baselines(run: RunResult, preds: pd.DataFrame | None = None, t_hours=4.0,
              access: str = "arterial") -> pd.DataFrame:
    """DataFrame[method, fold, n, rmse, mae, bias, mean_error, r2]: per fold (fold as text) and
    a "pooled" row per method over all folds' test rows (rows repeat if splits overlap).

    The kinetic methods appear only when Upre, Upos, PP and UF are among the run's features.
    preds: fold_predictions(run, t_hours, access), when already computed.
    """
    preds = fold_predictions(run, t_hours, access) if preds is None else preds
    rows = []
    for method, g in preds.groupby("method", sort=False):
        for fold, gf in g.groupby("fold", sort=False):
            rows.append({"method": method, "fold": str(fold),
                         **quality(gf["truth"].to_numpy(), gf["prediction"].to_numpy())})
        rows.append({"method": method, "fold": "pooled",
                     **quality(g["truth"].to_numpy(), g["prediction"].to_numpy())})
    out = pd.DataFrame(rows)
    return out[["method", "fold", "n", "rmse", "mae", "bias", "mean_error", "r2"]]


def paired_comparison(run: RunResult, table: pd.DataFrame | None = None,
                      level: float = 0.95, t_hours=4.0, access: str = "arterial") -> pd.DataFrame:
    """Network vs each baseline, paired by fold, on per-fold test RMSE.

    The fold is the unit of replication: per-row errors of one fold share a model, and with
    random splits a row is tested several times, so a test on pooled rows would count dependent
    errors as independent. Folds are not independent either (their training sets overlap), so
    the t-test uses Nadeau & Bengio's corrected variance (1/J + n_test/n_train) s^2, which widens
    the interval accordingly; the Wilcoxon signed-rank p-value is an assumption-light check.
    difference = network RMSE - baseline RMSE: negative means the network is better.
    """
    from scipy import stats  # ~1 s to import: not at module import (bnapp.analyses.association)

    table = baselines(run, t_hours=t_hours, access=access) if table is None else table
    per_fold = table[table["fold"] != "pooled"]
    net = per_fold[per_fold["method"] == "network"].set_index("fold")["rmse"]
    n_test = np.mean([len(f.test_rows) for f in run.folds])
    n_train = np.mean([len(f.train_rows) for f in run.folds])
    rows = []
    for method in [m for m in METHODS[1:] if m in set(per_fold["method"])]:
        other = per_fold[per_fold["method"] == method].set_index("fold")["rmse"]
        d = (net - other.reindex(net.index)).to_numpy(float)
        j = len(d)
        mean = float(d.mean())
        sd = float(d.std(ddof=1)) if j > 1 else np.nan
        se = math.sqrt((1.0 / j + n_test / n_train) * sd**2) if j > 1 else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            t = mean / se if se and np.isfinite(se) else np.nan
        p = float(2 * stats.t.sf(abs(t), j - 1)) if np.isfinite(t) else np.nan
        half = float(stats.t.ppf(0.5 + level / 2, j - 1) * se) if j > 1 else np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wilcoxon_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
            except ValueError:
                wilcoxon_p = np.nan
        rows.append({
            "baseline": method, "n_folds": j,
            "network_rmse": float(net.mean()), "baseline_rmse": float(other.mean()),
            "difference": mean, "ci_low": mean - half, "ci_high": mean + half,
            "t_statistic": t, "p_value": p, "wilcoxon_p": wilcoxon_p,
            "network_better_folds": int(np.sum(d < 0)),
        })
    return pd.DataFrame(rows)


ERROR_BOUNDS = {"rmse": (0.0, np.inf), "mae": (0.0, np.inf)}
NO_COHORT = "none: no replicates (too many sessions to retrain, or a grouped run without its labels)"


def error_intervals(run: RunResult, replicates=None, *, groups=None,
                    n_replicates: int = SETTINGS.n_replicates, seed: int = SETTINGS.seed,
                    level: float = 0.95, t_hours=4.0, access: str = "arterial") -> pd.DataFrame:
    """Each method's pooled RMSE and MAE over the test rows, with an interval over cohorts like
    this one: DataFrame[method, statistic, estimate, ci_low, ci_high, interval].

    The folds' own t-interval would describe one data set's folds, which share most training
    rows; here every replicate (replicates, else run_replicates(run, groups, n_replicates))
    retrains the cross-validation on resampled sessions and refits the formulas' OLS. t_hours
    (one length, or one per row of the run) and access as in `baselines`: a replicate's folds
    index the run's own rows, so a per-row length follows its session."""
    def table(trained: RunResult) -> pd.DataFrame:
        pooled = baselines(trained, t_hours=t_hours, access=access).query("fold == 'pooled'")
        return pooled.melt(id_vars="method", value_vars=["rmse", "mae"], var_name="statistic",
                           value_name="estimate").reset_index(drop=True)

    if replicates is None:
        replicates = run_replicates(run, groups, n_replicates, seed)
    out = table(run)
    if replicates is None:
        return out.assign(ci_low=np.nan, ci_high=np.nan, interval=NO_COHORT)
    return with_intervals(out, replicates.map(table), ["method", "statistic"], level,
                          ERROR_BOUNDS)


VERDICTS = ("better", "cannot be told apart", "worse")


@dataclass(frozen=True)
class Verdict:
    """The network against the strongest baseline (lowest mean per-fold RMSE), read from the
    Nadeau–Bengio corrected t interval of paired_comparison: `word` is "better" when the whole
    interval of network − baseline RMSE is below 0, "worse" when above, else "cannot be told
    apart" (also when one fold leaves no interval). None of the fields is rounded."""

    word: str
    baseline: str
    network_rmse: float
    baseline_rmse: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_folds: int


def verdict(paired: pd.DataFrame) -> Verdict | None:
    """The Verdict of paired_comparison's table; None when it compares nothing."""
    if paired.empty:
        return None
    best = paired.loc[paired["baseline_rmse"].idxmin()]
    low, high = float(best["ci_low"]), float(best["ci_high"])
    word = VERDICTS[0] if high < 0 else VERDICTS[2] if low > 0 else VERDICTS[1]
    return Verdict(word=word, baseline=str(best["baseline"]),
                   network_rmse=float(best["network_rmse"]),
                   baseline_rmse=float(best["baseline_rmse"]),
                   difference=float(best["difference"]), ci_low=low, ci_high=high,
                   p_value=float(best["p_value"]), n_folds=int(best["n_folds"]))
