"""Results persistence: a saved run reads back identical, and a damaged file is refused cleanly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.engine.model import ArchSpec, init_weights, predict
from bnapp.engine.results import FoldResult, RunResult, run_from_bytes, run_to_bytes


def _run(spec: ArchSpec, seed: int = 0, n: int = 30, p: int = 4) -> RunResult:
    rng = np.random.default_rng(seed)
    X = rng.normal(50, 10, size=(n, p))
    y = rng.normal(60, 5, size=n)
    folds = []
    for k in range(3):
        test = np.arange(k, n, 3)
        train = np.setdiff1d(np.arange(n), test)
        w = init_weights(spec, p, rng)
        if w.input_bn is not None:
            w.input_bn.gamma = rng.normal(size=p)
        folds.append(
            FoldResult(
                fold=k,
                train_rows=train,
                val_rows=np.array([], dtype=np.int64),
                test_rows=test,
                scaler_mean=X[train].mean(0),
                scaler_std=X[train].std(0),
                weights=w,
                history={"loss": rng.random(7), "input_gamma": rng.random((7, p))},
                stopped_epoch=5 if k == 1 else None,
            )
        )
    return RunResult(spec, [f"x{i}" for i in range(p)], "Ueq", X, y, folds,
                     protocol={"kind": "kfold", "folds": 3}, row_ids=np.arange(2, n + 2))


SPECS = [
    ArchSpec.study_e2e(),
    ArchSpec.study_zscore(),
    ArchSpec(hidden=(3, 2, 4), activation="relu", output_activation="relu", hidden_bn=False),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_round_trip_keeps_every_array_and_prediction(spec):
    run = _run(spec)
    back = run_from_bytes(run_to_bytes(run))
    assert back.spec == run.spec
    assert back.features == run.features and back.protocol == run.protocol
    np.testing.assert_array_equal(back.X, run.X)
    np.testing.assert_array_equal(back.row_ids, run.row_ids)
    for a, b in zip(run.folds, back.folds, strict=True):
        np.testing.assert_array_equal(a.test_rows, b.test_rows)
        assert a.stopped_epoch == b.stopped_epoch
        np.testing.assert_array_equal(a.history["input_gamma"], b.history["input_gamma"])
        for ka, kb in zip(a.weights.kernels, b.weights.kernels, strict=True):
            np.testing.assert_array_equal(ka, kb)
        np.testing.assert_array_equal(run.test_predictions(a), back.test_predictions(b))


def test_zscore_fold_sees_its_own_scaler():
    run = _run(ArchSpec.study_zscore())
    fold = run.folds[0]
    z = fold.network_input(run.spec, run.X[fold.test_rows])
    expected = predict(run.spec, fold.weights, (run.X[fold.test_rows] - fold.scaler_mean) / fold.scaler_std)
    np.testing.assert_allclose(run.fold_predictions(fold, run.X[fold.test_rows]), expected)
    np.testing.assert_allclose(z.mean(0), ((run.X[fold.test_rows] - fold.scaler_mean) / fold.scaler_std).mean(0))
    assert run.ensemble_predictions(run.X[:5]).shape == (3, 5)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000))
def test_damaged_bytes_are_refused_with_value_error(cut, flip):
    data = bytearray(run_to_bytes(_run(ArchSpec.study_e2e())))
    if flip < len(data):
        data[flip] ^= 0xFF
    damaged = bytes(data[: max(0, len(data) - cut - 1)])
    with pytest.raises(ValueError):
        run_from_bytes(damaged)


@given(st.binary(max_size=300))
def test_random_bytes_are_refused_with_value_error(data):
    with pytest.raises(ValueError):
        run_from_bytes(data)
