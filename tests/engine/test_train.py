"""Protocols, splits, determinism, divergence, cancellation and early stopping of the trainer."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.engine import kernel
from bnapp.engine.model import ArchSpec, BNState, Weights, init_weights
from bnapp.engine.results import run_from_bytes, run_to_bytes
from bnapp.engine.train import (
    Protocol,
    TrainingCancelled,
    TrainingDiverged,
    build_datasets,
    initial_stack,
    make_splits,
    pack_weights,
    train_run,
    unpack_weights,
)

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


@pytest.fixture(scope="module")
def study_data(urea_csv):
    frame = pd.read_csv(urea_csv)
    frame = frame[frame["Ueq"] >= frame["Upos"]]
    return frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)


def test_study_protocol_split_sizes_match_sklearn_rounding():
    splits = make_splits(Protocol.study(), 109)
    assert len(splits) == 10
    for s in splits:
        assert (len(s.train), len(s.val), len(s.test)) == (69, 18, 22)
        rows = np.concatenate([s.train, s.val, s.test])
        assert sorted(rows) == list(range(109))
    # random splits, not a partition: the test sets differ and overlap
    assert len({tuple(sorted(s.test)) for s in splits}) == 10


@settings(max_examples=40, deadline=None)
@given(n=st.integers(12, 200), folds=st.integers(2, 10), repeats=st.integers(1, 3),
       val_fraction=st.sampled_from([0.0, 0.1, 0.2, 0.25]), seed=st.integers(0, 1000))
def test_kfold_tests_every_row_once_per_repeat(n, folds, repeats, val_fraction, seed):
    protocol = Protocol(kind="repeated", folds=folds, repeats=repeats, val_fraction=val_fraction, seed=seed)
    splits = make_splits(protocol, n)
    assert len(splits) == folds * repeats
    for r in range(repeats):
        tested = np.concatenate([s.test for s in splits if s.repeat == r])
        assert sorted(tested) == list(range(n))
    for s in splits:
        assert sorted(np.concatenate([s.train, s.val, s.test])) == list(range(n))
        # sklearn's train_test_split holds out ceil(fraction * n) rows
        assert len(s.val) == math.ceil(val_fraction * (n - len(s.test)))
    sizes = [len(s.test) for s in splits]
    assert max(sizes) - min(sizes) <= 1


def test_repeats_reshuffle_and_seeds_reproduce():
    a = make_splits(Protocol(kind="repeated", folds=5, repeats=2, seed=3), 50)
    b = make_splits(Protocol(kind="repeated", folds=5, repeats=2, seed=3), 50)
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].test, a[5].test)
    c = make_splits(Protocol(kind="repeated", folds=5, repeats=2, seed=4), 50)
    assert not np.array_equal(a[0].test, c[0].test)


def test_protocol_round_trips_and_rejects_nonsense():
    p = Protocol.study(seed=5)
    assert Protocol.from_dict(p.to_dict()) == p
    assert (p.kind, p.folds, p.val_fraction, p.epochs, p.batch_size, p.lr) == ("study", 10, 0.2, 200, 32, 0.01)
    with pytest.raises(ValueError, match="val_fraction"):
        Protocol(patience=5)
    with pytest.raises(ValueError, match="kind"):
        Protocol(kind="loo")
    with pytest.raises(ValueError, match="too few"):
        make_splits(Protocol(folds=10), 8)


@settings(max_examples=20, deadline=None)
@given(hidden=st.lists(st.integers(1, 7), min_size=1, max_size=4), in_bn=st.booleans(),
       hid_bn=st.booleans(), p=st.integers(1, 6), seed=st.integers(0, 100))
def test_packing_round_trips(hidden, in_bn, hid_bn, p, seed):
    spec = ArchSpec(hidden=tuple(hidden), input_bn=in_bn, hidden_bn=hid_bn)
    rng = np.random.default_rng(seed)
    w = init_weights(spec, p, rng)
    w = Weights([rng.normal(size=k.shape) for k in w.kernels], [rng.normal(size=b.shape) for b in w.biases],
                None if w.input_bn is None else BNState(*rng.normal(size=(4, p))),
                [BNState(*rng.normal(size=(4, h))) for h in hidden] if hid_bn else [])
    width = max(p, *hidden) + 1
    row = pack_weights(w, width)
    assert row.shape == (kernel.layout(width)["size"],)
    back = unpack_weights(spec, row, p, width)
    for a, b in zip(w.kernels + w.biases, back.kernels + back.biases, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(([w.input_bn] if in_bn else []) + w.hidden_bn,
                    ([back.input_bn] if in_bn else []) + back.hidden_bn, strict=True):
        np.testing.assert_array_equal(np.stack([a.gamma, a.beta, a.moving_mean, a.moving_var]),
                                      np.stack([b.gamma, b.beta, b.moving_mean, b.moving_var]))


def test_study_protocol_run_is_complete_and_bit_identical_for_a_seed(study_data):
    X, y = study_data
    protocol = Protocol.study(seed=11)
    a = train_run(X, y, ArchSpec.study_e2e(), protocol, features=FEATURES)
    b = train_run(X, y, ArchSpec.study_e2e(), protocol, features=FEATURES)
    assert len(a.folds) == 10
    fold = a.folds[0]
    assert fold.history["loss"].shape == (200,)
    assert fold.history["val_loss"].shape == (200,)
    assert fold.history["input_gamma"].shape == (200, 5)
    np.testing.assert_array_equal(fold.history["input_gamma"][-1], fold.weights.input_bn.gamma)
    # the end-to-end network learns: loss falls far below the target's variance
    assert fold.history["loss"][-1] < 0.5 * np.var(y)
    np.testing.assert_allclose(fold.scaler_mean, X[fold.train_rows].mean(axis=0), rtol=1e-12)
    za, zb = (np.load(io.BytesIO(run_to_bytes(r))) for r in (a, b))
    assert za.files == zb.files
    for k in za.files:
        if k != "meta.json":
            assert np.array_equal(za[k], zb[k]), k
    assert run_from_bytes(run_to_bytes(a)).protocol == protocol.to_dict()


def test_threads_do_not_change_results(study_data):
    X, y = study_data
    protocol = Protocol(folds=4, epochs=30)
    splits = make_splits(protocol, len(X))
    data, index, _ = build_datasets(X, y, splits, protocol, ["raw", "zscore"])
    specs = [ArchSpec.study_e2e(), ArchSpec.study_zscore()]
    P, cfg = initial_stack(specs, splits, index, 5, protocol)
    stacks = []
    for threads in (1, 2):
        stack = kernel.Stack(P, cfg, protocol.epochs, 5)
        stack.train(data, 0, 10, batch_size=32, lr=0.01, threads=threads)
        stack.train(data, 10, 30, batch_size=32, lr=0.01, threads=threads)  # chunks resume
        stacks.append(stack)
    np.testing.assert_array_equal(stacks[0].P, stacks[1].P)
    np.testing.assert_array_equal(stacks[0].loss, stacks[1].loss)
    whole = kernel.Stack(P, cfg, protocol.epochs, 5)
    whole.train(data, 0, 30, batch_size=32, lr=0.01)
    np.testing.assert_array_equal(whole.P, stacks[0].P)


def test_diverging_run_raises_with_a_message_not_nan(study_data):
    X, y = study_data
    spec = ArchSpec(hidden=(6,), input_bn=False, hidden_bn=False)
    with pytest.raises(TrainingDiverged, match=r"fold \d+.*epoch \d+.*learning rate \(now 10\)"):
        train_run(X, y, spec, Protocol(folds=3, epochs=60, lr=10.0), features=FEATURES)


def test_cancel_stops_training_and_progress_reports_fractions(study_data):
    X, y = study_data
    seen = []
    with pytest.raises(TrainingCancelled):
        train_run(X, y, ArchSpec.study_e2e(), Protocol(folds=3, epochs=100), features=FEATURES,
                  progress=lambda f, msg: seen.append((f, msg)), cancel=lambda: len(seen) >= 2)
    assert [f for f, _ in seen] == [0.05, 0.1]
    fractions = []
    train_run(X, y, ArchSpec.study_e2e(), Protocol(folds=3, epochs=40), features=FEATURES,
              progress=lambda f, msg: fractions.append(f))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_early_stopping_keeps_the_best_epoch(study_data):
    X, y = study_data
    spec = ArchSpec.study_e2e()
    protocol = Protocol(kind="kfold", folds=3, epochs=200, lr=0.05, val_fraction=0.25, patience=5, seed=2)
    run = train_run(X, y, spec, protocol, features=FEATURES)
    for fold in run.folds:
        val = fold.history["val_loss"]
        best = fold.stopped_epoch
        assert best == int(np.argmin(val))
        assert len(val) == 200 or len(val) == best + 1 + protocol.patience
    # the kept weights are exactly those of a run trained best + 1 epochs without stopping
    fold = min(run.folds, key=lambda f: f.stopped_epoch)
    assert fold.stopped_epoch < 194, "this data must trigger early stopping"
    short = Protocol(kind="kfold", folds=3, epochs=fold.stopped_epoch + 1, lr=0.05, val_fraction=0.25, seed=2)
    plain = train_run(X, y, spec, short, features=FEATURES).folds[fold.fold]
    assert plain.stopped_epoch is None
    for a, b in zip(fold.weights.kernels, plain.weights.kernels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fold.weights.input_bn.moving_var, plain.weights.input_bn.moving_var)


def test_a_repeated_run_numbers_every_model_apart_for_the_analyses(study_data):
    """Repeats restart their folds at 1; the analyses group by fold, so a run's models must
    carry distinct numbers or two repeats' models would pool into one 'fold'."""
    from bnapp.analyses.baselines import baselines
    from bnapp.analyses.stages import bn_parameters, stage_summary, training_curves

    protocol = Protocol(kind="repeated", folds=3, repeats=2, epochs=3, seed=1)
    X, y = study_data
    run = train_run(X[:60], y[:60], ArchSpec.study_e2e(), protocol, features=FEATURES)
    assert [f.fold for f in run.folds] == list(range(6))
    assert [f.repeat for f in run.folds] == [0, 0, 0, 1, 1, 1]
    assert bn_parameters(run)[0]["fold"].nunique() == 6
    boxes = stage_summary(run)
    assert set(boxes["fold"]) == set(range(6)) | {-1}
    assert (boxes[boxes["fold"] >= 0]["n"] == 20).all()  # one fold's test rows, not two
    loss, _ = training_curves(run)
    assert loss.groupby("fold").size().eq(3).all()
    table = baselines(run)
    assert (table[table["fold"] != "pooled"]["n"] == 20).all()


