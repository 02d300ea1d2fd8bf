"""Bland–Altman limits of agreement and calibration against hand-worked and simulated references."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bnapp.analyses import agreement
from bnapp.analyses.baselines import fold_predictions
from bnapp.intake import kinetics
from tests.apptest import demo_run

MEASURED = [10.0, 12.0, 14.0, 16.0, 18.0]
PREDICTED = [11.0, 11.0, 15.0, 18.0, 17.0]


def test_limits_of_agreement_match_a_hand_worked_example():
    # by hand: d = 1, -1, 1, 2, -1; mean 0.4; squared deviations .36 1.96 .36 2.56 1.96 = 7.2,
    # SD = sqrt(7.2 / 4) = 1.341641; limits 0.4 -/+ 1.96 * 1.341641 = -2.229616 / 3.029616
    sd = math.sqrt(7.2 / 4)
    low, high = 0.4 - 1.96 * sd, 0.4 + 1.96 * sd
    # Bland & Altman 1999: SE of a limit = sd sqrt(1/n + 1.96^2 / (2 (n - 1))); t(4, .975) from
    # a printed t table = 2.776
    se = sd * math.sqrt(1 / 5 + 1.96**2 / 8)
    t4 = 2.776445
    out = agreement.limits_of_agreement(PREDICTED, MEASURED, ci_method="approximate")
    assert out["n"] == 5
    assert out["bias"] == pytest.approx(0.4, abs=1e-12)
    assert out["sd"] == pytest.approx(1.341641, abs=1e-6)
    assert (out["loa_low"], out["loa_high"]) == pytest.approx((-2.229616, 3.029616), abs=1e-6)
    assert (out["loa_low"], out["loa_high"]) == pytest.approx((low, high), abs=1e-12)
    assert out["loa_low_ci_low"] == pytest.approx(low - t4 * se, abs=1e-5)
    assert out["loa_low_ci_high"] == pytest.approx(low + t4 * se, abs=1e-5)
    assert out["loa_high_ci_low"] == pytest.approx(high - t4 * se, abs=1e-5)
    assert out["loa_high_ci_high"] == pytest.approx(high + t4 * se, abs=1e-5)
    assert (out["bias_ci_low"], out["bias_ci_high"]) == pytest.approx(
        (0.4 - t4 * sd / math.sqrt(5), 0.4 + t4 * sd / math.sqrt(5)), abs=1e-5)


def test_exact_limits_share_the_estimates_and_are_asymmetric_about_them():
    exact = agreement.limits_of_agreement(PREDICTED, MEASURED)
    assert exact["ci_method"] == "exact"
    assert exact["loa_high"] == pytest.approx(3.029616, abs=1e-6)
    # a limit's sampling distribution is skewed (a scaled non-central t): its CI reaches
    # further above the upper limit than below it, and mirrors that for the lower limit
    assert exact["loa_high_ci_high"] - exact["loa_high"] > exact["loa_high"] - exact["loa_high_ci_low"]
    assert exact["loa_low"] - exact["loa_low_ci_low"] > exact["loa_low_ci_high"] - exact["loa_low"]


@pytest.mark.slow
def test_exact_confidence_intervals_cover_the_true_limit_95_percent_of_the_time():
    # the defining property of Carkeet's exact CI, checked by simulation with small samples
    rng = np.random.default_rng(11)
    n, reps, mu, sigma = 6, 3000, 2.0, 3.0
    true_high, true_low = mu + 1.96 * sigma, mu - 1.96 * sigma
    hits_high = hits_low = 0
    for _ in range(reps):
        d = rng.normal(mu, sigma, n)
        out = agreement.limits_of_agreement(d, np.zeros(n))
        hits_high += out["loa_high_ci_low"] <= true_high <= out["loa_high_ci_high"]
        hits_low += out["loa_low_ci_low"] <= true_low <= out["loa_low_ci_high"]
    tolerance = 3 * math.sqrt(0.95 * 0.05 / reps)
    assert abs(hits_high / reps - 0.95) < tolerance
    assert abs(hits_low / reps - 0.95) < tolerance


def test_exact_and_approximate_intervals_agree_for_large_samples():
    rng = np.random.default_rng(3)
    d = rng.normal(1.0, 2.0, 5000)
    exact = agreement.limits_of_agreement(d, np.zeros_like(d))
    approx = agreement.limits_of_agreement(d, np.zeros_like(d), ci_method="approximate")
    for key in ("loa_low_ci_low", "loa_low_ci_high", "loa_high_ci_low", "loa_high_ci_high"):
        assert exact[key] == pytest.approx(approx[key], abs=0.01)


@settings(max_examples=30, deadline=None)
@given(st.floats(-5, 5), st.floats(-0.5, 0.5), st.integers(0, 2**31))
def test_proportional_bias_is_the_slope_of_difference_on_the_methods_value(offset, slope, seed):
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(20, 100, 60)
    # choose measured so that difference = offset + slope * predicted exactly (no noise)
    measured = predicted - offset - slope * predicted
    out = agreement.limits_of_agreement(predicted, measured)
    assert out["proportional_slope"] == pytest.approx(slope, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 200), st.floats(0.5, 1.5), st.floats(0.5, 10), st.integers(0, 2**31))
def test_proportional_bias_is_one_minus_the_calibration_slope(n, cal_slope, noise, seed):
    """The algebra: d = p - m on p has slope 1 - (slope of m on p) and the same residuals, so
    the same SE, CI (mirrored about 1) and p-value; checked against statsmodels' OLS of m on p
    through its formula interface, fitted independently of bnapp's design matrix."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(seed)
    p = rng.uniform(30, 90, n)
    m = 5 + cal_slope * p + rng.normal(0, noise, n)
    fit = smf.ols("m ~ p", data=pd.DataFrame({"m": m, "p": p})).fit()
    low, high = fit.conf_int(alpha=0.05).loc["p"]
    out = agreement.limits_of_agreement(p, m)
    assert out["proportional_slope"] == pytest.approx(1 - fit.params["p"], rel=1e-9, abs=1e-9)
    assert out["proportional_slope_ci_low"] == pytest.approx(1 - high, rel=1e-9, abs=1e-9)
    assert out["proportional_slope_ci_high"] == pytest.approx(1 - low, rel=1e-9, abs=1e-9)
    # the p-value tests slope 0 here and calibration slope 1 there: the same t statistic
    t_one = (fit.params["p"] - 1) / fit.bse["p"]
    p_one = 2 * stats.t.sf(abs(t_one), n - 2)
    assert out["proportional_p"] == pytest.approx(p_one, rel=1e-6, abs=1e-12)


