"""Background jobs: progress, sharing one computation, the queue, cancel, failures, dead workers."""

from __future__ import annotations

import errno
import gc
import logging
import os
import threading
import time
import weakref
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import pytest
from joblib import Parallel, delayed

from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.intake.data import STUDY_INPUTS, DataError, demo_dataset
from bnapp.jobs import cache, cached, errors, processes, scheduler
from tests.jobs.fakes import (
    Calls,
    FakeProtocol,
    counted_train,
    die,
    fake_train,
    same_run,
    wait_until,
    where_am_i,
)

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


@pytest.fixture()
def calls(monkeypatch, tmp_path):
    """The fake trainer, counted and held at its start until calls.open() (in any process)."""
    counted = Calls.at(tmp_path / "calls", gated=True)
    monkeypatch.setattr(cached, "train_run", partial(fake_train, calls=counted))
    yield counted
    counted.open()  # never leave a job blocked


@pytest.fixture()
def data():
    X = np.random.default_rng(3).normal(50, 10, size=(24, 5))
    return X, X[:, 1] / 2


def _submit(manager, X, y, **kw):
    data_key = cache.array_fingerprint(X, y, FEATURES, "Ueq")
    return manager.submit_train(X, y, kw.pop("spec", ArchSpec()), kw.pop("protocol", FakeProtocol()),
                                features=FEATURES, target="Ueq", data_key=data_key, **kw)


def test_submit_returns_at_once_and_reports_progress(calls, data):
    X, y = data
    manager = scheduler.JobManager(max_jobs=1)
    job = _submit(manager, X, y)
    assert job.state in ("queued", "running") and not job.wait(0)
    assert job.kind == "train" and job.label == ArchSpec().label and job.epochs_total == 12
    calls.open()
    run = job.result(timeout=60)
    assert job.state == "done" and job.progress == 1.0 and job.epochs_done == 12
    assert job.elapsed >= 0 and job.eta_seconds is None
    assert calls.places() != [f"pid {os.getpid()}"] and calls.n == 1, \
        "the training ran in a worker process"
    direct = fake_train(X, y, ArchSpec(), FakeProtocol(), features=FEATURES)
    assert same_run(run, direct)
    again = _submit(scheduler.JobManager(), X, y)  # another server process: served by the cache
    assert same_run(again.result(60), run) and calls.n == 1
    assert again.message == "done (from the cache)"


def test_progress_fraction_epochs_and_eta_while_running():
    manager = scheduler.JobManager(max_jobs=1)
    halfway, release = threading.Event(), threading.Event()

    def work(progress):
        progress(0.5, "fold 2 of 4")
        halfway.set()
        release.wait(60)
        return 42

    job = manager.submit("analysis", "k-eta", work, epochs_total=10)
    assert halfway.wait(60)
    snap = job.snapshot()
    assert snap["state"] == "running" and snap["progress"] == 0.5 and snap["epochs_done"] == 5
    assert snap["message"] == "fold 2 of 4" and snap["eta_seconds"] is not None and snap["eta_seconds"] >= 0
    frame = manager.jobs_frame()
    assert frame.loc[0, "id"] == job.id and frame.loc[0, "state"] == "running"
    release.set()
    assert job.result(60) == 42


def test_same_key_twice_shares_one_computation(calls, data):
    X, y = data
    manager = scheduler.JobManager(max_jobs=2)
    first = _submit(manager, X, y)
    second = _submit(manager, X.copy(), y.copy())
    assert second is first
    calls.open()
    assert first.result(60) is second.result(60)
    assert calls.n == 1
    assert _submit(manager, X, y) is first, "a finished job is still shared"


def test_concurrent_cached_train_calls_compute_once(calls, data, monkeypatch):
    """Two callers without a shared manager (two server processes): the lock file makes the
    second wait for the first, then read its result from the cache."""
    X, y = data
    waiting = threading.Event()
    real_try = cached._try_acquire

    def try_acquire(lock):
        got = real_try(lock)
        if not got:
            waiting.set()
        return got

    monkeypatch.setattr(cached, "_try_acquire", try_acquire)
    results = {}

    def call(name):
        results[name] = cached.cached_train(X, y, ArchSpec(), FakeProtocol(), features=FEATURES,
                                          target="Ueq", data_key="same-data")

    a = threading.Thread(target=call, args=("a",))
    a.start()
    wait_until(lambda: calls.n == 1)
    b = threading.Thread(target=call, args=("b",))
    b.start()
    assert waiting.wait(60), "the second caller waits on the lock"
    calls.open()
    a.join(60)
    b.join(60)
    assert calls.n == 1
    assert same_run(results["a"], results["b"])


