"""Background jobs: train, grid-search and export off the page, on one machine or on a Dask
cluster.

`JobManager` (`job_manager()` is the process-wide one): `submit` returns a `Job` at once and
runs the work on a thread of its own; at most BNAPP_MAX_JOBS run together, the rest queue
(exports queue apart, so a long grid does not hold one up). Submitting a key that is queued,
running or done returns that same Job, so two sessions asking for one result share one
computation. The heavy work runs in worker processes (bnapp.jobs.cached, bnapp.jobs.processes),
so a crash or a kill there fails only its own job.
"""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import threading
import time
from collections import deque

import pandas as pd

from bnapp.engine.model import ArchSpec
from bnapp.engine.results import RunResult
from bnapp.jobs import cache, cached
from bnapp.jobs.errors import JobFailed, describe
from bnapp.jobs.processes import JobCancelled

STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_JOBS_ENV = "BNAPP_MAX_JOBS"
logger = logging.getLogger(__name__)


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
        p = cache.protocol_dict(protocol)
        n_models = p.get("folds", 1) * (p.get("repeats", 1) if p.get("kind") == "repeated" else 1)
        epochs = int(p.get("epochs", 0) * n_models)
        return self.submit("train", key, cached.cached_train, X, y, spec, protocol,
                           features=features,
                           target=target, data_key=data_key, row_ids=row_ids, groups=groups,
                           data_name=data_name, in_worker=True, label=spec.label,
                           epochs_total=epochs or None)

    def submit_grid(self, X, y, protocol, specs=None, *, features, target, data_key: str,
                    groups=None, data_name: str = "", stability: bool = True) -> Job:
        key = cache.grid_key(data_key, protocol, specs, features, target, stability=stability)
        return self.submit("grid", key, cached.cached_grid, X, y, protocol, specs,
                           features=features,
                           target=target, data_key=data_key, groups=groups, data_name=data_name,
                           stability=stability,
                           label=f"grid ({'study' if specs is None else len(specs)} configurations)")

    def submit_export(self, run: RunResult, *, run_key: str, data_name: str, dataset,
                      options: dict) -> Job:
        """An export_bundle job, keyed by the run, the options and the data set (whose
        validation report goes in when the run was trained on it)."""
        return self.submit("export", self.export_key(run_key, data_name, dataset, options),
                           cached.export_bundle, run, run_key=run_key, data_name=data_name,
                           dataset=dataset, options=options, label=f"export: {run.label}")

    @staticmethod
    def export_key(run_key: str, data_name: str, dataset, options: dict) -> str:
        fingerprint = None if dataset is None else dataset.fingerprint()
        return cache.analysis_key(run_key, "bnapp.report.build_export",
                                  {**options, "data_name": data_name, "data": fingerprint})

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
        cache.sinks.messages = job.warnings
        try:
            job._result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure ends this job only, with its message
            if job._cancel.is_set():
                job.state, job.message = "cancelled", "cancelled"
            else:
                job.error = describe(exc)
                job.state, job.message = "failed", job.error
        else:
            job.message = "done (from the cache)" if job.message == cached.FROM_CACHE else "done"
            job.progress, job.state = 1.0, "done"
        finally:
            cache.sinks.messages = None
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
