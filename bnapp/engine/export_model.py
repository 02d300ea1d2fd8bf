"""Trained networks as files other tools run: Keras HDF5, TorchScript and ONNX, with a README.

Keras: the Keras 2 HDF5 layout the study's checkpoints have (`model_config` JSON + the
`model_weights/<layer>/<layer>/<name>:0` arrays), written with h5py alone, in float32 as Keras
saves by default; Keras 2 and Keras 3 (`keras.models.load_model`) and bnapp's own importer read
it. torch: the reference network (`bnapp.engine.reference.ReferenceNet`) traced in eval mode and
saved with `torch.jit.save`, float64. ONNX: the same module through `torch.onnx.export`, float64.
Every file takes the network's own inputs: for a z-scored network, inputs z-scored with its fold's
training scaler (written beside it). torch and onnx are imported only by the functions that need
them.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from bnapp import __version__
from bnapp.engine.model import BN_EPSILON, BN_MOMENTUM, ArchSpec, BNState, Weights, predict
from bnapp.engine.results import RunResult

# format -> file extension
FORMATS = {"keras": ".h5", "torch": ".pt", "onnx": ".onnx"}
# the Keras version whose HDF5 layout is written (the study's checkpoints were saved by it)
KERAS_LAYOUT_VERSION = "2.11.0"
ONNX_OPSET = 17
CsvWriter = Callable[[pd.DataFrame], bytes]  # a table as the bytes of a CSV file
INPUT_NAME, OUTPUT_NAME = "x", "prediction"


# --------------------------------------------------------------------------------------------
# Keras HDF5


def _bn_layer(name: str, extra: dict | None = None) -> dict:
    return {"class_name": "BatchNormalization", "config": {
        "name": name, "trainable": True, "dtype": "float32", **(extra or {}), "axis": [1],
        "momentum": BN_MOMENTUM, "epsilon": BN_EPSILON, "center": True, "scale": True,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
        "moving_variance_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
        "gamma_constraint": None}}


def _dense_layer(name: str, units: int, activation: str, extra: dict | None = None) -> dict:
    return {"class_name": "Dense", "config": {
        "name": name, "trainable": True, "dtype": "float32", **(extra or {}), "units": units,
        "activation": activation, "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None}}


def _bn_arrays(bn: BNState) -> list[tuple[str, np.ndarray]]:
    return [("gamma", bn.gamma), ("beta", bn.beta), ("moving_mean", bn.moving_mean),
            ("moving_variance", bn.moving_var)]


def _keras_layers(spec: ArchSpec, weights: Weights) -> list[tuple[dict, list]]:
    """(layer config, [(weight name, array)]) of the Sequential model, in order."""
    n_inputs = weights.kernels[0].shape[0]
    first = {"batch_input_shape": [None, n_inputs]}
    layers: list[tuple[dict, list]] = []
    if weights.input_bn is not None:
        layers.append((_bn_layer("input_bn", first), _bn_arrays(weights.input_bn)))
        first = None
    for i, (k, b) in enumerate(zip(weights.kernels[:-1], weights.biases[:-1], strict=True)):
        n = i + 1
        dense_act = "linear" if weights.hidden_bn else spec.activation
        layers.append((_dense_layer(f"dense_{n}", k.shape[1], dense_act, first),
                       [("kernel", k), ("bias", b)]))
        first = None
        if weights.hidden_bn:
            layers.append((_bn_layer(f"bn_{n}"), _bn_arrays(weights.hidden_bn[i])))
            layers.append(({"class_name": "Activation", "config": {
                "name": f"activation_{n}", "trainable": True, "dtype": "float32",
                "activation": spec.activation}}, []))
    layers.append((_dense_layer("output", 1, spec.output_activation),
                   [("kernel", weights.kernels[-1]), ("bias", weights.biases[-1])]))
    return layers


def write_keras_h5(spec: ArchSpec, weights: Weights, target) -> None:
    """Write the network as a Keras Sequential .h5 (a path or a writable binary file)."""
    layers = _keras_layers(spec, weights)
    n_inputs = weights.kernels[0].shape[0]
    first_name = layers[0][0]["config"]["name"]
    config = {"class_name": "Sequential", "config": {"name": "bnapp_network", "layers": [
        {"class_name": "InputLayer", "config": {
            "batch_input_shape": [None, n_inputs], "dtype": "float32", "sparse": False,
            "ragged": False, "name": f"{first_name}_input"}},
        *(cfg for cfg, _ in layers)]}}
    names = [cfg["config"]["name"] for cfg, _ in layers]
    with h5py.File(target, "w") as h5:
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["keras_version"] = KERAS_LAYOUT_VERSION
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["written_by"] = f"bnapp {__version__}"
        group = h5.create_group("model_weights")
        group.attrs["backend"] = "tensorflow"
        group.attrs["keras_version"] = KERAS_LAYOUT_VERSION
        group.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name, (_, arrays) in zip(names, layers, strict=True):
            layer = group.create_group(name)
            layer.attrs["weight_names"] = np.array([f"{name}/{w}:0".encode() for w, _ in arrays])
            inner = layer.create_group(name) if arrays else None
            for w, values in arrays:
                inner.create_dataset(f"{w}:0", data=np.asarray(values, dtype=np.float32))


def keras_h5_bytes(spec: ArchSpec, weights: Weights) -> bytes:
    buf = io.BytesIO()
    write_keras_h5(spec, weights, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# torch and ONNX


def reference_module(spec: ArchSpec, weights: Weights):
    """The trained network as bnapp's torch reference module, float64, in eval mode."""
    from bnapp.engine.reference import ReferenceNet

    return ReferenceNet(spec, weights.kernels[0].shape[0]).load_weights(weights).eval()


