"""Agreement with the measured value (Bland–Altman) and calibration, for the network and baselines.

Bland–Altman (Bland JM, Altman DG, "Measuring agreement in method comparison studies", Stat
Methods Med Res 1999;8:135-160): differences d = method - measured against the pair's mean;
bias = mean(d), 95 % limits of agreement bias ± 1.96 SD(d). Their confidence intervals:

- "exact" (the default): Carkeet A, "Exact parametric confidence intervals for Bland-Altman
  limits of agreement", Optom Vis Sci 2015;92:e71-e80. A limit estimates the normal percentile
  mu ± 1.96 sigma; its exact CI is bias ± SD · t'/sqrt(n), t' the quantiles of the non-central
  t distribution with n - 1 degrees of freedom and non-centrality 1.96 sqrt(n) (the one-sided
  tolerance factor), from scipy.stats.nct.
- "approximate": Bland & Altman 1999: Var(limit) ≈ SD² (1/n + 1.96²/(2(n-1))),
  limit ± t_{n-1} · sqrt(Var).

Proportional bias: the ordinary least-squares slope of d on the method's own value, with its
CI (a slope away from 0 means the error grows with what the method says). That slope is exactly
1 - the calibration slope (measured regressed on predicted; the two fits share their residuals,
so their CIs and p-values match), and a calibrated predictor passes it. Bland and Altman regress
d on the pair's mean, which suits two methods that both measure with error; a prediction varies
less than the measurement it predicts, so on the mean every good predictor would be flagged
(Hopkins, Sportscience 2004;8:42-46; docs/statistics.md). Calibration: measured regressed on
predicted (statsmodels OLS), ideally intercept 0 and slope 1, with a LOWESS curve.

Every method is judged on the test rows of the run's folds (`baselines.fold_predictions`); a row
tested by several models (repeated k-fold, the study's random splits) enters once, with the mean
of its predictions, so the pairs stay independent. eKt/V: each method's Ueq turned into the dose
it implies (Daugirdas' formula with Ueq in place of Upos), against the dose of the measured Ueq.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.nonparametric.smoothers_lowess import lowess
from statsmodels.regression.linear_model import OLS  # not statsmodels.api: 0.4 s less to import
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant

from bnapp.analyses.baselines import KINETIC_INPUTS, fold_predictions, hours_per_row
from bnapp.engine.results import RunResult
from bnapp.intake import kinetics
from bnapp.intake.data import STUDY_TARGET

LOA_Z = 1.96  # Bland and Altman's multiplier for 95 % limits
CI_METHODS = ("exact", "approximate")
QUANTITIES = ("Ueq", "eKtV")
LOWESS_FRAC = 0.6  # as the study's γ figures
# LOWESS fits a local regression at every point: O(rows²), 12 s on 20,000 rows. As R's lowess
# does by default, points within 1 % of the predicted range of a fitted one are interpolated
# (0.05 s on 20,000 rows, the curve within 0.1 % of the exact one), and beyond this many test rows
# (3 s on a million even so) the curve is fitted on a seeded random sample of them
LOWESS_ROWS = 50_000
LOWESS_DELTA = 0.01
# a clinically acceptable |method − measured|: Ueq in mg/dL (the library's unit), eKt/V unitless;
# another target gets a tenth of its measured values' SD (default_tolerance)
TOLERANCES = {STUDY_TARGET: 5.0, "eKtV": 0.1}
SHARE_COLUMNS = ["method", "quantity", "tolerance", "n", "within", "share", "ci_low", "ci_high"]
LARGEST = 10  # the largest differences listed by a page
CURVE_POINTS = 400  # a calibration curve is drawn through at most this many of its points
AGREEMENT_COLUMNS = ["method", "quantity", "bias", "loa_low", "loa_high", "loa_low_ci_low",
                     "loa_low_ci_high", "loa_high_ci_low", "loa_high_ci_high", "n",
                     "bias_ci_low", "bias_ci_high", "sd", "proportional_slope",
                     "proportional_slope_ci_low", "proportional_slope_ci_high",
                     "proportional_p", "ci_method"]


def _ols(x: np.ndarray, y: np.ndarray, level: float) -> dict[str, float]:
    fit = OLS(y, add_constant(x, has_constant="add")).fit()
    ci = fit.conf_int(alpha=1 - level)
    return {"intercept": fit.params[0], "intercept_ci_low": ci[0, 0], "intercept_ci_high": ci[0, 1],
            "slope": fit.params[1], "slope_ci_low": ci[1, 0], "slope_ci_high": ci[1, 1],
            "slope_p": fit.pvalues[1]}


def limits_of_agreement(predicted, measured, *, ci_method: str = "exact",
                        level: float = 0.95) -> dict[str, float]:
    """Bias, 95 % limits of agreement with their `level` CIs, and proportional bias for one
    method; pairs with a NaN are left out (n counts the rest)."""
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, not {ci_method!r}")
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(m)
    d = p[ok] - m[ok]
    n = len(d)
    out = {"n": n, "ci_method": ci_method}
    if n < 3:  # an SD and a regression need at least three pairs
        return out | dict.fromkeys(AGREEMENT_COLUMNS[2:9] + AGREEMENT_COLUMNS[10:17], np.nan)
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    q = 0.5 + level / 2
    t = stats.t.ppf(q, n - 1)
    low, high = bias - LOA_Z * sd, bias + LOA_Z * sd
    if ci_method == "exact":
        # Carkeet 2015: the CI of mu + z sigma is bias + sd t'_{n-1, z sqrt(n)}(p) / sqrt(n)
        lo_f, hi_f = stats.nct.ppf([1 - q, q], n - 1, LOA_Z * math.sqrt(n)) / math.sqrt(n)
        high_ci = (bias + sd * lo_f, bias + sd * hi_f)
        low_ci = (bias - sd * hi_f, bias - sd * lo_f)
    else:
        se = sd * math.sqrt(1 / n + LOA_Z**2 / (2 * (n - 1)))
        high_ci = (high - t * se, high + t * se)
        low_ci = (low - t * se, low + t * se)
    slope = _ols(p[ok], d, level)  # on the method's value: 1 - calibration slope
    return out | {
        "bias": bias, "loa_low": low, "loa_high": high,
        "loa_low_ci_low": low_ci[0], "loa_low_ci_high": low_ci[1],
        "loa_high_ci_low": high_ci[0], "loa_high_ci_high": high_ci[1],
        "bias_ci_low": bias - t * sd / math.sqrt(n), "bias_ci_high": bias + t * sd / math.sqrt(n),
        "sd": sd, "proportional_slope": slope["slope"],
        "proportional_slope_ci_low": slope["slope_ci_low"],
        "proportional_slope_ci_high": slope["slope_ci_high"], "proportional_p": slope["slope_p"],
    }


def calibration_line(predicted, measured, *, level: float = 0.95) -> dict[str, float]:
    """measured = intercept + slope · predicted by OLS, with `level` CIs (ideal: 0 and 1)."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(m)
    fit = _ols(p[ok], m[ok], level) if ok.sum() >= 3 else {}
    return {"n": int(ok.sum()), **{k: fit.get(k, np.nan) for k in (
        "intercept", "intercept_ci_low", "intercept_ci_high", "slope", "slope_ci_low",
        "slope_ci_high")}}


