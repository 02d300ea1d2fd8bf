"""bnapp's training against a real Keras training, and its exported .h5 in a real Keras.

Run by `make test-keras` (which installs TensorFlow into .venv-keras); skipped with its reason
where TensorFlow is not installed. Each case takes bnapp's initial weights and per-epoch mini-batch
orders for one fold of the study's data, trains the same network in Keras 3 and in Keras 2
(tf_keras), float64, SGD lr 0.01 without momentum, MSE, batch 32, the rows in bnapp's order and
not shuffled, the last partial batch included, and compares the final weights, BN moving
statistics and test predictions with bnapp's after 1 and after 200 epochs: Keras 3 with bnapp's
default, Keras 2 as it is with bnapp's bn_decay="keras2". The figures are in docs/keras.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: `make test-keras` "
                                              "installs it into .venv-keras and runs these tests")
# Keras 3 (the `keras` package TensorFlow 2.21 installs) and Keras 2 (`tf_keras`, the Keras 2
# line TensorFlow still publishes): both are real Keras, both are checked
IMPLEMENTATIONS = ("keras", "tf_keras")

from bnapp.engine.export_model import keras_h5_bytes  # noqa: E402
from bnapp.engine.grid import run_grid  # noqa: E402
from bnapp.engine.keras_import import read_keras_model  # noqa: E402
from bnapp.engine.kernel import epoch_orders  # noqa: E402
from bnapp.engine.model import BN_DECAYS, ArchSpec, Weights, init_weights, predict  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.train import make_splits, model_rngs, train_runs  # noqa: E402

pytestmark = pytest.mark.keras

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
TOL = 1e-8
# the study's two networks, and grid members covering every hidden activation, output activation
# and BN placement (input and hidden together as in the grid, and each alone)
CASES = [
    ArchSpec.study_e2e(),
    ArchSpec.study_zscore(),
    ArchSpec(hidden=(4, 4), activation="tanh", output_activation="linear", input_mode="raw"),
    ArchSpec(hidden=(3,), activation="relu", output_activation="relu", input_bn=False,
             hidden_bn=False, input_mode="zscore"),
    ArchSpec(hidden=(5, 5), activation="sigmoid", output_activation="relu", input_mode="zscore"),
    ArchSpec(hidden=(2, 2, 2), activation="relu", output_activation="linear", input_bn=False,
             hidden_bn=False, input_mode="zscore"),
    ArchSpec(hidden=(4,), activation="tanh", output_activation="relu", input_bn=True,
             hidden_bn=False, input_mode="raw"),
    ArchSpec(hidden=(3, 3), activation="relu", output_activation="linear", input_bn=False,
             hidden_bn=True, input_mode="zscore"),
]
# networks whose training is chaotic on the study's data: rounding differences (1e-16 after one
# epoch) grow until bnapp and Keras part, as bnapp parts from itself when its initial weights move
# by 1e-12 (test_cases_that_part_are_chaotic); compared over the epochs before they part
APART = {CASES[2]: 25, CASES[6]: 10}
# bnapp's BN moving-statistics update that each Keras makes (Protocol.bn_decay)
BN_DECAY = {"keras": "keras3", "tf_keras": "keras2"}
FOLD = 1  # any fold: its training set (87 rows) ends in a partial batch of 23 rows


def _study_data(seed_dir):
    """The study's 109 usable rows (Ueq >= Upos) of Urea.csv, read with numpy alone."""
    table = np.genfromtxt(seed_dir / "Urea.csv", delimiter=",", names=True)
    keep = table["Ueq"] >= table["Upos"]
    X = np.column_stack([table[c] for c in FEATURES])[keep]
    return X, table["Ueq"][keep]


@pytest.fixture(scope="module")
def study(seed_dir):
    return _study_data(seed_dir)


@pytest.fixture(params=IMPLEMENTATIONS)
def kx(request):
    """One Keras implementation, its floatx float32 (as Keras starts)."""
    return pytest.importorskip(request.param, reason=f"{request.param} is not installed")


@pytest.fixture
def kx64(kx):
    """The Keras implementation with floatx float64 while the test runs."""
    kx.backend.set_floatx("float64")
    yield kx
    kx.backend.set_floatx("float32")


