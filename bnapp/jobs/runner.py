"""Background jobs: train and grid-search off the page, once per distinct input, on one machine
or on a Dask cluster.

- `cached_train` / `cached_grid` / `cached_analysis`: synchronous and cache-through
  (bnapp.jobs.cache). A file lock per key makes a second process asking for the same run or grid wait
  and then read the first one's.
- `JobManager` (`job_manager()` is the process-wide one): `submit` returns a `Job` at once and
  runs the work on a thread of its own; at most BNAPP_MAX_JOBS run together, the rest queue
  (exports queue apart, so a long grid does not hold one up).
  Submitting a key that is queued, running or done returns that same Job, so two sessions asking
  for one result share one computation. The heavy work runs in worker processes, so a crash or a
  kill there fails only its own job: a training job in a loky worker of its own (reused by the
  next one; progress and cancel cross over through a multiprocessing Manager's queue and event),
  the grid's fan-out through joblib.Parallel's loky workers.
- Where the work runs (a Dask cluster with BNAPP_DASK_SCHEDULER=tcp://host:port, else worker
  processes here) is bnapp.jobs.backend's part (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import secrets
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from bnapp.engine.model import ArchSpec
from bnapp.engine.results import RunResult
from bnapp.jobs import backend, cache, tasks
from bnapp.jobs.backend import Cancel, JobCancelled, Progress

STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_JOBS_ENV = "BNAPP_MAX_JOBS"
FROM_CACHE = "loaded from the cache"  # the last progress message of a cache hit
# errors whose message is written for the user (it says what to do): shown without their class
USER_ERRORS = ("TrainingDiverged", "DataError")
_PACKAGE = str(Path(__file__).resolve().parents[1])  # bnapp/
logger = logging.getLogger(__name__)  # app.py prints the "bnapp" loggers' INFO to stderr


class JobFailed(RuntimeError):
    """Job.result() of a job that failed; the message is the job's error."""


# --------------------------------------------------------------------------------------------
# compute: the engine's functions, looked up at call time (tests replace them with small fakes)


# defined in a module of its own, so that a worker process unpickling it imports only that
_train_run = tasks.train_run


def _run_grid(X, y, protocol, specs, **kwargs) -> pd.DataFrame:
    from bnapp.engine.grid import run_grid

    return run_grid(X, y, protocol, specs, **kwargs)


# --------------------------------------------------------------------------------------------
# cache-through computations


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
    run = cache.load_run(key)
    if run is None:
        return None
    if run.X.shape != np.shape(X) or not (np.array_equal(run.X, X) and np.array_equal(run.y, y)):
        cache._warn(f"cache entry {key[:12]} holds other data than its key says; recomputing")
        return None
    return run


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
                if backend.dask_address():
                    compute, train = backend.fanned_out, _train_run
                elif in_worker:  # then the worker goes on to the pages' first analyses
                    compute = backend.in_worker
                    train = partial(tasks.train_then_prepare, _train_run, key)
                else:
                    compute, train = backend.call_here, _train_run
                run = compute(train, X, y, spec, protocol, features=list(features),
                              target=target, row_ids=row_ids, progress=progress, cancel=cancel,
                              **_grouping(groups))
                cache.save_run(key, run, data_name=data_name)
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
    grid = cache.load_grid(key)
    if grid is None:
        with _computation_lock(key, cancel):
            grid = cache.load_grid(key)
            if grid is None:
                report = backend.cancellable(progress, cancel)
                # run_grid fans out to loky processes or to Dask
                with backend.compute_backend(scatter=(X, y)):
                    frame = _run_grid(X, y, protocol, specs, features=list(features),
                                      progress=report, n_jobs=n_jobs, **_grouping(groups),
                                      **({} if stability else {"stability": False}))
                grid = cache.canonical_grid(frame)
                cache.save_grid(key, grid, data_name=data_name, protocol=protocol)
                return grid
    if progress is not None:
        progress(1.0, FROM_CACHE)
    return grid


def analysis_name(fn: Callable) -> str:
    """The name an analysis function's results are cached under (cached_analysis' `function`).
    bnapp's analyses keep the keys they had before the subpackages (bnapp.stages.…), so what
    earlier versions cached on disk is still found."""
    module = fn.__module__
    if module.startswith("bnapp."):
        module = "bnapp." + module.rsplit(".", 1)[-1]
    return f"{module}.{fn.__qualname__}"


def cached_analysis(run_key: str, function: str, compute: Callable[[], cache.Frames], *,
                    args=(), kwargs=None) -> cache.Frames:
    """compute() through the cache, as the analysis `function`(run, *args, **kwargs) of the run
    cached under run_key: read back from disk after a restart, recomputed when corrupted."""
    key = cache.analysis_key(run_key, function, args, kwargs)
    result = cache.load_analysis(run_key, key)
    if result is None:
        result = compute()
        cache.save_analysis(run_key, key, result, function=function)
    return result