def _has_dose(run: RunResult) -> bool:
    return run.target == STUDY_TARGET and set(KINETIC_INPUTS) <= set(run.features)


def agreement_points(run: RunResult, preds: pd.DataFrame | None = None, t_hours=4.0,
                     access: str = "arterial") -> pd.DataFrame:
    """DataFrame[method, quantity, row, measured, predicted, mean, difference]: one line per
    method, quantity and test row (a row's predictions averaged over the models that tested it).
    quantity: the run's target (Ueq for the study), and eKtV when the run predicts Ueq from
    Upre, Upos, PP and UF among its inputs, for sessions of t_hours (one length or one per row
    of the run)."""
    preds = fold_predictions(run, t_hours, access) if preds is None else preds
    per_row = pd.concat([_row_means(method, g) for method, g in _by_method(preds)],
                        ignore_index=True)
    parts = [per_row.assign(quantity=run.target)]
    if _has_dose(run):
        rows = per_row["row"].to_numpy()
        upre, uf, pp = (run.X[rows, run.features.index(c)] for c in ("Upre", "UF", "PP"))
        weight = pp - uf
        hours = hours_per_row(run, t_hours)[rows]

        def dose(ueq):
            return kinetics.sp_ktv(upre, np.asarray(ueq, dtype=np.float64), uf, weight, hours)

        parts.append(per_row.assign(quantity="eKtV", measured=dose(per_row["measured"]),
                                    predicted=dose(per_row["predicted"])))
    out = pd.concat(parts, ignore_index=True)
    out["mean"] = (out["predicted"] + out["measured"]) / 2
    out["difference"] = out["predicted"] - out["measured"]
    return out[["method", "quantity", "row", "measured", "predicted", "mean", "difference"]]


