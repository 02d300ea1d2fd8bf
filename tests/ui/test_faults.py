"""Faults seen from the dashboard (issue 7): a cache that cannot store, a diverging training,
cancelling from the page, a reloaded tab, and a large upload's dropped rows."""

from __future__ import annotations

import errno
import io

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bnapp.intake import data
from bnapp.jobs import cache
from bnapp.jobs.scheduler import job_manager
from bnapp.ui import widgets
from tests.apptest import APP, app_at, demo_run, texts
from tests.jobs.fakes import wait_until

PAGE = "pages/train.py"
ANALYSIS_PAGES = ("pages/stages.py", "pages/parameters.py", "pages/sensitivity.py")
WAIT_SECONDS = 600  # a bound for a hung job, not a speed requirement
LONG = {"proto_folds": 100, "proto_epochs": 10_000}  # a million epochs: minutes of training


@pytest.fixture(autouse=True)
def _no_job_left_running():
    """A failed test must not leave a long training holding the process's one job slot."""
    yield
    for job in job_manager().jobs():
        if job.state in ("queued", "running"):
            job.cancel()
            job.wait(WAIT_SECONDS)


def start(at, **controls):
    """Set the Train page's controls (by key) and press Train; the job it submitted."""
    for key, value in controls.items():
        widget = at.toggle(key=key) if key.startswith("arch_") else at.number_input(key=key)
        widget.set_value(value)
    at.button(key="train").click().run()
    assert not at.exception
    return job_manager().get(at.session_state["train_job"])


def finish(at, job, state: str = "done"):
    assert job.wait(WAIT_SECONDS), job
    assert job.state == state, job.error
    at.run()
    assert not at.exception
    return job


def unbackslash(text: str) -> str:
    return text.replace("\\", "")


# --------------------------------------------------------------------------------- full disk

@pytest.mark.slow
def test_a_full_cache_is_reported_and_the_run_stays_usable(monkeypatch):
    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_atomic_write", full)
    at = app_at(PAGE)
    job = finish(at, start(at, proto_folds=3, proto_epochs=20, proto_seed=11))
    assert cache.entries().empty
    notes = [unbackslash(w.value) for w in at.warning if "not saved" in w.value]
    assert len(notes) == 1, "shown once, with the run's curves"
    assert "No space left on device" in notes[0] and str(cache.cache_dir()) in notes[0]
    assert "free disk space" in notes[0] and "BNAPP_CACHE_DIR" in notes[0]
    assert "could not be saved there" in texts(at), "the Cached runs caption says so"
    entry = at.session_state["runs"][job.key]
    assert not entry.saved and at.session_state["active_run"] == job.key

    for page in ANALYSIS_PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        assert at.get("vega_lite_chart") or at.dataframe, f"{page} shows nothing"
        assert "Something went wrong" not in texts(at), page


def test_the_sidebar_shows_a_jobs_cache_warning(monkeypatch):
    """AppTest draws the sidebar (app.py) on a session's first run only: the job is given to
    a new session through its URL, as a reloaded tab would."""
    def read_only(path, payload):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cache, "_atomic_write", read_only)
    at = app_at(PAGE)
    job = finish(at, start(at, proto_folds=3, proto_epochs=20, proto_seed=15))
    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["jobs"] = job.id
    reloaded.run()
    assert not reloaded.exception
    sidebar = [unbackslash(w.value) for w in reloaded.sidebar.warning]
    assert any("Read-only file system" in w and "not saved" in w for w in sidebar), sidebar
    label = reloaded.session_state["runs"][job.key].label
    assert f"{label} (not saved)" in [t.value for t in reloaded.sidebar.text]


# --------------------------------------------------------------------------------- diverging

def test_a_diverging_training_is_a_message_and_keeps_the_run_and_data():
    entry = demo_run()
    at = app_at(PAGE, runs=(entry,))
    job = start(at, arch_input_bn=False, arch_hidden_bn=False, proto_lr=10.0, proto_folds=3,
                proto_epochs=60, proto_seed=12)
    finish(at, job, "failed")
    (message,) = [unbackslash(e.value) for e in at.error if "diverged" in e.value]
    assert "TrainingDiverged" not in message and "Error" not in message
    assert "fold " in message and "epoch " in message
    assert "Lower the learning rate (now 10)" in message
    assert at.session_state["active_run"] == entry.key and job.key not in at.session_state["runs"]
    assert data.DEMO_PATH.name in at.session_state["dataset"].name
    assert cache.load("run", job.key) is None