def keras2_float64_decay(kx):
    """Keras 2's BatchNormalization with its one difference from Keras 3 undone.

    tf_keras updates a moving statistic as `var -= (var - batch) * decay` with
    `decay = tf.convert_to_tensor(1.0 - momentum)`, a float32 tensor cast to the variable's
    float64 afterwards: 0.009999999776482582 instead of 0.01 (relative 2.2e-8). Keras 3 computes
    `var * momentum + batch * (1 - momentum)` in the variable's dtype, as bnapp does by default.
    """

    class BatchNormalization(kx.layers.BatchNormalization):
        def _assign_moving_average(self, variable, value, momentum, inputs_size):
            decay = tf.constant(1.0 - momentum, dtype=variable.dtype)
            return variable.assign_sub((variable - tf.cast(value, variable.dtype)) * decay)

    return BatchNormalization


def _keras_model(kx, spec: ArchSpec, w: Weights, n_inputs: int, bn_class=None):
    """The spec as a Keras Sequential model of the current floatx, holding the weights w."""
    layers = kx.layers
    model = kx.Sequential([kx.Input((n_inputs,))])
    values = []

    def bn(state):
        model.add((bn_class or layers.BatchNormalization)(momentum=0.99, epsilon=1e-3))
        values.append([state.gamma, state.beta, state.moving_mean, state.moving_var])

    if spec.input_bn:
        bn(w.input_bn)
    for i, (k, b) in enumerate(zip(w.kernels[:-1], w.biases[:-1], strict=True)):
        model.add(layers.Dense(k.shape[1], activation="linear" if spec.hidden_bn else spec.activation))
        values.append([k, b])
        if spec.hidden_bn:
            bn(w.hidden_bn[i])
            model.add(layers.Activation(spec.activation))
    model.add(layers.Dense(1, activation=spec.output_activation))
    values.append([w.kernels[-1], w.biases[-1]])
    for layer, v in zip([la for la in model.layers if la.weights], values, strict=True):
        layer.set_weights(v)
    return model


def _keras_weights(spec: ArchSpec, model) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for la in model.layers for v in la.get_weights()]


def _bnapp_weights(spec: ArchSpec, w: Weights) -> list[np.ndarray]:
    """w's arrays in the order Keras lists its layers' weights."""
    out = []

    def bn(state):
        out.extend([state.gamma, state.beta, state.moving_mean, state.moving_var])

    if spec.input_bn:
        bn(w.input_bn)
    for i, (k, b) in enumerate(zip(w.kernels[:-1], w.biases[:-1], strict=True)):
        out.extend([k, b])
        if spec.hidden_bn:
            bn(w.hidden_bn[i])
    out.extend([w.kernels[-1], w.biases[-1]])
    return out


def keras_train(kx, spec: ArchSpec, initial: Weights, x: np.ndarray, y: np.ndarray,
                orders: np.ndarray, *, batch_size: int = 32, lr: float = 0.01, per_epoch_fit=False,
                bn_class=None):
    """Train in Keras from `initial`, each epoch's rows in its order from `orders`.

    per_epoch_fit: one `fit(x[order], y[order], shuffle=False, epochs=1)` per epoch, as the
    study's loop would; else the same batches in the same order as one stream of batches through
    one `fit` (the same steps, 50x faster: a fit call costs ~0.2 s here).
    """
    model = _keras_model(kx, spec, initial, x.shape[1], bn_class)
    model.compile(optimizer=kx.optimizers.SGD(learning_rate=lr, momentum=0.0), loss="mse")
    if per_epoch_fit:
        for order in orders:
            model.fit(x[order], y[order, None], batch_size=batch_size, epochs=1, shuffle=False,
                      verbose=0)
        return model
    batches = [order[s:s + batch_size] for order in orders for s in range(0, len(order), batch_size)]
    stream = tf.data.Dataset.from_generator(
        lambda: ((x[b], y[b, None]) for b in batches),
        output_signature=(tf.TensorSpec((None, x.shape[1]), tf.float64),
                          tf.TensorSpec((None, 1), tf.float64)))
    model.fit(stream, epochs=1, verbose=0)
    return model


