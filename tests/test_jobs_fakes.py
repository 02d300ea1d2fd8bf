"""Small stand-ins for the engine, shared by the test_jobs_* files.

They live in an importable module (not inside a test) because loky and Dask workers import
the functions they run by module name.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bnapp.model import ArchSpec, init_weights
from bnapp.results import FoldResult, RunResult, run_from_bytes, run_to_bytes


@dataclass(frozen=True)
class FakeProtocol:
    kind: str = "kfold"
    folds: int = 3
    repeats: int = 1
    epochs: int = 4
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Calls:
    """Counts compute calls across threads; `gate` (when set up) holds every call until opened."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.gate: threading.Event | None = None

    def hit(self) -> None:
        with self.lock:
            self.n += 1
        self.started.set()
        if self.gate is not None and not self.gate.wait(60):
            raise RuntimeError("test gate never opened")


CALLS = Calls()


def fake_train(X, y, spec, protocol, *, features, target="Ueq", row_ids=None, progress=None,
               cancel=None) -> RunResult:
    """A deterministic RunResult shaped like train_run's: k folds, init weights, a loss curve."""
    CALLS.hit()
    p = protocol.to_dict() if hasattr(protocol, "to_dict") else dict(protocol)
    rng = np.random.default_rng(p["seed"])
    X, y = np.asarray(X, float), np.asarray(y, float)
    parts = np.array_split(rng.permutation(len(y)), p["folds"])
    folds = []
    for k, test in enumerate(parts):
        train = np.setdiff1d(np.arange(len(y)), test)
        for epoch in range(p["epochs"]):
            if cancel is not None and cancel():
                raise RuntimeError("training cancelled")
            if progress is not None:
                progress((k * p["epochs"] + epoch + 1) / (p["folds"] * p["epochs"]), f"fold {k}")
        folds.append(FoldResult(
            fold=k, train_rows=train, val_rows=np.array([], dtype=np.int64), test_rows=test,
            scaler_mean=X[train].mean(0), scaler_std=X[train].std(0),
            weights=init_weights(spec, X.shape[1], rng),
            history={"loss": rng.random(p["epochs"])},
        ))
    return RunResult(spec, list(features), target, X, y, folds, protocol=p, row_ids=row_ids)


def fake_grid(X, y, protocol, specs, *, features, progress=None, n_jobs=-1) -> pd.DataFrame:
    """A grid table of the engine's shape: one row per spec with a made-up CV error."""
    CALLS.hit()
    from joblib import Parallel, delayed

    specs = specs or [ArchSpec(), ArchSpec.study_zscore()]
    scores = Parallel(n_jobs=n_jobs)(delayed(_score)(X, y, s, protocol.seed) for s in specs)
    if progress is not None:
        progress(1.0, "grid done")
    return pd.DataFrame({
        "label": [s.label for s in specs],
        "hidden": [str(s.hidden) for s in specs],
        "input_mode": [s.input_mode for s in specs],
        "total_params": [s.param_counts(X.shape[1]).total for s in specs],
        "cv_mse_mean": [m for m, _ in scores],
        "cv_mse_sd": [sd for _, sd in scores],
    })


def _score(X, y, spec, seed) -> tuple[float, float]:
    w = init_weights(spec, X.shape[1], np.random.default_rng(seed))
    v = float(np.sum(w.kernels[0]) * np.mean(y) / 7.0)
    return v, v / 3.0


def same_run(a: RunResult | bytes, b: RunResult | bytes) -> bool:
    """Equal content of two results (compared array by array: run_to_bytes is a zip whose headers
    carry the write time, and its member order follows the history dict's order)."""
    za, zb = (np.load(io.BytesIO(r if isinstance(r, bytes) else run_to_bytes(r))) for r in (a, b))
    return sorted(za.files) == sorted(zb.files) and all(np.array_equal(za[k], zb[k]) for k in za.files)


def where_am_i(_=None) -> str:
    """Which process ran this: a Dask worker's address, or 'pid <n>'."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return f"pid {os.getpid()}"


def die(_=None) -> None:
    os._exit(3)


def test_fake_train_makes_a_complete_run():
    X = np.random.default_rng(1).normal(size=(12, 5))
    run = fake_train(X, X[:, 0], ArchSpec(), FakeProtocol(), features=list("abcde"))
    back = run_from_bytes(run_to_bytes(run))
    assert len(back.folds) == 3
    assert sorted(np.concatenate([f.test_rows for f in back.folds]).tolist()) == list(range(12))
    np.testing.assert_array_equal(back.folds[1].weights.kernels[0], run.folds[1].weights.kernels[0])
