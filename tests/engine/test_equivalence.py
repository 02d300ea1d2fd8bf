"""The compiled batched trainer against the torch.nn reference, after the full 200 epochs.

Every architecture variant of the grid (hidden activation x output activation x input BN x hidden
BN x depth) is trained as ONE stack of models by train_runs; each case then retrains one of its
folds (a different one from case to case, so every fold position is covered) alone with
bnapp.engine.reference.train_reference (plain torch.nn, float64) from the same initial weights and the
same mini-batch orders, and everything must agree to 1e-5. Runs with an inner validation set and
early stopping are checked the same way, every fold, against the reference's Keras-style
validation and EarlyStopping.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnapp.engine.kernel import epoch_orders
from bnapp.engine.model import (
    ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    ArchSpec,
    init_weights,
    predict,
)
from bnapp.engine.protocols import Protocol
from bnapp.engine.reference import KerasValidation, train_reference
from bnapp.engine.train import make_splits, model_rngs, train_run, train_runs

# 48 rows, 4 folds: 36 training rows = one full batch of 32 and a partial one of 4 per epoch
PROTOCOL = Protocol(kind="kfold", folds=4, epochs=200, seed=7)
WIDTHS = {1: (5,), 2: (4, 3), 3: (3, 6, 2), 4: (2, 4, 3, 5)}
CASES = [
    ArchSpec(hidden=WIDTHS[depth], activation=act, output_activation=out, input_bn=ibn, hidden_bn=hbn)
    for act, out, ibn, hbn, depth in itertools.product(
        ACTIVATIONS, OUTPUT_ACTIVATIONS, (False, True), (False, True), (1, 2, 3, 4))
]
TOL = 1e-5
FEATURES = ["a", "b", "c"]


def _data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(48, 3)) * [1.0, 4.0, 0.5] + [0.0, 3.0, -1.0]
    y = 1.0 + np.tanh(X[:, 0]) + 0.2 * X[:, 1] - X[:, 2] ** 2 / 4 + 0.1 * rng.normal(size=48)
    return X, y


@pytest.fixture(scope="module")
def batched():
    X, y = _data()
    return dict(zip(CASES, train_runs(X, y, CASES, PROTOCOL, features=FEATURES), strict=True))


def _assert_close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=what)


def _reference(spec, protocol, split, X, y, validation: bool):
    """Train the split's model with torch from the kernel's initial weights and batch orders;
    z-score inputs use a scaler fitted here on the split's training rows."""
    shift, scale = 0.0, 1.0
    if spec.input_mode == "zscore":
        shift, scale = X[split.train].mean(axis=0), X[split.train].std(axis=0)
    init_rng, order_seed = model_rngs(protocol, split)
    monitor = None
    if validation:
        monitor = KerasValidation((X[split.val] - shift) / scale, y[split.val], protocol.patience)
    weights, loss = train_reference(
        spec, init_weights(spec, X.shape[1], init_rng), (X[split.train] - shift) / scale,
        y[split.train], epoch_orders(len(split.train), protocol.epochs, order_seed),
        batch_size=protocol.batch_size, lr=protocol.lr, validation=monitor)
    return weights, loss, monitor, predict(spec, weights, (X[split.test] - shift) / scale)


def _assert_same_model(run, fold, ref, ref_loss, ref_test_predictions):
    got = fold.weights
    _assert_close(fold.history["loss"], ref_loss, "loss curve")
    for i, (k, k_ref) in enumerate(zip(got.kernels, ref.kernels, strict=True)):
        _assert_close(k, k_ref, f"kernel {i}")
        _assert_close(got.biases[i], ref.biases[i], f"bias {i}")
    pairs = list(zip(got.hidden_bn, ref.hidden_bn, strict=True))
    if run.spec.input_bn:
        pairs.append((got.input_bn, ref.input_bn))
    for bn, bn_ref in pairs:
        for name in ("gamma", "beta", "moving_mean", "moving_var"):
            _assert_close(getattr(bn, name), getattr(bn_ref, name), name)
    _assert_close(run.test_predictions(fold), ref_test_predictions, "test predictions")


# the quick loop keeps one hidden layer of every activation and output activation, with BN
# layers everywhere or nowhere; the other placements and the deeper stacks run in the full suite
CASE_PARAMS = [pytest.param(s, id=s.label, marks=() if len(s.hidden) == 1
                            and s.input_bn == s.hidden_bn else pytest.mark.slow)
               for s in CASES]


