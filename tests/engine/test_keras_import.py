"""Keras checkpoint import: all 22 published files, and clear refusals of anything else."""

from __future__ import annotations

import io
import json

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnapp.engine.keras_import import KerasImportError, load_keras_run, read_keras_model
from bnapp.engine.model import ArchSpec, forward
from bnapp.engine.reference import ReferenceNet

SPLITS = [(which, k) for which in ("e2e", "norm") for k in range(10)]


@pytest.fixture(scope="module")
def runs(seed_dir):
    return {which: load_keras_run(seed_dir, which) for which in ("e2e", "norm")}


@pytest.mark.parametrize(("which", "k"), SPLITS)
def test_fold_checkpoint_reproduces_recorded_predictions(seed_dir, runs, which, k):
    meta = json.loads((seed_dir / f"folds_{which}.json").read_text())["folds"][k]
    run = runs[which]
    fold = run.folds[k]
    assert fold.fold == meta["fold"]
    np.testing.assert_array_equal(run.y[fold.test_rows], meta["test_true"])
    np.testing.assert_allclose(run.test_predictions(fold), meta["test_predictions"], atol=1e-4)
    bn = fold.weights.input_bn
    for name, ours in (("gamma", bn.gamma), ("beta", bn.beta), ("moving_mean", bn.moving_mean),
                       ("moving_std", bn.moving_std)):
        np.testing.assert_allclose(ours, meta["bn_input"][name], rtol=1e-6, atol=1e-9)


def test_runs_keep_the_studys_109_rows_and_input_modes(seed_dir, runs):
    import pandas as pd

    frame = pd.read_csv(seed_dir / "Urea.csv")
    kept = frame[frame["Ueq"] >= frame["Upos"]]
    for which, mode in (("e2e", "raw"), ("norm", "zscore")):
        run = runs[which]
        assert run.spec == ArchSpec(input_mode=mode)
        assert run.X.shape == (109, 5) and len(run.folds) == 10
        np.testing.assert_array_equal(run.X, kept[run.features].to_numpy(float))
        np.testing.assert_array_equal(run.row_ids, kept.index.to_numpy() + 2)
        for fold in run.folds:
            assert (len(fold.train_rows), len(fold.val_rows), len(fold.test_rows)) == (69, 18, 22)
            # the JSON's scaler is the StandardScaler of the training rows
            np.testing.assert_allclose(fold.scaler_mean, run.X[fold.train_rows].mean(0))
            np.testing.assert_allclose(fold.scaler_std, run.X[fold.train_rows].std(0))


@pytest.mark.parametrize(("name", "spec", "total"), [
    ("DLNNe2e", ArchSpec.study_e2e(), 87),
    ("DLNNnorm", ArchSpec(hidden=(6, 6), input_bn=False, hidden_bn=False), 85),
])
def test_optimal_checkpoints_load_with_the_published_parameter_counts(seed_dir, name, spec, total):
    got, weights = read_keras_model(seed_dir / "checkpoints" / "optimal" / f"{name}.h5")
    assert got == spec
    assert got.param_counts(5).total == total
    stored = sum(a.size for a in [*weights.kernels, *weights.biases])
    stored += sum(4 * bn.gamma.size for bn in [weights.input_bn, *weights.hidden_bn] if bn)
    assert stored == total


def test_imported_weights_run_identically_in_the_torch_reference(seed_dir, runs):
    import torch

    run = runs["e2e"]
    fold = run.folds[3]
    x = run.X[fold.test_rows]
    net = ReferenceNet(run.spec, 5).load_weights(fold.weights).eval()
    with torch.no_grad():
        torch_pred = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(forward(run.spec, fold.weights, x).output, torch_pred, atol=1e-10)


# --------------------------------------------------------------------------------------------
# refusals


def _rewrite(path, config=None, drop: str | None = None) -> bytes:
    """A copy of checkpoint `path` with another model_config and/or one weight removed."""
    out = io.BytesIO()
    with h5py.File(path, "r") as src, h5py.File(out, "w") as dst:
        src.copy(src["model_weights"], dst, "model_weights")
        if drop:
            del dst[drop]
        cfg = src.attrs["model_config"] if config is None else json.dumps(config)
        dst.attrs["model_config"] = cfg
    return out.getvalue()


