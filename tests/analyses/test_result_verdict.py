"""The verdict (better, cannot be told apart, worse) on runs and tables whose truth is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bnapp.analyses.baselines import (
    LeastSquares,
    baselines,
    paired_comparison,
    verdict,
)
from bnapp.engine.model import ArchSpec
from bnapp.report.page_tables import result_table, verdict_sentence
from tests.analyses.test_metrics import make_run

FOLDS = 5


def _truth_from(run, predict):
    """The run with y replaced, fold by fold, by predict(fold) on its test rows (k-fold: each
    row is tested once), so that method is exact."""
    y = run.y.copy()
    for fold in run.folds:
        y[fold.test_rows] = predict(fold)
    return dataclasses.replace(run, y=y)


def test_a_network_that_is_the_truth_is_better():
    run = make_run(ArchSpec(), folds=FOLDS)
    run = _truth_from(run, run.test_predictions)
    v = verdict(paired_comparison(run))
    assert v.word == "better" and v.network_rmse == pytest.approx(0, abs=1e-9)
    assert v.ci_high < 0


def test_a_network_against_an_exactly_linear_truth_is_worse():
    run = make_run(ArchSpec(), folds=FOLDS)
    coef = np.array([3.0, -1.0, 2.0, 0.5])
    run = dataclasses.replace(run, y=run.X @ coef + 40.0)
    ols = LeastSquares(run.X, run.y)
    assert ols.predict(ols.fit(run.folds[0].train_rows), run.X) == pytest.approx(run.y)
    v = verdict(paired_comparison(run))
    assert v.word == "worse" and v.baseline == "linear_regression" and v.ci_low > 0


def _per_fold(network: np.ndarray, others: dict[str, np.ndarray]) -> pd.DataFrame:
    """A baselines-shaped table of per-fold RMSEs."""
    rows = [{"method": method, "fold": str(k), "n": 12, "rmse": float(r), "mae": np.nan,
             "bias": np.nan, "mean_error": np.nan, "r2": np.nan}
            for method, values in {"network": network, **others}.items()
            for k, r in enumerate(values)]
    return pd.DataFrame(rows)


def test_identical_errors_cannot_be_told_apart():
    run = make_run(ArchSpec(), folds=FOLDS)
    rmse = np.array([9.1, 10.4, 8.7, 11.0, 9.9])
    v = verdict(paired_comparison(run, _per_fold(rmse, {"rate_equation": rmse.copy()})))
    assert v.word == "cannot be told apart"
    assert (v.difference, v.ci_low, v.ci_high) == (0, 0, 0)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(-5, 5), noise=st.floats(0.01, 2), seed=st.integers(0, 10_000))
def test_the_word_follows_the_corrected_t_interval_against_the_best_baseline(shift, noise, seed):
    """Against a hand-computed Nadeau–Bengio interval of the best (lowest-RMSE) baseline."""
    run = make_run(ArchSpec(), folds=FOLDS)
    rng = np.random.default_rng(seed)
    best = 10 + rng.normal(0, 1, FOLDS)
    network = best + shift + rng.normal(0, noise, FOLDS)
    v = verdict(paired_comparison(run, _per_fold(network, {
        "linear_regression": best + 4, "rate_equation": best, "tattersall": best + 1})))
    d = network - best
    n_test = np.mean([len(f.test_rows) for f in run.folds])
    n_train = np.mean([len(f.train_rows) for f in run.folds])
    half = stats.t.ppf(0.975, FOLDS - 1) * np.sqrt((1 / FOLDS + n_test / n_train) * d.var(ddof=1))
    low, high = d.mean() - half, d.mean() + half
    want = "better" if high < 0 else "worse" if low > 0 else "cannot be told apart"
    assert v.baseline == "rate_equation" and v.word == want
    assert (v.ci_low, v.ci_high) == pytest.approx((low, high))


def test_no_baseline_gives_no_verdict():
    assert verdict(pd.DataFrame(columns=["baseline", "baseline_rmse"])) is None
    assert "nothing to compare" in verdict_sentence(None, "Ueq")


def test_the_sentence_says_the_word_the_best_baseline_and_its_numbers():
    run = make_run(ArchSpec(), folds=FOLDS)
    run = _truth_from(run, run.test_predictions)
    v = verdict(paired_comparison(run))
    text = verdict_sentence(v, "Ueq")
    assert text.startswith("The network predicts Ueq better than the best baseline, linear "
                           "regression")
    assert f"{v.baseline_rmse:.2f}" in text and f"{v.difference:+.2f} mg/dL" in text
    assert text.endswith(".") and "\n" not in text
    same = dataclasses.replace(v, word="cannot be told apart")
    assert "cannot be told apart" in verdict_sentence(same, "Ueq")


def test_the_sentence_escapes_a_users_target_name():
    run = make_run(ArchSpec(), folds=FOLDS)
    v = verdict(paired_comparison(run))
    text = verdict_sentence(v, "# *urea*")
    assert "*urea*" not in text and "\\*urea\\*" in text


def test_the_result_table_is_the_pooled_rows_named():
    run = make_run(ArchSpec(), folds=FOLDS)
    base = baselines(run)
    table = result_table(base)
    assert list(table["method"]) == ["Network", "Linear regression (OLS)"]
    net = base[(base["method"] == "network") & (base["fold"] == "pooled")].iloc[0]
    err = np.concatenate([run.test_predictions(f) - run.y[f.test_rows] for f in run.folds])
    assert table.loc[0, "rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert table.loc[0, "mae"] == pytest.approx(np.mean(np.abs(err)))
    assert table.loc[0, "r2"] == pytest.approx(net["r2"])
