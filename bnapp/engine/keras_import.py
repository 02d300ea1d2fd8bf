"""Read the study's Keras 2 `.h5` checkpoints with h5py alone (no TensorFlow).

The layer list and settings come from the JSON attribute `model_config`, the weights from
`model_weights/<layer>/<layer>/<name>:0`. Only this project's network family is accepted:

    [BatchNormalization] -> (Dense -> [BatchNormalization] -> Activation | Dense(act)) x L
    -> Dense(1, linear|relu)

Anything else (another layer type, BN settings other than Keras' defaults, a truncated file)
raises `KerasImportError` with a message naming the file and the problem; no other exception
escapes `read_keras_model`.

`load_keras_run` rebuilds the study's cross-validated runs from `folds_{e2e,norm}.json` and the
checkpoints. Its RunResult holds the 109 rows the study kept (Ueq >= Upos) in file order; the
JSON's row positions (zero-based, in the 129-row Urea.csv) are remapped onto them, and
`row_ids` holds each kept row's spreadsheet row number (header = row 1, so position + 2).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np
import pandas as pd

from bnapp.engine.model import (
    ACTIVATIONS,
    BN_EPSILON,
    BN_MOMENTUM,
    OUTPUT_ACTIVATIONS,
    ArchSpec,
    BNState,
    Weights,
)
from bnapp.engine.results import FoldResult, RunResult

RUNS = {"e2e": "raw", "norm": "zscore"}  # seed file name -> the input mode it was trained on


class KerasImportError(ValueError):
    """A file that is not a checkpoint of this project's network family; str() is the message."""


# --------------------------------------------------------------------------------------------
# one checkpoint


