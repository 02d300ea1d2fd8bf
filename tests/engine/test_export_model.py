"""Exported networks load in their own runtimes and give the trained networks' predictions:
the .h5 through bnapp's importer (and h5py's view of the layout against the study's
checkpoints), the .pt through torch.jit.load alone, the .onnx through onnxruntime."""

from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import torch

from bnapp.engine import export_model as ex
from bnapp.engine.keras_import import load_keras_run, read_keras_model
from bnapp.engine.model import ArchSpec, init_weights, predict
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
from bnapp.report.cells import table_csv

# torch 2.13 marks TorchScript deprecated; torch.jit.load is still how a .pt is read
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
FEATURES = ["a", "b", "c"]
SPECS = [
    ArchSpec(hidden=(4, 3)),
    ArchSpec(hidden=(3,), activation="tanh", output_activation="relu", input_bn=False,
             hidden_bn=False, input_mode="zscore"),
    ArchSpec(hidden=(2, 5), activation="relu", input_bn=True, hidden_bn=False),
    ArchSpec(hidden=(5,), activation="sigmoid", input_bn=False, hidden_bn=True,
             input_mode="zscore"),
]


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [10.0, 1.0, 2.0] + [100.0, 0.0, 5.0]
    return X, X @ [0.3, 1.0, 2.0] + 20.0 + rng.normal(size=n)


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.label)
def run(request):
    X, y = _data()
    return train_run(X, y, request.param, Protocol(folds=2, epochs=20, seed=3),
                     features=FEATURES, row_ids=np.arange(len(X)) + 2)


def _random_weights(spec, seed):
    """Trained-looking weights: every parameter random, moving variances positive."""
    rng = np.random.default_rng(seed)
    w = init_weights(spec, 3, rng)
    for arr in [*w.kernels, *w.biases]:
        arr[...] = rng.normal(size=arr.shape)
    for bn in [b for b in [w.input_bn, *w.hidden_bn] if b is not None]:
        bn.gamma[...] = rng.normal(size=bn.gamma.shape)
        bn.beta[...] = rng.normal(size=bn.beta.shape)
        bn.moving_mean[...] = rng.normal(size=bn.moving_mean.shape) * 5
        bn.moving_var[...] = rng.uniform(0.1, 30, size=bn.moving_var.shape)
    return w


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_keras_file_read_back_by_bnapp_is_the_same_network_in_float32(spec):
    w = _random_weights(spec, 1)
    read_spec, read = read_keras_model(ex.keras_h5_bytes(spec, w), input_mode=spec.input_mode)
    assert read_spec == spec
    for got, want in zip([*read.kernels, *read.biases], [*w.kernels, *w.biases], strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    bns = [(read.input_bn, w.input_bn)] if spec.input_bn else []
    for got, want in bns + list(zip(read.hidden_bn, w.hidden_bn, strict=True)):
        for name in ("gamma", "beta", "moving_mean", "moving_var"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name).astype(np.float32))
    x = np.random.default_rng(2).normal(size=(50, 3))
    np.testing.assert_allclose(predict(read_spec, read, x), predict(spec, w, x), rtol=1e-5,
                               atol=1e-5)


def _layout(source) -> list:
    """The HDF5 structure with names made generic: group/dataset kinds, shapes, attribute keys."""
    with h5py.File(source, "r") as h5:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in h5["model_weights"].attrs["layer_names"]]
        out = [sorted(h5.attrs), sorted(h5["model_weights"].attrs)]
        for i, name in enumerate(names):
            group = h5["model_weights"][name]
            weights = [w.decode() if isinstance(w, bytes) else w for w in group.attrs["weight_names"]]
            out.append((i, [w.split("/")[-1] for w in weights],
                        [(h5["model_weights"][name][w].shape, h5["model_weights"][name][w].dtype)
                         for w in weights]))
    return out