# ------------------------------------------------------------------------------------ cancel

@pytest.mark.slow
def test_cancel_on_the_page_stops_the_training_and_saves_nothing():
    at = app_at(PAGE)
    job = start(at, **LONG, proto_seed=13)
    wait_until(lambda: job.progress > 0, WAIT_SECONDS)  # training in its worker
    at.run()  # the page polls; here one rerun shows the running job with its Cancel button
    at.button(key=f"cancel-train-{job.id}").click().run()
    finish(at, job, "cancelled")
    assert "cancelled; nothing was saved" in texts(at)
    assert job.key not in at.session_state["runs"]
    assert cache.entries().empty


# ------------------------------------------------------------------------------------ reload

@pytest.mark.slow
def test_a_reloaded_tab_finds_its_jobs_from_the_url_and_no_others():
    tab = app_at(PAGE)
    done = finish(tab, start(tab, proto_folds=3, proto_epochs=20, proto_seed=14))
    running = start(tab, **LONG, proto_seed=16)
    assert tab.query_params["jobs"] == f"{done.id},{running.id}"

    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["jobs"] = f"{done.id},train-0000unknown,{running.id}"
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["job_ids"] == [done.id, running.id]
    assert reloaded.query_params["jobs"] == f"{done.id},{running.id}", "the unknown id is dropped"
    opened = reloaded.session_state["runs"][done.key]  # the finished run opens as usual
    assert opened.data_name == data.DEMO_PATH.name and opened.label.endswith(data.DEMO_PATH.name)
    assert reloaded.sidebar.button(key=f"cancel-sidebar-{running.id}"), "shown as running"

    reloaded.switch_page(PAGE).run()  # the Train page shows the running job: cancel it there
    reloaded.button(key=f"cancel-train-{running.id}").click().run()
    finish(reloaded, running, "cancelled")

    other = app_at(PAGE)  # another tab: its URL names no job, so it sees none
    assert other.session_state["job_ids"] == [] and "jobs" not in other.query_params
    assert done.key not in other.session_state.get("runs", {})


@pytest.mark.slow
def test_a_reloaded_tab_opens_its_newest_run_last():
    tab = app_at(PAGE)
    older = finish(tab, start(tab, proto_folds=3, proto_epochs=20, proto_seed=17))
    newer = finish(tab, start(tab, proto_folds=3, proto_epochs=20, proto_seed=18))
    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["jobs"] = tab.query_params["jobs"]
    reloaded.run()
    assert not reloaded.exception
    assert list(reloaded.session_state["runs"]) == [older.key, newer.key], "oldest first"
    assert reloaded.session_state["active_run"] == newer.key


# ------------------------------------------------------------------------------ large tables

def test_a_table_sends_a_bounded_number_of_rows_and_downloads_all(tmp_path, monkeypatch):
    downloads = {}  # file name -> the bytes its button would download
    real_button = st.download_button

    def recording(label, data_, file_name, *args, **kwargs):
        downloads[file_name] = data_
        return real_button(label, data_, file_name, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording)
    demo = pd.read_csv(data.DEMO_PATH)
    bad = demo.sample(widgets.MAX_TABLE_ROWS + 300, replace=True, random_state=0)
    bad["Ueq"] = bad["Upos"] - 1  # below Upos: each of these rows is dropped
    path = tmp_path / "many_dropped.csv"
    pd.concat([demo, bad]).to_csv(path, index=False)
    n_dropped = data.load_dataset(path).n_dropped
    assert n_dropped > widgets.MAX_TABLE_ROWS

    at = app_at("pages/data.py")
    at.file_uploader(key="upload").set_value((path.name, path.read_bytes(), "text/csv")).run()
    assert not at.exception
    (shown,) = [d.value for d in at.dataframe if "reason" in d.value.columns and "row" in d.value]
    assert len(shown) == widgets.MAX_TABLE_ROWS
    assert (f"First {widgets.MAX_TABLE_ROWS:,} of {n_dropped:,} rows shown; the downloads hold "
            f"all {n_dropped:,}.") in texts(at)
    full = pd.read_csv(io.BytesIO(downloads["dropped-rows.csv"]()), encoding="utf-8-sig")
    assert len(full) == n_dropped and full["row"].tolist()[:5] == shown["row"].tolist()[:5]
