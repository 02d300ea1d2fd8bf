"""Cohort intervals: the replicates' folds, and the intervals against independent bootstraps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from bnapp.analyses import baselines
from bnapp.analyses import cohort_intervals as ci
from bnapp.analyses.association import rowwise_kendall_tau
from bnapp.analyses.concordance import STATISTICS, _per_fold, importance_report
from bnapp.analyses.layer_tables import importance_tables
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol, grouped
from bnapp.engine.results import INPUT
from bnapp.engine.train import train_run

SPEC = ArchSpec(hidden=(3,))
FEATURES = ["a", "b", "c"]


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ [1.0, 0.5, -0.2] + rng.normal(scale=0.5, size=n)


def _cohort(n=60, groups=None, folds=5, epochs=1) -> ci.Cohort:
    X, y = _data(n)
    protocol = Protocol(folds=folds, epochs=epochs)
    if groups is not None:
        protocol = grouped(protocol, "group-kfold", "patient", groups)
    run = train_run(X, y, SPEC, protocol, features=FEATURES, groups=groups)
    return ci.Cohort.of_run(run, groups)


def _pooled_test_mean(run) -> pd.Series:
    rows = np.concatenate([f.test_rows for f in run.folds])
    return pd.Series({"mean_y": run.y[rows].mean()})


def _se(table: pd.DataFrame, n_replicates: int) -> float:
    """The SD of the replicates back from a symmetric (unclipped) interval."""
    half = float(table["ci_high"].iloc[0] - table["ci_low"].iloc[0]) / 2
    return half / stats.t.ppf(0.975, n_replicates - 1)


def test_a_replicate_never_tests_a_model_on_a_session_it_trained_on():
    replicated = ci.replicate_runs(_cohort(), 8, seed=3)
    assert len(replicated.items) == 8 and "sessions" in replicated.describes
    for run in replicated.items:
        assert [f.fold for f in run.folds] == list(range(5))
        for fold in run.folds:
            assert not set(fold.train_rows) & set(fold.test_rows)
        tested = np.bincount(np.concatenate([f.test_rows for f in run.folds]), minlength=60)
        trained = np.bincount(np.concatenate([f.train_rows for f in run.folds]), minlength=60)
        # every copy of a drawn session is tested once and trained on in the other 4 folds
        assert np.array_equal(trained, 4 * tested)
        assert tested.sum() == 60 and (tested == 0).sum() > 10  # a resample, with repeats
    first, second = (r.folds[0].weights.kernels[0] for r in replicated.items[:2])
    assert not np.allclose(first, second)  # each replicate's models start anew


@pytest.mark.parametrize("protocol", [
    Protocol(kind="repeated", folds=3, repeats=2, epochs=1),
    Protocol(kind="study", folds=3, val_fraction=0.2, epochs=1)])
def test_repeated_and_study_replicates_keep_their_protocol_and_never_leak(protocol):
    X, y = _data(60)
    run = train_run(X, y, SPEC, protocol, features=FEATURES)
    for replicate in ci.replicate_runs(ci.Cohort.of_run(run), 3).items:
        assert len(replicate.folds) == protocol.n_models
        assert [f.fold for f in replicate.folds] == list(range(protocol.n_models))
        for fold in replicate.folds:
            sides = [set(fold.train_rows), set(fold.val_rows), set(fold.test_rows)]
            assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
            assert len(fold.val_rows) == 0 or protocol.kind == "study"


def test_a_grouped_replicate_draws_and_keeps_whole_groups():
    groups = np.repeat([f"p{i}" for i in range(15)], 4)
    replicated = ci.replicate_runs(_cohort(groups=groups), 6, seed=1)
    assert "patient groups" in replicated.describes
    for run in replicated.items:
        for fold in run.folds:
            assert not set(groups[fold.train_rows]) & set(groups[fold.test_rows])
        tested = np.bincount(np.concatenate([f.test_rows for f in run.folds]), minlength=60)
        assert (tested.reshape(15, 4) == tested.reshape(15, 4)[:, :1]).all()


def test_a_grouped_run_needs_its_labels():
    groups = np.repeat(np.arange(15), 4)
    cohort = _cohort(groups=groups)
    run = train_run(cohort.X, cohort.y, SPEC, cohort.protocol, features=FEATURES, groups=groups)
    with pytest.raises(ValueError, match="'patient' groups together"):
        ci.Cohort.of_run(run)


def test_the_spread_of_a_mean_is_scipys_bootstrap_standard_error():
    cohort = _cohort(n=80)
    out = ci.cohort_interval(cohort, _pooled_test_mean, n_replicates=300, seed=0)
    # every drawn session is in one test set: the statistic is the resample's mean of y
    scipy_se = stats.bootstrap((cohort.y,), np.mean, n_resamples=9999, method="percentile",
                               random_state=1).standard_error
    assert _se(out, 300) == pytest.approx(scipy_se, rel=0.15)
    assert out["estimate"].iloc[0] == pytest.approx(_pooled_test_mean(train_run(
        cohort.X, cohort.y, SPEC, cohort.protocol, features=FEATURES))["mean_y"])
    assert out["interval"].iloc[0] == ci.describes(300)


def test_the_spread_under_groups_is_a_cluster_bootstrap():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 7, size=20)
    groups = np.repeat(np.arange(20), sizes)
    cohort = _cohort(n=len(groups), groups=groups)
    out = ci.cohort_interval(cohort, _pooled_test_mean, n_replicates=300, seed=0)
    members = [cohort.y[groups == g] for g in range(20)]
    means = [np.concatenate([members[g] for g in rng.integers(0, 20, 20)]).mean()
             for _ in range(4000)]
    assert _se(out, 300) == pytest.approx(np.std(means, ddof=1), rel=0.15)


def test_with_intervals_is_estimate_plus_minus_t_sd_clipped_and_matches_missing_keys():
    keys = pd.DataFrame({"hidden_layer": pd.array([pd.NA, 1], dtype="Int64"),
                         "statistic": ["spearman", "top_unit_agreement"]})
    table = keys.assign(estimate=[0.5, 0.9], ci_low=np.nan, ci_high=np.nan)
    spreads = [[0.2, 0.4, 0.9], [0.7, 0.9, 1.0]]
    replicated = ci.Replicated([keys.assign(estimate=list(pair))
                                for pair in zip(*spreads, strict=True)], "why")
    out = ci.with_intervals(table, replicated, ["hidden_layer", "statistic"],
                            bounds={"top_unit_agreement": (0.0, 1.0)})
    t = stats.t.ppf(0.975, 2)
    for row, values in zip(out.itertuples(), spreads, strict=True):
        half = t * np.std(values, ddof=1)
        assert row.ci_low == pytest.approx(max(row.estimate - half, -1.0))
        assert row.ci_high == pytest.approx(min(row.estimate + half, 1.0))
    assert out["ci_high"].iloc[1] == 1.0 and (out["interval"] == "why").all()


def test_a_statistic_fewer_than_two_replicates_define_has_no_interval():
    table = pd.DataFrame({"statistic": ["rho"], "estimate": [0.3]})
    replicated = ci.Replicated([table.assign(estimate=v) for v in (0.2, np.nan, np.inf)], "")
    out = ci.with_intervals(table, replicated, ["statistic"])
    assert out[["ci_low", "ci_high"]].isna().all(axis=None)


@settings(max_examples=200, deadline=None)
@given(arrays(np.int8, st.tuples(st.integers(1, 4), st.integers(2, 7)),
              elements=st.integers(0, 3)),
       st.randoms(use_true_random=False))
def test_rowwise_kendall_tau_is_scipys_tau_b(x, random):
    y = np.array(random.sample(list(x.ravel()), x.size)).reshape(x.shape)  # ties in both
    expected = [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(rowwise_kendall_tau(x.astype(float), y.astype(float)), expected,
                               equal_nan=True)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # scipy's NaN
@settings(max_examples=50, deadline=None)
@given(arrays(float, (4, 5), elements=st.sampled_from([0.5, 1.0, 2.0, 3.0, np.nan])),
       arrays(float, (4, 5), elements=st.floats(-3, 3)))
def test_per_fold_statistics_are_scipys_on_the_known_units(gamma, importance):
    g = pd.DataFrame({"fold": np.repeat(np.arange(4), 5), "unit": np.tile(list("vwxyz"), 4),
                      "gamma": gamma.ravel(), "importance": importance.ravel()})
    out = _per_fold(g)
    for f in range(4):
        known = ~np.isnan(gamma[f])
        x, y = gamma[f, known], importance[f, known]
        if known.sum() < 2:
            assert out.iloc[f].isna().all()
            continue
        expected = [stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic,
                    float(np.argmax(x) == np.argmax(y))]
        np.testing.assert_allclose(out.iloc[f][list(STATISTICS)].to_numpy(float), expected,
                                   equal_nan=True, atol=1e-12)


def test_a_resample_of_one_group_is_drawn_again():
    groups = np.repeat(["p", "q"], 30)  # half of all resamples of two groups are one group
    protocol = grouped(Protocol(epochs=1), "leave-one-group-out", "patient", groups)
    X, y = _data(60)
    run = train_run(X, y, SPEC, protocol, features=FEATURES, groups=groups)
    for replicate in ci.replicate_runs(ci.Cohort.of_run(run, groups), 10).items:
        assert len(replicate.folds) == 2
        assert {frozenset(groups[f.test_rows]) for f in replicate.folds} == {
            frozenset("p"), frozenset("q")}


@pytest.fixture(scope="module")
def small_run():
    X, y = _data(60)
    run = train_run(X, y, SPEC, Protocol(folds=3, epochs=2), features=FEATURES)
    return run, ci.replicate_runs(ci.Cohort.of_run(run), 3)


def test_the_importance_tables_take_the_replicates_for_every_interval(small_run):
    run, replicated = small_run
    inputs = [INPUT]
    association = importance_tables(run, inputs, replicates=replicated)["association"]
    report = importance_report(run, inputs, replicates=replicated)  # their sensitivity shared
    alone = importance_report(run, inputs, replicates=ci.Replicated(replicated.items, "x"))
    pd.testing.assert_frame_equal(report["concordance"].drop(columns="interval"),
                                  alone["concordance"].drop(columns="interval"))
    for table in (association, report["concordance"]):
        assert (table["interval"] == replicated.describes).all()
        defined = table.dropna(subset=["ci_low"])
        assert len(defined) > len(table) / 2
        assert ((defined["ci_low"] <= defined["estimate"])
                & (defined["estimate"] <= defined["ci_high"])).all()
    folds_only = importance_tables(run, inputs, n_replicates=0)["association"]
    assert (folds_only["interval"] == ci.FOLD_INTERVAL).all()
    np.testing.assert_allclose(folds_only["estimate"], association["estimate"])



def test_error_intervals_spread_the_replicates_rmse_around_the_runs(small_run):
    run, replicated = small_run
    table = baselines.error_intervals(run, replicated).set_index(["method", "statistic"])
    assert set(table.index.get_level_values("method")) == {"network", "linear_regression"}

    def network_rmse(trained) -> float:  # written out: every fold's test rows pooled
        errors = np.concatenate([trained.test_predictions(f) - trained.y[f.test_rows]
                                 for f in trained.folds])
        return float(np.sqrt(np.mean(errors**2)))

    estimate, low, high, said = table.loc[("network", "rmse"),
                                          ["estimate", "ci_low", "ci_high", "interval"]]
    assert estimate == pytest.approx(network_rmse(run))
    spread = np.std([network_rmse(r) for r in replicated.items], ddof=1)
    half = stats.t.ppf(0.975, len(replicated.items) - 1) * spread
    assert (low, high) == pytest.approx((max(estimate - half, 0.0), estimate + half))
    assert said == replicated.describes
    alone = baselines.error_intervals(run, n_replicates=0)
    assert alone["ci_low"].isna().all() and (alone["interval"] == baselines.NO_COHORT).all()


def test_a_runs_replicates_are_trained_once_per_process(small_run, monkeypatch):
    run, _ = small_run
    first = ci.run_replicates(run, n_replicates=3, seed=5)
    monkeypatch.setattr(ci, "replicate_runs", lambda *a, **k: pytest.fail("trained again"))
    again = ci.run_replicates(run, n_replicates=3, seed=5)
    assert again.items == first.items and again is not first
    monkeypatch.undo()
    other = ci.run_replicates(run, n_replicates=3, seed=6)
    assert other.items[0] is not first.items[0]


def test_error_intervals_use_the_session_lengths_given():
    """The formulas' RMSE and its interval over cohorts come from the lengths and access the
    pages use, in the run and in every replicate (whose folds index the run's own rows)."""
    from tests.apptest import demo_run

    run = demo_run().run
    replicated = ci.run_replicates(run, n_replicates=3, seed=1)
    hours = np.linspace(3.0, 4.5, len(run.y))
    table = baselines.error_intervals(run, replicated, t_hours=hours, access="venous")
    rate = table.set_index(["method", "statistic"]).loc[("rate_equation", "rmse")]

    def pooled(trained) -> float:
        found = baselines.baselines(trained, t_hours=hours, access="venous")
        return float(found.query("fold == 'pooled' and method == 'rate_equation'")["rmse"].iloc[0])

    assert rate["estimate"] == pytest.approx(pooled(run), rel=1e-12)
    spread = np.std([pooled(r) for r in replicated.items], ddof=1)
    half = stats.t.ppf(0.975, len(replicated.items) - 1) * spread
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx(
        (max(rate["estimate"] - half, 0.0), rate["estimate"] + half))
    four_hours = baselines.error_intervals(run, replicated).set_index(["method", "statistic"])
    assert four_hours.loc[("rate_equation", "rmse"), "estimate"] != pytest.approx(
        rate["estimate"])
