"""stage_summary (box summaries from the stage arrays) against the long-frame path it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses.stages import bn_stages, stage_quantiles, stage_summary
from bnapp.engine.keras_import import load_keras_run
from bnapp.engine.model import ArchSpec, init_weights
from bnapp.engine.results import FIRST_HIDDEN, INPUT, FoldResult, Layer, RunResult


def assert_same_boxes(run: RunResult, layer: Layer) -> pd.DataFrame:
    fast = stage_summary(run, layer)
    long = stage_quantiles(bn_stages(run, layer))
    pd.testing.assert_frame_equal(fast, long, check_exact=False, rtol=1e-12, atol=1e-12)
    return fast


def random_run(spec: ArchSpec, n: int, folds: int, repeats: int, ties: bool,
               seed: int) -> RunResult:
    """Random weights and BN statistics; k-fold test rows, models numbered as train_run does."""
    rng = np.random.default_rng(seed)
    p = 3
    X = rng.normal([100.0, 5.0, 0.5], [20.0, 1.0, 0.1], size=(n, p))
    X[rng.random((n, p)) < 0.05] *= 4  # outliers beyond the whiskers
    if ties:  # many equal values: quartiles between equal order statistics
        X = np.round(X / [10.0, 0.5, 0.05]) * [10.0, 0.5, 0.05]
    results = []
    for repeat in range(repeats):
        parts = np.array_split(rng.permutation(n), folds)
        for k in range(folds):
            train = np.concatenate(parts[:k] + parts[k + 1:])
            w = init_weights(spec, p, rng)
            for bn in [w.input_bn, *w.hidden_bn]:
                if bn is not None:
                    bn.gamma = rng.normal(0, 2, bn.gamma.size)  # negative gamma flips the order
                    bn.beta = rng.normal(0, 0.5, bn.gamma.size)
                    bn.moving_mean = rng.normal(0, 1, bn.gamma.size)
                    bn.moving_var = rng.uniform(0.5, 2, bn.gamma.size)
            results.append(FoldResult(repeat * folds + k, train, np.empty(0, int), parts[k], X[train].mean(0),
                                      X[train].std(0), w, repeat=repeat))
    return RunResult(spec, ["a", "b", "c"], "y", X, np.zeros(n), results)


specs = st.builds(
    ArchSpec,
    hidden=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
    input_bn=st.booleans(), hidden_bn=st.booleans(),
    input_mode=st.sampled_from(["raw", "zscore"]),
)


@settings(max_examples=40, deadline=None)
@given(spec=specs, n=st.integers(6, 80), folds=st.integers(2, 4), repeats=st.integers(1, 2),
       ties=st.booleans(), seed=st.integers(0, 2**32 - 1), data=st.data())
@pytest.mark.slow
def test_matches_the_long_frame_path_on_random_runs(spec, n, folds, repeats, ties, seed, data):
    run = random_run(spec, n, folds, repeats, ties, seed)
    x_before = run.X.copy()
    assert_same_boxes(run, INPUT)
    hidden_index = data.draw(st.integers(0, len(spec.hidden) - 1))
    fast = assert_same_boxes(run, Layer.hidden(hidden_index))
    np.testing.assert_array_equal(run.X, x_before)  # the in-place partitioning never reaches X
    # one box per model, repeats apart: each repeat's folds hold every row once
    assert set(fast["fold"]) == set(range(folds * repeats)) | {-1}
    boxes = fast[fast["fold"] >= 0].assign(repeat=lambda f: f["fold"] // folds)
    per_repeat = boxes.groupby(["repeat", "unit", "stage"], observed=True)["n"].sum()
    assert (per_repeat == n).all()


@pytest.mark.parametrize("which", ["e2e", "norm"])
def test_matches_the_long_frame_path_on_the_seed_checkpoints(seed_dir, which):
    run = load_keras_run(seed_dir, which)
    fast = assert_same_boxes(run, INPUT)
    assert_same_boxes(run, FIRST_HIDDEN)
    # and an independent check of the pooled raw boxes: quartiles of every fold's test rows
    rows = np.concatenate([f.test_rows for f in run.folds])
    pooled = fast[(fast["fold"] == -1) & (fast["stage"] == "raw")].set_index("unit")
    q1, median, q3 = np.percentile(run.X[rows], [25, 50, 75], axis=0)
    np.testing.assert_allclose(pooled.loc[run.features, "q1"], q1, rtol=1e-12)
    np.testing.assert_allclose(pooled.loc[run.features, "median"], median, rtol=1e-12)
    np.testing.assert_allclose(pooled.loc[run.features, "q3"], q3, rtol=1e-12)
    np.testing.assert_array_equal(pooled.loc[run.features, "max"], run.X[rows].max(0))
    assert (pooled["n"] == len(rows)).all()


def test_stage_quantiles_leaves_its_frame_alone():
    """_box partitions its values in place; the long-frame path must hand it copies."""
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 9.0])
    stages = pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1], "unit": "u", "stage": "raw",
                           "value": values})
    before = stages.copy()
    q = stage_quantiles(stages)
    pd.testing.assert_frame_equal(stages, before)
    pooled = q[q["fold"] == -1].iloc[0]
    assert (pooled["q1"], pooled["median"], pooled["q3"]) == (2.25, 3.5, 4.75)


def test_a_unit_without_z_score_gets_an_empty_box():
    """A hidden node constant on the training rows (a saturated sigmoid) has no z-score: its
    zscore boxes are NaN instead of an error, on both paths; its raw boxes stay."""
    run = random_run(ArchSpec(hidden=(2,), input_bn=False, hidden_bn=False), 30, 3, 1, False, 0)
    for fold in run.folds:
        fold.weights.kernels[0][:, 1] = 0.0  # node 2 = its bias, whatever the row
        fold.weights.biases[0][1] = 0.5
    with np.errstate(invalid="ignore"):
        fast = assert_same_boxes(run, FIRST_HIDDEN)
    node2 = fast[fast["unit"] == "node 2"].set_index(["fold", "stage"])
    assert node2.loc[(-1, "zscore"), ["q1", "whisker_low", "max"]].isna().all()
    assert node2.loc[(-1, "zscore"), "n"] == 30
    assert (node2.loc[(-1, "raw"), ["min", "median", "whisker_high"]] == 0.5).all()
