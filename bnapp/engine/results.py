"""Fold and run results: what training (or a Keras import) produces and every analysis reads.

Saved as one .npz of plain arrays plus JSON metadata, loaded with allow_pickle=False, so a
results file can never execute code when it is read back.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np

from bnapp.engine.model import ArchSpec, BNState, Weights, dense_output, predict

# 2: each fold stores its test predictions
FORMAT_VERSION = 2
# the kinds of layer an analysis can ask for: the input BN, or the BN after hidden layer i
LAYERS = ("input", "hidden")
FORWARD_BLOCK = 32_768  # rows per forward pass in RunResult.unit_values


@dataclass(frozen=True)
class Layer:
    """One BN-able layer of a network: the input, or hidden layer `index` (0-based in code;
    users read it 1-based, in `label`, `stem` and the tables' `hidden_layer` column)."""

    kind: str = "input"
    index: int = 0

    def __post_init__(self):
        if self.kind not in LAYERS:
            raise ValueError(f"a layer is one of {LAYERS}, not {self.kind!r}")
        if self.index < 0 or (self.kind == "input" and self.index):
            raise ValueError(f"no {self.kind} layer number {self.index + 1}")

    @classmethod
    def hidden(cls, index: int) -> Layer:
        return cls("hidden", index)

    @property
    def number(self) -> int | None:
        """The hidden layer's number as users count (1, 2, ...); None for the input."""
        return None if self.kind == "input" else self.index + 1

    @property
    def label(self) -> str:
        """'input', 'hidden layer 1', ...: the layer in a sentence."""
        return "input" if self.kind == "input" else f"hidden layer {self.number}"

    @property
    def stem(self) -> str:
        """'input', 'hidden1', ...: the layer in file names."""
        return "input" if self.kind == "input" else f"hidden{self.number}"


INPUT = Layer()
FIRST_HIDDEN = Layer.hidden(0)


def network_layers(spec: ArchSpec) -> list[Layer]:
    """The network's layers an analysis can look at: the input, then each hidden layer."""
    return [INPUT, *(Layer.hidden(i) for i in range(len(spec.hidden)))]


@dataclass
class FoldResult:
    """One trained model and the rows it saw. Row arrays index RunResult.X / RunResult.y."""

    fold: int  # the model's number in the run; with repeats, repeat * folds + fold in repeat
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    scaler_mean: np.ndarray  # StandardScaler of the training rows (ddof=0), for every input mode
    scaler_std: np.ndarray
    weights: Weights
    # per-epoch curves: "loss" (E,), optionally "val_loss" (E,) and "input_gamma" (E, p)
    history: dict[str, np.ndarray] = field(default_factory=dict)
    repeat: int = 0
    stopped_epoch: int | None = None  # early stopping: the epoch whose weights were kept
    # (len(test_rows),) the model's predictions for its test rows, kept from training; RunResult
    # fills them in for folds built without them (a checkpoint import, a hand-made fold)
    test_predictions: np.ndarray | None = None

    def network_input(self, spec: ArchSpec, x_raw: np.ndarray) -> np.ndarray:
        """Raw inputs as this fold's network sees them (z-scored with its own training scaler)."""
        x_raw = np.asarray(x_raw, dtype=np.float64)
        if spec.input_mode == "zscore":
            return (x_raw - self.scaler_mean) / self.scaler_std
        return x_raw

    def bn(self, layer: Layer) -> BNState | None:
        """This fold's BN state of that layer, or None where the architecture has no BN there."""
        if layer.kind == "input":
            return self.weights.input_bn
        return self.weights.hidden_bn[layer.index] if self.weights.hidden_bn else None


@dataclass
class RunResult:
    """A cross-validated run: one architecture, one data set, one model per fold."""

    spec: ArchSpec
    features: list[str]
    target: str
    X: np.ndarray  # (n, p) raw inputs of the usable rows, float64
    y: np.ndarray  # (n,)
    folds: list[FoldResult]
    protocol: dict = field(default_factory=dict)  # how the folds were made and trained
    source: str = "trained"
    row_ids: np.ndarray | None = None  # row numbers in the user's file, for display
    # layer_scaler's hidden-layer statistics: (id(fold), layer) -> (fold, digest, mean, std)
    _hidden_scalers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        for fold in self.folds:
            if fold.test_predictions is None:
                fold.test_predictions = self.fold_predictions(fold, self.X[fold.test_rows])
            elif fold.test_predictions.shape != fold.test_rows.shape:
                raise ValueError(f"fold {fold.fold}: {fold.test_predictions.shape} test predictions "
                                 f"for {len(fold.test_rows)} test rows")

    def fold_predictions(self, fold: FoldResult, x_raw: np.ndarray) -> np.ndarray:
        return predict(self.spec, fold.weights, fold.network_input(self.spec, x_raw))

    def test_predictions(self, fold: FoldResult) -> np.ndarray:
        """The fold's model's predictions for its test rows, as stored with the fold."""
        return fold.test_predictions

    @property
    def label(self) -> str:
        """Architecture and protocol in a few words, e.g. "… · 10-fold CV, 200 epochs"."""
        p = self.protocol
        folds = p.get("folds", "?")
        how = {"kfold": f"{folds}-fold CV", "study": f"{folds} study splits",
               "repeated": f"{p.get('repeats', '?')}×{folds}-fold CV",
               "group-kfold": f"{folds}-fold CV by {p.get('group_by')}",
               "leave-one-group-out": f"leave-one-{p.get('group_by')}-out"}.get(p.get("kind"), "CV")
        return f"{self.spec.label} · {how}, {p.get('epochs', '?')} epochs"

    def ensemble_predictions(self, x_raw: np.ndarray) -> np.ndarray:
        """(n_folds, n) predictions of every fold's model, for a fold-ensemble estimate."""
        return np.stack([self.fold_predictions(f, x_raw) for f in self.folds])

    # ---- one BN layer of the network: every analysis reaches its units through these

    def check_layer(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"a layer is a bnapp Layer, not {layer!r}")
        if layer.kind == "hidden" and layer.index >= len(self.spec.hidden):
            raise ValueError(f"there is no {layer.label}: the network has "
                             f"{len(self.spec.hidden)} hidden layer(s)")

    def unit_names(self, layer: Layer) -> list[str]:
        """The input layer's units are the features; hidden layer i's are "node 1", "node 2", ...
        (the study's names), prefixed "layer i+1" beyond the first hidden layer."""
        if layer.kind == "input":
            return list(self.features)
        prefix = f"layer {layer.number} " if layer.index else ""
        return [f"{prefix}node {k + 1}" for k in range(self.spec.hidden[layer.index])]

    def unit_values(self, fold: FoldResult, rows: np.ndarray, layer: Layer) -> np.ndarray:
        """What enters the layer's BN (network input, or the hidden Dense output) for these rows."""
        if layer.kind == "input":
            return fold.network_input(self.spec, self.X[rows])
        # the network in blocks of rows: on a million training rows, whole-array temporaries
        # cost more in page faults than the arithmetic
        out = np.empty((len(rows), self.spec.hidden[layer.index]))
        for start in range(0, len(rows), FORWARD_BLOCK):
            block = rows[start:start + FORWARD_BLOCK]
            x = fold.network_input(self.spec, self.X[block])
            out[start:start + len(block)] = dense_output(self.spec, fold.weights, x, layer.index)
        return out

    def layer_scaler(self, fold: FoldResult, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
        """Training-row mean and std (ddof 0) of the layer's raw unit values.

        For the input layer that is the fold's StandardScaler; for a hidden layer, the same
        statistics of its Dense outputs on the fold's training rows (a hidden layer has no scaler
        of its own).
        """
        if layer.kind == "input":
            return fold.scaler_mean, fold.scaler_std
        # a pass over every training row (9M rows for a 1M-session 10-fold run) that the stage,
        # parameter and ablation tables all need: computed once, and again only if what
        # determines it (the training rows, the scaler, the weights) has been changed since
        w = fold.weights
        digest = _digest(fold.train_rows, fold.scaler_mean, fold.scaler_std, *w.kernels, *w.biases,
                         *(a for bn in (w.input_bn, *w.hidden_bn) if bn is not None
                           for a in _bn_arrays("", bn).values()))
        kept = self._hidden_scalers.get((id(fold), layer))
        if kept is not None and kept[0] is fold and kept[1] == digest:
            return kept[2].copy(), kept[3].copy()
        values = self.unit_values(fold, fold.train_rows, layer)
        mean, std = values.mean(0), values.std(0)
        self._hidden_scalers[id(fold), layer] = (fold, digest, mean.copy(), std.copy())
        return mean, std


def _digest(*arrays: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


# --------------------------------------------------------------------------------------------
# persistence


FOLD_ARRAYS = ("train_rows", "val_rows", "test_rows", "scaler_mean", "scaler_std",
               "test_predictions")


def _bn_arrays(prefix: str, bn: BNState) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": getattr(bn, k) for k in ("gamma", "beta", "moving_mean", "moving_var")}


def _bn_from(arrays, prefix: str) -> BNState:
    return BNState(*(arrays[f"{prefix}.{k}"] for k in ("gamma", "beta", "moving_mean", "moving_var")))


def run_to_bytes(run: RunResult) -> bytes:
    arrays: dict[str, np.ndarray] = {"X": run.X, "y": run.y}
    if run.row_ids is not None:
        arrays["row_ids"] = run.row_ids
    folds_meta = []
    for i, f in enumerate(run.folds):
        p = f"f{i}"
        for name in FOLD_ARRAYS:
            arrays[f"{p}.{name}"] = getattr(f, name)
        for j, (k, b) in enumerate(zip(f.weights.kernels, f.weights.biases, strict=True)):
            arrays[f"{p}.kernel{j}"] = k
            arrays[f"{p}.bias{j}"] = b
        if f.weights.input_bn is not None:
            arrays.update(_bn_arrays(f"{p}.input_bn", f.weights.input_bn))
        for j, bn in enumerate(f.weights.hidden_bn):
            arrays.update(_bn_arrays(f"{p}.hidden_bn{j}", bn))
        for name, curve in f.history.items():
            arrays[f"{p}.history.{name}"] = curve
        folds_meta.append(
            {
                "fold": f.fold,
                "repeat": f.repeat,
                "stopped_epoch": f.stopped_epoch,
                "n_layers": len(f.weights.kernels),
                "n_hidden_bn": len(f.weights.hidden_bn),
                "input_bn": f.weights.input_bn is not None,
                "history": sorted(f.history),
            }
        )
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": run.spec.to_dict(),
        "features": list(run.features),
        "target": run.target,
        "protocol": run.protocol,
        "source": run.source,
        "folds": folds_meta,
    }
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def run_from_bytes(data: bytes) -> RunResult:
    """Inverse of run_to_bytes; raises ValueError on anything that is not a complete result."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta.json").tobytes().decode())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"results format {meta.get('format_version')} is not {FORMAT_VERSION}")
        folds = []
        for i, fm in enumerate(meta["folds"]):
            p = f"f{i}"
            w = Weights(
                [arrays[f"{p}.kernel{j}"] for j in range(fm["n_layers"])],
                [arrays[f"{p}.bias{j}"] for j in range(fm["n_layers"])],
                _bn_from(arrays, f"{p}.input_bn") if fm["input_bn"] else None,
                [_bn_from(arrays, f"{p}.hidden_bn{j}") for j in range(fm["n_hidden_bn"])],
            )
            folds.append(
                FoldResult(
                    fold=fm["fold"],
                    **{name: arrays[f"{p}.{name}"] for name in FOLD_ARRAYS},
                    weights=w,
                    history={h: arrays[f"{p}.history.{h}"] for h in fm["history"]},
                    repeat=fm["repeat"],
                    stopped_epoch=fm["stopped_epoch"],
                )
            )
        return RunResult(
            spec=ArchSpec.from_dict(meta["spec"]),
            features=meta["features"],
            target=meta["target"],
            X=arrays["X"],
            y=arrays["y"],
            folds=folds,
            protocol=meta["protocol"],
            source=meta["source"],
            row_ids=arrays.get("row_ids"),
        )
    except (KeyError, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a complete bnapp results file ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile and numpy's own format errors
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"not a bnapp results file ({type(exc).__name__}: {exc})") from exc