def export_bundle(run: RunResult, *, run_key: str, data_name: str, dataset, options: dict,
                  progress: Progress | None = None):
    """run_report.build_export of a run, its tables through the analysis cache: the Export job."""
    from bnapp.report import run_report

    def step(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    step(0.0, "computing the analyses")
    tables = cached_analysis(run_key, f"bnapp.report.run_tables/{run_report.RUN_TABLES_SCHEMA}",
                             lambda: run_report.run_tables(run, **options), kwargs=options)
    step(0.1, "drawing the figures")  # the analyses are the quick part; drawing takes the rest
    return run_report.build_export(run, tables, run_report.run_figures(run, tables), run_key=run_key,
                               data_name=data_name,
                               dataset=dataset if cache.trained_on(run_key, run, dataset) else None,
                               options=options,
                               progress=lambda f, message: step(0.1 + 0.9 * f, message))


# --------------------------------------------------------------------------------------------
# jobs


def user_message(exc: BaseException) -> str | None:
    """exc's message when it was written for the user (it says what to do): bnapp's DataError,
    TrainingDiverged and JobFailed, and the ValueErrors and KeyErrors bnapp's own code raises
    ("too few rows for 10 folds"); None for a bug or a library's error."""
    name = type(exc).__name__
    if name in USER_ERRORS or isinstance(exc, JobFailed):
        return str(exc)
    if type(exc) in (ValueError, KeyError) and exc.args and _raised_by_bnapp(exc):
        return str(exc.args[0])  # a KeyError's str() would quote it
    return None


def _describe(exc: BaseException) -> str:
    """A failed job's error: the message alone for errors written for the user, else what
    happened and what to do, with the class name (it helps a report); the traceback is logged."""
    name = type(exc).__name__
    if name in ("TerminatedWorkerError", "KilledWorker", "BrokenProcessPool"):
        return (
            "a worker process died mid-job (killed, or out of memory); other jobs are "
            f"unaffected, and submitting this one again retries it. ({name}: {str(exc)[:300]})"
        )
    message = user_message(exc)
    if message is not None:
        return message
    logger.error("job failed unexpectedly", exc_info=exc)
    return (f"an unexpected error stopped this job ({name}: {str(exc)[:300]}). Your data and "
            "other results are kept: submit it again, and if it fails again, report it with "
            "the terminal's log.")


def _raised_by_bnapp(exc: BaseException) -> bool:
    """Whether bnapp's own code raised exc (its ValueErrors are messages such as "too few rows
    for 10 folds"; numpy's are not). From a worker process loky passes the traceback as text."""
    remote = getattr(exc.__cause__, "tb", None)
    if isinstance(remote, str):
        files = re.findall(r'File "([^"]+)"', remote)
    else:
        files = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    return bool(files) and files[-1].startswith(_PACKAGE)


class Job:
    """A handle on one submitted computation; every attribute is safe to read from any thread."""

    def __init__(self, manager: JobManager, job_id: str, kind: str, key: str, fn, args, kwargs,
                 label: str, epochs_total: int | None):
        self.id, self.kind, self.key, self.label = job_id, kind, key, label
        # what a training or grid works on: the data set (name, fingerprint) and its columns
        self.data_name: str = kwargs.get("data_name", "")
        self.data_key: str = kwargs.get("data_key", "")
        self.features: tuple[str, ...] = tuple(kwargs.get("features", ()))
        self.target: str = kwargs.get("target", "")
        self.state = "queued"
        self.progress = 0.0
        self.message = "queued"
        self.epochs_total = epochs_total
        self.error: str | None = None
        self.warnings: list[str] = []
        self.submitted = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        # (time, fraction) of the first and the latest progress report: the rate between them
        # leaves out the worker's start-up and the data's transfer, which precede the first
        self._first_report: tuple[float, float] | None = None
        self._last_report: tuple[float, float] | None = None
        self._manager = manager
        self._call = (fn, args, kwargs)
        self._result = None
        self._forgotten = False  # its manager dropped it, and its result, to bound memory
        self._cancel = threading.Event()
        self._done = threading.Event()

    # -- what a page polls
    @property
    def epochs_done(self) -> int | None:
        return None if self.epochs_total is None else int(round(self.progress * self.epochs_total))

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def rate(self) -> float | None:
        """Progress per second (fractions) between the first and the latest report, while
        running; None until two reports are apart."""
        first, last = self._first_report, self._last_report
        if self.state != "running" or first is None or last[0] <= first[0] or last[1] <= first[1]:
            return None
        return (last[1] - first[1]) / (last[0] - first[0])

    @property
    def epochs_per_second(self) -> float | None:
        rate = self.rate
        return None if rate is None or self.epochs_total is None else rate * self.epochs_total

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the measured rate, counted from the latest report; before a rate is
        known, from the time elapsed since the start."""
        if self.state != "running" or self.progress <= 0:
            return None
        rate = self.rate
        if rate is None:
            return self.elapsed * (1 - self.progress) / self.progress
        return max(0.0, (1 - self.progress) / rate - (time.time() - self._last_report[0]))

    @property
    def position(self) -> int | None:
        """1-based place in the queue while queued, else None."""
        return self._manager._position(self)

    def snapshot(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "key": self.key, "label": self.label,
            "state": self.state, "position": self.position, "progress": self.progress,
            "message": self.message, "epochs_done": self.epochs_done,
            "epochs_total": self.epochs_total, "elapsed": self.elapsed,
            "epochs_per_second": self.epochs_per_second, "eta_seconds": self.eta_seconds,
            "error": self.error,
        }

    # -- called by the work
    def report(self, fraction: float, message: str = "") -> None:
        """The progress callback handed to the work; raises JobCancelled after cancel()."""
        if self._cancel.is_set():
            raise JobCancelled("cancelled")
        self.progress = float(min(max(fraction, 0.0), 1.0))
        self._last_report = (time.time(), self.progress)
        if self._first_report is None:
            self._first_report = self._last_report
        if message:
            self.message = message

    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    # -- called by the owner
    def cancel(self) -> None:
        """Queued: dropped at once. Running: stops at its next progress report or cancel check."""
        self._cancel.set()
        if not self._manager._drop_queued(self) and self.state == "running":
            self.message = "cancelling…"

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None):
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} still {self.state}")
        if self.state == "failed":
            raise JobFailed(self.error)
        if self.state == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled")
        if self._forgotten:
            raise JobFailed(f"job {self.id}'s result was dropped to free memory: submit it again")
        return self._result

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind}, {self.state}, {self.progress:.0%})"


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _lane(job: Job) -> str:
    """Exports queue apart: building one (no training) must not wait behind a long grid."""
    return "export" if job.kind == "export" else "compute"


class JobManager:
    """Runs submitted work on background threads, at most max_jobs trainings, grids and
    analyses at once and max_exports exports beside them, the rest queued.

    The latest keep_finished finished jobs stay findable (a reloaded page finds its result),
    of them only the latest keep_exports exports: each holds a ZIP and an HTML report."""

    def __init__(self, max_jobs: int | None = None, keep_finished: int = 100, *,
                 max_exports: int = 1, keep_exports: int = 3):
        self.max_jobs = max(1, int(max_jobs or os.environ.get(MAX_JOBS_ENV) or 1))
        self.keep_finished, self.keep_exports = keep_finished, keep_exports
        self._slots = {"compute": self.max_jobs, "export": max(1, max_exports)}
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, Job] = {}
        self._queues: dict[str, deque[Job]] = {lane: deque() for lane in self._slots}
        self._running = dict.fromkeys(self._slots, 0)

    def submit(self, kind: str, key: str, fn, *args, label: str = "",
               epochs_total: int | None = None, **kwargs) -> Job:
        """Run fn(*args, **kwargs) in the background; the same key returns the same Job unless
        that one failed or was cancelled. fn gets progress=/cancel= when it accepts them.

        Job ids are random, not counted: a session that restores its jobs from its URL (a
        reloaded page) cannot reach another session's job by guessing a neighbouring id."""
        with self._lock:
            existing = self._by_key.get(key)
            if existing is not None and existing.state not in ("failed", "cancelled"):
                return existing
            job = Job(self, f"{kind}-{secrets.token_hex(16)}", kind, key, fn, args, kwargs,
                      label or kind, epochs_total)
            self._jobs[job.id] = job
            self._by_key[key] = job
            self._forget_old()
            lane = _lane(job)
            if self._running[lane] < self._slots[lane]:
                self._running[lane] += 1
                self._start(job)
            else:
                self._queues[lane].append(job)
        return job

    def submit_train(self, X, y, spec: ArchSpec, protocol, *, features, target, data_key: str,
                     row_ids=None, groups=None, data_name: str = "") -> Job:
        """A cached_train job, keyed like the cache so duplicates share it."""
        key = cache.run_key(data_key, spec, protocol, features, target)
        p = cache._protocol_dict(protocol)
        n_models = p.get("folds", 1) * (p.get("repeats", 1) if p.get("kind") == "repeated" else 1)
        epochs = int(p.get("epochs", 0) * n_models)
        return self.submit("train", key, cached_train, X, y, spec, protocol, features=features,
                           target=target, data_key=data_key, row_ids=row_ids, groups=groups,
                           data_name=data_name, in_worker=True, label=spec.label,
                           epochs_total=epochs or None)

    def submit_grid(self, X, y, protocol, specs=None, *, features, target, data_key: str,
                    groups=None, data_name: str = "", stability: bool = True) -> Job:
        key = cache.grid_key(data_key, protocol, specs, features, target, stability=stability)
        return self.submit("grid", key, cached_grid, X, y, protocol, specs, features=features,
                           target=target, data_key=data_key, groups=groups, data_name=data_name,
                           stability=stability,
                           label=f"grid ({'study' if specs is None else len(specs)} configurations)")

    def submit_export(self, run: RunResult, *, run_key: str, data_name: str, dataset,
                      options: dict) -> Job:
        """An export_bundle job, keyed by the run, the options and the data set (whose
        validation report goes in when the run was trained on it)."""
        return self.submit("export", self.export_key(run_key, data_name, dataset, options),
                           export_bundle, run, run_key=run_key, data_name=data_name,
                           dataset=dataset, options=options, label=f"export: {run.label}")

    @staticmethod
    def export_key(run_key: str, data_name: str, dataset, options: dict) -> str:
        fingerprint = None if dataset is None else dataset.fingerprint()
        return cache.analysis_key(run_key, "bnapp.report.build_export",
                                  kwargs={**options, "data_name": data_name, "data": fingerprint})

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def jobs_frame(self) -> pd.DataFrame:
        """A table of all jobs for the UI, newest first."""
        return pd.DataFrame([j.snapshot() for j in reversed(self.jobs())])

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def find(self, key: str) -> Job | None:
        """The job computing (or that computed) this key, e.g. for a page reloaded mid-training."""
        with self._lock:
            return self._by_key.get(key)

    # -- internals
    def _start(self, job: Job) -> None:
        threading.Thread(target=self._worker, args=(job,), name=f"bnapp-{job.id}", daemon=True).start()

    def _worker(self, job: Job | None) -> None:
        lane = _lane(job)
        while job is not None:
            self._execute(job)
            with self._lock:
                self._forget_old()
                waiting = self._queues[lane]
                job = waiting.popleft() if waiting else None
                if job is None:
                    self._running[lane] -= 1

    def _execute(self, job: Job) -> None:
        fn, args, kwargs = job._call
        if _accepts(fn, "progress"):
            kwargs = {**kwargs, "progress": job.report}
        if _accepts(fn, "cancel"):
            kwargs = {**kwargs, "cancel": job.cancel_requested}
        job.started = time.time()
        job.state, job.message = "running", "started"
        logger.info("bnapp job started: %s %s", job.kind, job.key)  # the load test counts these
        cache._sinks.messages = job.warnings
        try:
            job._result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure ends this job only, with its message
            if job._cancel.is_set():
                job.state, job.message = "cancelled", "cancelled"
            else:
                job.error = _describe(exc)
                job.state, job.message = "failed", job.error
        else:
            job.message = "done (from the cache)" if job.message == FROM_CACHE else "done"
            job.progress, job.state = 1.0, "done"
        finally:
            cache._sinks.messages = None
            job._call = None  # drop references to the inputs
            job.finished = time.time()
            job._done.set()

    def _position(self, job: Job) -> int | None:
        with self._lock:
            try:
                return self._queues[_lane(job)].index(job) + 1
            except ValueError:
                return None

    def _drop_queued(self, job: Job) -> bool:
        with self._lock:
            waiting = self._queues[_lane(job)]
            if job not in waiting:
                return False
            waiting.remove(job)
        job.state, job.message, job.finished = "cancelled", "cancelled before it started", time.time()
        job._done.set()
        return True

    def _forget_old(self) -> None:
        """Forget the finished jobs beyond the latest keep_finished, and the finished exports
        beyond the latest keep_exports, dropping their results (held by a handle, if any)."""
        finished = [j for j in self._jobs.values() if j._done.is_set()]
        exports = [j for j in finished if j.kind == "export" and j.state == "done"]
        old = {j.id: j for j in finished[: max(0, len(finished) - self.keep_finished)]}
        old.update((j.id, j) for j in exports[: max(0, len(exports) - self.keep_exports)])
        for job in old.values():
            del self._jobs[job.id]
            if self._by_key.get(job.key) is job:
                del self._by_key[job.key]
            job._result, job._forgotten = None, True


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def job_manager() -> JobManager:
    """The process-wide JobManager (shared by every session of one Streamlit server)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
