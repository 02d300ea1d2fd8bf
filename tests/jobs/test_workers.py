"""Training jobs in worker processes, with the real engine: progress and cancel cross the process
boundary, the worker is reused, and a worker killed mid-run fails its own job only."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial

import pandas as pd
import psutil
import pytest

from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
from bnapp.intake import data
from bnapp.jobs import cache, cached, page_analyses, processes, scheduler, training_worker
from tests.jobs.fakes import (
    HOLD_SECONDS,
    fail,
    held_train,
    pid_then_wait,
    report_until_cancelled,
    same_run,
    wait_for,
    wait_until,
    worker_pid,
)

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


@pytest.fixture()
def urea(urea_csv):
    frame = pd.read_csv(urea_csv)
    return frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)


@pytest.fixture()
def hold(monkeypatch, tmp_path):
    """The real trainer, held mid-run (after its first epochs) until released or cancelled.
    The run's pages are not prepared (a worker call of its own, processes.in_background): these
    tests follow which worker takes which job."""
    monkeypatch.setattr(cached, "train_run", partial(held_train, hold=tmp_path))
    monkeypatch.setattr(processes, "in_background", lambda fn, *args, then=None, gate=None: None)
    return tmp_path


def _submit(manager, X, y, seed):
    return manager.submit_train(X, y, ArchSpec(), Protocol(folds=2, epochs=40, seed=seed),
                                features=FEATURES, target="Ueq",
                                data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))


def _is_the_engines_run(job, X, y, seed) -> bool:
    """The job's result equals the engine's own run on the same inputs."""
    direct = train_run(X, y, ArchSpec(), Protocol(folds=2, epochs=40, seed=seed),
                       features=FEATURES, target="Ueq")
    return same_run(job.result(HOLD_SECONDS), direct)


def _held_pid(hold, seed) -> int:
    assert wait_for(hold / f"held-{seed}")
    return int((hold / f"held-{seed}").read_text())


@pytest.mark.prepares_pages  # asked for, and recorded instead of run (below)
def test_a_training_job_runs_in_a_reused_worker_with_live_progress(urea, hold, monkeypatch):
    prepared = []  # the pages' preparation would keep the worker busy: asked for, not run here
    monkeypatch.setattr(processes, "in_background",
                        lambda fn, *args, then=None, gate=None: prepared.append(fn))
    X, y = urea
    manager = scheduler.JobManager(max_jobs=1)
    job = _submit(manager, X, y, seed=1)
    pid = _held_pid(hold, 1)
    assert pid != os.getpid()
    wait_until(lambda: job.progress > 0)
    snap = job.snapshot()
    assert snap["state"] == "running" and 0 < snap["progress"] < 1
    assert 0 < snap["epochs_done"] < snap["epochs_total"] == 80 and snap["eta_seconds"] >= 0
    assert snap["message"].startswith("epoch ")
    (hold / "release-1").touch()
    assert _is_the_engines_run(job, X, y, 1), "the worker's result is the engine's"
    assert prepared == [training_worker.prepare_pages]
    assert _next_job_pid(manager, hold, X, y, seed=2) == pid, "the next job reuses the worker"


def _next_job_pid(manager, hold, X, y, *, seed: int) -> int:
    """Run one more (unheld) job to its end; the pid of the worker that ran it."""
    (hold / f"release-{seed}").touch()
    assert _is_the_engines_run(_submit(manager, X, y, seed=seed), X, y, seed)
    return _held_pid(hold, seed)


def test_cancel_reaches_the_worker_and_keeps_it(urea, hold):
    X, y = urea
    manager = scheduler.JobManager(max_jobs=1)
    job = _submit(manager, X, y, seed=3)
    pid = _held_pid(hold, 3)
    job.cancel()
    assert job.wait(HOLD_SECONDS)
    assert job.state == "cancelled" and job.error is None
    assert wait_for(hold / "saw-cancel-3"), "the worker process saw the cancel"
    assert cache.entries().empty
    assert _next_job_pid(manager, hold, X, y, seed=4) == pid, "a cancelled job leaves its worker usable"


def test_a_killed_training_worker_fails_its_job_only(urea, hold):
    X, y = urea
    manager = scheduler.JobManager(max_jobs=2)
    doomed, other = _submit(manager, X, y, seed=5), _submit(manager, X, y, seed=6)
    doomed_pid, other_pid = _held_pid(hold, 5), _held_pid(hold, 6)
    assert len({doomed_pid, other_pid, os.getpid()}) == 3, "each job has a worker of its own"
    os.kill(doomed_pid, signal.SIGKILL)
    assert doomed.wait(HOLD_SECONDS)
    assert doomed.state == "failed"
    assert doomed.error.startswith("a worker process died mid-job (killed, or out of memory)")
    assert "SIGKILL" in doomed.error
    assert other.state == "running" and psutil.pid_exists(other_pid)
    (hold / "release-6").touch()
    assert _is_the_engines_run(other, X, y, 6) and other.state == "done"
    (hold / "held-5").unlink()
    (hold / "release-5").touch()
    retried = _submit(manager, X, y, seed=5)
    assert retried is not doomed and _is_the_engines_run(retried, X, y, 5)
    assert _held_pid(hold, 5) not in (doomed_pid, os.getpid()), "a new worker replaced the dead one"
    assert len(cache.entries()) == 2


def test_jobs_go_on_after_the_progress_channel_process_dies(urea, hold):
    X, y = urea
    manager = scheduler.JobManager(max_jobs=1)
    for seed in (7, 8):
        (hold / f"release-{seed}").touch()
    assert _is_the_engines_run(_submit(manager, X, y, seed=7), X, y, 7)
    channels = processes._sync_manager._process  # the Manager's server process
    os.kill(channels.pid, signal.SIGKILL)
    wait_until(lambda: not channels.is_alive())
    job = _submit(manager, X, y, seed=8)
    assert _is_the_engines_run(job, X, y, 8) and job.progress == 1.0


@pytest.fixture()
def workers(monkeypatch):
    """A pool of its own, so the test knows which worker is idle; its workers end with it."""
    pool = processes._Workers()
    monkeypatch.setattr(processes, "_workers", pool)
    yield pool
    for executor in pool._idle:
        executor.shutdown(wait=False, kill_workers=True)


@pytest.mark.slow
def test_a_worker_killed_while_idle_is_replaced_for_the_next_job(urea, hold, workers):
    X, y = urea
    manager = scheduler.JobManager(max_jobs=1)
    pid = _next_job_pid(manager, hold, X, y, seed=9)
    (executor,) = workers._idle
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would, between two jobs
    wait_until(lambda: executor._flags.broken is not None)  # loky saw it: the executor refuses calls
    assert _next_job_pid(manager, hold, X, y, seed=10) not in (pid, os.getpid())


@pytest.mark.slow
def test_a_worker_dead_before_it_took_the_call_is_replaced(workers):
    """The other order: the call is handed to the worker, which dies before reading it."""
    pid = processes.in_worker(worker_pid)
    (executor,) = workers._idle
    os.kill(pid, signal.SIGSTOP)  # alive (the executor takes the call) but never reads it
    ran = []
    call = threading.Thread(target=lambda: ran.append(processes.in_worker(worker_pid)))
    call.start()
    wait_until(lambda: executor._pending_work_items)
    os.kill(pid, signal.SIGKILL)
    call.join(HOLD_SECONDS)
    assert len(ran) == 1 and ran[0] not in (pid, os.getpid())


@pytest.mark.slow
def test_a_call_finding_every_idle_worker_dead_runs_on_a_new_one(workers):
    """Idle workers killed together (the out-of-memory killer): the retry does not take the next
    dead one."""
    from joblib.externals.loky import ProcessPoolExecutor

    pids = []
    for _ in range(2):
        executor = ProcessPoolExecutor(max_workers=1)
        pids.append(executor.submit(os.getpid).result())
        workers.release(executor)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(e._flags.broken is not None for e in workers._idle))
    assert processes.in_worker(worker_pid) not in (*pids, os.getpid())


def test_a_cancel_seen_first_by_the_progress_callback_stops_the_worker_and_keeps_it(workers,
                                                                                 tmp_path):
    """Job.report raises JobCancelled when the cancel lands after the relay last asked cancel():
    the relay must then tell the worker to stop, not abandon (and kill) it."""
    pid = processes.in_worker(worker_pid)

    def report(fraction, message=""):
        raise processes.JobCancelled("cancelled")

    with pytest.raises(processes.JobCancelled):
        processes.in_worker(report_until_cancelled, progress=report, cancel=lambda: False,
                          saw_cancel=tmp_path / "saw-cancel")
    assert (tmp_path / "saw-cancel").exists(), "the worker process saw the cancel"
    assert processes.in_worker(worker_pid) == pid, "and its worker is reused"


def _maps(pid: int, part: str) -> bool:
    """Whether the process has a shared library under a `part/` directory loaded (a compiled
    extension of that package: it was imported)."""
    return any(f"/{part}/" in m.path for m in psutil.Process(pid).memory_maps())


@pytest.mark.slow
@pytest.mark.prepares_pages
def test_a_prestarted_worker_has_the_trainer_loaded_takes_the_first_job_and_needs_no_pandas(
        workers, urea):
    X, y = urea
    processes.prestart_worker(training_worker.warm_trainer)
    (executor,) = workers._idle  # idle at once: a job may take it while it warms up
    pid = executor.submit(os.getpid).result()  # runs after the warm-up: one process, in order
    assert pid != os.getpid() and _maps(pid, "numba"), "the warm-up imported the trainer"
    # a worker starts light; its first-visit thread takes pandas and scipy after its training
    assert not _maps(pid, "pandas"), "a training worker starts without pandas or the cache"
    protocol = Protocol(folds=2, epochs=40, seed=11)
    run = cached.cached_train(X, y, ArchSpec(), protocol, features=FEATURES, target="Ueq",
                              data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"),
                              in_worker=True)
    assert same_run(run, train_run(X, y, ArchSpec(), protocol, features=FEATURES, target="Ueq"))
    deadline = time.monotonic() + 300  # the worker prepares the run's pages, then is idle again
    while len(workers._idle) != 1:
        assert time.monotonic() < deadline, "the worker never finished preparing the pages"
        time.sleep(0.2)
    assert processes.in_worker(worker_pid) == pid, "the job ran on the prestarted worker"


def test_no_worker_is_prestarted_when_the_work_goes_to_a_cluster(workers, monkeypatch):
    monkeypatch.setenv(processes.DASK_ENV, "tcp://127.0.0.1:1")  # never reached: nothing starts
    processes.prestart_worker(training_worker.warm_trainer)
    assert workers._idle == []


@pytest.mark.slow
@pytest.mark.prepares_pages
def test_a_training_job_leaves_its_worker_preparing_the_pages(workers):
    """A worker of its own: a worker keeps the cache directory it started with."""
    ds = data.demo_dataset()
    cols = list(data.STUDY_INPUTS)
    protocol = Protocol(folds=3, epochs=20, seed=6)
    job = scheduler.JobManager().submit_train(ds.X(cols), ds.y(), ArchSpec.study_e2e(), protocol,
                                    features=cols, target=data.STUDY_TARGET,
                                    data_key=ds.fingerprint(), data_name=ds.name)
    run = job.result(timeout=300)
    wanted = {cache.call_key(job.key, call.fn, call.args, call.kwargs)
              for call in page_analyses.first_visit(run)}
    deadline = time.monotonic() + 300
    while not all(cache.load("analysis", key, run_key=job.key) is not None for key in wanted):
        assert time.monotonic() < deadline, "the worker never stored the first-visit analyses"
        time.sleep(0.5)


def test_a_call_in_the_background_keeps_its_worker_and_the_next_call_gets_another(workers,
                                                                                  tmp_path):
    """A run's page preparation occupies its worker: a training job sent meanwhile must not
    share that process (its interpreter lock stalled such a job for minutes)."""
    started, release = tmp_path / "pid", tmp_path / "release"
    processes.in_background(pid_then_wait, started, release)
    assert wait_for(started)
    try:
        assert processes.in_worker(worker_pid) != int(started.read_text())
    finally:
        release.touch()


def test_a_failing_call_in_the_background_is_logged(workers, caplog):
    with caplog.at_level("WARNING", logger=processes.__name__):
        processes.in_background(fail)
        wait_until(lambda: "fail in the background failed" in caplog.text)


def test_a_gate_bounds_the_calls_in_the_background_at_once(workers, tmp_path):
    """Page preparations go one at a time (each holds a worker process)."""
    gate = threading.Semaphore(1)
    first, second, release = tmp_path / "first", tmp_path / "second", tmp_path / "release"
    processes.in_background(pid_then_wait, first, release, gate=gate)
    processes.in_background(pid_then_wait, second, release, gate=gate)
    assert wait_for(first)
    assert not wait_for(second, timeout=2.0), "the second call waits for the gate"
    release.touch()
    assert wait_for(second)