def test_keras_file_has_the_layout_of_the_studys_checkpoints(seed_dir):
    study = seed_dir / "checkpoints" / "e2e" / "fold_0.h5"
    spec, weights = read_keras_model(study)
    mine = _layout(io.BytesIO(ex.keras_h5_bytes(spec, weights)))
    theirs = _layout(study)
    assert mine[2:] == theirs[2:]  # the same layers, weight names, shapes and dtypes
    assert set(theirs[0]) - {"training_config"} <= set(mine[0])
    assert set(theirs[1]) <= set(mine[1])


def test_study_checkpoint_rewritten_predicts_exactly_as_the_original(seed_dir):
    run = load_keras_run(seed_dir, "e2e")
    fold = run.folds[3]
    spec, weights = read_keras_model(ex.keras_h5_bytes(run.spec, fold.weights))
    # float32 weights written as float32: nothing is rounded twice
    np.testing.assert_array_equal(predict(spec, weights, run.X), run.fold_predictions(fold, run.X))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_torchscript_file_loads_with_torch_jit_alone(spec):
    w = _random_weights(spec, 4)
    module = torch.jit.load(io.BytesIO(ex.torchscript_bytes(spec, w)))
    assert not module.training
    x = np.random.default_rng(5).normal(size=(37, 3)) * 3
    got = module(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, predict(spec, w, x), rtol=1e-12, atol=1e-12)
    state = module.state_dict()
    assert sum(v.numel() for v in state.values()) == spec.param_counts(3).total


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_onnx_file_checks_and_runs_in_onnxruntime(spec):
    w = _random_weights(spec, 6)
    data = ex.onnx_bytes(spec, w)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(7).normal(size=(29, 3)) * 3
    (got,) = session.run(None, {ex.INPUT_NAME: x})
    np.testing.assert_allclose(got, predict(spec, w, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", sorted(ex.FORMATS))
def test_export_files_predictions_are_the_runs_networks_on_every_row(run, fmt):
    files = ex.export_files(run, fmt, {"a": "mg/dL", "Ueq": "mg/dL"}, csv=table_csv)
    names = {f"fold_{f.fold}{ex.FORMATS[fmt]}" for f in run.folds}
    expected = names | {"predictions.csv", "README.txt"}
    if run.spec.input_mode == "zscore":
        expected.add("scaler.csv")
    assert set(files) == expected
    table = pd.read_csv(io.BytesIO(files["predictions.csv"]))
    assert list(table.columns) == ["fold", "row", "prediction"]
    tol = 1e-5 if fmt == "keras" else 1e-10  # float32 weights in the .h5
    for fold in run.folds:
        part = table[table.fold == fold.fold]
        np.testing.assert_array_equal(part.row, run.row_ids)
        np.testing.assert_allclose(part.prediction, run.fold_predictions(fold, run.X), rtol=tol)
        # the rows the fold tested on: what training recorded
        np.testing.assert_allclose(part.prediction.to_numpy()[fold.test_rows],
                                   fold.test_predictions, rtol=tol)
    readme = files["README.txt"].decode()
    assert "1. a [mg/dL]" in readme and "3. c" in readme and run.spec.label in readme
    if run.spec.input_mode == "zscore":
        scaler = pd.read_csv(io.BytesIO(files["scaler.csv"]))
        fold = run.folds[1]
        mine = scaler[scaler.fold == fold.fold]
        np.testing.assert_allclose(mine["mean"], run.X[fold.train_rows].mean(0))
        np.testing.assert_allclose(mine["std"], run.X[fold.train_rows].std(0))
        assert "z-scored" in readme


def test_networks_zip_holds_the_export_files(run):
    data = ex.networks_zip(run, "keras", csv=table_csv)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert names == set(ex.export_files(run, "keras", csv=table_csv))
        spec, _ = read_keras_model(zf.read(f"fold_{run.folds[0].fold}.h5"),
                                   input_mode=run.spec.input_mode)
    assert spec == run.spec


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format must be one of"):
        ex.network_bytes(ArchSpec(), _random_weights(ArchSpec(), 0), "pickle")