def _fold_inputs(spec, protocol, X, y):
    split = make_splits(protocol, len(X))[FOLD]
    shift, scale = 0.0, 1.0
    if spec.input_mode == "zscore":
        shift, scale = X[split.train].mean(axis=0), X[split.train].std(axis=0)
    init_rng, order_seed = model_rngs(protocol, split)
    return (split, init_weights(spec, X.shape[1], init_rng),
            np.stack(list(epoch_orders(len(split.train), protocol.epochs, order_seed))),
            (X[split.train] - shift) / scale, y[split.train], (X[split.test] - shift) / scale)


@pytest.fixture(scope="module", params=[1, 200], ids=lambda e: f"{e}epochs")
def bnapp_runs(request, study):
    """The protocol (bnapp's default BN update) and, per bn_decay, each case's run."""
    X, y = study
    protocol = Protocol(kind="kfold", folds=5, epochs=request.param, seed=11)
    return protocol, {
        bn_decay: dict(zip(CASES, train_runs(X, y, CASES, replace(protocol, bn_decay=bn_decay),
                                             features=FEATURES), strict=True))
        for bn_decay in BN_DECAY.values()}


def max_differences(spec, bnapp_weights, model, x_test, bnapp_pred):
    ours = _bnapp_weights(spec, bnapp_weights)
    theirs = _keras_weights(spec, model)
    assert [a.shape for a in ours] == [a.shape for a in theirs]
    pred = np.asarray(model.predict(x_test, verbose=0), dtype=np.float64)[:, 0]
    weight_diff = max(float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
                      for a, b in zip(ours, theirs, strict=True))
    pred_diff = float(np.max(np.abs(pred - bnapp_pred) / np.maximum(1.0, np.abs(pred))))
    return weight_diff, pred_diff


def _compare(kx, spec, protocol, run, study, bn_class=None):
    """Train the spec in Keras as bnapp trained the run's fold FOLD; assert they agree to TOL."""
    X, y = study
    if protocol.epochs > APART.get(spec, protocol.epochs):
        protocol = replace(protocol, epochs=APART[spec])
        run = train_runs(X, y, [spec], protocol, features=FEATURES)[0]
    split, initial, orders, x_train, y_train, x_test = _fold_inputs(spec, protocol, X, y)
    fold = run.folds[FOLD]
    np.testing.assert_array_equal(fold.test_rows, split.test)
    model = keras_train(kx, spec, initial, x_train, y_train, orders,
                        per_epoch_fit=protocol.epochs == 1, bn_class=bn_class)
    weight_diff, pred_diff = max_differences(spec, fold.weights, model, x_test,
                                             fold.test_predictions)
    print(f"\n{kx.__name__} {kx.__version__}{' (float64 decay)' if bn_class else ''} vs bnapp "
          f"bn_decay={protocol.bn_decay}: {spec.label}, {protocol.epochs} epochs: max relative "
          f"difference {weight_diff:.2e} (weights and BN statistics), {pred_diff:.2e} "
          f"(test predictions)")
    assert weight_diff <= TOL and pred_diff <= TOL


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.label)
def test_bnapp_trains_as_keras_does(spec, bnapp_runs, study, kx64):
    """Keras 3 against bnapp's default, Keras 2 as it is against bnapp's bn_decay="keras2"."""
    protocol, runs = bnapp_runs
    bn_decay = BN_DECAY[kx64.__name__]
    _compare(kx64, spec, replace(protocol, bn_decay=bn_decay), runs[bn_decay][spec], study)


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.label)
def test_keras2_with_a_float64_decay_trains_as_bnapp_by_default(spec, study):
    """The float32 decay is Keras 2's whole difference: undone, Keras 2 trains as bnapp's
    default (Keras 3's update) does, over one epoch."""
    tf_keras = pytest.importorskip("tf_keras", reason="tf_keras is not installed")
    protocol = Protocol(kind="kfold", folds=5, epochs=1, seed=11)
    run = train_runs(study[0], study[1], [spec], protocol, features=FEATURES)[0]
    tf_keras.backend.set_floatx("float64")
    try:
        _compare(tf_keras, spec, protocol, run, study, keras2_float64_decay(tf_keras))
    finally:
        tf_keras.backend.set_floatx("float32")


