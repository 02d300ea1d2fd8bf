"""CV+ prediction intervals: the construction, and coverage near nominal on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bnapp.analyses import conformal
from bnapp.analyses.baselines import fold_predictions
from tests.apptest import demo_run


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 100)),
       st.floats(0.05, 0.99))
def test_conformal_quantile_is_the_rank_ceil_level_n_plus_1(scores, level):
    # the product rounded to 9 decimals first, as documented: a level a hair above a decimal
    # (0.05000000000000001 x 20) is that decimal, not the next rank
    rank = math.ceil(round(level * (len(scores) + 1), 9))
    got = conformal.conformal_quantile(scores, level)
    if rank > len(scores):
        assert got == math.inf
    else:
        # brute force: the smallest score with at least `rank` scores at or below it
        assert got == min(s for s in scores if np.sum(scores <= s) >= rank)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 40), elements=st.floats(0, 50)),
       st.floats(-100, 100), st.floats(0.5, 0.95))
def test_one_model_for_every_fold_is_split_conformal(scores, centre, level):
    # CV+ with identical fold models reduces to centre +/- the conformal quantile (both sides)
    low, high = conformal.cv_plus(scores, np.full((len(scores), 1), centre), level)
    q = conformal.conformal_quantile(scores, level)
    assert high[0] == pytest.approx(centre + q)
    assert low[0] == pytest.approx(centre - q)


def test_bad_levels_are_refused():
    for level in (0.0, 1.0, 90):
        with pytest.raises(ValueError, match="between 0 and 1"):
            conformal.check_level(level)


def _ols(x, y):
    design = np.column_stack([np.ones(len(x)), x])
    return np.linalg.lstsq(design, y, rcond=None)[0]


@pytest.mark.slow
def test_cv_plus_covers_new_points_at_the_nominal_rate():
    """One fresh point per simulated data set: the hits are independent Bernoulli draws, so the
    rate must lie within a binomial tolerance of the level (CV+ may be slightly conservative)."""
    rng = np.random.default_rng(20210101)
    reps, n, k, level = 2000, 60, 5, 0.9
    hits = 0
    for _ in range(reps):
        x = rng.uniform(0, 10, (n + 1, 2))
        y = 1.0 + x @ np.array([2.0, -1.0]) + rng.standard_t(5, n + 1) * (1 + 0.2 * x[:, 0])
        folds = np.array_split(rng.permutation(n), k)
        scores, centres = [], []
        for test in folds:
            train = np.setdiff1d(np.arange(n), test)
            coef = _ols(x[train], y[train])
            fit = np.column_stack([np.ones(n + 1), x]) @ coef
            scores += list(np.abs(y[test] - fit[test]))
            centres += [fit[n]] * len(test)
        low, high = conformal.cv_plus(np.array(scores), np.array(centres)[:, None], level)
        hits += bool(low[0] <= y[n] <= high[0])
    se = math.sqrt(level * (1 - level) / reps)
    assert level - 3 * se <= hits / reps <= level + 3 * se


def test_held_out_coverage_of_a_run_is_near_nominal_for_every_method():
    run = demo_run().run
    level = 0.8
    intervals = conformal.held_out_intervals(run, level)
    table = conformal.coverage(intervals, level)
    pooled = table[table["fold"] == "pooled"].set_index("method")
    n = len(run.y)
    assert set(pooled.index) == {"network", "linear_regression", "rate_equation", "tattersall"}
    assert (pooled["n"] == n).all()
    tolerance = 3 * math.sqrt(level * (1 - level) / n)
    assert (abs(pooled["coverage"] - level) < tolerance).all(), pooled
    # per fold: the share of that fold's rows inside their interval
    for (method, fold), g in intervals.groupby(["method", "fold"]):
        row = table[(table["method"] == method) & (table["fold"] == str(fold))].iloc[0]
        inside = ((g["truth"] >= g["pi_low"]) & (g["truth"] <= g["pi_high"])).mean()
        assert row["coverage"] == pytest.approx(inside)


def test_held_out_interval_uses_only_the_other_folds_residuals():
    run = demo_run().run
    preds = fold_predictions(run)
    net = preds[preds["method"] == "network"]
    intervals = conformal.held_out_intervals(run, 0.9, preds=net)
    fold0 = run.folds[0].fold
    others = net[net["fold"] != fold0]
    q = conformal.conformal_quantile(np.abs(others["truth"] - others["prediction"]), 0.9)
    mine = intervals[intervals["fold"] == fold0]
    assert np.allclose(mine["pi_high"] - mine["prediction"], q)
    assert np.allclose(mine["prediction"] - mine["pi_low"], q)


def test_new_intervals_contain_the_fold_ensemble_and_normalize_by_the_spread():
    run = demo_run().run
    x = run.X[:5]
    low, high = conformal.new_intervals(run, x, level=0.9)
    centre = run.ensemble_predictions(x).mean(axis=0)
    assert np.all(low < centre) and np.all(centre < high)
    n_low, n_high = conformal.new_intervals(run, x, level=0.9, normalized=True)
    assert np.all(n_low < n_high)
    assert not np.allclose(n_high - n_low, high - low)
    # a formula's interval is split-conformal: its value +/- one quantile for every session
    f_low, f_high = conformal.new_intervals(run, x, "rate_equation", level=0.9)
    assert np.allclose((f_high - f_low), (f_high - f_low)[0])


def test_network_predictions_file_has_one_line_per_test_row():
    run = demo_run().run
    table = conformal.network_predictions(run, 0.9)
    assert list(table.columns) == ["row", "fold", "measured", "predicted", "pi_low", "pi_high"]
    assert len(table) == sum(len(f.test_rows) for f in run.folds)
    assert sorted(table["row"]) == sorted(run.row_ids)
    assert (table["pi_low"] < table["predicted"]).all()
    assert (table["predicted"] < table["pi_high"]).all()


def test_too_few_rows_for_the_level_give_unbounded_intervals_and_a_drawable_chart():
    from bnapp.report.agreement_charts import coverage_chart
    from bnapp.report.export import chart_svg

    low, high = conformal.cv_plus(np.array([1.0, 2.0, 3.0]), np.zeros((3, 1)), 0.9)
    assert low[0] == -np.inf and high[0] == np.inf  # ceil(0.9 * 4) = 4 > 3 residuals
    run = demo_run().run
    table = conformal.coverage(conformal.held_out_intervals(run, 0.999), 0.999)
    assert (table["coverage"] == 1.0).all() and np.isinf(table["mean_width"]).all()
    assert chart_svg(coverage_chart(table, 0.999)).lstrip().startswith("<svg")


def test_a_decimal_level_gives_the_exact_rank():
    # 1 - 0.8 is 0.19999999999999996 in binary: the lower rank floor(0.2 * 5) must still be 1
    low, high = conformal.cv_plus(np.array([1.0, 2.0, 3.0, 4.0]), np.zeros((4, 1)), 0.8)
    assert (low[0], high[0]) == (-4.0, 4.0)


def _cv_plus_by_hand(scores, centres, level):
    """Barber et al.'s CV+ ends by sorting: the floor(a (n+1))-th smallest of centre - score
    and the ceil((1-a)(n+1))-th smallest of centre + score, a = 1 - level."""
    n = len(scores)
    k_high = math.ceil(round(level * (n + 1), 9))
    return (np.sort(centres - scores)[n - k_high], np.sort(centres + scores)[k_high - 1])


def test_nested_cv_plus_of_least_squares_matches_a_refit_by_hand():
    """For OLS the nested construction needs no network: each outer fold's rows get the CV+
    interval of OLS refitted on the rows outside that fold and each inner fold."""
    run = demo_run().run
    level = 0.8
    nested = conformal.nested_cv_plus_intervals(run, level)
    assert set(nested["interval"]) == {"cv_plus"}
    ols = nested[nested["method"] == "linear_regression"]
    assert sorted(ols["row"]) == list(range(len(run.y)))  # 3 folds, 200 rows < NESTED_ROWS
    design = np.column_stack([np.ones(len(run.y)), run.X])
    tests = {f.fold: f.test_rows for f in run.folds}
    for k, held in tests.items():
        scores, centres = [], []
        for j, rows in tests.items():
            if j == k:
                continue
            train = np.setdiff1d(np.arange(len(run.y)), np.concatenate([held, rows]))
            coef = np.linalg.lstsq(design[train], run.y[train], rcond=None)[0]
            scores.append(np.abs(run.y[rows] - design[rows] @ coef))
            centres.append(np.repeat((design[held] @ coef)[None, :], len(rows), axis=0))
        scores, centres = np.concatenate(scores), np.concatenate(centres)
        got = ols[ols["fold"] == k].set_index("row").loc[held]
        for i in range(len(held)):
            low, high = _cv_plus_by_hand(scores, centres[:, i], level)
            assert got["pi_low"].iloc[i] == pytest.approx(low, rel=1e-9)
            assert got["pi_high"].iloc[i] == pytest.approx(high, rel=1e-9)


def test_nested_cv_plus_intervals_come_from_networks_that_never_saw_the_rows():
    """Changing the measured values of one outer fold's rows changes nothing in their nested
    intervals (no inner model trained or was scored on them) but changes the other folds'."""
    from dataclasses import replace

    run = demo_run().run
    held = run.folds[0].test_rows
    y = run.y.copy()
    y[held] += 50.0
    before = conformal.nested_cv_plus_intervals(run, 0.9)
    after = conformal.nested_cv_plus_intervals(replace(run, y=y), 0.9)
    net = (before["method"] == "network").to_numpy()
    mine = net & (before["fold"] == run.folds[0].fold).to_numpy()
    for end in ("pi_low", "pi_high", "prediction"):
        np.testing.assert_array_equal(before.loc[mine, end], after.loc[mine, end])
        assert not np.allclose(before.loc[net & ~mine, end], after.loc[net & ~mine, end])


