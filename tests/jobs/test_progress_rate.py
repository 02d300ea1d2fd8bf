"""A running job's rate and time left, measured between its progress reports (so a slow start,
e.g. a worker process starting or big data being sent to it, does not count as training)."""

from __future__ import annotations

import threading

import pytest

from bnapp.jobs import scheduler
from tests.jobs.fakes import fake_clock, held_job, wait_until


@pytest.fixture()
def clock(monkeypatch):
    return fake_clock(monkeypatch)


def test_the_rate_leaves_out_the_start_and_the_time_left_counts_from_the_last_report(clock):
    release = threading.Event()
    job = held_job(scheduler.JobManager(), release)  # started at t = 0
    clock[0] = 10.0  # ten seconds of start-up before the first report
    job.report(0.05)
    assert job.rate is None and job.epochs_per_second is None
    assert job.eta_seconds == pytest.approx(10.0 * 0.95 / 0.05), "from the elapsed time until then"
    for t, fraction in ((12.0, 0.15), (14.0, 0.25)):
        clock[0] = t
        job.report(fraction)
    clock[0] = 15.0
    # 0.2 of the work in the 4 s between the first and the last report
    assert job.rate == pytest.approx(0.05)
    assert job.epochs_per_second == pytest.approx(0.05 * 2000)
    assert job.eta_seconds == pytest.approx(0.75 / 0.05 - 1.0)
    snap = job.snapshot()
    assert snap["epochs_per_second"] == pytest.approx(100.0) and snap["elapsed"] == 15.0
    release.set()
    wait_until(lambda: job.state == "done")
    assert job.rate is None and job.eta_seconds is None, "only while running"


def test_no_rate_without_epochs_or_without_progress_between_reports(clock):
    release = threading.Event()
    # e.g. a grid: progress in network shapes
    job = held_job(scheduler.JobManager(), release, epochs_total=None)
    for t in (1.0, 2.0):
        clock[0] = t
        job.report(0.5)
    assert job.rate is None, "no progress between the reports"
    clock[0] = 3.0
    job.report(0.75)
    assert job.rate == pytest.approx(0.125) and job.epochs_per_second is None
    release.set()