def read_keras_model(
    source: str | Path | bytes | BinaryIO, *, input_mode: str = "raw"
) -> tuple[ArchSpec, Weights]:
    """(ArchSpec, Weights) of a Keras Sequential .h5 model of the study's family.

    input_mode is not recorded in a checkpoint: say whether the model was trained on raw
    inputs or on z-scores.
    """
    name = str(source) if isinstance(source, str | Path) else "the uploaded file"
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
        with h5py.File(handle, "r") as h5:
            layers = _model_layers(h5)
            spec, plan = _parse_layers(layers, input_mode)
            weights = _read_weights(h5, spec, plan)
    except KerasImportError as exc:
        raise KerasImportError(f"{name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - h5py/JSON raise many types on damaged files
        raise KerasImportError(
            f"{name}: not a readable Keras .h5 model ({type(exc).__name__}: {exc}). "
            "Save the model with model.save('file.h5') in Keras 2."
        ) from None
    return spec, weights


def _model_layers(h5: h5py.File) -> list[dict]:
    raw = h5.attrs.get("model_config")
    if raw is None:
        raise KerasImportError(
            "no 'model_config' attribute: this is a weights-only file or not a Keras model"
        )
    if isinstance(raw, bytes | np.bytes_):
        raw = raw.decode("utf-8")
    config = json.loads(str(raw))
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise KerasImportError(f"model is a {kind!r}, only Keras Sequential models are supported")
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not all(isinstance(la, dict) for la in layers):
        raise KerasImportError("model_config has no list of layers")
    return [la for la in layers if la.get("class_name") != "InputLayer"]


def _cfg(layer: dict) -> dict:
    cfg = layer.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
        raise KerasImportError(f"layer {layer.get('class_name')!r} has no config with a name")
    return cfg


def _check_bn(cfg: dict) -> None:
    name = cfg["name"]
    if cfg.get("momentum") != BN_MOMENTUM or cfg.get("epsilon") != BN_EPSILON:
        raise KerasImportError(
            f"BatchNormalization {name!r} has momentum {cfg.get('momentum')} and epsilon "
            f"{cfg.get('epsilon')}; only Keras' defaults {BN_MOMENTUM} and {BN_EPSILON} are supported"
        )
    if cfg.get("center", True) is not True or cfg.get("scale", True) is not True:
        raise KerasImportError(f"BatchNormalization {name!r} must have center=True and scale=True")
    if cfg.get("axis", -1) not in (-1, [-1], 1, [1]):
        raise KerasImportError(f"BatchNormalization {name!r} must normalize the last axis")


def _dense(layer: dict) -> tuple[str, int, str]:
    cfg = _cfg(layer)
    units = cfg.get("units")
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        raise KerasImportError(f"Dense {cfg['name']!r} has no valid 'units'")
    if cfg.get("use_bias", True) is not True:
        raise KerasImportError(f"Dense {cfg['name']!r} has no bias; only use_bias=True is supported")
    return cfg["name"], units, _activation(cfg)


def _activation(cfg: dict) -> str:
    act = cfg.get("activation", "linear")
    if not isinstance(act, str) or act not in (*ACTIVATIONS, "linear"):
        raise KerasImportError(
            f"layer {cfg['name']!r} has activation {act!r}; supported: linear, {', '.join(ACTIVATIONS)}"
        )
    return act


def _parse_layers(layers: list[dict], input_mode: str) -> tuple[ArchSpec, dict]:
    """Match the layer list against the family's grammar; plan = layer names per weight slot."""
    supported = {"BatchNormalization", "Dense", "Activation"}
    for la in layers:
        if la.get("class_name") not in supported:
            raise KerasImportError(
                f"layer type {la.get('class_name')!r} is not supported "
                f"(only Dense, BatchNormalization and Activation)"
            )
    kinds = [la["class_name"] for la in layers]
    plan: dict[str, Any] = {"input_bn": None, "dense": [], "hidden_bn": []}
    i = 0
    if kinds[:1] == ["BatchNormalization"]:
        _check_bn(_cfg(layers[0]))
        plan["input_bn"] = layers[0]["config"]["name"]
        i = 1
    hidden, acts, bn_flags = [], [], []
    while i < len(layers):
        if kinds[i] != "Dense":
            raise KerasImportError(f"expected a Dense layer at position {i + 1}, found {kinds[i]}")
        name, units, act = _dense(layers[i])
        plan["dense"].append(name)
        i += 1
        bn_name = None
        if i < len(layers) and kinds[i] == "BatchNormalization":
            if act != "linear":
                raise KerasImportError(f"Dense {name!r} is activated before its BatchNormalization")
            _check_bn(_cfg(layers[i]))
            bn_name = layers[i]["config"]["name"]
            i += 1
        if i < len(layers) and kinds[i] == "Activation":
            if act != "linear":
                raise KerasImportError(f"Dense {name!r} has two activations")
            act = _activation(_cfg(layers[i]))
            i += 1
        if i == len(layers):  # the output layer
            if units != 1 or bn_name is not None or act not in OUTPUT_ACTIVATIONS:
                raise KerasImportError(
                    "the last layer must be Dense(1) with a linear or relu activation, without BN"
                )
            plan["output_activation"] = act
            break
        if act not in ACTIVATIONS:
            raise KerasImportError(
                f"hidden Dense {name!r} needs an activation from {ACTIVATIONS}, not {act!r}")
        hidden.append(units)
        acts.append(act)
        bn_flags.append(bn_name is not None)
        plan["hidden_bn"].append(bn_name)
    if not hidden:
        raise KerasImportError("the model has no hidden Dense layer")
    if len(set(acts)) != 1 or len(set(bn_flags)) != 1:
        raise KerasImportError(
            "all hidden layers must share one activation and either all or none have BN"
        )
    spec = ArchSpec(
        hidden=tuple(hidden),
        activation=acts[0],
        output_activation=plan["output_activation"],
        input_bn=plan["input_bn"] is not None,
        hidden_bn=bn_flags[0],
        input_mode=input_mode,
    )
    return spec, plan


def _array(h5: h5py.File, layer: str, weight: str, shape: tuple[int, ...]) -> np.ndarray:
    path = f"model_weights/{layer}/{layer}/{weight}:0"
    if path not in h5:
        raise KerasImportError(f"weight {path!r} is missing")
    values = np.asarray(h5[path][()], dtype=np.float64)
    if values.shape != shape:
        raise KerasImportError(f"weight {path!r} has shape {values.shape}, expected {shape}")
    if not np.all(np.isfinite(values)):
        raise KerasImportError(f"weight {path!r} holds NaN or infinite values")
    return values


def _bn(h5: h5py.File, layer: str, units: int) -> BNState:
    get = [_array(h5, layer, w, (units,)) for w in ("gamma", "beta", "moving_mean", "moving_variance")]
    if np.any(get[3] < 0):
        raise KerasImportError(f"BatchNormalization {layer!r} has a negative moving variance")
    return BNState(*get)


def _read_weights(h5: h5py.File, spec: ArchSpec, plan: dict) -> Weights:
    n_inputs = _input_width(h5, plan)
    widths = [n_inputs, *spec.hidden, 1]
    kernels = [
        _array(h5, name, "kernel", (a, b))
        for name, a, b in zip(plan["dense"], widths[:-1], widths[1:], strict=True)
    ]
    biases = [_array(h5, name, "bias", (b,)) for name, b in zip(plan["dense"], widths[1:], strict=True)]
    input_bn = _bn(h5, plan["input_bn"], n_inputs) if plan["input_bn"] else None
    hidden_bn = [_bn(h5, name, units) for name, units in zip(plan["hidden_bn"], spec.hidden, strict=True)
                 if name is not None]
    return Weights(kernels, biases, input_bn, hidden_bn)


def _input_width(h5: h5py.File, plan: dict) -> int:
    first = plan["dense"][0]
    path = f"model_weights/{first}/{first}/kernel:0"
    if path not in h5 or len(h5[path].shape) != 2:
        raise KerasImportError(f"weight {path!r} is missing or not a matrix")
    return int(h5[path].shape[0])


# --------------------------------------------------------------------------------------------
# the study's cross-validated runs


def load_keras_run(seed_dir: str | Path, which: str = "e2e") -> RunResult:
    """The study's 10 published split models (`which` = 'e2e' raw inputs, 'norm' z-scores)."""
    if which not in RUNS:
        raise ValueError(f"which must be one of {sorted(RUNS)}, not {which!r}")
    seed_dir = Path(seed_dir)
    meta = json.loads((seed_dir / f"folds_{which}.json").read_text())
    features, target = list(meta["features"]), meta["target"]
    frame = pd.read_csv(seed_dir / "Urea.csv")
    keep = np.flatnonzero((frame[target] >= frame["Upos"]).to_numpy())
    new_index = np.full(len(frame), -1)
    new_index[keep] = np.arange(len(keep))

    def remap(rows: list[int]) -> np.ndarray:
        out = new_index[np.asarray(rows, dtype=int)]
        if np.any(out < 0):
            raise KerasImportError(f"folds_{which}.json uses rows the study dropped (Ueq < Upos)")
        return out

    folds = []
    for f in meta["folds"]:
        path = seed_dir / "checkpoints" / which / f"fold_{f['fold']}.h5"
        spec, weights = read_keras_model(path, input_mode=RUNS[which])
        folds.append(
            FoldResult(
                fold=int(f["fold"]),
                train_rows=remap(f["train_rows"]),
                val_rows=remap(f["val_rows"]),
                test_rows=remap(f["test_rows"]),
                scaler_mean=np.asarray(f["scaler_mean"], dtype=np.float64),
                scaler_std=np.asarray(f["scaler_std"], dtype=np.float64),
                weights=weights,
            )  # test_predictions: RunResult computes them from the imported weights
        )
    return RunResult(
        spec=spec,
        features=features,
        target=target,
        X=frame[features].to_numpy(np.float64)[keep],
        y=frame[target].to_numpy(np.float64)[keep],
        folds=folds,
        protocol={"kind": "study", "folds": len(folds), "epochs": 200, "batch_size": 32,
                  "lr": 0.01, "val_fraction": 0.2},
        source=f"keras:{which}",
        row_ids=keep + 2,
    )
