"""Cross-validated training: protocols, splits, and the batched trainer.

Every model of a run (one per fold, and one per fold and spec for `train_runs`) is trained at once
by the compiled kernel in `bnapp.engine.kernel`, each with its own mini-batch order, initial weights and
BN statistics. Semantics are Keras' (see `bnapp.engine.model`); `bnapp.engine.reference.train_reference` is the
torch reference the kernel is tested against.

`bnapp.engine.kernel` (numba) is imported by the functions that pack and train models, not at module
level: `Protocol` alone (a cached result's key, the CLI's options) must not load the compiler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bnapp.engine.model import BN_DECAYS, ArchSpec, BNState, Weights, init_weights, predict
from bnapp.engine.protocols import (
    GROUPED_KINDS,
    Protocol,
    group_codes,
    group_folds,
    group_hash,
    group_holdout,
)
from bnapp.engine.results import FoldResult, RunResult

if TYPE_CHECKING:
    from bnapp.engine import kernel

STUDY_TEST_FRACTION = 0.2

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class TrainingCancelled(Exception):
    """The caller's cancel() returned True; nothing was produced."""


class TrainingDiverged(RuntimeError):
    """A model's training loss became NaN or infinite; the message names the fold and the fix."""


@dataclass(frozen=True)
class Split:
    """Row positions (into X, int32) of one fold's training, validation and test sets."""

    repeat: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _holdout(rows: np.ndarray, fraction: float, rng: np.random.Generator):
    """(kept, held out) like sklearn's train_test_split: ceil(fraction * n) rows held out."""
    n_out = math.ceil(fraction * len(rows))
    perm = rows[rng.permutation(len(rows))]
    return perm[n_out:], perm[:n_out]


_ROW_DTYPE = np.int32  # row positions: half of int64's memory, 2**31 rows at most


def make_splits(protocol: Protocol, n_rows: int, groups=None) -> list[Split]:
    """The protocol's folds for n_rows rows, reproducible from protocol.seed; a grouped protocol
    needs groups, one label per row, matching its group_hash."""
    if protocol.kind in GROUPED_KINDS:
        return _grouped_splits(protocol, n_rows, groups)
    n_test_min = math.ceil(STUDY_TEST_FRACTION * n_rows) if protocol.kind == "study" else protocol.folds
    if n_rows < max(n_test_min, protocol.folds) + 2:
        raise ValueError(f"{n_rows} rows are too few for {protocol.folds} folds: use fewer folds "
                         "or more rows")
    if n_rows > np.iinfo(_ROW_DTYPE).max:
        raise ValueError(f"{n_rows} rows are more than {np.iinfo(_ROW_DTYPE).max}: split the data")
    rng = np.random.default_rng([protocol.seed, 0])
    splits = []
    repeats = protocol.repeats if protocol.kind == "repeated" else 1
    for repeat in range(repeats):
        if protocol.kind == "study":
            pairs = [_holdout(np.arange(n_rows), STUDY_TEST_FRACTION, rng) for _ in range(protocol.folds)]
        else:
            parts = np.array_split(rng.permutation(n_rows), protocol.folds)
            pairs = [(np.concatenate(parts[:k] + parts[k + 1:]), parts[k]) for k in range(protocol.folds)]
        for fold, (train, test) in enumerate(pairs):
            val = np.empty(0, dtype=train.dtype)
            if protocol.val_fraction > 0:
                train, val = _holdout(train, protocol.val_fraction, rng)
            if len(train) < 2:
                raise ValueError(f"{n_rows} rows leave fewer than 2 training rows per fold")
            splits.append(Split(repeat, fold, *(rows.astype(_ROW_DTYPE) for rows in (train, val, test))))
    return splits


def _grouped_splits(protocol: Protocol, n_rows: int, groups) -> list[Split]:
    if groups is None or group_hash(groups) != protocol.group_hash:
        raise ValueError(f"the protocol groups by {protocol.group_by!r}: pass that column's "
                         "labels (groups=), the same ones the protocol was made with")
    _, codes = group_codes(groups, n_rows)
    rng = np.random.default_rng([protocol.seed, 0])
    splits = []
    for fold, (train, test) in enumerate(group_folds(protocol.kind, protocol.folds, codes, rng,
                                                     protocol.group_by)):
        val = np.empty(0, dtype=train.dtype)
        if protocol.val_fraction > 0:
            train, val = group_holdout(train, codes, protocol.val_fraction, rng)
        if len(train) < 2:
            raise ValueError(f"grouping by {protocol.group_by!r} leaves fewer than 2 training "
                             f"rows in fold {fold + 1}")
        splits.append(Split(0, fold, *(rows.astype(_ROW_DTYPE) for rows in (train, val, test))))
    return splits