def _config(path) -> dict:
    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs["model_config"])


@pytest.fixture(scope="module")
def e2e_path(seed_dir):
    return seed_dir / "checkpoints" / "e2e" / "fold_0.h5"


def test_roundtrip_copy_still_loads(e2e_path):
    spec, w = read_keras_model(_rewrite(e2e_path))
    ref_spec, ref = read_keras_model(e2e_path)
    assert spec == ref_spec
    np.testing.assert_array_equal(w.kernels[0], ref.kernels[0])


@pytest.mark.parametrize(("change", "message"), [
    (lambda layers: layers.insert(3, {"class_name": "Dropout",
                                      "config": {"name": "d", "rate": 0.1}}), "Dropout"),
    (lambda layers: layers[1]["config"].update(momentum=0.9), "momentum 0.9"),
    (lambda layers: layers[1]["config"].update(epsilon=1e-5), "epsilon"),
    (lambda layers: layers[4]["config"].update(activation="softmax"), "softmax"),
    (lambda layers: layers[-1]["config"].update(units=2), r"Dense\(1\)"),
    (lambda layers: layers[2]["config"].update(units=7), "shape"),
    (lambda layers: layers.pop(4), "activation"),
])
def test_unsupported_configs_are_refused_clearly(e2e_path, change, message):
    config = _config(e2e_path)
    change(config["config"]["layers"])
    with pytest.raises(KerasImportError, match=message):
        read_keras_model(_rewrite(e2e_path, config))


def test_functional_models_and_missing_weights_are_refused(e2e_path):
    config = _config(e2e_path)
    config["class_name"] = "Functional"
    with pytest.raises(KerasImportError, match="Sequential"):
        read_keras_model(_rewrite(e2e_path, config))
    with pytest.raises(KerasImportError, match="missing"):
        read_keras_model(_rewrite(e2e_path, drop="model_weights/dense_120/dense_120/bias:0"))


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(KerasImportError, match="model.h5"):
        read_keras_model(bad)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_and_truncated_bytes_raise_only_keras_import_error(e2e_path, data):
    raw = e2e_path.read_bytes()
    blob = data.draw(st.one_of(
        st.binary(max_size=2048),
        st.integers(0, len(raw) - 1).map(lambda n: raw[:n]),
        st.tuples(st.integers(0, len(raw) - 64), st.binary(min_size=1, max_size=64)).map(
            lambda t: raw[: t[0]] + t[1] + raw[t[0] + len(t[1]):]),
    ))
    try:
        spec, weights = read_keras_model(blob)
    except KerasImportError as exc:
        assert str(exc)
    else:  # a flipped byte in unused space can leave a readable file: it must still work
        assert forward(spec, weights, np.ones((2, 5))).output.shape == (2,)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10) | st.floats(allow_nan=False)
    | st.sampled_from(["linear", "relu", "sigmoid", "Dense", "BatchNormalization", "x"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "units", "config", "class_name", "momentum"]),
                      children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_configs_raise_only_keras_import_error(e2e_path, data):
    config = _config(e2e_path)
    layers = config["config"]["layers"]
    target = data.draw(st.sampled_from(["model", "layers", "layer", "key"]))
    value = data.draw(JSON)
    if target == "model":
        config = value
    elif target == "layers":
        config["config"]["layers"] = value
    elif target == "layer":
        layers[data.draw(st.integers(0, len(layers) - 1))] = value
    else:
        layer = layers[data.draw(st.integers(1, len(layers) - 1))]
        key = data.draw(st.sampled_from(sorted(layer["config"]) + ["class_name"]))
        if key == "class_name":
            layer["class_name"] = value
        else:
            layer["config"][key] = value
    try:
        spec, weights = read_keras_model(_rewrite(e2e_path, config))
    except KerasImportError as exc:
        assert str(exc)
    else:  # a harmless mutation (e.g. a renamed initializer) must still give a working model
        assert forward(spec, weights, np.ones((2, 5))).output.shape == (2,)
