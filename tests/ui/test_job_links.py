"""Issue 28: a job's link (?jobs=id) opens it again in the browser that started it, and in no
other unless its user shared it; job ids carry 128 random bits."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from bnapp.ui import state
from tests.apptest import APP, app_at, texts
from tests.ui.test_faults import finish, start


def opened(url_jobs: str) -> AppTest:
    """A new session (a reload, or the address pasted in a browser) whose URL names jobs."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params[state.JOBS_PARAM] = url_jobs
    at.run()
    assert not at.exception
    return at


@pytest.mark.slow
def test_a_jobs_link_opens_only_in_its_browser_until_shared(browser_identity):
    mine = browser_identity.id
    tab = app_at("pages/train.py")
    job = finish(tab, start(tab, proto_folds=3, proto_epochs=20, proto_seed=281))
    assert re.fullmatch(r"train-[0-9a-f]{32}", job.id), "128 random bits"
    link = tab.query_params[state.JOBS_PARAM]
    assert link == job.id

    assert job.key in opened(link).session_state["runs"], "a reload in the same browser"

    browser_identity.id = "another-browser"
    other = opened(link)
    assert other.session_state["job_ids"] == [] and not other.session_state.get("runs")
    assert state.JOBS_PARAM not in other.query_params, "the link is dropped from its URL"
    assert "started in another browser" in texts(other)

    browser_identity.id = None  # no cookie at all: no identity, nothing opens
    assert opened(link).session_state["job_ids"] == []

    browser_identity.id = mine
    tab.button(key=f"share-train-{job.id}").click().run()  # its owner shares it
    assert "Shared: anyone who opens this page's address" in texts(tab)
    browser_identity.id = "another-browser"
    shared = opened(link)
    assert shared.session_state["job_ids"] == [job.id]
    assert job.key in shared.session_state["runs"]