def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler (ddof=0) mean and scale; constant columns get scale 1 as sklearn does."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    return mean, std


def model_rngs(protocol: Protocol, split: Split) -> tuple[np.random.Generator, np.uint64]:
    """Per-model generator of the initial weights, and seed of the mini-batch orders
    (kernel.draw_order), shared across specs."""
    key = [protocol.seed, split.repeat, split.fold]
    order_seed = np.random.SeedSequence([*key, 2]).generate_state(1, np.uint64)[0]
    return np.random.default_rng([*key, 1]), order_seed


# --------------------------------------------------------------------------------------------
# packing models into the kernel's flat padded arrays


def pack_weights(w: Weights, width: int) -> np.ndarray:
    from bnapp.engine import kernel

    lay = kernel.layout(width)
    row = np.zeros(lay["size"])
    for layer, (k, b) in enumerate(zip(w.kernels, w.biases, strict=True)):
        block = row[lay["kernel"] + layer * width * width:][: width * width].reshape(width, width)
        block[: k.shape[0], : k.shape[1]] = k
        row[lay["bias"] + layer * width:][: len(b)] = b
    bns = [(lay["input_bn"], w.input_bn)] if w.input_bn is not None else []
    bns += [(lay["hidden_bn"] + i * 4 * width, bn) for i, bn in enumerate(w.hidden_bn)]
    for off, bn in bns:
        for j, arr in enumerate((bn.gamma, bn.beta, bn.moving_mean, bn.moving_var)):
            row[off + j * width:][: len(arr)] = arr
    return row


def unpack_weights(spec: ArchSpec, row: np.ndarray, n_inputs: int, width: int) -> Weights:
    from bnapp.engine import kernel

    lay = kernel.layout(width)
    widths = [n_inputs, *spec.hidden, 1]
    kernels, biases = [], []
    for layer, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        block = row[lay["kernel"] + layer * width * width:][: width * width].reshape(width, width)
        kernels.append(block[:n_in, :n_out].copy())
        biases.append(row[lay["bias"] + layer * width:][:n_out].copy())

    def bn(off: int, units: int) -> BNState:
        return BNState(*(row[off + j * width:][:units].copy() for j in range(4)))

    return Weights(
        kernels,
        biases,
        bn(lay["input_bn"], n_inputs) if spec.input_bn else None,
        [bn(lay["hidden_bn"] + i * 4 * width, h) for i, h in enumerate(spec.hidden)] if spec.hidden_bn else [],
    )


def spec_config(spec: ArchSpec, data_index: int) -> np.ndarray:
    from bnapp.engine import kernel

    if len(spec.hidden) > kernel.MAX_DEPTH:
        raise ValueError(f"at most {kernel.MAX_DEPTH} hidden layers are supported, not {len(spec.hidden)}")
    row = np.zeros(kernel.CFG_COLS, dtype=np.int64)
    row[kernel.C_DEPTH] = len(spec.hidden)
    row[kernel.C_ACT] = kernel.ACT_CODES[spec.activation]
    row[kernel.C_OUT_ACT] = kernel.ACT_CODES[spec.output_activation]
    row[kernel.C_INPUT_BN] = spec.input_bn
    row[kernel.C_HIDDEN_BN] = spec.hidden_bn
    row[kernel.C_DATA] = data_index
    row[kernel.C_WIDTHS: kernel.C_WIDTHS + len(spec.hidden)] = spec.hidden
    return row


