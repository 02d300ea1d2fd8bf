"""The study's grid: its 480 configurations, CV scores against per-run training, best per mode."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from scipy import stats

from bnapp.engine.grid import (
    best_per_mode,
    grid_spec,
    grid_specs,
    near_best,
    run_grid,
    simplest_near_best,
    study_grid,
)
from bnapp.engine.model import OUTPUT_ACTIVATIONS, ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_runs
from bnapp.intake import data

FEATURES = ["a", "b", "c"]
PROTOCOL = Protocol(kind="kfold", folds=3, epochs=15, seed=4)
SPECS = [
    ArchSpec.study_e2e(),
    ArchSpec.study_zscore(),
    ArchSpec(hidden=(3, 3, 3), activation="tanh", output_activation="relu", input_bn=False,
             hidden_bn=False, input_mode="zscore"),
    ArchSpec(hidden=(2,), activation="relu", input_bn=True, hidden_bn=True, input_mode="zscore"),
]


def _data():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 3)) * [10.0, 1.0, 3.0] + [50.0, 0.0, 5.0]
    return X, 0.1 * X[:, 0] + X[:, 1] + 0.1 * rng.normal(size=40)


def test_study_grid_has_the_480_configurations():
    specs = study_grid()
    assert len(specs) == 480 == len(set(specs))
    assert {len(s.hidden) for s in specs} == {1, 2, 3, 4}
    assert {w for s in specs for w in s.hidden} == {2, 3, 4, 5, 6}
    assert all(len(set(s.hidden)) == 1 and s.input_bn == s.hidden_bn for s in specs)
    assert ArchSpec.study_e2e() in specs and ArchSpec.study_zscore() in specs


def test_grid_scores_equal_the_folds_test_mse_of_trained_runs():
    X, y = _data()
    grid = run_grid(X, y, PROTOCOL, SPECS, features=FEATURES)
    runs = train_runs(X, y, SPECS, PROTOCOL, features=FEATURES)
    assert list(grid["label"]) == [s.label for s in SPECS]
    for (_, row), run, spec in zip(grid.iterrows(), runs, SPECS, strict=True):
        mse = [np.mean((run.test_predictions(f) - y[f.test_rows]) ** 2) for f in run.folds]
        assert row["cv_mse_mean"] == pytest.approx(np.mean(mse), rel=1e-10)
        assert row["cv_mse_sd"] == pytest.approx(np.std(mse), rel=1e-8, abs=1e-12)
        assert row["cv_mse_se"] == pytest.approx(stats.sem(mse), rel=1e-8, abs=1e-12)
        counts = spec.param_counts(3)
        assert (row["trainable"], row["non_trainable"], row["total_params"]) == (
            counts.trainable, counts.non_trainable, counts.total)
        assert not row["diverged"]


def test_grid_fans_out_through_joblib_backends_with_identical_results():
    X, y = _data()
    local = run_grid(X, y, PROTOCOL, SPECS, features=FEATURES, n_jobs=1)
    with parallel_config(backend="loky", n_jobs=2):
        spread = run_grid(X, y, PROTOCOL, SPECS, features=FEATURES)
    pd.testing.assert_frame_equal(local, spread)


def test_grid_rows_survive_csv_and_rebuild_their_spec():
    X, y = _data()
    seen = []
    grid = run_grid(X, y, PROTOCOL, SPECS, features=FEATURES, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    back = pd.read_csv(io.StringIO(grid.to_csv(index=False)))
    assert [grid_spec(row) for _, row in back.iterrows()] == SPECS


def test_best_per_mode_picks_the_lowest_finite_score():
    grid = pd.DataFrame({
        "label": ["a", "b", "c", "d", "e"],
        "input_mode": ["raw", "raw", "zscore", "zscore", "raw"],
        "cv_mse_mean": [5.0, 3.0, 4.0, 2.0, np.nan],
        "diverged": [False, False, False, False, True],
    })
    best = best_per_mode(grid)
    assert list(best["input_mode"]) == ["raw", "zscore"]
    assert list(best["label"]) == ["b", "d"]


def test_a_diverging_configuration_gets_nan_not_an_exception():
    X, y = _data()
    protocol = Protocol(kind="kfold", folds=3, epochs=200, lr=10.0)
    bad = ArchSpec(hidden=(4,), input_bn=False, hidden_bn=False)
    good = ArchSpec(hidden=(4,), input_bn=False, hidden_bn=False, output_activation="relu")  # dies, finite
    grid = run_grid(X * 100, y * 100, protocol, [bad, good], features=FEATURES)
    assert list(grid["diverged"]) == [True, False]
    assert np.isnan(grid["cv_mse_mean"][0]) and np.isfinite(grid["cv_mse_mean"][1])
    assert list(best_per_mode(grid)["label"]) == [good.label]


def _scored(rows) -> pd.DataFrame:
    """A grid table from (label, input_mode, params, mean, se) rows."""
    return pd.DataFrame(rows, columns=["label", "input_mode", "total_params", "cv_mse_mean",
                                       "cv_mse_se"])


def test_near_best_is_within_one_standard_error_of_its_modes_best():
    frame = _scored([
        ("r-best", "raw", 40, 100.0, 10.0), ("r-edge", "raw", 30, 110.0, 1.0),
        ("r-out", "raw", 10, 110.5, 1.0), ("r-diverged", "raw", 5, np.nan, np.nan),
        ("z-best", "zscore", 20, 50.0, 2.0), ("z-in", "zscore", 9, 51.0, 9.0),
        ("z-small", "zscore", 9, 51.5, 0.0), ("z-out", "zscore", 3, 100.0, 0.0)])
    assert list(frame["label"][near_best(frame)]) == ["r-best", "r-edge", "z-best", "z-in",
                                                      "z-small"]
    # the fewest parameters among them, the lower CV MSE on a tie
    assert list(simplest_near_best(frame)["label"]) == ["r-edge", "z-in"]


@pytest.mark.slow
def test_the_published_winners_are_not_told_apart_from_the_best_on_the_study_data(urea_csv):
    """The study named one best network per input mode. On its data, 5-fold CV with 200 epochs
    (its protocol) ranks others first, which ones depending on the folds and initial weights
    (the seed), and the published winners stay within one standard error of the best (seeds 0
    and 1; with seed 2 the raw one falls just outside)."""
    ds = data.load_dataset(urea_csv.read_bytes(), urea_csv.name)
    X, y = ds.X(data.STUDY_INPUTS), ds.y()
    published = {"raw": ArchSpec.study_e2e(),
                 "zscore": ArchSpec(hidden=(6, 6), activation="sigmoid", input_bn=False,
                                    hidden_bn=False, input_mode="zscore")}
    winners = []
    for seed in (0, 1):
        grid = run_grid(X, y, Protocol(folds=5, epochs=200, seed=seed),
                        features=data.STUDY_INPUTS, stability=False)  # rankings only
        close = grid[near_best(grid)]
        assert {s.label for s in published.values()} <= set(close["label"]), seed
        winners.append(best_per_mode(grid).set_index("input_mode")["label"])
    assert winners[0]["raw"] != winners[1]["raw"], "the raw winner changes with the seed"


def test_grid_specs_keep_the_study_order_of_the_part_chosen():
    part = grid_specs(depths=(1, 3), widths=(2,), activations=("tanh",), bn=(True,),
                      input_modes=("raw",))
    assert part == [s for s in study_grid() if len(s.hidden) in (1, 3) and s.hidden[0] == 2
                    and s.activation == "tanh" and s.input_bn and s.input_mode == "raw"]
    assert len(part) == 2 * len(OUTPUT_ACTIVATIONS)
    assert grid_specs() == study_grid()


def test_grid_progress_counts_networks_and_time_left():
    X, y = _data()
    messages = []
    run_grid(X, y, PROTOCOL, SPECS, features=FEATURES, n_jobs=1,
             progress=lambda f, m: messages.append((f, m)))
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert messages[-1][1] == f"{len(SPECS)} of {len(SPECS)} networks, done"
    counts = [int(m.split(" of ")[0]) for _, m in messages]
    assert counts == sorted(counts) and all(" left" in m for _, m in messages[:-1])