def _example(weights: Weights):
    import torch

    return torch.zeros(2, weights.kernels[0].shape[0], dtype=torch.float64)


def torchscript_bytes(spec: ArchSpec, weights: Weights) -> bytes:
    """A TorchScript module (traced in eval mode: inference with the BN moving statistics)
    that `torch.jit.load` runs alone; its state_dict holds the ReferenceNet's parameters."""
    import torch

    # traced rather than scripted: the inference path has no data-dependent branch, and the
    # training branch of KerasBatchNorm1d (torch.no_grad, module constants) does not script
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated; it is still what torch.jit.load alone reads
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(reference_module(spec, weights), _example(weights)), buf)
    return buf.getvalue()


def onnx_bytes(spec: ArchSpec, weights: Weights) -> bytes:
    """The network as an ONNX graph (input "x" (rows, p) float64, output "prediction" (rows,))."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # dynamo=False: the TorchScript-based exporter needs only the onnx package, torch's
        # default dynamo exporter onnxscript too; torch 2.13 warns that it is the legacy one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(reference_module(spec, weights), (_example(weights),), buf,
                          dynamo=False, opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "rows"}, OUTPUT_NAME: {0: "rows"}})
    return buf.getvalue()


def network_bytes(spec: ArchSpec, weights: Weights, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    writer = {"keras": keras_h5_bytes, "torch": torchscript_bytes, "onnx": onnx_bytes}[fmt]
    return writer(spec, weights)


def _file_predictions(spec: ArchSpec, weights: Weights, fmt: str, data: bytes,
                      x: np.ndarray) -> np.ndarray:
    """The exported network run on x: the .h5 through bnapp's importer (float64 arithmetic on
    its float32 weights), the .pt through torch.jit.load, the .onnx through the torch module it
    was exported from (onnxruntime is not a runtime dependency; tests run the file in it)."""
    if fmt == "keras":
        from bnapp.engine.keras_import import read_keras_model

        read_spec, weights = read_keras_model(data, input_mode=spec.input_mode)
        return predict(read_spec, weights, x)
    import torch

    if fmt == "torch":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data))
    else:
        module = reference_module(spec, weights)
    with torch.no_grad():
        return module(torch.as_tensor(x, dtype=torch.float64)).numpy().astype(np.float64)


# --------------------------------------------------------------------------------------------
# a run's networks as files


def export_files(run: RunResult, fmt: str, units: Mapping[str, str] | None = None, *,
                 csv: CsvWriter) -> dict[str, bytes]:
    """Every fold's network as fold_K<ext>, predictions.csv (the exported networks on every row
    of the run, in data order), scaler.csv for z-scored networks, and README.txt.

    units: the unit of each feature and of the target, for the README; csv: a table's CSV bytes
    (bnapp.report.export.table_csv: the input names are the user's column names).
    """
    files = {f"fold_{f.fold}{FORMATS.get(fmt, '')}": network_bytes(run.spec, f.weights, fmt)
             for f in run.folds}
    rows = run.row_ids if run.row_ids is not None else np.arange(len(run.X))
    frames = []
    for fold, data in zip(run.folds, files.values(), strict=True):
        pred = _file_predictions(run.spec, fold.weights, fmt, data, fold.network_input(run.spec, run.X))
        frames.append(pd.DataFrame({"fold": fold.fold, "row": rows, "prediction": pred}))
    files["predictions.csv"] = csv(pd.concat(frames, ignore_index=True))
    if run.spec.input_mode == "zscore":
        files["scaler.csv"] = csv(scaler_table(run))
    files["README.txt"] = readme_text(run, fmt, units or {}).encode()
    return files


def scaler_table(run: RunResult) -> pd.DataFrame:
    """Each fold's StandardScaler: z = (x - mean) / std, per input."""
    return pd.DataFrame([{"fold": f.fold, "input": name, "mean": m, "std": s}
                         for f in run.folds
                         for name, m, s in zip(run.features, f.scaler_mean, f.scaler_std,
                                               strict=True)])


_LOADING = {
    "keras": """Load (TensorFlow/Keras 2 or 3, float32):
    import keras
    model = keras.models.load_model("fold_0.h5", compile=False)
    prediction = model.predict(x)[:, 0]        # x: (rows, {p}) array in the order above
  bnapp reads it too: bnapp.engine.keras_import.read_keras_model("fold_0.h5")""",
    "torch": """Load (torch alone, float64, eval mode):
    import torch
    model = torch.jit.load("fold_0.pt")
    prediction = model(torch.as_tensor(x, dtype=torch.float64))   # x: (rows, {p}), shape (rows,)
  model.state_dict() holds the weights and BN moving statistics of
  bnapp.engine.reference.ReferenceNet, for those who rebuild the class.""",
    "onnx": """Load (onnxruntime or any ONNX runtime, float64, opset {opset}):
    import onnxruntime
    session = onnxruntime.InferenceSession("fold_0.onnx")
    prediction = session.run(None, {{"x": x.astype("float64")}})[0]   # x: (rows, {p}), (rows,)""",
}


def readme_text(run: RunResult, fmt: str, units: Mapping[str, str]) -> str:
    spec, p = run.spec, len(run.features)

    def unit(col: str) -> str:
        return f" [{units[col]}]" if units.get(col) else ""

    row_meaning = ("the row number in the data file, header = row 1" if run.row_ids is not None
                   else "the row's position among the usable rows, from 0")
    inputs = "\n".join(f"  {i + 1}. {name}{unit(name)}" for i, name in enumerate(run.features))
    if spec.input_mode == "zscore":
        scaled = ("These networks were trained on z-scored inputs: give each input as\n"
                  "  z = (x - mean) / std with the mean and std of ITS fold's training rows, listed\n"
                  "  in scaler.csv (fold, input, mean, std) and below (mean/std).\n" + "\n".join(
                      f"  fold {f.fold}: " + ", ".join(
                          f"{n} {m:.6g}/{s:.6g}" for n, m, s in
                          zip(run.features, f.scaler_mean, f.scaler_std, strict=True))
                      for f in run.folds))
    else:
        scaled = "These networks take the raw inputs: no scaling before the network."
    return f"""bnapp {__version__}: {len(run.folds)} trained networks, one per fold
Architecture: {spec.label}
Trained: {run.label}
Files: fold_K{FORMATS[fmt]} (K = the fold's number), predictions.csv, README.txt{
    ", scaler.csv" if spec.input_mode == "zscore" else ""}

Inputs, in this column order:
{inputs}
{scaled}
Output: {run.target}{unit(run.target)}, one value per row.

predictions.csv: fold, row ({row_meaning}), prediction (the exported network of that
fold on every usable row, in data order, in {run.target}'s unit).
A fold's network was trained on that fold's training rows only: its predictions for the other
rows are out of sample.

{_LOADING[fmt].format(p=p, opset=ONNX_OPSET)}
"""


def networks_zip(run: RunResult, fmt: str, units: Mapping[str, str] | None = None, *,
                 csv: CsvWriter) -> bytes:
    """export_files as one ZIP, for a download."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in export_files(run, fmt, units, csv=csv).items():
            zf.writestr(name, data)
    return buf.getvalue()


def write_export(run: RunResult, fmt: str, out: Path,
                 units: Mapping[str, str] | None = None, *, csv: CsvWriter) -> list[Path]:
    """export_files written into the directory out; the paths written."""
    files = export_files(run, fmt, units, csv=csv)  # everything built before anything is written
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        (out / name).write_bytes(data)
        paths.append(out / name)
    return paths