def _padded(blocks: Sequence[np.ndarray], dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Stack arrays of different lengths (first axis) into (D, max_len, ...) plus the lengths."""
    lengths = np.array([len(b) for b in blocks], dtype=np.int64)
    out = np.zeros((len(blocks), max(int(lengths.max()), 1), *blocks[0].shape[1:]), dtype=dtype)
    for i, b in enumerate(blocks):
        out[i, : len(b)] = b
    return out, lengths


def build_datasets(X: np.ndarray, y: np.ndarray, splits: list[Split], protocol: Protocol,
                   modes: Sequence[str]) -> tuple[kernel.SplitRows, dict, list]:
    """One kernel data set per (split, input mode): row indices into X and y, never copies.

    Returns the data sets, the index {(split position, mode): data set}, and each split's scaler.
    """
    from bnapp.engine import kernel

    index, scalers, split_of, shifts, scales = {}, [], [], [], []
    for i, split in enumerate(splits):
        mean, std = fit_scaler(X[split.train])
        scalers.append((mean, std))
        for mode in modes:
            index[i, mode] = len(split_of)
            split_of.append(i)
            # raw inputs: (x - 0) / 1 is x exactly
            shifts.append(mean if mode == "zscore" else np.zeros_like(mean))
            scales.append(std if mode == "zscore" else np.ones_like(std))
    rows = {part: _padded([getattr(s, part) for s in splits], _ROW_DTYPE)
            for part in ("train", "val", "test")}
    data = kernel.SplitRows(
        np.ascontiguousarray(X), np.ascontiguousarray(y), np.array(split_of, dtype=np.int64),
        np.array(shifts), np.array(scales), *rows["train"], *rows["val"], *rows["test"],
        np.array([model_rngs(protocol, s)[1] for s in splits], dtype=np.uint64),
    )
    return data, index, scalers


def padded_width(specs: Sequence[ArchSpec], n_inputs: int) -> int:
    return max(n_inputs, *(h for s in specs for h in s.hidden))


def initial_stack(specs: Sequence[ArchSpec], splits: list[Split], index: dict, n_inputs: int,
                  protocol: Protocol) -> tuple[np.ndarray, np.ndarray]:
    """Parameter rows P and cfg rows for every (spec, split) model, spec-major order."""
    width = padded_width(specs, n_inputs)
    P, cfg = [], []
    for spec in specs:
        for i, split in enumerate(splits):
            cfg.append(spec_config(spec, index[i, spec.input_mode]))  # checks the depth first
            w0 = init_weights(spec, n_inputs, model_rngs(protocol, split)[0])
            P.append(pack_weights(w0, width))
    return np.array(P), np.array(cfg)


# below this many models per core, a second thread costs more than it saves
_MODELS_PER_THREAD = 2


def _run_stack(stack: kernel.Stack, data: kernel.SplitRows, protocol: Protocol,
               progress: Progress | None, cancel: Cancel | None) -> None:
    """Train in epoch chunks (so progress and cancel get a say), on all cores."""
    from joblib import cpu_count

    chunk = protocol.epochs if progress is None and cancel is None else max(1, protocol.epochs // 20)
    threads = min(cpu_count(), len(stack.P) // _MODELS_PER_THREAD)
    for start in range(0, protocol.epochs, chunk):
        if cancel is not None and cancel():
            raise TrainingCancelled("training cancelled")
        stop = min(start + chunk, protocol.epochs)
        stack.train(data, start, stop, batch_size=protocol.batch_size, lr=protocol.lr,
                    patience=protocol.patience or 0, threads=threads,
                    bn_update=BN_DECAYS[protocol.bn_decay])
        if progress is not None:
            progress(stop / protocol.epochs, f"epoch {stop}/{protocol.epochs}")


def _fanned_out(stack: kernel.Stack, data: kernel.SplitRows, n_splits: int, protocol: Protocol,
                progress: Progress | None, cancel: Cancel | None) -> None:
    """Train each split's models (every spec's) as a task of joblib.Parallel: on threads here,
    or on the workers of an enclosing parallel_config (a Dask cluster, which gets x and y once
    per worker when they are scattered). Every model trains alone, so the result is the single
    stack's, bit for bit."""
    from joblib import Parallel, delayed

    from bnapp.engine import kernel

    groups = [np.arange(i, len(stack.P), n_splits) for i in range(n_splits)]
    sets = data.without_data()
    jobs = (delayed(kernel.trained_stack)(stack.P[models], stack.cfg[models], data.x, data.y,
                                          sets.of_split(i), epochs=protocol.epochs,
                                          batch_size=protocol.batch_size, lr=protocol.lr,
                                          patience=protocol.patience or 0,
                                          bn_update=BN_DECAYS[protocol.bn_decay])
            for i, models in enumerate(groups))
    parallel = Parallel(n_jobs=-1, prefer="threads", return_as="generator")
    for done, (models, part) in enumerate(zip(groups, parallel(jobs), strict=True), 1):
        stack.adopt(models, part)
        if cancel is not None and cancel():
            raise TrainingCancelled("training cancelled")
        if progress is not None:
            progress(done / n_splits, f"fold {done}/{n_splits}")