def test_cases_that_part_are_chaotic(study):
    """A 1e-12 change of the initial kernels moves these networks' 200-epoch CV MSE by more than
    the rounding of float64 could (bnapp alone, no Keras involved): their parting from Keras is
    the same chaos, not a difference of semantics (which the first epochs would show)."""
    X, y = study
    specs = list(APART)
    grid = run_grid(X, y, Protocol(kind="kfold", folds=5, epochs=200, seed=11), specs,
                    features=FEATURES, n_jobs=1)
    print("\n" + "\n".join(f"{s.label}: instability {v:.2e}"
                             for s, v in zip(specs, grid["instability"], strict=True)))
    assert (grid["instability"] > 1e-4).all()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_keras2_moving_statistics_use_a_float32_decay(impl):
    """One training step of a fresh BN layer (moving mean 0) leaves moving mean = decay * batch
    mean: decay is 1 - 0.99 in float64 in Keras 3 (and bnapp's default), float32's 0.01 in Keras 2
    (bnapp's bn_decay="keras2")."""
    kx = pytest.importorskip(impl, reason=f"{impl} is not installed")
    kx.backend.set_floatx("float64")
    try:
        layer = kx.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)
        x = np.random.default_rng(0).normal(size=(32, 3)) * 40 + 150
        layer(tf.constant(x), training=True)
        got = np.asarray(layer.moving_mean)
    finally:
        kx.backend.set_floatx("float32")
    decay = float(np.float32(1 - 0.99)) if impl == "tf_keras" else 1 - 0.99
    np.testing.assert_allclose(got, decay * x.mean(0), rtol=1e-14)
    if impl == "tf_keras":
        assert abs(decay / 0.01 - 1) > 2e-8  # what the Keras 2 cases would otherwise differ by
    assert BN_DECAYS[BN_DECAY[impl]][0] == decay  # bnapp's decay for this Keras


def test_one_fit_per_epoch_and_one_stream_of_batches_train_alike(study, kx64):
    """The 200-epoch cases feed Keras one stream of batches: the same training as a fit per
    epoch (checked over 5 epochs)."""
    spec = ArchSpec.study_e2e()
    protocol = Protocol(kind="kfold", folds=5, epochs=5, seed=11)
    _, initial, orders, x_train, y_train, _ = _fold_inputs(spec, protocol, *study)
    a = keras_train(kx64, spec, initial, x_train, y_train, orders, per_epoch_fit=True)
    b = keras_train(kx64, spec, initial, x_train, y_train, orders)
    for u, v in zip(_keras_weights(spec, a), _keras_weights(spec, b), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("spec", CASES[:5], ids=lambda s: s.label)
def test_exported_h5_loads_in_keras_with_the_same_predictions(spec, bnapp_runs, study, tmp_path,
                                                              kx):
    protocol, runs = bnapp_runs
    X, _ = study
    run = runs[protocol.bn_decay][spec]
    fold = run.folds[0]
    x = fold.network_input(spec, X)
    path = tmp_path / "fold.h5"
    path.write_bytes(keras_h5_bytes(spec, fold.weights))
    model = kx.models.load_model(path, compile=False)
    assert all(layer.dtype == "float32" for layer in model.layers)
    got = model.predict(x.astype(np.float32), verbose=0)[:, 0]
    want = predict(spec, fold.weights, x)
    print(f"\n{kx.__name__}: {spec.label}: exported .h5 predicts with max relative difference "
          f"{np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))):.1e}")
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # and bnapp reads the same file back as the same network
    read_spec, _ = read_keras_model(keras_h5_bytes(spec, fold.weights), input_mode=spec.input_mode)
    assert read_spec == spec


def test_the_studys_checkpoints_predict_in_keras_as_bnapp_reads_them(seed_dir, study, kx):
    X, _ = study
    for which in ("e2e", "norm"):
        path = seed_dir / "checkpoints" / which / "fold_0.h5"
        spec, weights = read_keras_model(path)
        model = kx.models.load_model(path, compile=False)
        got = model.predict(X.astype(np.float32), verbose=0)[:, 0]
        np.testing.assert_allclose(got, predict(spec, weights, X), rtol=1e-5)