def test_explicit_splits_train_what_they_say(study_data):
    """train_run(splits=): the protocol's own splits give the same run bit for bit; splits that
    leave rows out (a nested CV's inner folds) train and test only on the rows they name."""
    X, y = study_data
    protocol = Protocol(folds=4, epochs=5, seed=3)
    splits = make_splits(protocol, len(y))
    default = train_run(X, y, ArchSpec.study_e2e(), protocol, features=FEATURES)
    given_splits = train_run(X, y, ArchSpec.study_e2e(), protocol, features=FEATURES,
                             splits=splits)
    for a, b in zip(default.folds, given_splits.folds, strict=True):
        np.testing.assert_array_equal(a.test_predictions, b.test_predictions)
    held = splits[0].test
    inner = [type(s)(s.repeat, s.fold, np.setdiff1d(s.train, held).astype(s.train.dtype),
                     s.val, s.test) for s in splits[1:]]
    run = train_run(X, y, ArchSpec.study_e2e(), protocol, features=FEATURES, splits=inner)
    assert [f.fold for f in run.folds] == [1, 2, 3]
    for fold in run.folds:
        assert not np.isin(held, fold.train_rows).any()
        # the scaler is fitted on the rows the split names
        np.testing.assert_allclose(fold.scaler_mean, X[fold.train_rows].mean(axis=0))
