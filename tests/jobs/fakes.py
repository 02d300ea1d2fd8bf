"""Small stand-ins for the engine, shared by the jobs tests.

They live in an importable module (not inside a test) because loky and Dask workers import
the functions they run by module name. Training jobs run in worker processes, so the fakes
count and hold their calls with files, which every process sees.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from bnapp.engine.model import ArchSpec, init_weights
from bnapp.engine.results import FoldResult, RunResult, run_to_bytes


@dataclass(frozen=True)
class FakeProtocol:
    kind: str = "kfold"
    folds: int = 3
    repeats: int = 1
    epochs: int = 4
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


HOLD_SECONDS = 300  # a bound for a test that never releases a held call, not a speed figure


def wait_for(path: Path, timeout: float = HOLD_SECONDS, give_up=lambda: False) -> bool:
    """Whether the file appeared before the timeout or give_up() turned true."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if give_up() or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_until(predicate, timeout: float = HOLD_SECONDS) -> None:
    """Poll with a generous bound: the assertion is on the state reached, not the time taken."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@dataclass(frozen=True)
class Calls:
    """Counts the fakes' calls in whatever process runs them (a job thread, a loky worker, a Dask
    worker), one marker file per call holding where it ran; a gated Calls holds every call
    until open()."""

    directory: Path

    @classmethod
    def at(cls, directory: Path, *, gated: bool = False) -> Calls:
        directory.mkdir(parents=True, exist_ok=True)
        calls = cls(directory)
        if not gated:
            calls.open()
        return calls

    def hit(self) -> None:
        (self.directory / f"call-{uuid.uuid4().hex}").write_text(where_am_i())
        if not wait_for(self.directory / "open"):
            raise RuntimeError("test gate never opened")

    @property
    def n(self) -> int:
        return len(list(self.directory.glob("call-*")))

    def places(self) -> list[str]:
        return [p.read_text() for p in self.directory.glob("call-*")]

    def open(self) -> None:
        (self.directory / "open").touch()


def fake_train(X, y, spec, protocol, *, features, target="Ueq", row_ids=None, progress=None,
               cancel=None, calls: Calls | None = None) -> RunResult:
    """A deterministic RunResult shaped like train_run's: k folds, init weights, a loss curve."""
    if calls is not None:
        calls.hit()
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


def fake_grid(X, y, protocol, specs, *, features, progress=None, n_jobs=-1,
              calls: Calls | None = None) -> pd.DataFrame:
    """A grid table of the engine's shape: one row per spec with a made-up CV error."""
    if calls is not None:
        calls.hit()
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
        "cv_mse_se": [sd / 2 for _, sd in scores],
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


def held_train(X, y, spec, protocol, *, hold: Path, progress, cancel, **kwargs):
    """The real trainer, held at its first progress report (having written `held-<seed>` with
    its pid) until `release-<seed>` appears or cancel() turns true (then it writes
    `saw-cancel-<seed>`): the test acts mid-run, however fast or slow the machine."""
    from bnapp.engine.train import train_run

    tag = protocol.seed
    held = []

    def report(fraction: float, message: str = "") -> None:
        progress(fraction, message)
        if held:
            return
        held.append(fraction)
        (hold / f"held-{tag}").write_text(str(os.getpid()))
        if wait_for(hold / f"release-{tag}", give_up=cancel):
            return
        if not cancel():
            raise RuntimeError("the test never released the training")
        (hold / f"saw-cancel-{tag}").touch()

    return train_run(X, y, spec, protocol, progress=report, cancel=cancel, **kwargs)


def counted_train(X, y, spec, protocol, *, calls: Calls, **kwargs):
    """The real trainer, its calls counted with the process that ran them."""
    from bnapp.engine.train import train_run

    calls.hit()
    return train_run(X, y, spec, protocol, **kwargs)


def worker_pid(progress, cancel) -> int:
    """Which process ran this call (as processes.in_worker calls it)."""
    return os.getpid()


def report_until_cancelled(progress, cancel, *, saw_cancel: Path) -> None:
    """Reports progress once, then waits for cancel() (writing `saw_cancel` when it came)."""
    progress(0.5, "halfway")
    deadline = time.monotonic() + HOLD_SECONDS
    while not cancel():
        if time.monotonic() > deadline:
            raise RuntimeError("the cancel never reached the worker")
        time.sleep(0.01)
    saw_cancel.touch()


def fake_clock(monkeypatch) -> list[float]:
    """bnapp.jobs.scheduler's clock set by the test: it reads now[0] seconds."""
    from bnapp.jobs import scheduler

    now = [0.0]
    monkeypatch.setattr(scheduler, "time", SimpleNamespace(time=lambda: now[0]))
    return now


def held_job(manager, release, *, key: str = "held", epochs_total: int | None = 2000):
    """A running "train" job that reports nothing by itself and ends when release is set."""

    def work(progress, cancel):
        release.wait(HOLD_SECONDS)

    job = manager.submit("train", key, work, label="held", epochs_total=epochs_total)
    wait_until(lambda: job.state == "running")
    return job


def pid_then_wait(path: Path, release: Path, progress, cancel) -> None:
    """Writes this process's id to `path`, then waits until `release` exists (a long call)."""
    path.write_text(str(os.getpid()))
    wait_for(release)


def fail(progress, cancel) -> None:
    raise RuntimeError("planted failure")