def check_arrays(X, y, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    # row-major: the kernel and the analyses gather whole rows (a column-major X, as a
    # DataFrame's to_numpy gives, would put a row's values in p different cache lines)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (n, p) and y (n,), got {X.shape} and {y.shape}")
    if len(features) != X.shape[1]:
        raise ValueError(f"{len(features)} feature names for {X.shape[1]} input columns")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite numbers (no NaN or inf)")
    return X, y


def _diverged_message(spec: ArchSpec, split: Split, epoch: int, protocol: Protocol) -> str:
    where = f"fold {split.fold + 1}" + (f" of repeat {split.repeat + 1}" if split.repeat else "")
    return (
        f"training diverged: {spec.label}, {where}: the training loss became NaN or infinite in "
        f"epoch {epoch + 1}. Lower the learning rate (now {protocol.lr:g}), use z-scored inputs, "
        f"or put a BatchNormalization layer at the input."
    )


def train_runs(X, y, specs: Sequence[ArchSpec], protocol: Protocol, *, features: Sequence[str],
               target: str = "Ueq", row_ids=None, groups=None, progress: Progress | None = None,
               cancel: Cancel | None = None, fan_out: bool = False,
               splits: Sequence[Split] | None = None) -> list[RunResult]:
    """Train every spec under the protocol, all folds of all specs as one stack of models
    (fan_out: one task per split through joblib, for a cluster; the same result).

    groups: one label per row, for a grouped protocol (bnapp.engine.protocols.grouped).
    splits: the folds to train instead of the protocol's own (a nested cross-validation's inner
    folds, which leave some rows out of every model; the bootstrap replicates of
    bnapp.analyses.cohort_intervals, whose rows may repeat); the protocol still gives the training
    settings and, with each split's repeat and fold, the initial weights.

    Raises TrainingDiverged (naming spec, fold and epoch) if any model's loss becomes NaN/inf,
    and TrainingCancelled when cancel() returns True between epoch chunks.
    """
    from bnapp.engine import kernel

    X, y = check_arrays(X, y, features)
    specs = list(specs)
    n_inputs = X.shape[1]
    splits = make_splits(protocol, len(X), groups) if splits is None else list(splits)
    data, index, scalers = build_datasets(X, y, splits, protocol, sorted({s.input_mode for s in specs}))
    P, cfg = initial_stack(specs, splits, index, n_inputs, protocol)
    stack = kernel.Stack(P, cfg, protocol.epochs, n_inputs)
    if fan_out:
        _fanned_out(stack, data, len(splits), protocol, progress, cancel)
    else:
        _run_stack(stack, data, protocol, progress, cancel)
    diverged = stack.state[:, kernel.S_DIVERGED_EPOCH]
    if (diverged >= 0).any():
        m = int(np.flatnonzero(diverged >= 0)[0])
        spec, split = specs[m // len(splits)], splits[m % len(splits)]
        raise TrainingDiverged(_diverged_message(spec, split, int(diverged[m]), protocol))
    width = padded_width(specs, n_inputs)
    runs = []
    for s, spec in enumerate(specs):
        folds = []
        for i, split in enumerate(splits):
            m = s * len(splits) + i
            d = index[i, spec.input_mode]
            x_test = (X[split.test] - data.shift[d]) / data.scale[d]
            folds.append(_fold_result(stack, m, spec, split, scalers[i], x_test, width, protocol))
        runs.append(RunResult(spec=spec, features=list(features), target=target, X=X, y=y,
                              folds=folds, protocol=protocol.to_dict(),
                              row_ids=None if row_ids is None else np.asarray(row_ids)))
    return runs


def _fold_result(stack: kernel.Stack, m: int, spec: ArchSpec, split: Split, scaler,
                 x_test: np.ndarray, width: int, protocol: Protocol) -> FoldResult:
    """Model m of the trained stack as a fold result; x_test: its test rows as it sees them."""
    from bnapp.engine import kernel

    weights = unpack_weights(spec, stack.P[m], x_test.shape[1], width)
    epochs_run = int(stack.state[m, kernel.S_EPOCHS_RUN])
    history = {"loss": stack.loss[m, :epochs_run].copy()}
    if len(split.val):
        history["val_loss"] = stack.val_loss[m, :epochs_run].copy()
    if spec.input_bn:
        history["input_gamma"] = stack.input_gamma[m, :epochs_run].copy()
    return FoldResult(
        # the model's number in the run, unique across repeats: analyses group by it
        fold=split.repeat * protocol.folds + split.fold,
        train_rows=split.train,
        val_rows=split.val,
        test_rows=split.test,
        scaler_mean=scaler[0],
        scaler_std=scaler[1],
        weights=weights,
        history=history,
        repeat=split.repeat,
        stopped_epoch=int(stack.state[m, kernel.S_BEST_EPOCH]) if protocol.patience else None,
        test_predictions=predict(spec, weights, x_test),
    )


def train_run(X, y, spec: ArchSpec, protocol: Protocol, *, features: Sequence[str],
              target: str = "Ueq", row_ids=None, groups=None, progress: Progress | None = None,
              cancel: Cancel | None = None, fan_out: bool = False,
              splits: Sequence[Split] | None = None) -> RunResult:
    """Train one architecture under the protocol: one model per fold, trained together."""
    return train_runs(X, y, [spec], protocol, features=features, target=target, row_ids=row_ids,
                      groups=groups, progress=progress, cancel=cancel, fan_out=fan_out,
                      splits=splits)[0]
