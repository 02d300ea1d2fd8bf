"""A long training's progress on the Train page and in the sidebar: epochs done, epochs per
second and the time left."""

from __future__ import annotations

import threading
import uuid

from streamlit.testing.v1 import AppTest

from bnapp.jobs import scheduler
from bnapp.ui import state
from bnapp.ui.widgets import duration
from tests.apptest import APP
from tests.jobs.fakes import fake_clock, held_job


def progress_texts(at: AppTest) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


def test_a_running_training_shows_its_rate_and_the_time_left(monkeypatch):
    now = fake_clock(monkeypatch)
    release = threading.Event()
    job = held_job(scheduler.job_manager(), release, key=f"held-{uuid.uuid4().hex}")  # t = 0
    try:
        for t, fraction in ((10.0, 0.05), (14.0, 0.25)):  # 10 s to start, then 0.2 in 4 s
            now[0] = t
            job.report(fraction, f"epoch {fraction * 200:.0f}/200")
        now[0] = 15.0
        # 0.25 of 2,000 epochs done; 400 epochs in 4 s; 1,500 left at 100/s, 1 s after the report
        expected = "500/2000 epochs · 100 epochs/s · 15 s · about 14 s left"
        at = AppTest.from_file(APP, default_timeout=60)
        state.share(job)  # submitted outside a session, it has no browser: open it to all
        at.query_params["jobs"] = job.id  # the session's job, as after a reload
        at.run()
        assert not at.exception
        assert progress_texts(at) == [expected], "in the sidebar"
        at.switch_page("pages/train.py").run()
        assert not at.exception
        assert expected in progress_texts(at), "on the Train page"
    finally:
        release.set()


def test_durations_read_as_seconds_minutes_and_hours():
    assert [duration(s) for s in (0.4, 42, 59.6, 185, 3599, 7620)] == [
        "0 s", "42 s", "1 min 00 s", "3 min 05 s", "59 min 59 s", "2 h 07 min"]