def test_queue_bound_positions_and_cancel_queued(calls, data, monkeypatch):
    monkeypatch.setenv("BNAPP_MAX_JOBS", "2")
    X, y = data
    manager = scheduler.JobManager()
    assert manager.max_jobs == 2
    submitted = [_submit(manager, X, y, protocol=FakeProtocol(seed=s)) for s in range(4)]
    wait_until(lambda: calls.n == 2)
    assert [j.state for j in submitted] == ["running", "running", "queued", "queued"]
    assert [j.position for j in submitted] == [None, None, 1, 2]
    submitted[2].cancel()
    assert submitted[2].state == "cancelled" and submitted[3].position == 1
    with pytest.raises(processes.JobCancelled):
        submitted[2].result(1)
    calls.open()
    for j in (submitted[0], submitted[1], submitted[3]):
        j.result(60)
    assert calls.n == 3, "the cancelled job never ran"
    assert {j.state for j in manager.jobs()} == {"done", "cancelled"}


def test_cancel_a_running_job(calls, data):
    X, y = data
    manager = scheduler.JobManager(max_jobs=1)
    job = _submit(manager, X, y)
    wait_until(lambda: calls.n == 1)
    job.cancel()
    calls.open()
    assert job.wait(60)
    assert job.state == "cancelled" and job.error is None
    assert cache.entries().empty, "nothing is cached for a cancelled run"
    again = _submit(manager, X, y)
    assert again is not job, "a cancelled job can be submitted anew"
    assert same_run(again.result(60), fake_train(X, y, ArchSpec(), FakeProtocol(),
                                                 features=FEATURES))


def test_failing_job_ends_failed_and_others_continue():
    manager = scheduler.JobManager(max_jobs=1)

    def bad():
        raise ValueError("learning rate 10 diverged at epoch 3; lower --lr")

    failed = manager.submit("train", "k-bad", bad)
    ok = manager.submit("train", "k-ok", lambda: "fine")
    assert ok.result(60) == "fine"
    assert failed.state == "failed"
    assert failed.error.startswith("an unexpected error stopped this job (ValueError: learning "
                                   "rate 10 diverged at epoch 3; lower --lr). Your data")
    with pytest.raises(errors.JobFailed, match="diverged"):
        failed.result()
    assert manager.submit("train", "k-bad", lambda: "retried").result(60) == "retried"


def _parallel_with_a_dying_worker():
    return Parallel(n_jobs=2, backend="loky")(delayed(die)(i) for i in range(4))


@pytest.mark.slow
def test_worker_process_killed_mid_job():
    manager = scheduler.JobManager(max_jobs=2)
    dying = manager.submit("grid", "k-die", _parallel_with_a_dying_worker)
    assert dying.wait(120)
    assert dying.state == "failed"
    assert "worker process died" in dying.error
    healthy = manager.submit("grid", "k-next", lambda: Parallel(n_jobs=2)(
        delayed(where_am_i)(i) for i in range(2)))
    assert all(w.startswith("pid ") for w in healthy.result(120))


def _slow_task(i: int, marker_dir: str, go: str) -> int:
    Path(marker_dir, f"{os.getpid()}.pid").write_text("")
    if i > 0:
        deadline = time.monotonic() + 120
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
    return i


def test_cancel_terminates_process_workers(tmp_path):
    go = tmp_path / "go"

    def grid(progress):
        tasks = (delayed(_slow_task)(i, str(tmp_path), str(go)) for i in range(40))
        done = 0
        for _ in Parallel(n_jobs=2, backend="loky", return_as="generator_unordered")(tasks):
            done += 1
            progress(done / 40, f"{done} of 40")
        return done

    job = scheduler.JobManager(max_jobs=1).submit("grid", "k-cancel", grid)
    wait_until(lambda: job.progress > 0)
    job.cancel()
    go.write_text("")
    assert job.wait(120)
    assert job.state == "cancelled"
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert pids
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                               for p in pids))


def test_cache_warnings_are_kept_on_the_job(calls, data, monkeypatch):
    X, y = data

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.tempfile, "mkstemp", full)
    calls.open()
    job = _submit(scheduler.JobManager(), X, y)
    run = job.result(60)
    assert len(run.folds) == 3 and job.state == "done"
    assert calls.places() != [f"pid {os.getpid()}"], "trained in a worker, stored by the job"
    assert any("No space left" in w for w in job.warnings)


def test_job_manager_is_one_per_process():
    assert scheduler.job_manager() is scheduler.job_manager()


def _bnapp_value_error():
    return Protocol(folds=0)  # bnapp's own check: a message for the user


def _numpy_value_error():
    return np.reshape(np.arange(3), (2, 2))  # a library's error: a bug somewhere


def _data_error():
    raise DataError("sessions.csv: column Upre, row 7: not a number")


