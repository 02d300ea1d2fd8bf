"""Where the heavy work runs: a Dask cluster's workers (BNAPP_DASK_SCHEDULER) or this machine's
loky worker processes, with progress and cancel relayed across the process boundary."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool

DASK_ENV = "BNAPP_DASK_SCHEDULER"
log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class JobCancelled(Exception):
    """Raised inside a job's work when its progress is reported after cancel() was asked."""


# --------------------------------------------------------------------------------------------
# Dask

_client_timeout = 20  # seconds to reach the scheduler
_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def dask_client(address: str):
    """One distributed.Client per scheduler address, shared by every job of this process."""
    from distributed import Client

    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status not in ("running", "connecting"):
            try:
                client = Client(address, timeout=_client_timeout, set_as_default=True)
            except OSError as exc:
                raise RuntimeError(
                    f"cannot reach the Dask scheduler at {address} ({exc}); check {DASK_ENV} "
                    "or unset it to compute on this machine"
                ) from exc
            _clients[address] = client
        return client


def dask_address() -> str | None:
    return os.environ.get(DASK_ENV, "").strip() or None


@contextlib.contextmanager
def compute_backend(scatter: tuple = ()) -> Iterator[str]:
    """Within this block joblib.Parallel runs on the Dask cluster when one is configured, else
    in loky worker processes: slower to start than threads, but a crashed or killed worker then
    fails one job instead of the server, and cancelling terminates the workers at once.

    scatter: the arrays every task shares (the data): on a cluster they are sent to every
    worker once (client.scatter(broadcast=True)), and a task that takes one of these very
    objects as an argument gets the worker's copy instead of a pickled one. joblib's backend
    setting is thread-local, so each job thread chooses for itself."""
    import joblib

    address = dask_address()
    if address is None:
        with joblib.parallel_config(backend="loky"):
            yield "local processes"
        return
    dask_client(address)
    with joblib.parallel_config(backend="dask", scatter=list(scatter) or None):
        yield f"dask {address}"


def fanned_out(fn, X, y, *args, **kwargs):
    """fn(X, y, *args, fan_out=True, **kwargs) here, its tasks (a run's folds) on the Dask
    cluster, X and y sent to each worker once; progress and cancel stay here, between tasks."""
    with compute_backend(scatter=(X, y)):
        return fn(X, y, *args, fan_out=True, **kwargs)


# --------------------------------------------------------------------------------------------
# one call in a worker process, with progress and cancel across the process boundary

_POLL_SECONDS = 0.1  # how often a job thread relays its worker's progress and a cancel request
_WORKER_IDLE_SECONDS = 600  # an idle worker process exits after this; the next job starts one
_STARTED = "started"  # a worker's first message: the call reached a live worker


class _Workers:
    """Single-process loky executors, one per call running at once and reused by the next call:
    a killed worker breaks its own executor (failing its own call), never another call's."""

    def __init__(self):
        self._idle: list = []
        self._lock = threading.Lock()

    def acquire(self, fresh: bool = False):
        """An idle executor, or (none idle, or fresh asked) a new one."""
        from joblib.externals.loky import ProcessPoolExecutor

        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop()
        return ProcessPoolExecutor(max_workers=1, timeout=_WORKER_IDLE_SECONDS)

    def release(self, executor) -> None:
        with self._lock:
            self._idle.append(executor)


_workers = _Workers()
_sync_manager = None
_sync_lock = threading.Lock()


def _channels():
    """A queue (worker to job thread: _STARTED, then progress) and an event (job thread to
    worker: cancel), from this process's multiprocessing Manager, started on first use or if it
    died.

    The Manager starts through loky, like the workers: neither forks the threaded server, nor
    re-runs a main script that lacks the `if __name__ == "__main__"` guard."""
    from joblib.externals.loky.backend.context import get_context

    global _sync_manager
    with _sync_lock:
        if _sync_manager is not None:
            try:
                return _sync_manager.Queue(), _sync_manager.Event()
            except (OSError, EOFError):
                pass  # its server process is gone: start another
        _sync_manager = get_context("loky").Manager()
        return _sync_manager.Queue(), _sync_manager.Event()


def prestart_worker(warm_up: Callable[[], object] | None = None) -> None:
    """Start the Manager and an idle worker process now, with warm_up (e.g. loading the compiled
    trainer) as the worker's first call, so the first job does not wait for them (~1-2 s). The
    worker is idle at once: a job taking it meanwhile runs right after warm_up. Nothing to do
    when the work goes to a Dask cluster."""
    if dask_address() is not None:
        return
    executor = _workers.acquire()
    if warm_up is not None:
        executor.submit(warm_up)  # first: the worker boots in its own process meanwhile
    _workers.release(executor)
    _channels()


