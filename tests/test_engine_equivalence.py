"""The compiled batched trainer against the torch.nn reference, after the full 200 epochs.

Every architecture variant of the grid (hidden activation x output activation x input BN x hidden
BN x depth) is trained as ONE stack of models by train_runs; each case then retrains its first
fold alone with bnapp.reference.train_reference (plain torch.nn, float64) from the same initial
weights and the same mini-batch orders, and everything must agree to 1e-5.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnapp.model import (
    ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    ArchSpec,
    epoch_orders,
    init_weights,
    predict,
)
from bnapp.reference import train_reference
from bnapp.train import Protocol, make_splits, model_rngs, train_run, train_runs

# 48 rows, 4 folds: 36 training rows = one full batch of 32 and a partial one of 4 per epoch
PROTOCOL = Protocol(kind="kfold", folds=4, epochs=200, seed=7)
WIDTHS = {1: (5,), 2: (4, 3), 3: (3, 6, 2), 4: (2, 4, 3, 5)}
CASES = [
    ArchSpec(hidden=WIDTHS[depth], activation=act, output_activation=out, input_bn=ibn, hidden_bn=hbn)
    for act, out, ibn, hbn, depth in itertools.product(
        ACTIVATIONS, OUTPUT_ACTIVATIONS, (False, True), (False, True), (1, 2, 3, 4))
]
TOL = 1e-5


def _data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(48, 3)) * [1.0, 4.0, 0.5] + [0.0, 3.0, -1.0]
    y = 1.0 + np.tanh(X[:, 0]) + 0.2 * X[:, 1] - X[:, 2] ** 2 / 4 + 0.1 * rng.normal(size=48)
    return X, y


@pytest.fixture(scope="module")
def batched():
    X, y = _data()
    return dict(zip(CASES, train_runs(X, y, CASES, PROTOCOL, features=["a", "b", "c"]), strict=True))


def _assert_close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=what)


@pytest.mark.parametrize("spec", CASES, ids=[s.label for s in CASES])
def test_batched_trainer_matches_torch_reference(batched, spec):
    X, y = _data()
    run = batched[spec]
    fold = run.folds[0]
    split = make_splits(PROTOCOL, len(X))[0]
    init_rng, order_rng = model_rngs(PROTOCOL, split)
    w0 = init_weights(spec, 3, init_rng)
    orders = epoch_orders(len(split.train), PROTOCOL.epochs, order_rng)
    ref, ref_loss = train_reference(spec, w0, X[split.train], y[split.train], orders)
    got = fold.weights
    assert len(fold.history["loss"]) == PROTOCOL.epochs
    _assert_close(fold.history["loss"], ref_loss, "loss curve")
    for i, (k, k_ref) in enumerate(zip(got.kernels, ref.kernels, strict=True)):
        _assert_close(k, k_ref, f"kernel {i}")
        _assert_close(got.biases[i], ref.biases[i], f"bias {i}")
    pairs = list(zip(got.hidden_bn, ref.hidden_bn, strict=True))
    if spec.input_bn:
        pairs.append((got.input_bn, ref.input_bn))
        _assert_close(fold.history["input_gamma"][-1], ref.input_bn.gamma, "input gamma curve")
    for bn, bn_ref in pairs:
        for name in ("gamma", "beta", "moving_mean", "moving_var"):
            _assert_close(getattr(bn, name), getattr(bn_ref, name), name)
    _assert_close(run.test_predictions(fold), predict(spec, ref, X[split.test]), "test predictions")


def test_zscore_mode_trains_on_the_training_scaler_with_the_reference():
    X, y = _data()
    spec = ArchSpec.study_zscore()
    protocol = Protocol(kind="study", folds=2, epochs=200, val_fraction=0.2, seed=1)
    run = train_run(X, y, spec, protocol, features=["a", "b", "c"])
    for fold, split in zip(run.folds, make_splits(protocol, len(X)), strict=True):
        train = X[split.train]
        np.testing.assert_allclose(fold.scaler_mean, train.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(fold.scaler_std, train.std(axis=0, ddof=0), rtol=1e-12)
        init_rng, order_rng = model_rngs(protocol, split)
        ref, ref_loss = train_reference(
            spec, init_weights(spec, 3, init_rng), (train - fold.scaler_mean) / fold.scaler_std,
            y[split.train], epoch_orders(len(split.train), protocol.epochs, order_rng))
        _assert_close(fold.history["loss"], ref_loss, "loss curve")
        x_val = (X[split.val] - fold.scaler_mean) / fold.scaler_std
        val_mse = np.mean((predict(spec, ref, x_val) - y[split.val]) ** 2)
        _assert_close(fold.history["val_loss"][-1], val_mse, "final validation loss")
        _assert_close(run.test_predictions(fold), predict(spec, ref, (X[split.test] - fold.scaler_mean)
                                                          / fold.scaler_std), "test predictions")