@pytest.mark.parametrize("spec", CASE_PARAMS)
def test_batched_trainer_matches_torch_reference(batched, spec):
    X, y = _data()
    run = batched[spec]
    k = CASES.index(spec) % PROTOCOL.folds
    fold, split = run.folds[k], make_splits(PROTOCOL, len(X))[k]
    ref, ref_loss, _, ref_pred = _reference(spec, PROTOCOL, split, X, y, validation=False)
    assert len(fold.history["loss"]) == PROTOCOL.epochs
    _assert_same_model(run, fold, ref, ref_loss, ref_pred)
    if spec.input_bn:
        _assert_close(fold.history["input_gamma"][-1], ref.input_bn.gamma, "input gamma curve")


@pytest.mark.slow
def test_zscore_mode_trains_on_the_training_scaler_with_the_reference():
    X, y = _data()
    spec = ArchSpec.study_zscore()
    protocol = Protocol(kind="study", folds=2, epochs=200, val_fraction=0.2, seed=1)
    run = train_run(X, y, spec, protocol, features=FEATURES)
    for fold, split in zip(run.folds, make_splits(protocol, len(X)), strict=True):
        train = X[split.train]
        np.testing.assert_allclose(fold.scaler_mean, train.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(fold.scaler_std, train.std(axis=0, ddof=0), rtol=1e-12)
        ref, ref_loss, monitor, ref_pred = _reference(spec, protocol, split, X, y, validation=True)
        _assert_same_model(run, fold, ref, ref_loss, ref_pred)
        _assert_close(fold.history["val_loss"], monitor.val_loss, "validation loss curve")


# 9 validation and 27 training rows per fold (one partial batch per epoch). With these patiences
# the folds between them stop early, run every epoch and restore an earlier epoch at the end,
# and run every epoch with the last one best (test_early_stopping_cases_cover_every_path).
STOPPING_SPECS = [ArchSpec.study_e2e(), ArchSpec.study_zscore(),
                  ArchSpec(hidden=(4, 3), activation="relu", hidden_bn=False)]
PATIENCES = (None, 3, 40)


def _stopping_protocol(patience):
    return Protocol(kind="kfold", folds=4, epochs=200, seed=7, val_fraction=0.25, patience=patience)


@pytest.fixture(scope="module")
def stopping_runs():
    X, y = _data()
    return {patience: dict(zip(STOPPING_SPECS, train_runs(X, y, STOPPING_SPECS,
                                                          _stopping_protocol(patience),
                                                          features=FEATURES), strict=True))
            for patience in PATIENCES}


@pytest.mark.parametrize("patience", PATIENCES)
@pytest.mark.parametrize("spec", STOPPING_SPECS, ids=[s.label for s in STOPPING_SPECS])
@pytest.mark.slow
def test_validation_and_early_stopping_match_keras_semantics(stopping_runs, spec, patience):
    X, y = _data()
    protocol = _stopping_protocol(patience)
    run = stopping_runs[patience][spec]
    for fold, split in zip(run.folds, make_splits(protocol, len(X)), strict=True):
        np.testing.assert_array_equal(fold.val_rows, split.val)
        ref, ref_loss, monitor, ref_pred = _reference(spec, protocol, split, X, y, validation=True)
        assert len(fold.history["loss"]) == len(ref_loss), f"fold {fold.fold}: epochs run"
        _assert_close(fold.history["val_loss"], monitor.val_loss, "validation loss curve")
        assert fold.stopped_epoch == monitor.best_epoch  # None without early stopping
        _assert_same_model(run, fold, ref, ref_loss, ref_pred)


def test_early_stopping_cases_cover_every_path(stopping_runs):
    """The equivalence above is only as good as its cases: they must stop early, restore an
    earlier epoch after running every epoch, and end on their best epoch."""
    paths = set()
    for patience in PATIENCES[1:]:
        for run in stopping_runs[patience].values():
            for fold in run.folds:
                ran = len(fold.history["loss"])
                assert fold.stopped_epoch == int(np.argmin(fold.history["val_loss"]))
                paths.add("stopped early" if ran < 200 else
                          "restored at the end" if fold.stopped_epoch < ran - 1 else "last is best")
    assert paths == {"stopped early", "restored at the end", "last is best"}