def test_held_out_coverage_labels_both_constructions_and_skips_imported_runs():
    from dataclasses import replace

    run = demo_run().run
    table = conformal.held_out_coverage(run, 0.9)
    pooled = table[table["fold"] == "pooled"]
    assert list(pooled["interval"]) == ["cv_plus"] * 4 + ["split_conformal"] * 4
    assert set(table["interval"]) <= set(conformal.INTERVALS)
    # a checkpoint import cannot be retrained as it was: only the held-out figure is given
    imported = conformal.held_out_coverage(replace(run, source="keras:e2e"), 0.9)
    assert set(imported["interval"]) == {"split_conformal"}
    pd.testing.assert_frame_equal(imported.reset_index(drop=True),
                                  table[table["interval"] == "split_conformal"]
                                  .reset_index(drop=True))


@pytest.mark.slow
def test_two_groups_left_out_in_turn_have_no_nested_cv_plus_but_a_split_conformal_coverage():
    """Leave one of two centres out: every inner run would train on nothing (each fold trains
    on the other's rows only), so the CV+ check is left out instead of failing the page."""
    from bnapp.engine.model import ArchSpec
    from bnapp.engine.protocols import LEAVE_ONE_GROUP_OUT, Protocol, grouped
    from bnapp.engine.train import train_run
    from bnapp.intake import data

    ds = data.demo_dataset()
    centres = np.arange(ds.n_usable) % 2
    protocol = grouped(Protocol(epochs=2, seed=0), LEAVE_ONE_GROUP_OUT, "centre", centres)
    cols = list(data.STUDY_INPUTS)
    run = train_run(ds.X(cols), ds.y(), ArchSpec.study_e2e(), protocol, features=cols,
                    target=data.STUDY_TARGET, groups=centres)
    assert conformal.nested_cv_plus_intervals(run).empty
    found = conformal.held_out_coverage(run, 0.9)
    assert set(found["interval"]) == {"split_conformal"}
    pooled = found[(found["fold"] == "pooled") & (found["method"] == "network")]
    assert int(pooled["n"].iloc[0]) == ds.n_usable