def _by_method(preds: pd.DataFrame):
    """(method, its rows of preds), in order of appearance: one comparison per method instead of
    a groupby over the methods' strings (a second on a million-session run)."""
    methods = preds["method"]
    for method in pd.unique(methods):
        yield method, preds[(methods == method).to_numpy()]


def _row_means(method: str, preds: pd.DataFrame) -> pd.DataFrame:
    """One line per test row (in order of appearance): its measured value and its predictions'
    mean over the models that tested it (numpy on integer codes, not a groupby on rows)."""
    codes, rows = pd.factorize(preds["row"].to_numpy())
    measured = np.empty(len(rows))
    measured[codes] = preds["truth"].to_numpy()  # a row's truth is the same in every fold
    predicted = (np.bincount(codes, weights=preds["prediction"].to_numpy(), minlength=len(rows))
                 / np.bincount(codes, minlength=len(rows)))
    return pd.DataFrame({"method": method, "row": rows, "measured": measured,
                         "predicted": predicted})


def agreement(run: RunResult, *, ci_method: str = "exact", level: float = 0.95,
              points: pd.DataFrame | None = None, t_hours=4.0,
              access: str = "arterial") -> pd.DataFrame:
    """The agreement table: one line per method and quantity (columns AGREEMENT_COLUMNS)."""
    points = agreement_points(run, t_hours=t_hours, access=access) if points is None else points
    rows = [{"method": method, "quantity": quantity,
             **limits_of_agreement(g["predicted"], g["measured"], ci_method=ci_method, level=level)}
            for (method, quantity), g in points.groupby(["method", "quantity"], sort=False)]
    return pd.DataFrame(rows)[AGREEMENT_COLUMNS]


def calibration(run: RunResult, *, level: float = 0.95, points: pd.DataFrame | None = None,
                t_hours=4.0, access: str = "arterial") -> pd.DataFrame:
    """DataFrame[method, quantity, n, intercept (+ CI), slope (+ CI)]: measured on predicted."""
    points = agreement_points(run, t_hours=t_hours, access=access) if points is None else points
    rows = [{"method": method, "quantity": quantity,
             **calibration_line(g["predicted"], g["measured"], level=level)}
            for (method, quantity), g in points.groupby(["method", "quantity"], sort=False)]
    return pd.DataFrame(rows)


def run_calibration_curves(run: RunResult, t_hours=4.0, access: str = "arterial") -> pd.DataFrame:
    """calibration_curves of the run's agreement_points (the Agreement page's, cached with it)."""
    return calibration_curves(agreement_points(run, t_hours=t_hours, access=access))