def _calibrated_sample(rng, n):
    """A perfectly calibrated predictor, E[measured | predicted] = predicted: predicted spread
    as the study's Ueq (SD ~ 12 mg/dL around 45), measured = predicted + independent noise."""
    predicted = rng.normal(45, 12, n)
    return predicted, predicted + rng.normal(0, 6, n)


@pytest.mark.slow
def test_a_perfectly_calibrated_predictor_is_flagged_at_the_nominal_rate():
    """Acceptance (issue 26): n = 109 as the study, 2,000 simulations, so the rate of p < 0.05
    has an SE of 0.5 points and 7 % is four SEs above 5 %. The old regression on the pair's
    mean flags the same samples most of the time, and a predictor whose calibration slope is
    0.8 is flagged most of the time too (the test has power)."""
    rng = np.random.default_rng(2026)
    sims, n, alpha = 2000, 109, 0.05
    flagged = on_mean = miscalibrated = 0
    for i in range(sims):
        p, m = _calibrated_sample(rng, n)
        flagged += agreement.limits_of_agreement(p, m)["proportional_p"] < alpha
        on_mean += stats.linregress((p + m) / 2, p - m).pvalue < alpha
        if i % 10 == 0:  # 200 are enough to show power
            shrunk = 45 + (m - 45) / 0.8  # m = 45 + 0.8 (shrunk - 45) + noise: slope 0.8
            miscalibrated += agreement.limits_of_agreement(shrunk, m)["proportional_p"] < alpha
    assert flagged / sims <= 0.07
    assert on_mean / sims > 0.5
    assert miscalibrated / (sims // 10) > 0.8


@pytest.mark.slow
def test_out_of_fold_least_squares_on_20000_synthetic_sessions_has_no_proportional_bias():
    """Acceptance (issue 26): 10-fold out-of-fold OLS on the simulator's sessions is calibrated,
    and its proportional-bias interval holds 0 (the regression on the mean flagged it)."""
    from bnapp.analyses.baselines import LeastSquares
    from bnapp.engine.protocols import Protocol
    from bnapp.engine.train import make_splits
    from bnapp.intake.data import STUDY_INPUTS
    from bnapp.intake.simulator import simulate_cohort

    cohort = simulate_cohort(20_000, 26)
    cohort = cohort[cohort["Ueq"] >= cohort["Upos"]]  # the rule every data set is read with
    x, y = cohort[STUDY_INPUTS].to_numpy(), cohort["Ueq"].to_numpy()
    ols = LeastSquares(x, y)
    predicted = np.empty(len(y))
    for split in make_splits(Protocol(folds=10), len(y)):
        predicted[split.test] = ols.predict(ols.fit(split.train), x[split.test])
    out = agreement.limits_of_agreement(predicted, y)
    assert out["proportional_slope_ci_low"] <= 0 <= out["proportional_slope_ci_high"]
    assert stats.linregress((predicted + y) / 2, predicted - y).pvalue < 0.05


def test_pairs_with_nan_are_left_out_and_tiny_samples_give_nan():
    out = agreement.limits_of_agreement([*PREDICTED, np.nan], [*MEASURED, 3.0])
    assert out["n"] == 5 and out["bias"] == pytest.approx(0.4)
    tiny = agreement.limits_of_agreement([1.0, 2.0], [1.5, 2.5])
    assert tiny["n"] == 2 and math.isnan(tiny["loa_high"])
    with pytest.raises(ValueError, match="ci_method"):
        agreement.limits_of_agreement(PREDICTED, MEASURED, ci_method="guess")


def test_calibration_slope_and_intercept_recover_a_known_line():
    rng = np.random.default_rng(5)
    predicted = rng.uniform(30, 90, 400)
    measured = 4.0 + 0.85 * predicted + rng.normal(0, 3.0, 400)
    out = agreement.calibration_line(predicted, measured)
    # independent reference: least squares by numpy and the textbook slope SE
    slope, intercept = np.polyfit(predicted, measured, 1)
    resid = measured - (intercept + slope * predicted)
    se = math.sqrt(resid @ resid / 398 / np.sum((predicted - predicted.mean()) ** 2))
    assert out["slope"] == pytest.approx(slope, rel=1e-9)
    assert out["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert out["slope_ci_high"] - out["slope"] == pytest.approx(1.9659 * se, rel=1e-3)
    assert out["slope_ci_low"] < 0.85 < out["slope_ci_high"]
    assert out["intercept_ci_low"] < 4.0 < out["intercept_ci_high"]


@pytest.mark.slow
def test_agreement_table_of_a_run_is_each_methods_test_rows():
    run = demo_run().run
    table = agreement.agreement(run)
    assert list(table.columns[:10]) == ["method", "quantity", "bias", "loa_low", "loa_high",
                                        "loa_low_ci_low", "loa_low_ci_high", "loa_high_ci_low",
                                        "loa_high_ci_high", "n"]
    assert set(table["quantity"]) == {"Ueq", "eKtV"}
    preds = fold_predictions(run)
    for method in ("network", "rate_equation"):
        rows = preds[preds["method"] == method]
        ueq = table.query("method == @method and quantity == 'Ueq'").iloc[0]
        d = (rows["prediction"] - rows["truth"]).tolist()
        assert ueq["n"] == len(d) == len(run.y)  # k-fold: every row tested once
        assert ueq["bias"] == pytest.approx(statistics.fmean(d), rel=1e-9)
        assert ueq["loa_high"] == pytest.approx(statistics.fmean(d) + 1.96 * statistics.stdev(d),
                                                rel=1e-9)
        # eKt/V: the dose each Ueq implies, by Daugirdas' formula with Ueq for Upos
        x = pd.DataFrame(run.X[rows["row"]], columns=run.features)
        w = x["PP"] - x["UF"]
        dd = (kinetics.sp_ktv(x["Upre"], rows["prediction"], x["UF"], w)
              - kinetics.sp_ktv(x["Upre"], rows["truth"], x["UF"], w))
        ektv = table.query("method == @method and quantity == 'eKtV'").iloc[0]
        assert ektv["bias"] == pytest.approx(np.nanmean(dd), rel=1e-9)


def test_calibration_curves_follow_the_points():
    run = demo_run().run
    points = agreement.agreement_points(run)
    curves = agreement.calibration_curves(points)
    assert set(curves["method"]) == set(points["method"])
    lr = points.query("method == 'linear_regression' and quantity == 'Ueq'")
    fit = curves.query("method == 'linear_regression' and quantity == 'Ueq'")
    assert fit["predicted"].min() == pytest.approx(lr["predicted"].min())
    # a well-calibrated method's LOWESS stays near the identity line
    assert np.median(np.abs(fit["lowess"] - fit["predicted"])) < 0.1 * lr["measured"].std()


def test_a_large_calibration_curve_is_fitted_on_a_sample_and_thinned():
    """Beyond max_rows the LOWESS is fitted on a seeded sample (said in the rows columns), drawn
    through at most CURVE_POINTS points, and still follows the exact curve of all the rows."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    rng = np.random.default_rng(7)
    predicted = rng.uniform(40.0, 90.0, 3000)
    measured = predicted + 5.0 * np.sin(predicted / 8.0) + rng.normal(0.0, 2.0, 3000)
    points = pd.DataFrame({"method": "network", "quantity": "Ueq", "predicted": predicted,
                           "measured": measured})
    curves = agreement.calibration_curves(points, max_rows=1000)
    assert len(curves) <= agreement.CURVE_POINTS
    assert (curves["rows"] == 3000).all() and (curves["fitted_rows"] == 1000).all()
    assert curves["predicted"].is_monotonic_increasing
    exact = lowess(measured, predicted, frac=agreement.LOWESS_FRAC)
    expected = np.interp(curves["predicted"], exact[:, 0], exact[:, 1])
    assert np.abs(curves["lowess"] - expected).max() < 1.0  # noise SD 2, wave amplitude 5
    again = agreement.calibration_curves(points, max_rows=1000)
    pd.testing.assert_frame_equal(curves, again)
    whole = agreement.calibration_curves(points)
    assert (whole["fitted_rows"] == 3000).all()


# ------------------------------------------------------------------------ within a tolerance

def wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval (1927), written out."""
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def test_share_within_counts_each_methods_sessions_and_gives_wilsons_interval():
    run = demo_run().run
    points = agreement.agreement_points(run)
    share = agreement.share_within(run, 7.5, 0.12, level=0.9, points=points)
    assert len(share) == points.groupby(["method", "quantity"]).ngroups
    for row in share.itertuples():
        d = points[(points["method"] == row.method) & (points["quantity"] == row.quantity)]
        allowed = 0.12 if row.quantity == "eKtV" else 7.5
        k = int((d["difference"].abs() <= allowed).sum())
        assert (row.tolerance, row.n, row.within) == (allowed, len(d), k)
        assert (row.ci_low, row.ci_high) == pytest.approx(wilson(k, len(d), 0.9))


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 60), extra=st.integers(0, 60), level=st.floats(0.5, 0.99))
def test_share_within_interval_is_wilsons_at_every_count(k, extra, level):
    """Differences of 0 (within) and 10 (outside a tolerance of 1), NaN left out."""
    n = k + extra
    if n == 0:
        return
    d = np.r_[np.zeros(k), np.full(extra, 10.0), np.nan]
    points = pd.DataFrame({"method": "network", "quantity": "y", "row": np.arange(n + 1),
                           "difference": d})
    (row,) = agreement.share_within(demo_run().run, 1.0, level=level,
                                    points=points).itertuples()
    assert (row.n, row.within, row.share) == (n, k, pytest.approx(k / n))
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson(k, n, level), abs=1e-12)


def test_default_tolerance_is_the_clinical_one_for_ueq_and_a_tenth_sd_otherwise():
    import dataclasses

    run = demo_run().run
    assert agreement.default_tolerance(run) == 5.0
    other = dataclasses.replace(run, target="U120", y=run.y * 0 + np.arange(len(run.y)))
    assert agreement.default_tolerance(other) == float(f"{np.std(other.y) / 10:.2g}")


def test_the_largest_differences_are_identified_by_file_row_and_group():
    points = pd.DataFrame({"method": "network", "quantity": "Ueq", "row": [0, 1, 2, 3],
                           "difference": [1.0, -9.0, 3.0, 9.5]})
    row_ids = np.array([2, 3, 5, 8])  # a file row was dropped between 3 and 5
    groups = np.array(["a", "b", "a", "c"])
    named = agreement.identify(points, row_ids, groups)
    top = agreement.largest_differences(named, "network", "Ueq", n=3)
    assert list(top["data_row"]) == [8, 3, 5]
    assert list(top["group"]) == ["c", "b", "a"]
    assert list(top["difference"]) == [9.5, -9.0, 3.0]
    assert list(agreement.identify(points)["data_row"]) == [0, 1, 2, 3]
    assert "group" not in agreement.identify(points, row_ids)