def _relayed(fn, args, kwargs, channel, stop):
    """In the worker: _STARTED, then fn with its progress sent through channel and cancel read
    from stop."""
    channel.put(_STARTED)
    return fn(*args, progress=lambda fraction, message="": channel.put((fraction, message)),
              cancel=stop.is_set, **kwargs)


def _drain(channel) -> Iterator:
    while True:
        try:
            yield channel.get_nowait()
        except queue.Empty:
            return


def _passed_on(progress: Progress, item) -> bool:
    """progress(*item); False when it raised JobCancelled (Job.report does once a cancel
    landed after the relay last asked): the worker must then be stopped, not abandoned."""
    try:
        progress(*item)
    except JobCancelled:
        return False
    return True


def _relay(future, channel, stop, progress: Progress | None,
           cancel: Cancel | None) -> tuple[bool, bool]:
    """Until the worker is done, pass its progress on and a cancel request to it. Returns
    whether the worker began the call, and whether cancel was asked before the result was taken
    (even if the work finished meanwhile)."""
    started = cancelled = False
    while True:
        finished = not concurrent.futures.wait([future], timeout=_POLL_SECONDS).not_done
        asked = cancelled or (cancel is not None and cancel())
        for item in _drain(channel):
            if item == _STARTED:
                started = True
            elif progress is not None and not asked:
                asked = not _passed_on(progress, item)
        if asked and not cancelled:
            cancelled = True
            stop.set()
        if finished:
            return started, cancelled


def in_worker(fn, *args, progress: Progress | None = None, cancel: Cancel | None = None,
               **kwargs):
    """fn(*args, progress=, cancel=, **kwargs) in a loky worker process. Its death (killed, out
    of memory, a crash in compiled code) raises BrokenProcessPool here, for this call only. A
    worker found dead before the call reached it (killed while idle) is replaced, once."""
    channel, stop = _channels()
    call = (_relayed, fn, args, kwargs, channel, stop)
    future, started, cancelled = _attempt(call, progress, cancel)
    if not (started or cancelled) and isinstance(future.exception(), BrokenProcessPool):
        # not this call's doing: its worker was dead before it could begin (killed while idle);
        # a new worker, as other idle ones may have died with it (e.g. the out-of-memory killer)
        future, _, cancelled = _attempt(call, progress, cancel, fresh=True)
    if cancelled:
        raise JobCancelled("cancelled")
    return future.result()


def in_background(fn, *args, then: Callable[[], object] | None = None,
                  gate: threading.Semaphore | None = None) -> None:
    """in_worker(fn, *args) on a thread of its own, this one going on: the worker takes no other
    call meanwhile (a job arriving gets another worker). A failure is logged, not raised; then()
    runs when the call has ended either way. gate: held around the call, to bound how many such
    calls (each a worker process) run at once."""

    def call() -> None:
        try:
            with gate if gate is not None else contextlib.nullcontext():
                in_worker(fn, *args)
        except Exception:  # nobody waits for it: say what failed
            if threading.main_thread().is_alive():  # not the process exiting under it
                log.warning("%s in the background failed", getattr(fn, "__name__", fn),
                            exc_info=True)
        finally:
            if then is not None:
                then()

    threading.Thread(target=call, name=f"bnapp-{getattr(fn, '__name__', 'call')}",
                     daemon=True).start()


def _attempt(call, progress: Progress | None, cancel: Cancel | None, *, fresh: bool = False):
    """call on a worker (a new one if fresh), relayed until it ends: its future, whether the
    worker began the call, and whether cancel was asked. A worker that died leaves with its
    executor."""
    pool = _workers  # given back to the pool it came from (tests swap pools)
    executor = pool.acquire(fresh)
    try:
        future = executor.submit(*call)
    except BrokenProcessPool as exc:  # its worker died while idle, and loky has seen it
        executor.shutdown(wait=False)
        future = concurrent.futures.Future()
        future.set_exception(exc)
        return future, False, False
    channel, stop = call[-2:]
    try:
        started, cancelled = _relay(future, channel, stop, progress, cancel)
    except BaseException:
        executor.shutdown(wait=False, kill_workers=True)  # its relay is gone: it cannot be told
        raise
    if isinstance(future.exception(), BrokenProcessPool):
        executor.shutdown(wait=False)
    else:
        pool.release(executor)
    return future, started, cancelled


def call_here(fn, *args, **kwargs):
    """fn(*args, **kwargs) in this process (a terminal command saves a worker's start-up)."""
    return fn(*args, **kwargs)


def cancellable(progress: Progress | None, cancel: Cancel | None) -> Progress:
    """A progress callback that raises JobCancelled once cancel() is true: raised on the thread
    that drives joblib.Parallel, it aborts the run and terminates its worker processes."""

    def report(fraction: float, message: str = "") -> None:
        if cancel is not None and cancel():
            raise JobCancelled("cancelled")
        if progress is not None:
            progress(fraction, message)

    return report
