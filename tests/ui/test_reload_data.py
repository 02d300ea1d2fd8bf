"""Issue 27, item 11: a reloaded tab finds its uploaded data set beside its run, in its own
browser only; a run trained on another data set is flagged in the sidebar and on Export."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from bnapp.intake import data
from bnapp.ui import state
from tests.apptest import APP, app_at, demo_run, texts
from tests.ui.test_faults import finish, start

OTHER_DATA = "trained on"  # the sidebar's flag of a run whose data set is not the session's


def reloaded(url_jobs: str = "", page: str | None = None) -> AppTest:
    """A new session of the app (a reload), its URL naming url_jobs."""
    at = AppTest.from_file(APP, default_timeout=120)
    if url_jobs:
        at.query_params[state.JOBS_PARAM] = url_jobs
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception
    return at


def uploaded(content: bytes, name: str = "Urea.csv") -> AppTest:
    at = app_at("pages/data.py")
    at.file_uploader(key="upload").set_value((name, content, "text/csv")).run()
    assert not at.exception and at.session_state["dataset"].name == name
    return at


def sidebar_warnings(at: AppTest) -> str:
    return "\n".join(w.value for w in at.sidebar.warning)


def test_a_reload_keeps_the_upload_and_its_choices_in_this_browser_only(urea_csv,
                                                                      browser_identity):
    tab = uploaded(urea_csv.read_bytes())
    tab.multiselect(key="data_features").set_value(["Upre", "Upos", "PP"]).run()
    kept = tab.session_state["dataset"]

    again = reloaded(page="pages/data.py")
    assert again.session_state["dataset"].fingerprint() == kept.fingerprint()
    assert again.session_state["features"] == ["Upre", "Upos", "PP"]
    assert again.multiselect(key="data_features").value == ["Upre", "Upos", "PP"]
    assert "Urea.csv" in texts(again) and "109 usable" in texts(again)
    assert any("Urea.csv" in e.label for e in again.expander), "its mapping can still be changed"

    browser_identity.id = "another-browser"
    other = reloaded()
    assert data.DEMO_PATH.name in texts(other) and "Urea.csv" not in texts(other)
    assert "features" not in other.session_state, "no choice of the first browser"

    browser_identity.id = None  # no identity: nothing is kept or restored
    assert data.DEMO_PATH.name in texts(reloaded())


def test_a_data_set_let_go_is_said_in_the_sidebar(urea_csv, browser_identity, monkeypatch):
    monkeypatch.setattr(state, "KEPT_BROWSERS", 1)
    mine = browser_identity.id
    uploaded(urea_csv.read_bytes())
    browser_identity.id = "another-browser"
    app_at().button(key="demo").click().run()  # the server keeps this browser's data set now

    browser_identity.id = mine
    again = reloaded()
    gone = sidebar_warnings(again)
    assert "**Urea.csv**, the data set this browser used last, is no longer kept" in gone
    assert "Load its file again on Data" in gone
    assert again.session_state["dataset"].name == data.DEMO_PATH.name


def first_run(ds: data.Dataset, entry) -> AppTest:
    """A session's first run (AppTest draws app.py's sidebar then only) with ds and entry."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["dataset"] = ds
    at.session_state["runs"] = {entry.key: entry}
    at.session_state["active_run"] = entry.key
    at.run()
    assert not at.exception
    return at


def test_a_run_of_another_data_set_is_flagged_in_the_sidebar(urea_csv):
    entry = demo_run()
    assert OTHER_DATA not in sidebar_warnings(first_run(data.demo_dataset(), entry))
    flag = sidebar_warnings(first_run(data.load_dataset(urea_csv.read_bytes(), "Urea.csv"),
                                      entry))
    assert OTHER_DATA in flag and data.DEMO_PATH.name.replace("_", "\\_") in flag
    assert "not on Urea.csv" in flag and "load its file again on Data" in flag

    fewer = data.load_dataset(data.DEMO_PATH.read_bytes()[:4000], data.DEMO_PATH.name)
    flag = sidebar_warnings(first_run(fewer, entry))
    assert "another version of" in flag, "same name, other rows"


def test_the_export_page_says_what_it_lacks_without_the_runs_data(urea_csv):
    at = app_at("pages/export.py", runs=(demo_run(),))
    assert "This export lacks" not in texts(at)
    at.session_state["dataset"] = data.load_dataset(urea_csv.read_bytes(), "Urea.csv")
    at.run()
    note = texts(at)
    assert "This export lacks the data set's validation report" in note
    assert data.DEMO_PATH.name.replace("_", "\\_") in note and "not on Urea.csv" in note


@pytest.mark.slow
def test_a_reload_brings_back_the_run_beside_the_data_it_was_trained_on(urea_csv,
                                                                      browser_identity):
    tab = uploaded(urea_csv.read_bytes())
    tab.switch_page("pages/train.py").run()
    job = finish(tab, start(tab, proto_folds=3, proto_epochs=20, proto_seed=2711))
    link = tab.query_params[state.JOBS_PARAM]

    again = reloaded(link)
    assert job.key in again.session_state["runs"]
    assert again.session_state["dataset"].name == "Urea.csv"
    assert OTHER_DATA not in sidebar_warnings(again), "the run beside its own data set"
    assert "This export lacks" not in texts(again.switch_page("pages/export.py").run())

    browser_identity.id = "another-browser"
    other = reloaded(link)
    assert not other.session_state.get("runs") and "Urea.csv" not in texts(other)
