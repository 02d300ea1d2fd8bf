"""Cache-through computations: a run, a grid and the Export page's bundle computed once per
distinct input (bnapp.jobs.cache). A file lock per key makes a second process asking for the
same run or grid wait and then read the first one's."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from bnapp.engine.model import ArchSpec
from bnapp.engine.results import RunResult
from bnapp.intake.groups import group_labels
from bnapp.jobs import cache, page_analyses, payloads, processes, training_worker
from bnapp.jobs.processes import Cancel, JobCancelled, Progress

FROM_CACHE = "loaded from the cache"  # the last progress message of a cache hit

# the engine's functions, looked up at call time (tests replace them with small fakes); defined
# in a module of its own, so that a worker process unpickling it imports only that
train_run = training_worker.train_run


def run_grid(X, y, protocol, specs, **kwargs) -> pd.DataFrame:
    from bnapp.engine.grid import run_grid

    return run_grid(X, y, protocol, specs, **kwargs)


@contextlib.contextmanager
def _computation_lock(key: str, cancel: Cancel | None) -> Iterator[None]:
    """Hold the key's lock file, so another process computing the same key is waited for."""
    try:
        lock_dir = cache.cache_dir() / "locks"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        lock = FileLock(str(lock_dir / f"{key}.lock"))
        while not _try_acquire(lock):
            if cancel is not None and cancel():
                raise JobCancelled("cancelled while waiting for another process")
    except OSError:
        lock = None  # unwritable cache: nothing to share, compute without a lock
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _try_acquire(lock: FileLock) -> bool:
    try:
        lock.acquire(timeout=0.5)
        return True
    except Timeout:
        return False


def _cached_run(key: str, X, y) -> RunResult | None:
    run = cache.load("run", key)
    if run is None:
        return None
    if run.X.shape != np.shape(X) or not (np.array_equal(run.X, X) and np.array_equal(run.y, y)):
        cache.warn(f"cache entry {key[:12]} holds other data than its key says; recomputing")
        return None
    return run


# the runs whose first visits a worker is preparing for this process (run keys)
_preparing: set[str] = set()
_preparing_lock = threading.Lock()
# one preparation at a time: each holds a worker process (~0.4 GB), and eight sessions training
# at once would otherwise add eight to the training workers (the server's RSS over 3 GB)
_one_preparation = threading.Semaphore(1)


def prepare_in_background(run: RunResult, run_key: str, groups=None) -> None:
    """A worker prepares the run's first visits (training_worker.prepare_pages, a worker call
    of its own) while this process goes on; being_prepared(run_key) says so meanwhile."""
    with _preparing_lock:
        _preparing.add(run_key)

    def done() -> None:
        with _preparing_lock:
            _preparing.discard(run_key)

    processes.in_background(training_worker.prepare_pages, run, run_key, groups, then=done,
                            gate=_one_preparation)


def being_prepared(run_key: str) -> bool:
    """Whether a worker is still preparing this run's first visits for this process."""
    with _preparing_lock:
        return run_key in _preparing



def cached_train(
    X,
    y,
    spec: ArchSpec,
    protocol,
    *,
    features,
    target,
    data_key: str,
    row_ids=None,
    groups=None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    data_name: str = "",
    in_worker: bool = False,
) -> RunResult:
    """train_run through the cache: the stored RunResult when this exact input was trained before.

    data_key is the data's content fingerprint (Dataset.fingerprint(), or
    cache.array_fingerprint for bare arrays). in_worker: train in a worker process (jobs do, so
    a dying trainer cannot take the server down; a terminal command saves the process start).
    groups: the row labels of a grouped protocol (its group_hash puts them in the key).
    With a Dask scheduler configured, its folds train on the cluster's workers either way."""
    # contiguous: the very arrays the engine's tasks take, so a cluster's workers get them once
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    key = cache.run_key(data_key, spec, protocol, features, target)
    run = _cached_run(key, X, y)
    if run is None:
        with _computation_lock(key, cancel):
            run = _cached_run(key, X, y)  # another process may have stored it while we waited
            if run is None:
                local = processes.dask_address() is None
                compute = (processes.fanned_out if not local else
                           processes.in_worker if in_worker else processes.call_here)
                run = compute(train_run, X, y, spec, protocol, features=list(features),
                              target=target, row_ids=row_ids, progress=progress, cancel=cancel,
                              **_grouping(groups))
                cache.save("run", key, run, data_name=data_name)
                if in_worker and local:  # a worker goes on to the pages' first analyses
                    prepare_in_background(run, key, groups)
                return run
    if progress is not None:
        progress(1.0, FROM_CACHE)
    return run


def _grouping(groups) -> dict:
    """groups= for the engine only when given: an ungrouped call is the same as before."""
    return {} if groups is None else {"groups": groups}


def cached_grid(
    X,
    y,
    protocol,
    specs: list[ArchSpec] | None = None,
    *,
    features,
    target,
    data_key: str,
    groups=None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    n_jobs: int = -1,
    data_name: str = "",
    stability: bool = True,
) -> pd.DataFrame:
    """run_grid through the cache. The frame is returned as it reads back from the cache, so a
    fresh and a cached grid compare (and write) identically."""
    X = np.ascontiguousarray(X, dtype=np.float64)  # as in cached_train
    y = np.ascontiguousarray(y, dtype=np.float64)
    key = cache.grid_key(data_key, protocol, specs, features, target, stability=stability)
    grid = cache.load("grid", key)
    if grid is None:
        with _computation_lock(key, cancel):
            grid = cache.load("grid", key)
            if grid is None:
                report = processes.cancellable(progress, cancel)
                # run_grid fans out to loky processes or to Dask
                with processes.compute_backend(scatter=(X, y)):
                    frame = run_grid(X, y, protocol, specs, features=list(features),
                                     progress=report, n_jobs=n_jobs, **_grouping(groups),
                                     **({} if stability else {"stability": False}))
                grid = payloads.canonical_grid(frame)
                cache.save("grid", key, grid, data_name=data_name, protocol=protocol)
                return grid
    if progress is not None:
        progress(1.0, FROM_CACHE)
    return grid


def export_bundle(run: RunResult, *, run_key: str, data_name: str, dataset, options: dict,
                  progress: Progress | None = None):
    """run_report.build_export of a run, its tables through the analysis cache: the Export job.
    options: run_report.export_options (run_tables' arguments, display units, length column)."""
    from bnapp.report import run_report

    def step(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    step(0.0, "computing the analyses")
    own_data = dataset if cache.trained_on(run_key, run, dataset) else None
    column = run.protocol.get("group_by")
    groups = (None if own_data is None or column is None
              else page_analyses.run_groups(run, group_labels(own_data, column)))
    tables = cache.cached_analysis(run_key, run_report.run_tables, run,
                                   **run_report.table_options(options), groups=groups)
    step(0.1, "drawing the figures")  # the analyses are the quick part; drawing takes the rest
    return run_report.build_export(run, tables, run_report.export_figures(run, tables, options),
                                   run_key=run_key, data_name=data_name, dataset=own_data,
                                   options=options,
                                   progress=lambda f, message: step(0.1 + 0.9 * f, message))