def test_user_facing_errors_read_as_messages_and_others_keep_their_class():
    manager = scheduler.JobManager(max_jobs=1)
    failed = {name: manager.submit("train", f"k-{name}", fn) for name, fn in (
        ("bnapp", _bnapp_value_error), ("numpy", _numpy_value_error), ("data", _data_error))}
    for job in failed.values():
        assert job.wait(60) and job.state == "failed"
    assert failed["bnapp"].error == "folds must be at least 2 for k-fold (1 for study), not 0"
    assert failed["data"].error == "sessions.csv: column Upre, row 7: not a number"
    assert "(ValueError: cannot reshape" in failed["numpy"].error
    assert "submit it again" in failed["numpy"].error


@pytest.fixture(scope="module")
def demo():
    ds = demo_dataset()
    return ds.X(STUDY_INPUTS), ds.y()


@pytest.mark.slow
def test_errors_raised_in_the_worker_process_read_as_messages(demo, monkeypatch, tmp_path):
    """Through the worker, loky re-raises the error with its traceback as text."""
    X, y = demo
    calls = Calls.at(tmp_path / "calls")
    monkeypatch.setattr(cached, "train_run", partial(counted_train, calls=calls))
    manager = scheduler.JobManager(max_jobs=1)
    few = _submit(manager, X[:5], y[:5], protocol=Protocol(folds=10))
    no_bn = ArchSpec((6,), "sigmoid", "linear", input_bn=False, hidden_bn=False)
    diverging = _submit(manager, X, y, spec=no_bn, protocol=Protocol(folds=3, epochs=60, lr=10))
    for job in (few, diverging):
        assert job.wait(300) and job.state == "failed", job
    assert calls.n == 2 and f"pid {os.getpid()}" not in calls.places()
    assert few.error == "5 rows are too few for 10 folds: use fewer folds or more rows"
    assert diverging.error.startswith("training diverged: "), diverging.error
    assert "fold " in diverging.error and "epoch " in diverging.error
    assert "Lower the learning rate (now 10)" in diverging.error


def test_each_job_started_is_logged_once_per_computation(calls, data, caplog):
    """One INFO line per job that starts, so a server log shows whether duplicate requests
    shared one computation (the load test counts them)."""
    X, y = data
    caplog.set_level(logging.INFO, logger="bnapp")
    manager = scheduler.JobManager(max_jobs=2)
    first, again = _submit(manager, X, y), _submit(manager, X, y)
    other = _submit(manager, X, y, protocol=FakeProtocol(seed=1))
    calls.open()
    for job in (first, again, other):
        job.result(60)
    started = [r.getMessage() for r in caplog.records if r.name.startswith("bnapp")]
    assert sorted(started) == sorted(f"bnapp job started: train {j.key}" for j in (first, other))


def test_exports_queue_apart_from_trainings_and_grids():
    manager = scheduler.JobManager(max_jobs=1)
    training, exporting = threading.Event(), threading.Event()
    train = manager.submit("train", "k-train", training.wait, 60)
    grid = manager.submit("grid", "k-grid", lambda: "grid")
    held = manager.submit("export", "k-held", exporting.wait, 60)
    assert grid.position == 1 and held.position is None, "the export did not queue behind them"
    after = manager.submit("export", "k-after", lambda: "next")
    assert after.position == 1, "exports queue behind exports"
    exporting.set()
    assert held.result(60) and after.result(60) == "next"
    assert train.state == "running" and grid.position == 1
    training.set()
    assert grid.result(60) == "grid"


class _Bundle:
    """Stands for an ExportBundle: a ZIP and an HTML report in memory."""


def test_only_the_latest_exports_keep_their_bundles():
    manager = scheduler.JobManager(keep_exports=2)
    train = manager.submit("train", "k-train", lambda: "run")
    assert train.result(60) == "run"
    built = []

    def build():
        bundle = _Bundle()
        built.append(weakref.ref(bundle))
        return bundle

    exports = [manager.submit("export", f"k-export-{i}", build) for i in range(4)]
    assert all(job.wait(60) for job in exports)
    wait_until(lambda: len(manager.jobs()) == 3)
    assert manager.jobs() == [train, *exports[2:]], "older exports are forgotten, not trainings"
    assert manager.find(exports[0].key) is None and manager.get(exports[1].id) is None
    gc.collect()
    assert [ref() is None for ref in built] == [True, True, False, False], \
        "a forgotten export's bytes are freed, even while its Job is still held"
    with pytest.raises(errors.JobFailed, match="dropped to free memory"):
        exports[0].result()
    assert exports[3].result() is built[3]()
    again = manager.submit("export", "k-export-0", build)
    assert again is not exports[0] and again.result(60) is built[4](), "built anew"


def test_failed_and_cancelled_exports_do_not_push_out_a_built_bundle():
    manager = scheduler.JobManager(keep_exports=1)
    good = manager.submit("export", "k-good", _Bundle)
    assert good.wait(60)

    def broken():
        raise RuntimeError("no space left")

    for i in range(3):
        assert manager.submit("export", f"k-broken-{i}", broken).wait(60)
    assert isinstance(good.result(), _Bundle), "the built bundle is kept"
    assert manager.find("k-good") is good