def calibration_curves(points: pd.DataFrame, frac: float = LOWESS_FRAC,
                       max_rows: int = LOWESS_ROWS) -> pd.DataFrame:
    """DataFrame[method, quantity, predicted, lowess, rows, fitted_rows]: LOWESS of measured on
    predicted, fitted on all `rows` or, beyond max_rows, on a seeded random `fitted_rows` of
    them; at most CURVE_POINTS points of each curve (evenly spaced in rank) are kept."""
    parts = []
    for (method, quantity), g in points.dropna(subset=["predicted", "measured"]).groupby(
            ["method", "quantity"], sort=False):
        if len(g) < 3:
            continue
        fitted = g.sample(n=max_rows, random_state=0) if len(g) > max_rows else g
        x = fitted["predicted"].to_numpy()
        fit = lowess(fitted["measured"].to_numpy(), x, frac=frac, delta=LOWESS_DELTA * np.ptp(x))
        if len(fit) > CURVE_POINTS:
            fit = fit[np.linspace(0, len(fit) - 1, CURVE_POINTS).round().astype(int)]
        parts.append(pd.DataFrame({"method": method, "quantity": quantity,
                                   "predicted": fit[:, 0], "lowess": fit[:, 1],
                                   "rows": len(g), "fitted_rows": len(fitted)}))
    return (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame(columns=["method", "quantity", "predicted", "lowess", "rows",
                                       "fitted_rows"]))


def default_tolerance(run: RunResult) -> float:
    """The acceptable difference for the run's target: TOLERANCES, else a tenth of the SD of the
    measured values, to two significant figures."""
    if run.target in TOLERANCES:
        return TOLERANCES[run.target]
    sd = float(np.std(run.y)) / 10
    return float(f"{sd:.2g}") if sd > 0 else 1.0


def share_within(run: RunResult, tolerance: float | None = None,
                 dose_tolerance: float = TOLERANCES["eKtV"], *, level: float = 0.95,
                 points: pd.DataFrame | None = None, t_hours=4.0,
                 access: str = "arterial") -> pd.DataFrame:
    """DataFrame[SHARE_COLUMNS]: per method and quantity, the test sessions whose
    |method − measured| is at most the acceptable difference (`tolerance` for the target, in
    its unit, default_tolerance when None; `dose_tolerance` for eKt/V), their share and its
    Wilson score interval at `level`. Sessions without a value are left out of n; t_hours and
    access: the sessions' length and access, for the formulas and eKt/V (agreement_points)."""
    points = (agreement_points(run, t_hours=t_hours, access=access) if points is None
              else points)
    tolerance = default_tolerance(run) if tolerance is None else float(tolerance)
    rows = []
    for (method, quantity), g in points.groupby(["method", "quantity"], sort=False):
        allowed = dose_tolerance if quantity == "eKtV" else tolerance
        d = g["difference"].dropna().to_numpy()
        within = int(np.sum(np.abs(d) <= allowed))
        low, high = (proportion_confint(within, len(d), alpha=1 - level, method="wilson")
                     if len(d) else (np.nan, np.nan))
        rows.append({"method": method, "quantity": quantity, "tolerance": allowed, "n": len(d),
                     "within": within, "share": within / len(d) if len(d) else np.nan,
                     "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows, columns=SHARE_COLUMNS)


def identify(points: pd.DataFrame, row_ids: np.ndarray | None = None,
             groups: np.ndarray | None = None) -> pd.DataFrame:
    """points with `data_row`, each session's row number in the data file (row_ids, as
    RunResult.row_ids; else its 0-based position in the run), and `group`, its label in the
    run's grouping column, when groups (one per run row) are given."""
    rows = points["row"].to_numpy()
    out = points.assign(data_row=rows if row_ids is None else np.asarray(row_ids)[rows])
    return out if groups is None else out.assign(group=np.asarray(groups)[rows])


def largest_differences(points: pd.DataFrame, method: str, quantity: str,
                        n: int = LARGEST) -> pd.DataFrame:
    """The n sessions of one method and quantity farthest from their measured value, largest
    |difference| first (the columns of points, without method and quantity)."""
    mine = points[(points["method"] == method) & (points["quantity"] == quantity)]
    order = mine["difference"].abs().sort_values(ascending=False, kind="stable").index[:n]
    return mine.loc[order].drop(columns=["method", "quantity"]).reset_index(drop=True)
